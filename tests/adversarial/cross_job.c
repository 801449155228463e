// Channels between two jobs running at the same time. "serve MS" publishes everything it can
// (files in /tmp, /box and /dev/shm, SysV shm/msg/sem, a POSIX mqueue, an abstract socket, TCP
// and UDP on 127.0.0.1, a message in the UTS hostname, file locks on the shared read-only files
// /bin/sh, /etc/passwd, its own program file, /dev/null and its stdin) and keeps it for MS
// milliseconds; "probe
// MS" looks for any of it for MS milliseconds. Both print their CLOCK_MONOTONIC window
// ("window START END", ms; the clock is host-wide without a time namespace) so the test can
// check that they overlapped.
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stddef.h>
#include <sys/file.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>

#include "adv.h"

#define KEY 0x4a504358  // "JPCX"
#define MQ_NAME "jailpool-cross"
#define ABSTRACT "jailpool-cross"
#define TCP_PORT 47131
#define UDP_PORT 47132

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static char list[4096];
static void add(const char* what, int err) {
  size_t used = strlen(list);
  snprintf(list + used, sizeof list - used, "%s%s%s%s", used ? "," : "", what, err ? ":" : "",
           err ? adv_errname(err) : "");
}

static struct sockaddr_un abstract_addr(socklen_t* len) {
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path + 1, ABSTRACT, strlen(ABSTRACT));
  *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(ABSTRACT));
  return addr;
}

static struct sockaddr_in inet_addr_of(int port) {
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

static void publish_file(const char* path, const char* what) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) {
    add(what, errno);
    return;
  }
  write(fd, "cross\n", 6);
  close(fd);
  add(what, 0);
}

// The shared read-only files locked (flock, a POSIX and an OFD read lock); "" is stdin.
static const char* lock_files[] = {"/bin/sh", "/etc/passwd", "/dev/null", ""};
static const char* lock_names[] = {"lock_sh", "lock_passwd", "lock_devnull", "lock_stdin",
                                   "lock_prog"};
#define LOCK_FILES 5
static int lock_fds[LOCK_FILES];

static void open_lock_files(const char* self) {
  for (int i = 0; i < LOCK_FILES; ++i) {
    const char* path = i < 4 ? lock_files[i] : self;
    lock_fds[i] = path[0] == 0 ? 0 : open(path, O_RDONLY | O_CLOEXEC);
  }
}

static int read_lock(int fd, int cmd, off_t start) {
  struct flock fl;
  memset(&fl, 0, sizeof fl);
  fl.l_type = F_RDLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = start;
  fl.l_len = 1;
  return (int)syscall(SYS_fcntl, fd, cmd, &fl);
}

static void publish_locks(void) {
  for (int i = 0; i < LOCK_FILES; ++i) {
    int fd = lock_fds[i], err = 0;
    if (fd < 0) {
      err = ENOENT;
    } else if (fd != 0 && syscall(SYS_flock, fd, LOCK_EX | LOCK_NB) != 0) {
      err = errno;
    } else if (read_lock(fd, F_SETLK, 0) != 0 || read_lock(fd, F_OFD_SETLK, 1) != 0) {
      err = errno;
    }
    add(lock_names[i], err);
  }
}

