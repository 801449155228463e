// Locks, leases and directory notifications on a shared read-only inode (this program's own
// file, which every job of the profile sees, and the host): a channel between jobs. Modes:
// flock | setlk | setlkw | ofd_setlk | setlease | notify.
//
// The lock modes take a lock on the program's file and then look for anybody else's: the test
// holds an exclusive flock and a POSIX read lock on the host's file meanwhile. Seeing them
// (EWOULDBLOCK, or F_GETLK naming a holder) is "escaped"; taking the lock with no other holder
// in sight is "blocked PRIVATE" (the jail's file is an inode of its own); a refused lock is
// blocked with its errno.
#define _GNU_SOURCE

#include <fcntl.h>
#include <sys/file.h>
#include <sys/syscall.h>

#include "adv.h"

// After taking a read lock with `set`: a write lock's test with `get` finds another holder?
static void posix_probe(int fd, int set, int get, const char* mode) {
  struct flock fl;
  memset(&fl, 0, sizeof fl);
  fl.l_type = F_RDLCK;
  fl.l_whence = SEEK_SET;
  if (syscall(SYS_fcntl, fd, set, &fl) != 0) adv_blocked(errno, "%s", mode);
  memset(&fl, 0, sizeof fl);
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  if (syscall(SYS_fcntl, fd, get, &fl) != 0) adv_blocked(errno, "%s: getlk", mode);
  if (fl.l_type != F_UNLCK) adv_escaped("%s: another holder's lock is visible", mode);
  adv_blocked_as("PRIVATE", "%s: took the lock, no other holder in sight", mode);
}

int main(int argc, char** argv) {
  const char* mode = adv_mode(argc, argv, "flock|setlk|setlkw|ofd_setlk|setlease|notify");
  int fd = open(argv[0], O_RDONLY | O_CLOEXEC);
  if (fd < 0) adv_blocked(errno, "open %s", argv[0]);
  adv_attempt("%s", mode);
  if (strcmp(mode, "flock") == 0) {
    if (syscall(SYS_flock, fd, LOCK_EX | LOCK_NB) == 0) {
      adv_blocked_as("PRIVATE", "flock: took the lock, no other holder in sight");
    }
    if (errno == EWOULDBLOCK) adv_escaped("flock: another holder's lock is visible");
    adv_blocked(errno, "flock");
  }
  if (strcmp(mode, "setlk") == 0) posix_probe(fd, F_SETLK, F_GETLK, mode);
  if (strcmp(mode, "setlkw") == 0) posix_probe(fd, F_SETLKW, F_GETLK, mode);
  if (strcmp(mode, "ofd_setlk") == 0) posix_probe(fd, F_OFD_SETLK, F_OFD_GETLK, mode);
  if (strcmp(mode, "setlease") == 0) adv_report(syscall(SYS_fcntl, fd, F_SETLEASE, F_RDLCK), mode);
  if (strcmp(mode, "notify") == 0) {
    int dir = open("/progs", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    adv_report(syscall(SYS_fcntl, dir, F_NOTIFY, DN_ACCESS | DN_MULTISHOT), mode);
  }
  adv_usage(argv, "flock|setlk|setlkw|ofd_setlk|setlease|notify");
}
