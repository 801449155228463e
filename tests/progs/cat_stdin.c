// Copies stdin to stdout; with an argument, also writes the byte count to stderr at the end.
#include <stdio.h>
#include <unistd.h>

int main(int argc, char** argv) {
  char buf[65536];
  long long total = 0;
  for (;;) {
    ssize_t n = read(0, buf, sizeof buf);
    if (n <= 0) break;
    total += n;
    for (ssize_t done = 0; done < n;) {
      ssize_t w = write(1, buf + done, (size_t)(n - done));
      if (w <= 0) return 1;
      done += w;
    }
  }
  if (argc > 1) dprintf(2, "%lld\n", total);
  return 0;
}
