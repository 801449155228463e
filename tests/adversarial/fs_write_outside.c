// Writing outside /tmp, /dev/shm and the working directory: argv[1] is a path to create (or, if
// it exists, to open for appending; nothing is written to it).
#define _GNU_SOURCE

#include <fcntl.h>
#include <sys/stat.h>

#include "adv.h"

int main(int argc, char** argv) {
  if (argc < 2) adv_usage(argv, "PATH");
  const char* path = argv[1];
  struct stat st;
  int exists = lstat(path, &st) == 0;
  adv_attempt("%s %s", exists ? "append to" : "create", path);
  if (exists && S_ISDIR(st.st_mode)) {
    char inner[4096];
    snprintf(inner, sizeof inner, "%s/jailpool-adv", path);
    int fd = open(inner, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) adv_blocked(errno, "create %s", inner);
    unlink(inner);
    adv_escaped("created %s", inner);
  }
  int fd = exists ? open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
                  : open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) adv_blocked(errno, "%s", path);
  if (!exists) unlink(path);
  adv_escaped("%s is open for writing", path);
}
