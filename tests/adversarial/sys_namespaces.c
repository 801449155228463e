// New namespaces (a user namespace gives CAP_SYS_ADMIN over it). Modes: unshare | setns |
// clone | clone3. clone3's flags are out of seccomp's reach, so it is denied with ENOSYS.
#define _GNU_SOURCE

#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "adv.h"

int main(int argc, char** argv) {
  const char* mode = adv_mode(argc, argv, "unshare|setns|clone|clone3");
  if (strcmp(mode, "unshare") == 0) {
    adv_attempt("unshare CLONE_NEWUSER|CLONE_NEWNS");
    adv_report(syscall(SYS_unshare, CLONE_NEWUSER | CLONE_NEWNS), mode);
  }
  if (strcmp(mode, "setns") == 0) {
    int fd = open("/proc/self/ns/uts", O_RDONLY | O_CLOEXEC);  // our own: always openable
    if (fd < 0) adv_blocked(errno, "open /proc/self/ns/uts");
    adv_attempt("setns");
    adv_report(syscall(SYS_setns, fd, CLONE_NEWUTS), mode);
  }
  long pid = -1;
  if (strcmp(mode, "clone") == 0) {
    adv_attempt("clone CLONE_NEWUSER");
    pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
  } else if (strcmp(mode, "clone3") == 0) {
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = CLONE_NEWUSER | CLONE_NEWNET;
    args.exit_signal = SIGCHLD;
    adv_attempt("clone3 CLONE_NEWUSER|CLONE_NEWNET");
    pid = syscall(SYS_clone3, &args, sizeof args);
  } else {
    adv_usage(argv, "unshare|setns|clone|clone3");
  }
  if (pid == 0) _exit(0);
  if (pid < 0) adv_blocked(errno, "%s", mode);
  waitpid((pid_t)pid, NULL, 0);
  adv_escaped("%s made a child in new namespaces", mode);
}
