// Calls a system call the default seccomp policy denies. argv[1] chooses it: bpf (default),
// keyctl, ptrace, unshare, mount; "child" makes a forked child call bpf while the parent waits;
// "i386" makes an i386 getpid through int 0x80 (x86_64 only; a foreign ABI). Exits 0 if the
// call returns (i.e. it was not killed).
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
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
  } else if (strcmp(which, "child") == 0) {
    pid_t pid = fork();
    if (pid == 0) {
      syscall(SYS_bpf, 0, NULL, 0);
      _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    sleep(2);  // the parent outlives the child's attempt: the whole job must be ended
    rc = status;
  } else if (strcmp(which, "i386") == 0) {
#if defined(__x86_64__)
    long nr = 20; /* getpid on i386 */
    __asm__ volatile("int $0x80" : "+a"(nr) : : "memory");
    rc = nr;
#else
    rc = -1;
#endif
  } else {
    rc = syscall(SYS_bpf, 0 /* BPF_MAP_CREATE */, NULL, 0);
  }
  printf("%s returned %ld\n", which, rc);
  return 0;
}
