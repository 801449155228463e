// The new mount API. Modes: fsopen | fsconfig | fsmount | fspick | open_tree | move_mount |
// mount_setattr.
#define _GNU_SOURCE

#include <fcntl.h>
#include <linux/mount.h>
#include <sys/syscall.h>

#include "adv.h"

#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif

int main(int argc, char** argv) {
  const char* usage = "fsopen|fsconfig|fsmount|fspick|open_tree|move_mount|mount_setattr";
  const char* mode = adv_mode(argc, argv, usage);
  adv_attempt("%s", mode);
  if (strcmp(mode, "fsopen") == 0) adv_report(syscall(SYS_fsopen, "tmpfs", 0), mode);
  if (strcmp(mode, "fsconfig") == 0)
    adv_report(syscall(SYS_fsconfig, 0, FSCONFIG_CMD_CREATE, NULL, NULL, 0), mode);
  if (strcmp(mode, "fsmount") == 0) adv_report(syscall(SYS_fsmount, 0, 0, 0), mode);
  if (strcmp(mode, "fspick") == 0) adv_report(syscall(SYS_fspick, AT_FDCWD, "/usr", 0), mode);
  if (strcmp(mode, "open_tree") == 0)  // a detached copy of the root, to be moved elsewhere
    adv_report(syscall(SYS_open_tree, AT_FDCWD, "/", OPEN_TREE_CLONE | AT_RECURSIVE), mode);
  if (strcmp(mode, "move_mount") == 0)
    adv_report(syscall(SYS_move_mount, AT_FDCWD, "/tmp", AT_FDCWD, "/usr", 0), mode);
  if (strcmp(mode, "mount_setattr") == 0) {  // clear read-only on the root's binds
    struct mount_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.attr_clr = MOUNT_ATTR_RDONLY;
    adv_report(syscall(SYS_mount_setattr, AT_FDCWD, "/usr", AT_RECURSIVE, &attr, sizeof attr),
               mode);
  }
  adv_usage(argv, usage);
}
