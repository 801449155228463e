// Overwriting a binary through /proc/PID/exe (runc's CVE-2019-5736: the host binary that runs
// the jail, or a shared one). Modes: self | init | path (the resolved path of /proc/self/exe).
#define _GNU_SOURCE

#include <fcntl.h>

#include "adv.h"

int main(int argc, char** argv) {
  const char* mode = adv_mode(argc, argv, "self|init|path");
  char path[4096];
  if (strcmp(mode, "self") == 0) {
    snprintf(path, sizeof path, "/proc/self/exe");
  } else if (strcmp(mode, "init") == 0) {
    snprintf(path, sizeof path, "/proc/1/exe");
  } else if (strcmp(mode, "path") == 0) {
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n < 0) adv_blocked(errno, "readlink /proc/self/exe");
    path[n] = 0;
  } else {
    adv_usage(argv, "self|init|path");
  }
  adv_attempt("open %s for writing", path);
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    // O_RDWR | O_PATH-then-reopen is the same check; try the plain read-write open too.
    fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) adv_blocked(err, "%s", path);
  }
  adv_escaped("%s is open for writing", path);
}
