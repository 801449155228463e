// Cross-job leaks: run "leave" in one job, then "find" in the next job of the same template.
//
// leave: leaves behind whatever it can: files in /tmp, /box (the cwd) and /dev/shm; a SysV
//   shared memory segment, message queue and semaphore set (fixed key); a POSIX message queue
//   (raw mq_open, which needs no /dev/mqueue mount); an abstract unix socket bound by itself;
//   a setsid'd double-forked daemon that binds another abstract name and listens on TCP
//   127.0.0.1:47123; a setsid'd double-forked sleeper; an attempt to change the hostname. It
//   prints "left=<what was left>", "failed=<what could not be left, with errno>",
//   "sethostname=<0 or errno name>" and the ids of its namespaces ("netns=", "utsns=",
//   "ipcns=", "mntns="), then, last, locks a read-only shared file (its own program: an flock
//   and a POSIX read lock, printed as "flock=" and "posix_lock=" with 0 or the errno name; the
//   jail's inode of it, which its daemons also hold open) and exits 0.
// find: looks for all of that and prints "found=<comma list>" (empty when clean), then
//   "hostname=" and the namespace ids as above. Exits 0.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/prctl.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KEY 0x4a504c4b           // "JPLK"
#define MQ_NAME "jailpool-leak"  // raw syscall: no leading '/'
#define ABSTRACT_SELF "jailpool-leak"
#define ABSTRACT_DAEMON "jailpool-leak-daemon"
#define TCP_PORT 47123

static char list[8192];
static char failed[8192];

static void add(char* buf, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(char* buf, const char* fmt, ...) {
  size_t used = strlen(buf);
  if (used + 2 >= sizeof list) return;
  if (used > 0) buf[used++] = ',';
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf + used, sizeof list - used, fmt, ap);
  va_end(ap);
}

static void print_ns(void) {
  static const char* kinds[] = {"net", "uts", "ipc", "mnt"};
  for (int i = 0; i < 4; ++i) {
    char path[64], target[128] = "?";
    snprintf(path, sizeof path, "/proc/self/ns/%s", kinds[i]);
    ssize_t n = readlink(path, target, sizeof target - 1);
    if (n > 0) target[n] = 0;
    printf("%sns=%s\n", kinds[i], target);
  }
}

static int bind_abstract(const char* name) {
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return -errno;
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  size_t len = strlen(name);
  memcpy(addr.sun_path + 1, name, len);  // sun_path[0] == 0: abstract
  if (bind(s, (struct sockaddr*)&addr,
           (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len)) != 0) {
    int e = errno;
    close(s);
    return -e;
  }
  return s;
}

static int tcp_listen(void) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return -errno;
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons(TCP_PORT);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(s, (struct sockaddr*)&addr, sizeof addr) != 0 || listen(s, 4) != 0) {
    int e = errno;
    close(s);
    return -e;
  }
  return s;
}

static int tcp_connects(void) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return 0;
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons(TCP_PORT);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int ok = connect(s, (struct sockaddr*)&addr, sizeof addr) == 0;
  close(s);
  return ok;
}

static void sleep_forever(void) {
  for (;;) pause();
}

// A setsid'd grandchild (the child exits at once, so init inherits it) named `comm`; it runs
// `body` and reports one byte on the pipe `ready` (0: ok, else an errno) before sleeping forever.
static void spawn_detached(const char* comm, int (*body)(void), const int ready[2]) {
  pid_t pid = fork();
  if (pid < 0) {
    add(failed, "fork-%s:%s", comm, strerrorname_np(errno));
    return;
  }
  if (pid == 0) {
    setsid();
    if (fork() == 0) {
      prctl(PR_SET_NAME, comm, 0, 0, 0);
      unsigned char rc = (unsigned char)(body ? body() : 0);
      write(ready[1], &rc, 1);
      sleep_forever();
    }
    _exit(0);
  }
  int status;
  waitpid(pid, &status, 0);
  unsigned char rc = 255;
  if (read(ready[0], &rc, 1) != 1) {
    add(failed, "%s:no-report", comm);
  } else if (rc != 0) {
    add(failed, "%s:%s", comm, strerrorname_np(rc));
  } else {
    add(list, "%s", comm);
  }
}

// The daemon's body: binds the daemon's abstract name and listens on TCP; keeps both.
static int daemon_body(void) {
  int s = bind_abstract(ABSTRACT_DAEMON);
  if (s < 0) return -s;
  int t = tcp_listen();
  if (t < 0) return -t;
  return 0;
}

static void leave_file(const char* path, const char* what) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) {
    add(failed, "%s:%s", what, strerrorname_np(errno));
    return;
  }
  write(fd, "leak\n", 5);
  close(fd);
  add(list, "%s", what);
}

