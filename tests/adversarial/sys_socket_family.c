// Socket families beyond the job's network namespace: vsock (host-wide), packet (sniffing an
// interface), raw IP (needs CAP_NET_RAW). Modes: vsock | packet | raw_inet.
#define _GNU_SOURCE

#include <sys/socket.h>
#include <sys/syscall.h>

#include "adv.h"

int main(int argc, char** argv) {
  const char* mode = adv_mode(argc, argv, "vsock|packet|raw_inet");
  adv_attempt("socket %s", mode);
  if (strcmp(mode, "vsock") == 0) adv_report(syscall(SYS_socket, AF_VSOCK, SOCK_STREAM, 0), mode);
  if (strcmp(mode, "packet") == 0)
    adv_report(syscall(SYS_socket, AF_PACKET, SOCK_RAW, 0x0300 /* htons(ETH_P_ALL) */), mode);
  if (strcmp(mode, "raw_inet") == 0) adv_report(syscall(SYS_socket, AF_INET, SOCK_RAW, 1), mode);
  adv_usage(argv, "vsock|packet|raw_inet");
}
