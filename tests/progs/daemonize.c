// Double-forks a daemon (setsid, sleeps 60 s, keeps its stdio) and exits 0 at once: the
// daemon must die with the job.
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(void) {
  pid_t pid = fork();
  if (pid < 0) return 1;
  if (pid == 0) {
    setsid();
    if (fork() == 0) {
      struct timespec ts = {60, 0};
      while (nanosleep(&ts, &ts) != 0) {
      }
      _exit(0);
    }
    _exit(0);
  }
  int status;
  waitpid(pid, &status, 0);
  return 0;
}
