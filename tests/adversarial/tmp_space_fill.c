// Writes to a file in argv[1] (default /tmp) until it cannot: the tmpfs size (ENOSPC) or the
// output limit (RLIMIT_FSIZE: EFBIG, SIGXFSZ ignored) must stop it.
#define _GNU_SOURCE

#include <fcntl.h>
#include <signal.h>

#include "adv.h"

int main(int argc, char** argv) {
  const char* dir = argc > 1 ? argv[1] : "/tmp";
  signal(SIGXFSZ, SIG_IGN);
  char path[4096];
  snprintf(path, sizeof path, "%s/fill", dir);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) adv_blocked(errno, "open %s", path);
  static char chunk[1 << 16];
  memset(chunk, 'x', sizeof chunk);
  adv_attempt("fill %s", path);
  long long written = 0;
  for (;;) {
    ssize_t n = write(fd, chunk, sizeof chunk);
    if (n < 0) break;
    written += n;
    if (written > (1LL << 34)) adv_escaped("wrote %lld bytes", written);
  }
  adv_blocked(errno, "bytes=%lld", written);
}
