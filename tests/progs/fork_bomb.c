// Forks in a loop until fork fails (each child just waits), prints how many forks succeeded and
// exits 0 when fork failed with EAGAIN (a process limit), 1 otherwise. argv[1]: an upper bound
// on the forks (default 100000), reached only when nothing limits the processes.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char** argv) {
  long max = argc > 1 ? atol(argv[1]) : 100000;
  long count = 0;
  int err = 0;
  while (count < max) {
    pid_t pid = fork();
    if (pid < 0) {
      err = errno;
      break;
    }
    if (pid == 0) {
      for (;;) pause();
    }
    ++count;
  }
  printf("%ld\n", count);
  fflush(stdout);
  return err == EAGAIN ? 0 : 1;
}
