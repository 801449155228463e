// Hard links from the writable filesystems to read-only shared files (to modify them, or to
// keep a handle on a host inode): across mounts, so EXDEV. Modes: passwd (/etc/passwd into
// /box) | prog (this program into /tmp) | fd (linkat of an O_PATH fd through /proc/self/fd).
#define _GNU_SOURCE

#include <fcntl.h>

#include "adv.h"

int main(int argc, char** argv) {
  const char* mode = adv_mode(argc, argv, "passwd|prog|fd");
  adv_attempt("hard link %s", mode);
  if (strcmp(mode, "passwd") == 0) {
    if (link("/etc/passwd", "/box/passwd") != 0) adv_blocked(errno, "link /etc/passwd");
    adv_escaped("/box/passwd links /etc/passwd");
  }
  if (strcmp(mode, "prog") == 0) {
    if (link(argv[0], "/tmp/prog") != 0) adv_blocked(errno, "link %s", argv[0]);
    adv_escaped("/tmp/prog links %s", argv[0]);
  }
  if (strcmp(mode, "fd") == 0) {
    int fd = open("/etc/passwd", O_PATH | O_CLOEXEC);
    if (fd < 0) adv_blocked(errno, "open /etc/passwd O_PATH");
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    if (linkat(AT_FDCWD, path, AT_FDCWD, "/tmp/passwd", AT_SYMLINK_FOLLOW) != 0)
      adv_blocked(errno, "linkat");
    adv_escaped("/tmp/passwd links /etc/passwd");
  }
  adv_usage(argv, "passwd|prog|fd");
}
