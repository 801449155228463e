// A daemon that fights the job's end: setsid, child subreaper, every catchable signal ignored,
// and a loop forking a fresh child whenever one dies (a moving target for a kill that walks
// the process list). The job's main process exits at once.
#define _GNU_SOURCE

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>

#include "adv.h"

static void respawn_forever(void) {
  prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  for (int s = 1; s < 65; ++s) signal(s, SIG_IGN);
  signal(SIGCHLD, SIG_DFL);
  for (;;) {
    pid_t child = fork();
    if (child == 0) {
      struct timespec ts = {0, 5 * 1000 * 1000};
      nanosleep(&ts, NULL);
      _exit(0);
    }
    if (child < 0) {
      struct timespec ts = {0, 1000 * 1000};
      nanosleep(&ts, NULL);
    }
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
  }
}

int main(void) {
  adv_attempt("respawning daemon");
  pid_t pid = fork();
  if (pid < 0) adv_blocked(errno, "fork");
  if (pid == 0) {
    setsid();
    if (fork() == 0) {
      close(0), close(1), close(2);
      respawn_forever();
    }
    _exit(0);
  }
  waitpid(pid, NULL, 0);
  adv_done("respawning daemon left running");
}
