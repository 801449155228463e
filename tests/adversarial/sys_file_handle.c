// File handles bypass path lookup and so the mount namespace (the "shocker" escape: open the
// root inode of the filesystem under a bind mount by handle). Modes: name_to_handle_at |
// open_by_handle_at.
#define _GNU_SOURCE

#include <fcntl.h>
#include <sys/syscall.h>

#include "adv.h"

int main(int argc, char** argv) {
  const char* mode = adv_mode(argc, argv, "name_to_handle_at|open_by_handle_at");
  struct {
    struct file_handle fh;
    unsigned char bytes[128];
  } handle;
  memset(&handle, 0, sizeof handle);
  handle.fh.handle_bytes = sizeof handle.bytes;
  int mount_id = 0;
  if (strcmp(mode, "name_to_handle_at") == 0) {
    adv_attempt("name_to_handle_at /usr");
    adv_report(syscall(SYS_name_to_handle_at, AT_FDCWD, "/usr", &handle.fh, &mount_id, 0), mode);
  }
  if (strcmp(mode, "open_by_handle_at") == 0) {
    int dir = open("/usr", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) adv_blocked(errno, "open /usr");
    // ext4/xfs/btrfs root directory: inode 2, generation 0 (FILEID_INO32_GEN).
    handle.fh.handle_bytes = 8;
    handle.fh.handle_type = 1;
    unsigned int ino = 2;
    memcpy(handle.fh.f_handle, &ino, sizeof ino);
    adv_attempt("open_by_handle_at root inode");
    adv_report(syscall(SYS_open_by_handle_at, dir, &handle.fh, O_RDONLY), mode);
  }
  adv_usage(argv, "name_to_handle_at|open_by_handle_at");
}
