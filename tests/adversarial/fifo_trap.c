// FIFOs and sockets where a collector would read files: /box/out.txt and /tmp/out are FIFOs
// (an open for reading blocks forever), /box/sock a unix socket. The job ends; nothing of
// jailpool's may hang on them.
#define _GNU_SOURCE

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "adv.h"

int main(void) {
  adv_attempt("leave FIFOs and a socket");
  if (mkfifo("/box/out.txt", 0666) != 0) adv_blocked(errno, "mkfifo /box/out.txt");
  if (mkfifo("/tmp/out", 0666) != 0) adv_blocked(errno, "mkfifo /tmp/out");
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  strcpy(addr.sun_path, "/box/sock");
  if (s < 0 || bind(s, (struct sockaddr*)&addr, sizeof addr) != 0) adv_blocked(errno, "bind");
  adv_done("FIFOs /box/out.txt /tmp/out and socket /box/sock left");
}
