// kill(-1, SIGKILL): every process the caller may signal. In the jail that must be nothing
// outside the job (the test checks a host process of the job's uid survives).
#define _GNU_SOURCE

#include <signal.h>

#include "adv.h"

int main(int argc, char** argv) {
  int sig = argc > 1 ? atoi(argv[1]) : SIGKILL;
  adv_attempt("kill(-1, %d)", sig);
  if (kill(-1, sig) != 0) adv_blocked(errno, "kill -1");
  // Something was signalled: inside the jail there is nothing else of our uid to hit, so
  // whatever it was, the test sees it on the host.
  adv_done("kill(-1) signalled some process");
}
