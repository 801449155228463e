// Locks, leases and directory notifications on a shared read-only inode (this program's own
// file, which every job of the profile sees): a channel between jobs. Modes: flock | setlk |
// setlkw | ofd_setlk | setlease | notify.
#define _GNU_SOURCE

#include <fcntl.h>
#include <sys/file.h>
#include <sys/syscall.h>

#include "adv.h"

int main(int argc, char** argv) {
  const char* mode = adv_mode(argc, argv, "flock|setlk|setlkw|ofd_setlk|setlease|notify");
  int fd = open(argv[0], O_RDONLY | O_CLOEXEC);
  if (fd < 0) adv_blocked(errno, "open %s", argv[0]);
  struct flock fl;
  memset(&fl, 0, sizeof fl);
  fl.l_type = F_RDLCK;
  fl.l_whence = SEEK_SET;
  adv_attempt("%s", mode);
  if (strcmp(mode, "flock") == 0) adv_report(syscall(SYS_flock, fd, LOCK_SH | LOCK_NB), mode);
  if (strcmp(mode, "setlk") == 0) adv_report(syscall(SYS_fcntl, fd, F_SETLK, &fl), mode);
  if (strcmp(mode, "setlkw") == 0) adv_report(syscall(SYS_fcntl, fd, F_SETLKW, &fl), mode);
  if (strcmp(mode, "ofd_setlk") == 0) adv_report(syscall(SYS_fcntl, fd, F_OFD_SETLK, &fl), mode);
  if (strcmp(mode, "setlease") == 0) adv_report(syscall(SYS_fcntl, fd, F_SETLEASE, F_RDLCK), mode);
  if (strcmp(mode, "notify") == 0) {
    int dir = open("/progs", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    adv_report(syscall(SYS_fcntl, dir, F_NOTIFY, DN_ACCESS | DN_MULTISHOT), mode);
  }
  adv_usage(argv, "flock|setlk|setlkw|ofd_setlk|setlease|notify");
}
