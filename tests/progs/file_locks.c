// File locks on the job's own files: in DIR (argv[1], default /tmp) takes an flock, a POSIX
// write lock and an OFD write lock on a new file and checks, from a forked child, that each is
// in force (the child's attempts conflict). Prints "flock=", "setlk=", "ofd=" with 0 or the errno
// name of what failed, then "conflicts=N" (how many the child saw, 3 when all hold); exits 0.
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

static const char* err_name(int rc) {
  return rc == 0 ? "0" : strerrorname_np(errno);
}

static int lock(int fd, int cmd, short type, off_t start) {
  struct flock fl;
  memset(&fl, 0, sizeof fl);
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = start;
  fl.l_len = 1;
  return fcntl(fd, cmd, &fl);
}

int main(int argc, char** argv) {
  const char* dir = argc > 1 ? argv[1] : "/tmp";
  char path[4096];
  snprintf(path, sizeof path, "%s/file_locks.%d", dir, (int)getpid());
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    printf("open=%s\n", strerrorname_np(errno));
    return 1;
  }
  printf("flock=%s\n", err_name(flock(fd, LOCK_EX | LOCK_NB)));
  printf("setlk=%s\n", err_name(lock(fd, F_SETLK, F_WRLCK, 0)));
  printf("ofd=%s\n", err_name(lock(fd, F_OFD_SETLK, F_WRLCK, 1)));
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    int other = open(path, O_RDWR | O_CLOEXEC);
    int seen = 0;
    if (flock(other, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK) ++seen;
    if (lock(other, F_SETLK, F_WRLCK, 0) != 0 && (errno == EAGAIN || errno == EACCES)) ++seen;
    if (lock(other, F_OFD_SETLK, F_WRLCK, 1) != 0 && (errno == EAGAIN || errno == EACCES)) ++seen;
    _exit(seen);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  printf("conflicts=%d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  unlink(path);
  return 0;
}
