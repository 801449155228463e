// userfaultfd: the classic tool for winning kernel races (user-mode-only, which an unprivileged
// process may create whatever vm.unprivileged_userfaultfd says, 5.11+).
#define _GNU_SOURCE

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/syscall.h>

#include "adv.h"

int main(void) {
  adv_attempt("userfaultfd");
  adv_report(syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY), "userfaultfd");
}
