/* The driver of bench/peers.sh: runs one command N times in a row, as a judge that starts one
 * sandbox per test does (fork, exec, wait; nothing else in the loop), and prints the elapsed
 * wall time and the CPU time the runs used (user + system of every process they waited for:
 * not the kernel's deferred work, such as a namespace's teardown in a kworker), in seconds.
 * Every run must exit 0: a runner that fails is not fast, it is broken.
 *
 *   driver N PROGRAM [ARG...]
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s N PROGRAM [ARG...]\n", argv[0]);
    return 2;
  }
  long n = strtol(argv[1], NULL, 10);
  if (n <= 0) {
    fprintf(stderr, "driver: N must be positive\n");
    return 2;
  }
  /* The runners read /dev/null and write there (jailpool run prints a summary on stderr): run a
   * failing command by hand to see why. */
  int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null_fd < 0) {
    perror("driver: /dev/null");
    return 2;
  }
  double start = now();
  for (long i = 0; i < n; ++i) {
    pid_t pid = fork();
    if (pid < 0) {
      perror("driver: fork");
      return 2;
    }
    if (pid == 0) {
      dup2(null_fd, 0);
      dup2(null_fd, 1);
      dup2(null_fd, 2);
      execvp(argv[2], argv + 2);
      _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      fprintf(stderr, "driver: run %ld of %s failed (wait status %#x)\n", i + 1, argv[2], status);
      return 1;
    }
  }
  double wall = now() - start;
  struct rusage ru;
  getrusage(RUSAGE_CHILDREN, &ru);
  double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
               (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
  printf("%.6f %.6f\n", wall, cpu);
  return 0;
}
