// Opens descriptors until it cannot: RLIMIT_NOFILE must stop it (EMFILE) at the job's limit,
// and raising the soft limit above the hard one must fail.
#define _GNU_SOURCE

#include <fcntl.h>
#include <sys/resource.h>

#include "adv.h"

int main(void) {
  struct rlimit lim;
  getrlimit(RLIMIT_NOFILE, &lim);
  struct rlimit raised = {lim.rlim_max + 1, lim.rlim_max + 1};
  if (setrlimit(RLIMIT_NOFILE, &raised) == 0) adv_escaped("RLIMIT_NOFILE raised");
  adv_attempt("open until failure (limit %llu)", (unsigned long long)lim.rlim_cur);
  long opened = 0;
  for (;;) {
    int fd = open("/dev/null", O_RDONLY);
    if (fd < 0) break;
    ++opened;
    if (opened > 10 * 1000 * 1000) adv_escaped("opened %ld descriptors", opened);
  }
  adv_blocked(errno, "opened=%ld", opened);
}
