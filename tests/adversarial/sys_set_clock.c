// Setting the host's clock (to the time it already is, should it get through). Modes:
// settimeofday | clock_settime | adjtimex | clock_adjtime.
#define _GNU_SOURCE

#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/timex.h>
#include <time.h>

#include "adv.h"

int main(int argc, char** argv) {
  const char* usage = "settimeofday|clock_settime|adjtimex|clock_adjtime";
  const char* mode = adv_mode(argc, argv, usage);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct timeval tv = {ts.tv_sec, ts.tv_nsec / 1000};
  struct timex tx;
  memset(&tx, 0, sizeof tx);  // modes 0: a read
  adv_attempt("%s", mode);
  if (strcmp(mode, "settimeofday") == 0) adv_report(syscall(SYS_settimeofday, &tv, NULL), mode);
  if (strcmp(mode, "clock_settime") == 0)
    adv_report(syscall(SYS_clock_settime, CLOCK_REALTIME, &ts), mode);
  if (strcmp(mode, "adjtimex") == 0) {
    long rc = syscall(SYS_adjtimex, &tx);
    if (rc == -1) adv_blocked(errno, "adjtimex");
    adv_escaped("adjtimex read returned %ld", rc);
  }
  if (strcmp(mode, "clock_adjtime") == 0) {
    long rc = syscall(SYS_clock_adjtime, CLOCK_REALTIME, &tx);
    if (rc == -1) adv_blocked(errno, "clock_adjtime");
    adv_escaped("clock_adjtime read returned %ld", rc);
  }
  adv_usage(argv, usage);
}
