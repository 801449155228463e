// Leaving the job's cgroup (and so its limits and its kill): write our pid into a host
// cgroup.procs, or read where on the host the job's cgroup is. Modes: procs | path.
#define _GNU_SOURCE

#include <fcntl.h>

#include "adv.h"

int main(int argc, char** argv) {
  const char* mode = adv_mode(argc, argv, "procs|path");
  if (strcmp(mode, "procs") == 0) {
    const char* paths[] = {"/sys/fs/cgroup/cgroup.procs", "/sys/fs/cgroup/memory/cgroup.procs",
                           "/sys/fs/cgroup/unified/cgroup.procs"};
    int last_err = ENOENT;
    adv_attempt("write own pid into a root cgroup.procs");
    for (size_t i = 0; i < sizeof paths / sizeof *paths; ++i) {
      int fd = open(paths[i], O_WRONLY | O_CLOEXEC);
      if (fd < 0) {
        last_err = errno;
        continue;
      }
      if (write(fd, "0", 1) == 1) adv_escaped("moved into %s", paths[i]);
      last_err = errno;
      close(fd);
    }
    adv_blocked(last_err, "no cgroup.procs writable");
  }
  if (strcmp(mode, "path") == 0) {
    char buf[4096];
    adv_attempt("read /proc/self/cgroup");
    long n = adv_read_file("/proc/self/cgroup", buf, sizeof buf);
    if (n < 0) adv_blocked((int)-n, "/proc/self/cgroup");
    if (strstr(buf, "jailpool") != NULL || strstr(buf, "job-") != NULL) {
      buf[strcspn(buf, "\n")] = 0;
      adv_escaped("host cgroup path visible: %s", buf);
    }
    buf[strcspn(buf, "\n")] = 0;
    adv_blocked_as("HIDDEN", "%s", buf);
  }
  adv_usage(argv, "procs|path");
}
