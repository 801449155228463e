// Forks a child that touches argv[1] MiB; the parent waits for it, prints what became of it and
// exits 0 whatever happened to the child.
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char** argv) {
  size_t mib = argc > 1 ? strtoull(argv[1], NULL, 10) : 128;
  pid_t pid = fork();
  if (pid < 0) return 0;
  if (pid == 0) {
    size_t size = mib << 20;
    volatile char* p = malloc(size);
    if (p == NULL) _exit(1);
    for (size_t i = 0; i < size; i += 4096) p[i] = 1;
    _exit(0);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
  }
  if (WIFSIGNALED(status)) {
    printf("child killed by signal %d\n", WTERMSIG(status));
  } else {
    printf("child exited %d\n", WEXITSTATUS(status));
  }
  return 0;
}
