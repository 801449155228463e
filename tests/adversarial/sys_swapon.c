// swapon of a file of the job's (host administration). Modes: swapon | swapoff.
#define _GNU_SOURCE

#include <fcntl.h>
#include <sys/syscall.h>

#include "adv.h"

int main(int argc, char** argv) {
  const char* mode = adv_mode(argc, argv, "swapon|swapoff");
  int fd = open("/tmp/swap", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd >= 0) close(fd);
  adv_attempt("%s /tmp/swap", mode);
  if (strcmp(mode, "swapon") == 0) adv_report(syscall(SYS_swapon, "/tmp/swap", 0), mode);
  if (strcmp(mode, "swapoff") == 0) adv_report(syscall(SYS_swapoff, "/tmp/swap"), mode);
  adv_usage(argv, "swapon|swapoff");
}
