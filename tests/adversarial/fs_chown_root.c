// Giving a file of the job's to root (with the setuid bit, a root shell for whoever runs it
// later), or to another group. Modes: chown_root | chgrp_root.
#define _GNU_SOURCE

#include <fcntl.h>
#include <sys/stat.h>

#include "adv.h"

int main(int argc, char** argv) {
  const char* mode = adv_mode(argc, argv, "chown_root|chgrp_root");
  const char* path = "/tmp/jailpool-adv-owned";
  int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 04755);
  if (fd < 0) adv_blocked(errno, "create %s", path);
  close(fd);
  adv_attempt("%s %s", mode, path);
  int rc = strcmp(mode, "chown_root") == 0 ? chown(path, 0, 0) : chown(path, (uid_t)-1, 0);
  if (rc != 0) adv_blocked(errno, "%s", mode);
  struct stat st;
  stat(path, &st);
  adv_escaped("%s is now %d:%d mode %o", path, (int)st.st_uid, (int)st.st_gid,
              (unsigned)st.st_mode);
}
