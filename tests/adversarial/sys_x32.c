// A system call through the x32 ABI (__X32_SYSCALL_BIT | getpid).
#define _GNU_SOURCE

#include <sys/syscall.h>

#include "adv.h"

#ifndef __X32_SYSCALL_BIT
#define __X32_SYSCALL_BIT 0x40000000
#endif

int main(void) {
  adv_attempt("x32 getpid");
  adv_report(syscall(__X32_SYSCALL_BIT | SYS_getpid), "x32 getpid");
}
