// Stopped processes left behind: a child that stops itself (SIGSTOP), a setsid'd grandchild
// stopped by its parent, and a stopped process group. A stopped process does not react to
// SIGTERM: the job's end must still take them (SIGKILL works on stopped processes).
#define _GNU_SOURCE

#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "adv.h"

static pid_t stopped_child(int new_session) {
  pid_t pid = fork();
  if (pid == 0) {
    if (new_session) setsid();
    raise(SIGSTOP);
    for (;;) pause();
  }
  return pid;
}

int main(void) {
  adv_attempt("leave stopped processes");
  pid_t a = stopped_child(0);
  pid_t b = stopped_child(1);
  // An orphaned, stopped grandchild: its parent exits after stopping it.
  pid_t c = fork();
  if (c == 0) {
    pid_t g = fork();
    if (g == 0) {
      for (;;) pause();
    }
    kill(g, SIGSTOP);
    _exit(0);
  }
  if (a < 0 || b < 0 || c < 0) adv_blocked(errno, "fork");
  int status;
  waitpid(a, &status, WUNTRACED);
  waitpid(b, &status, WUNTRACED);
  waitpid(c, &status, 0);
  adv_done("stopped %d %d and an orphan", (int)a, (int)b);
}
