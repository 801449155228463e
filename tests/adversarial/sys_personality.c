// Execution domain changes: no ASLR, executable data, page zero mapped. Modes:
// addr_no_randomize | read_implies_exec | mmap_page_zero | high_bits (the query value with the
// upper half set).
#define _GNU_SOURCE

#include <sys/personality.h>
#include <sys/syscall.h>

#include "adv.h"

int main(int argc, char** argv) {
  const char* usage = "addr_no_randomize|read_implies_exec|mmap_page_zero|high_bits";
  const char* mode = adv_mode(argc, argv, usage);
  unsigned long persona;
  if (strcmp(mode, "addr_no_randomize") == 0) {
    persona = PER_LINUX | ADDR_NO_RANDOMIZE;
  } else if (strcmp(mode, "read_implies_exec") == 0) {
    persona = PER_LINUX | READ_IMPLIES_EXEC;
  } else if (strcmp(mode, "mmap_page_zero") == 0) {
    persona = PER_LINUX | MMAP_PAGE_ZERO;
  } else if (strcmp(mode, "high_bits") == 0) {
    persona = (1UL << 32) | ADDR_NO_RANDOMIZE;  // the kernel reads the lower 32 bits
  } else {
    adv_usage(argv, usage);
  }
  adv_attempt("personality %#lx", persona);
  long rc = syscall(SYS_personality, persona);
  if (rc == -1) adv_blocked(errno, "personality");
  long now = syscall(SYS_personality, 0xffffffffUL);
  if ((now & (long)(persona & 0xffffffffUL)) != (long)(persona & 0xffffffffUL))
    adv_blocked(EPERM, "personality unchanged (%#lx)", now);
  adv_escaped("personality is now %#lx", now);
}
