// What counters a job can read that the jobs before it in the same jail moved. Modes:
//   ids [N]  prints "pid=P shm=S msg=M": its pid and the ids of a new SysV shm segment and
//            message queue (removed before it exits), after forking and reaping N children
//            (default 0) and making and removing one more segment and queue.
//   tmpfile  prints the errno name of open("/tmp", O_TMPFILE|O_RDWR) ("made" when it works),
//            then "fallback" when glibc's tmpfile() still gives a writable file.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>

static int ids(int children) {
  int shm = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
  int msg = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
  if (shm < 0 || msg < 0) {
    perror("shmget/msgget");
    return 1;
  }
  printf("pid=%d shm=%d msg=%d\n", (int)getpid(), shm, msg);
  shmctl(shm, IPC_RMID, NULL);
  msgctl(msg, IPC_RMID, NULL);
  for (int i = 0; i < children; ++i) {
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    if (pid > 0) waitpid(pid, NULL, 0);
  }
  int more_shm = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
  int more_msg = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
  if (more_shm >= 0) shmctl(more_shm, IPC_RMID, NULL);
  if (more_msg >= 0) msgctl(more_msg, IPC_RMID, NULL);
  return 0;
}

static int tmpfile_mode(void) {
  int fd = open("/tmp", O_TMPFILE | O_RDWR, 0600);
  if (fd >= 0) {
    puts("made");
    close(fd);
  } else {
    puts(errno == EOPNOTSUPP ? "EOPNOTSUPP" : strerror(errno));
  }
  FILE* f = tmpfile();
  if (f != NULL && fputs("x", f) >= 0 && fflush(f) == 0) puts("fallback");
  return 0;
}

int main(int argc, char** argv) {
  if (argc > 1 && strcmp(argv[1], "ids") == 0) return ids(argc > 2 ? atoi(argv[2]) : 0);
  if (argc > 1 && strcmp(argv[1], "tmpfile") == 0) return tmpfile_mode();
  fprintf(stderr, "usage: %s ids [N] | tmpfile\n", argv[0]);
  return 2;
}
