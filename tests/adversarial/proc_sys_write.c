// Writing host-wide kernel settings through /proc: argv[1] the file, argv[2] the value (e.g.
// /proc/sys/kernel/core_pattern "|/tmp/x", the classic container escape; /proc/sysrq-trigger).
#define _GNU_SOURCE

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "adv.h"

int main(int argc, char** argv) {
  if (argc < 3) adv_usage(argv, "PATH VALUE");
  adv_attempt("write %s", argv[1]);
  int fd = open(argv[1], O_WRONLY | O_CLOEXEC);
  if (fd < 0) adv_blocked(errno, "open %s", argv[1]);
  struct stat st;
  if (fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 &&
      minor(st.st_rdev) == 3) {
    adv_blocked_as("MASKED", "%s is /dev/null", argv[1]);
  }
  ssize_t n = write(fd, argv[2], strlen(argv[2]));
  if (n < 0) adv_blocked(errno, "write %s", argv[1]);
  adv_escaped("wrote %zd bytes to %s", n, argv[1]);
}
