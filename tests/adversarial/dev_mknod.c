// Making device nodes in the writable filesystems and opening them (the disk, /dev/mem).
// Modes: block (/tmp/sda, 8:0) | char (/box/mem, 1:1) | whiteout (/tmp/wh, 0:0).
#define _GNU_SOURCE

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "adv.h"

int main(int argc, char** argv) {
  const char* mode = adv_mode(argc, argv, "block|char|whiteout");
  const char* path;
  mode_t type;
  dev_t dev;
  if (strcmp(mode, "block") == 0) {
    path = "/tmp/sda", type = S_IFBLK, dev = makedev(8, 0);
  } else if (strcmp(mode, "char") == 0) {
    path = "/box/mem", type = S_IFCHR, dev = makedev(1, 1);
  } else if (strcmp(mode, "whiteout") == 0) {
    path = "/tmp/wh", type = S_IFCHR, dev = makedev(0, 0);
  } else {
    adv_usage(argv, "block|char|whiteout");
  }
  adv_attempt("mknod %s %u:%u", path, major(dev), minor(dev));
  if (mknod(path, type | 0666, dev) != 0) adv_blocked(errno, "mknod %s", path);
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) adv_blocked(errno, "mknod worked, open %s", path);
  adv_escaped("%s made and opened", path);
}
