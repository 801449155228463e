// The old mount API and changing the root. Modes: mount | umount2 (MNT_DETACH) | umount2_plain
// (flags 0) | pivot_root | chroot.
#define _GNU_SOURCE

#include <sys/mount.h>
#include <sys/syscall.h>

#include "adv.h"

int main(int argc, char** argv) {
  const char* mode = adv_mode(argc, argv, "mount|umount2|umount2_plain|pivot_root|chroot");
  adv_attempt("%s", mode);
  if (strcmp(mode, "mount") == 0)  // a writable filesystem over the read-only /usr
    adv_report(syscall(SYS_mount, "none", "/usr", "tmpfs", 0L, NULL), mode);
  // Uncover what a mount hides: /tmp, a mount point in every jail (the read-only root's /tmp
  // beneath it).
  if (strcmp(mode, "umount2") == 0) adv_report(syscall(SYS_umount2, "/tmp", MNT_DETACH), mode);
  if (strcmp(mode, "umount2_plain") == 0) adv_report(syscall(SYS_umount2, "/tmp", 0), mode);
  if (strcmp(mode, "pivot_root") == 0) adv_report(syscall(SYS_pivot_root, "/tmp", "/tmp"), mode);
  if (strcmp(mode, "chroot") == 0) adv_report(syscall(SYS_chroot, "/tmp"), mode);
  adv_usage(argv, "mount|umount2|umount2_plain|pivot_root|chroot");
}