// Another holder's lock in sight on any of the files?
static void probe_locks(void) {
  for (int i = 0; i < LOCK_FILES; ++i) {
    int fd = lock_fds[i];
    if (fd < 0) continue;
    int seen = 0;
    if (fd != 0) {
      if (syscall(SYS_flock, fd, LOCK_EX | LOCK_NB) == 0) {
        syscall(SYS_flock, fd, LOCK_UN);
      } else if (errno == EWOULDBLOCK) {
        seen = 1;
      }
    }
    for (int cmd = 0; cmd < 2; ++cmd) {
      struct flock fl;
      memset(&fl, 0, sizeof fl);
      fl.l_type = F_WRLCK;
      fl.l_whence = SEEK_SET;
      if (syscall(SYS_fcntl, fd, cmd ? F_OFD_GETLK : F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK) {
        seen = 1;
      }
    }
    if (seen) add(lock_names[i], 0);
  }
}

static void serve(long ms) {
  long long start = now_ms();
  publish_file("/tmp/jailpool-cross", "tmp");
  publish_file("/box/jailpool-cross", "box");
  publish_file("/dev/shm/jailpool-cross", "devshm");
  add("sysv_shm", shmget(KEY, 4096, IPC_CREAT | 0666) < 0 ? errno : 0);
  add("sysv_msg", msgget(KEY, IPC_CREAT | 0666) < 0 ? errno : 0);
  add("sysv_sem", semget(KEY, 1, IPC_CREAT | 0666) < 0 ? errno : 0);
  add("mqueue", syscall(SYS_mq_open, MQ_NAME, O_CREAT | O_RDWR, 0666, NULL) < 0 ? errno : 0);
  socklen_t len;
  struct sockaddr_un un = abstract_addr(&len);
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  add("abstract", bind(s, (struct sockaddr*)&un, len) != 0 || listen(s, 8) != 0 ? errno : 0);
  struct sockaddr_in in = inet_addr_of(TCP_PORT);
  int t = socket(AF_INET, SOCK_STREAM, 0);
  add("tcp", bind(t, (struct sockaddr*)&in, sizeof in) != 0 || listen(t, 8) != 0 ? errno : 0);
  in = inet_addr_of(UDP_PORT);
  int u = socket(AF_INET, SOCK_DGRAM, 0);
  add("udp", bind(u, (struct sockaddr*)&in, sizeof in) != 0 ? errno : 0);
  publish_locks();
  long long published = now_ms();
  printf("published %s\n", list);
  fflush(stdout);
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
  // Did anything come in?
  char buf[64];
  if (recv(u, buf, sizeof buf, MSG_DONTWAIT) > 0) adv_escaped("udp datagram from another job");
  printf("window %lld %lld\n", published, now_ms());
  (void)start;
  adv_done("served");
}

static void probe(long ms) {
  long long start = now_ms(), end = start + ms;
  int rounds = 0;
  while (now_ms() < end) {
    ++rounds;
    list[0] = 0;
    const char* files[] = {"/tmp/jailpool-cross", "/box/jailpool-cross", "/dev/shm/jailpool-cross"};
    for (int i = 0; i < 3; ++i) {
      if (access(files[i], F_OK) == 0) add(files[i], 0);
    }
    if (shmget(KEY, 0, 0) >= 0) add("sysv_shm", 0);
    if (msgget(KEY, 0) >= 0) add("sysv_msg", 0);
    if (semget(KEY, 0, 0) >= 0) add("sysv_sem", 0);
    if (syscall(SYS_mq_open, MQ_NAME, O_RDONLY, 0, NULL) >= 0) add("mqueue", 0);
    socklen_t len;
    struct sockaddr_un un = abstract_addr(&len);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    if (connect(s, (struct sockaddr*)&un, len) == 0) add("abstract", 0);
    close(s);
    struct sockaddr_in in = inet_addr_of(TCP_PORT);
    int t = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(t, (struct sockaddr*)&in, sizeof in) == 0) add("tcp", 0);
    close(t);
    in = inet_addr_of(UDP_PORT);
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    sendto(u, "x", 1, 0, (struct sockaddr*)&in, sizeof in);
    close(u);
    probe_locks();
    if (list[0] != 0) {
      printf("window %lld %lld\n", start, now_ms());
      adv_escaped("found %s", list);
    }
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
  }
  printf("window %lld %lld\n", start, now_ms());
  adv_blocked_as("NONE", "nothing found in %d rounds", rounds);
}

int main(int argc, char** argv) {
  const char* mode = adv_mode(argc, argv, "serve MS|probe MS");
  long ms = argc > 2 ? atol(argv[2]) : 2000;
  adv_attempt("%s", mode);
  open_lock_files(argv[0]);
  if (strcmp(mode, "serve") == 0) serve(ms);
  if (strcmp(mode, "probe") == 0) probe(ms);
  adv_usage(argv, "serve MS|probe MS");
}
