/* The bare baseline of `jailpool batch`: runs one command N times, J at once, with posix_spawn
 * (glibc: clone(CLONE_VM|CLONE_VFORK) + exec) and waitpid, no isolation and no limits, and
 * prints the elapsed wall time, jobs/s and the launcher's own CPU per job (user + system of this
 * process, not of the programs it waited for). Every run must exit 0.
 *
 *   spawn_batch N J PROGRAM [ARG...]
 *
 * Used against `jailpool batch -j J` of N such jobs, in interleaved rounds (see README's
 * Numbers). The programs' stdio is /dev/null, as a batch's captured pipes cost jailpool, not
 * the program. It runs as SCHED_OTHER: as SCHED_FIFO (as jailpool's event loop runs) it was
 * 5-18 % slower here (its wake at each child's exec preempts the child), a weaker baseline.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char** environ;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double self_cpu(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return (double)u.ru_utime.tv_sec + (double)u.ru_utime.tv_usec / 1e6 + (double)u.ru_stime.tv_sec +
         (double)u.ru_stime.tv_usec / 1e6;
}

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s N J PROGRAM [ARG...]\n", argv[0]);
    return 2;
  }
  long n = strtol(argv[1], NULL, 10);
  long j = strtol(argv[2], NULL, 10);
  if (n <= 0 || j <= 0) {
    fprintf(stderr, "spawn_batch: N and J must be positive\n");
    return 2;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  for (int fd = 0; fd < 3; ++fd) {
    posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0);
  }
  long launched = 0, done = 0, running = 0, failed = 0;
  double cpu0 = self_cpu();
  double start = now();
  while (done < n) {
    while (launched < n && running < j) {
      pid_t pid;
      int rc = posix_spawn(&pid, argv[3], &actions, NULL, argv + 3, environ);
      ++launched;
      if (rc != 0) {
        ++failed;
        ++done;
        continue;
      }
      ++running;
    }
    if (running == 0) continue;
    int status;
    pid_t pid = waitpid(-1, &status, 0);
    if (pid < 0) {
      perror("spawn_batch: waitpid");
      return 2;
    }
    --running;
    ++done;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failed;
  }
  double elapsed = now() - start;
  double cpu = self_cpu() - cpu0;
  printf("%ld jobs in %.3f s (%.1f jobs/s), launcher CPU %.0f us/job, %ld failed\n", n, elapsed,
         (double)n / elapsed, cpu * 1e6 / (double)n, failed);
  return failed ? 1 : 0;
}
