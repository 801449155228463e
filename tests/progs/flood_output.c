// Writes argv[1] bytes to stdout in 64 KiB chunks, or forever when no argument is given.
// Exits 1 when a write fails.
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char** argv) {
  static char buf[65536];
  memset(buf, 'x', sizeof buf);
  int forever = argc < 2;
  unsigned long long left = forever ? 0 : strtoull(argv[1], NULL, 10);
  while (forever || left > 0) {
    size_t n = sizeof buf;
    if (!forever && left < n) n = left;
    ssize_t w = write(1, buf, n);
    if (w <= 0) return 1;
    if (!forever) left -= (unsigned long long)w;
  }
  return 0;
}
