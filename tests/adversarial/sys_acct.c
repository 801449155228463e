// Process accounting to a file of the job's (host administration).
#define _GNU_SOURCE

#include <sys/syscall.h>

#include "adv.h"

int main(void) {
  adv_attempt("acct /tmp/acct");
  adv_report(syscall(SYS_acct, "/tmp/acct"), "acct");
}
