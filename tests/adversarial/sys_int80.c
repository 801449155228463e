// A system call through the i386 ABI (int 0x80, getpid = 20) from a 64-bit process: a foreign
// ABI the filter does not describe (the policy kills it as a bad architecture).
#include "adv.h"

int main(void) {
  adv_attempt("int 0x80 getpid");
  long ret;
  __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory", "rcx", "r11");
  if (ret < 0) adv_blocked((int)-ret, "int 0x80");
  adv_escaped("i386 getpid returned %ld", ret);
}
