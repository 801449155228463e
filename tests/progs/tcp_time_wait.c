// A TCP port held across jobs by a TIME_WAIT socket.
//
// leave: listens on 127.0.0.1:47124, connects to itself, accepts, and closes the accepted
//   side first: the active closer, whose local port is 47124, enters TIME_WAIT (60 s) once the
//   client closes too. Prints "tw=<the TIME_WAIT count of its net namespace>" (from
//   /proc/net/sockstat: at least 1, or the test proves nothing) and exits 0.
// bind: binds 127.0.0.1:47124 without SO_REUSEADDR and prints "bind=0" or "bind=<errno name>"
//   (EADDRINUSE while a TIME_WAIT socket of that port remains). Exits 0.
// Both print "netns=<the id of their net namespace>".
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define PORT 47124

static struct sockaddr_in loopback(void) {
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons(PORT);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

static void print_netns(void) {
  struct stat st;
  if (stat("/proc/self/ns/net", &st) == 0) printf("netns=%llu\n", (unsigned long long)st.st_ino);
}

static int fail(const char* what) {
  printf("error=%s:%s\n", what, strerror(errno));
  return 1;
}

static int leave(void) {
  struct sockaddr_in addr = loopback();
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener < 0) return fail("socket");
  if (bind(listener, (struct sockaddr*)&addr, sizeof addr) < 0) return fail("bind");
  if (listen(listener, 1) < 0) return fail("listen");
  int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (client < 0) return fail("socket");
  if (connect(client, (struct sockaddr*)&addr, sizeof addr) < 0) return fail("connect");
  int server = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
  if (server < 0) return fail("accept");
  close(listener);
  close(server);  // the active closer: FIN_WAIT, then TIME_WAIT on port PORT
  char c;
  if (read(client, &c, 1) != 0) return fail("read eof");
  close(client);
  // The TIME_WAIT count of this net namespace (the last FIN is handled in a softirq, almost
  // always before close returns: a few tries at most).
  long tw = -1;
  for (int tries = 0; tries < 100 && tw < 1; ++tries) {
    if (tries > 0) usleep(10000);
    FILE* f = fopen("/proc/net/sockstat", "r");
    if (f == NULL) return fail("sockstat");
    char line[256];
    while (fgets(line, sizeof line, f) != NULL) {
      const char* p = strstr(line, " tw ");
      if (strncmp(line, "TCP:", 4) == 0 && p != NULL) sscanf(p, " tw %ld", &tw);
    }
    fclose(f);
  }
  printf("tw=%ld\n", tw);
  print_netns();
  return 0;
}

static int try_bind(void) {
  struct sockaddr_in addr = loopback();
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail("socket");
  if (bind(fd, (struct sockaddr*)&addr, sizeof addr) == 0) {
    printf("bind=0\n");
  } else {
    printf("bind=%s\n", errno == EADDRINUSE ? "EADDRINUSE" : strerror(errno));
  }
  close(fd);
  print_netns();
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 2 && strcmp(argv[1], "leave") == 0) return leave();
  if (argc == 2 && strcmp(argv[1], "bind") == 0) return try_bind();
  fprintf(stderr, "usage: tcp_time_wait leave|bind\n");
  return 2;
}
