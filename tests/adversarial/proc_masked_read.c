// Reading what /proc says about the host: argv[1] (/proc/kallsyms, /proc/keys, /proc/kcore,
// /proc/timer_list...). Masked files read empty.
#define _GNU_SOURCE

#include <fcntl.h>

#include "adv.h"

int main(int argc, char** argv) {
  if (argc < 2) adv_usage(argv, "PATH");
  adv_attempt("read %s", argv[1]);
  int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
  if (fd < 0) adv_blocked(errno, "open %s", argv[1]);
  char buf[4096];
  ssize_t n = read(fd, buf, sizeof buf);
  if (n < 0) adv_blocked(errno, "read %s", argv[1]);
  if (n == 0) adv_blocked_as("EMPTY", "%s reads empty", argv[1]);
  adv_escaped("read %zd bytes of %s", n, argv[1]);
}
