// Walks /proc/*/fd looking for a descriptor beyond 0-2 that leaked into the jail (a host
// directory, a pipe or socket of jailpool's) and opens what it finds.
#define _GNU_SOURCE

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>

#include "adv.h"

int main(void) {
  adv_attempt("walk /proc/*/fd");
  int self = getpid();
  int processes = 0, unreadable = 0, last_err = ENOENT;
  DIR* proc = opendir("/proc");
  if (proc == NULL) adv_blocked(errno, "opendir /proc");
  int proc_fd = dirfd(proc);
  struct dirent* e;
  while ((e = readdir(proc)) != NULL) {
    if (!isdigit((unsigned char)e->d_name[0])) continue;
    ++processes;
    char dir_path[300];
    snprintf(dir_path, sizeof dir_path, "/proc/%s/fd", e->d_name);
    DIR* fds = opendir(dir_path);
    if (fds == NULL) {
      ++unreadable;
      last_err = errno;
      continue;
    }
    int pid = atoi(e->d_name);
    int own_dir = pid == self ? dirfd(fds) : -1;
    struct dirent* f;
    while ((f = readdir(fds)) != NULL) {
      if (!isdigit((unsigned char)f->d_name[0])) continue;
      int fd = atoi(f->d_name);
      if (fd <= 2 || fd == own_dir || (pid == self && fd == proc_fd)) continue;
      char link[400], target[512] = "?";
      snprintf(link, sizeof link, "%s/%d", dir_path, fd);
      ssize_t n = readlink(link, target, sizeof target - 1);
      if (n > 0) target[n] = 0;
      int reopened = open(link, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
      adv_escaped("pid %d has fd %d -> %s (reopen: %s)", pid, fd, target,
                  reopened >= 0 ? "ok" : adv_errname(errno));
    }
    closedir(fds);
  }
  closedir(proc);
  // The standard descriptors must not lead outside either: a directory would be a way out.
  for (int fd = 0; fd <= 2; ++fd) {
    char link[64], target[512] = "?";
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n > 0) target[n] = 0;
    DIR* as_dir = opendir(link);
    if (as_dir != NULL) adv_escaped("fd %d is a directory: %s", fd, target);
  }
  adv_blocked(last_err, "no fd beyond 0-2 in %d processes (%d unreadable)", processes, unreadable);
}
