// Signalling a host process by its host pid (argv[1]: jailpool's own pid, a host sentinel) or
// the jail's init (1). argv[2]: the signal (default SIGKILL).
#define _GNU_SOURCE

#include <signal.h>
#include <unistd.h>

#include "adv.h"

int main(int argc, char** argv) {
  if (argc < 2) adv_usage(argv, "PID [SIGNAL]");
  pid_t pid = (pid_t)atol(argv[1]);
  int sig = argc > 2 ? atoi(argv[2]) : SIGKILL;
  adv_attempt("kill(%d, %d)", (int)pid, sig);
  // In a long-lived jail (a slot) the pid namespace's numbers grow with every job, so the host
  // pid's number may be this very process's there (it has no other): no host process.
  if (pid == getpid())
    adv_blocked_as("OWN", "pid %d is this process in its own pid namespace", (int)pid);
  if (kill(pid, sig) != 0) adv_blocked(errno, "kill %d", (int)pid);
  adv_escaped("signal %d delivered to pid %d", sig, (int)pid);
}