static int leave(const char* self) {
  leave_file("/tmp/leak-tmp", "tmp");
  leave_file("/box/leak-box", "box");
  leave_file("/dev/shm/leak-shm", "devshm");

  int shm = shmget(KEY, 4096, IPC_CREAT | 0666);
  if (shm < 0) {
    add(failed, "sysv_shm:%s", strerrorname_np(errno));
  } else {
    add(list, "sysv_shm");
  }
  if (msgget(KEY, IPC_CREAT | 0666) < 0) {
    add(failed, "sysv_msg:%s", strerrorname_np(errno));
  } else {
    add(list, "sysv_msg");
  }
  if (semget(KEY, 1, IPC_CREAT | 0666) < 0) {
    add(failed, "sysv_sem:%s", strerrorname_np(errno));
  } else {
    add(list, "sysv_sem");
  }
  long mq = syscall(SYS_mq_open, MQ_NAME, O_CREAT | O_RDWR | O_CLOEXEC, 0666, NULL);
  if (mq < 0) {
    add(failed, "mqueue:%s", strerrorname_np(errno));
  } else {
    add(list, "mqueue");
  }

  int ready[2];
  if (pipe(ready) != 0) {
    add(failed, "pipe:%s", strerrorname_np(errno));
  } else {
    spawn_detached("leak-daemon", daemon_body, ready);
    spawn_detached("leak-sleeper", NULL, ready);
  }

  int s = bind_abstract(ABSTRACT_SELF);  // after the forks: only this process holds it
  if (s < 0) {
    add(failed, "abstract:%s", strerrorname_np(-s));
  } else {
    add(list, "abstract");
  }

  const char* hostname_rc = "0";
  if (sethostname("leaked", 6) != 0)
    hostname_rc = strerrorname_np(errno);
  else
    add(list, "hostname");

  printf("left=%s\nfailed=%s\nsethostname=%s\n", list, failed, hostname_rc);
  print_ns();
  fflush(stdout);

  // Last: locks on a shared read-only inode, which the next job must not find.
  int fd = open(self, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    printf("flock=open:%s\n", strerrorname_np(errno));
  } else {
    printf("flock=%s\n", flock(fd, LOCK_EX | LOCK_NB) != 0 ? strerrorname_np(errno) : "0");
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_RDLCK;
    fl.l_whence = SEEK_SET;
    printf("posix_lock=%s\n", fcntl(fd, F_SETLK, &fl) != 0 ? strerrorname_np(errno) : "0");
  }
  return 0;
}

static void find_entries(const char* dir, const char* what) {
  DIR* d = opendir(dir);
  if (d == NULL) {
    add(list, "%s-unreadable:%s", what, strerrorname_np(errno));
    return;
  }
  struct dirent* e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    add(list, "%s:%s", what, e->d_name);
  }
  closedir(d);
}

static void find_processes(void) {
  DIR* d = opendir("/proc");
  if (d == NULL) {
    add(list, "proc-unreadable:%s", strerrorname_np(errno));
    return;
  }
  struct dirent* e;
  pid_t self = getpid();
  while ((e = readdir(d)) != NULL) {
    char* end;
    long pid = strtol(e->d_name, &end, 10);
    if (*end != 0 || pid <= 0) continue;
    if (pid == self || pid == 1) continue;  // this program and the jail's init
    char path[64], comm[64] = "?";
    snprintf(path, sizeof path, "/proc/%ld/comm", pid);
    FILE* f = fopen(path, "re");
    if (f != NULL) {
      if (fgets(comm, sizeof comm, f) != NULL) comm[strcspn(comm, "\n")] = 0;
      fclose(f);
    }
    add(list, "proc:%ld:%s", pid, comm);
  }
  closedir(d);
}

static int find(const char* self) {
  find_entries("/tmp", "tmp");
  find_entries("/box", "box");
  find_entries("/dev/shm", "devshm");
  if (shmget(KEY, 0, 0) >= 0) add(list, "sysv_shm");
  if (msgget(KEY, 0) >= 0) add(list, "sysv_msg");
  if (semget(KEY, 0, 0) >= 0) add(list, "sysv_sem");
  long mq = syscall(SYS_mq_open, MQ_NAME, O_RDONLY | O_CLOEXEC, 0, NULL);
  if (mq >= 0)
    add(list, "mqueue");
  else if (errno != ENOENT)
    add(list, "mqueue-probe:%s", strerrorname_np(errno));

  int s = bind_abstract(ABSTRACT_SELF);
  if (s == -EADDRINUSE)
    add(list, "abstract");
  else if (s < 0)
    add(list, "abstract-probe:%s", strerrorname_np(-s));
  s = bind_abstract(ABSTRACT_DAEMON);
  if (s == -EADDRINUSE)
    add(list, "abstract_daemon");
  else if (s < 0)
    add(list, "abstract_daemon-probe:%s", strerrorname_np(-s));
  if (tcp_connects()) add(list, "tcp_listener");

  char host[256] = "?";
  gethostname(host, sizeof host);
  if (strcmp(host, "jailpool") != 0) add(list, "hostname:%s", host);

  find_processes();

  // A lock left on the shared file would show here.
  int fd = open(self, O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) add(list, "flock:%s", strerrorname_np(errno));
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK) add(list, "posix_lock");
    close(fd);
  }

  printf("found=%s\nhostname=%s\n", list, host);
  print_ns();
  return 0;
}

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "";
  if (strcmp(mode, "leave") == 0) return leave(argv[0]);
  if (strcmp(mode, "find") == 0) return find(argv[0]);
  fprintf(stderr, "usage: leak_state leave|find\n");
  return 2;
}
