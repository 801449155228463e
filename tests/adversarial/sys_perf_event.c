// perf_event_open: hardware/software counters (side channels, kernel bugs).
#define _GNU_SOURCE

#include <linux/perf_event.h>
#include <sys/syscall.h>

#include "adv.h"

int main(void) {
  struct perf_event_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.size = sizeof attr;
  attr.type = PERF_TYPE_SOFTWARE;
  attr.config = PERF_COUNT_SW_CPU_CLOCK;
  attr.exclude_kernel = 1;
  attr.exclude_hv = 1;
  adv_attempt("perf_event_open");
  adv_report(syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0), "perf_event_open");
}
