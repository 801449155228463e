// A solution of "guess the number" (see guess_interactor.c): reads N, then guesses. argv[1]:
//   binary  binary search (correct)
//   wrong   binary search with the answers' meaning swapped (never finds it)
//   flood   writes to stdout forever without reading
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "binary";
  setvbuf(stdout, NULL, _IONBF, 0);
  if (strcmp(mode, "flood") == 0) {
    static char buf[65536];
    memset(buf, '?', sizeof buf);
    for (;;) {
      if (write(1, buf, sizeof buf) < 0) return 1;
    }
  }
  long lo = 1, hi = 0;
  if (scanf("%ld", &hi) != 1) return 1;
  int swapped = strcmp(mode, "wrong") == 0;
  while (lo <= hi) {
    long mid = lo + (hi - lo) / 2;
    printf("? %ld\n", mid);
    char reply[8];
    if (scanf("%7s", reply) != 1) return 1;
    if (reply[0] == '=') return 0;
    int go_lower = reply[0] == '<';
    if (swapped) go_lower = !go_lower;
    if (go_lower) {
      hi = mid - 1;
    } else {
      lo = mid + 1;
    }
  }
  return 0;
}
