// A double-forked, setsid'd daemon that ignores every catchable signal, closes its stdio (so
// nothing waits for its output) and sleeps: it must die with the job. Prints its pid inside
// the jail and exits 0 at once.
#define _GNU_SOURCE

#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "adv.h"

int main(void) {
  int ready[2];
  if (pipe(ready) != 0) adv_blocked(errno, "pipe");
  adv_attempt("double fork + setsid");
  pid_t pid = fork();
  if (pid < 0) adv_blocked(errno, "fork");
  if (pid == 0) {
    setsid();
    pid_t grandchild = fork();
    if (grandchild == 0) {
      for (int s = 1; s < 65; ++s) signal(s, SIG_IGN);
      pid_t me = getpid();
      write(ready[1], &me, sizeof me);
      close(0), close(1), close(2), close(ready[1]);
      for (;;) {
        struct timespec ts = {3600, 0};
        nanosleep(&ts, NULL);
      }
    }
    _exit(grandchild < 0);
  }
  waitpid(pid, NULL, 0);
  pid_t daemon_pid = 0;
  if (read(ready[0], &daemon_pid, sizeof daemon_pid) != sizeof daemon_pid)
    adv_blocked(errno, "the daemon did not start");
  adv_done("daemon pid %d (in the jail) left running", (int)daemon_pid);
}
