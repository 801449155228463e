// ptrace: attach to a process (argv[2]: a pid; the jail's init is 1, a host pid is invisible),
// or PTRACE_TRACEME. Modes: attach PID | seize PID | traceme.
#define _GNU_SOURCE

#include <sys/ptrace.h>
#include <sys/syscall.h>

#include "adv.h"

int main(int argc, char** argv) {
  const char* mode = adv_mode(argc, argv, "attach PID|seize PID|traceme");
  if (strcmp(mode, "traceme") == 0) {
    adv_attempt("ptrace PTRACE_TRACEME");
    adv_report(syscall(SYS_ptrace, PTRACE_TRACEME, 0, 0, 0), "PTRACE_TRACEME");
  }
  if (argc < 3) adv_usage(argv, "attach PID|seize PID|traceme");
  long pid = atol(argv[2]);
  long req = strcmp(mode, "seize") == 0 ? PTRACE_SEIZE : PTRACE_ATTACH;
  adv_attempt("ptrace %s %ld", mode, pid);
  adv_report(syscall(SYS_ptrace, req, pid, 0, 0), mode);
}
