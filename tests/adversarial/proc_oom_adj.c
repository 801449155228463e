// Making the job the last thing the OOM killer picks (oom_score_adj -1000 needs
// CAP_SYS_RESOURCE): the host's processes would die first.
#define _GNU_SOURCE

#include <fcntl.h>

#include "adv.h"

int main(void) {
  adv_attempt("oom_score_adj -1000");
  int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
  if (fd < 0) adv_blocked(errno, "open oom_score_adj");
  if (write(fd, "-1000", 5) < 0) adv_blocked(errno, "write oom_score_adj");
  char buf[32];
  adv_read_file("/proc/self/oom_score_adj", buf, sizeof buf);
  adv_escaped("oom_score_adj is now %s", buf);
}
