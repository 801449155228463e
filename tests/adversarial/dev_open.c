// Opening a host device: argv[1] (/dev/sda, /dev/mem, /dev/kmsg, /dev/tty...). Absent from the
// jail's /dev.
#define _GNU_SOURCE

#include <fcntl.h>

#include "adv.h"

int main(int argc, char** argv) {
  if (argc < 2) adv_usage(argv, "PATH");
  adv_attempt("open %s", argv[1]);
  int fd = open(argv[1], O_RDWR | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0 && (errno == EACCES || errno == EROFS))
    fd = open(argv[1], O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) adv_blocked(errno, "%s", argv[1]);
  adv_escaped("%s is open", argv[1]);
}
