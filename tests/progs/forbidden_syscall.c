// Calls a system call the default seccomp policy denies. argv[1] chooses it: bpf (default),
// keyctl, ptrace, unshare, mount. Exits 0 if the call returns (i.e. it was not killed).
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char** argv) {
  const char* which = argc > 1 ? argv[1] : "bpf";
  long rc;
  if (strcmp(which, "keyctl") == 0) {
    rc = syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3 /* session */, 0);
  } else if (strcmp(which, "ptrace") == 0) {
    rc = syscall(SYS_ptrace, 0 /* PTRACE_TRACEME */, 0, 0, 0);
  } else if (strcmp(which, "unshare") == 0) {
    rc = syscall(SYS_unshare, 0x10000000 /* CLONE_NEWUSER */);
  } else if (strcmp(which, "mount") == 0) {
    rc = syscall(SYS_mount, "none", "/tmp", "tmpfs", 0, NULL);
  } else {
    rc = syscall(SYS_bpf, 0 /* BPF_MAP_CREATE */, NULL, 0);
  }
  printf("%s returned %ld\n", which, rc);
  return 0;
}
