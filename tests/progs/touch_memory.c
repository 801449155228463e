// Allocates argv[1] MiB, writes to every page, prints "done", then sleeps argv[2] ms if given.
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char** argv) {
  size_t mib = argc > 1 ? strtoull(argv[1], NULL, 10) : 1;
  size_t size = mib << 20;
  volatile char* p = malloc(size);
  if (p == NULL) {
    puts("malloc failed");
    return 1;
  }
  for (size_t i = 0; i < size; i += 4096) p[i] = (char)i | 1;
  puts("done");
  fflush(stdout);
  if (argc > 2) {
    long ms = atol(argv[2]);
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
  }
  return 0;
}
