// Symlinks in the working directory and /tmp to host secrets (/etc/shadow, /proc/1/root, a host
// path of the test's: argv[1]), left for whoever collects the job's files, and followed from
// inside: none may lead anywhere readable.
#define _GNU_SOURCE

#include <fcntl.h>

#include "adv.h"

int main(int argc, char** argv) {
  const char* host = argc > 1 ? argv[1] : "/etc/shadow";
  const char* targets[] = {"/etc/shadow", "/proc/1/root/etc/shadow", host, "/proc/1/root", "/root"};
  const char* dirs[] = {"/box", "/tmp"};
  int last_err = ENOENT;
  adv_attempt("symlinks to host secrets");
  for (int d = 0; d < 2; ++d) {
    for (size_t t = 0; t < sizeof targets / sizeof *targets; ++t) {
      char link[256];
      snprintf(link, sizeof link, "%s/link%zu", dirs[d], t);
      if (symlink(targets[t], link) != 0) adv_blocked(errno, "symlink %s", link);
      int fd = open(link, O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        last_err = errno;
        continue;
      }
      char buf[64];
      ssize_t n = read(fd, buf, sizeof buf);
      if (n > 0) adv_escaped("%s -> %s reads %zd bytes", link, targets[t], n);
      if (n < 0) last_err = errno;
      close(fd);
    }
  }
  adv_blocked(last_err, "links left in /box and /tmp");
}
