// process_vm_readv / process_vm_writev: reading or writing another process's memory. Aimed at
// this process itself, so that without the filter the call succeeds (the "escaped" branch is
// reachable; the sanity test runs it with seccomp off). Modes: readv | writev [PID].
#define _GNU_SOURCE

#include <sys/syscall.h>
#include <sys/uio.h>

#include "adv.h"

int main(int argc, char** argv) {
  const char* mode = adv_mode(argc, argv, "readv|writev [PID]");
  pid_t pid = argc > 2 ? (pid_t)atol(argv[2]) : getpid();
  static char source[64] = "jailpool adversarial";
  static char target[64];
  struct iovec local = {target, sizeof target};
  struct iovec remote = {source, sizeof source};
  adv_attempt("process_vm_%s pid %d", mode, (int)pid);
  if (strcmp(mode, "readv") == 0)
    adv_report(syscall(SYS_process_vm_readv, pid, &local, 1, &remote, 1, 0), "process_vm_readv");
  if (strcmp(mode, "writev") == 0)
    adv_report(syscall(SYS_process_vm_writev, pid, &remote, 1, &local, 1, 0), "process_vm_writev");
  adv_usage(argv, "readv|writev [PID]");
}
