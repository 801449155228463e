// Reaching a host service from the jail's own network namespace. Modes: tcp ADDR PORT |
// udp ADDR PORT | abstract NAME (a host abstract unix socket; abstract names are per network
// namespace). The test listens on the host and checks nothing arrives.
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include "adv.h"

int main(int argc, char** argv) {
  const char* mode = adv_mode(argc, argv, "tcp ADDR PORT|udp ADDR PORT|abstract NAME");
  if (strcmp(mode, "abstract") == 0 && argc > 2) {
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    size_t len = strlen(argv[2]);
    memcpy(addr.sun_path + 1, argv[2], len);
    adv_attempt("connect @%s", argv[2]);
    if (connect(s, (struct sockaddr*)&addr,
                (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len)) != 0)
      adv_blocked(errno, "connect @%s", argv[2]);
    write(s, "jailpool-adv", 12);
    adv_escaped("connected to @%s", argv[2]);
  }
  if (argc < 4) adv_usage(argv, "tcp ADDR PORT|udp ADDR PORT|abstract NAME");
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)atoi(argv[3]));
  if (inet_pton(AF_INET, argv[2], &addr.sin_addr) != 1) adv_usage(argv, "bad address");
  int udp = strcmp(mode, "udp") == 0;
  int s = socket(AF_INET, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
  if (s < 0) adv_blocked(errno, "socket");
  struct timeval tv = {0, 300 * 1000};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  adv_attempt("%s connect %s:%s", mode, argv[2], argv[3]);
  if (connect(s, (struct sockaddr*)&addr, sizeof addr) != 0) adv_blocked(errno, "connect");
  if (!udp) {
    write(s, "jailpool-adv", 12);
    adv_escaped("tcp connected to %s:%s", argv[2], argv[3]);
  }
  // UDP: send a few datagrams; an ICMP port unreachable inside the namespace makes the next
  // call fail with ECONNREFUSED. Whether one reached the host, only the test can tell.
  for (int i = 0; i < 3; ++i) {
    if (send(s, "jailpool-adv", 12, 0) < 0) adv_blocked(errno, "send");
    char buf[16];
    if (recv(s, buf, sizeof buf, 0) < 0 && errno != EAGAIN) adv_blocked(errno, "recv");
  }
  adv_done("udp datagrams sent to %s:%s", argv[2], argv[3]);
}
