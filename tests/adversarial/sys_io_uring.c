// io_uring_setup: a ring's operations bypass the seccomp filter entirely.
#define _GNU_SOURCE

#include <linux/io_uring.h>
#include <sys/syscall.h>

#include "adv.h"

int main(void) {
  struct io_uring_params params;
  memset(&params, 0, sizeof params);
  adv_attempt("io_uring_setup");
  adv_report(syscall(SYS_io_uring_setup, 4, &params), "io_uring_setup");
}
