// Kernel modules. Modes: init_module | finit_module | delete_module.
#define _GNU_SOURCE

#include <fcntl.h>
#include <sys/syscall.h>

#include "adv.h"

int main(int argc, char** argv) {
  const char* mode = adv_mode(argc, argv, "init_module|finit_module|delete_module");
  static char image[64];
  adv_attempt("%s", mode);
  if (strcmp(mode, "init_module") == 0)
    adv_report(syscall(SYS_init_module, image, sizeof image, ""), mode);
  if (strcmp(mode, "finit_module") == 0) {
    int fd = open(argv[0], O_RDONLY | O_CLOEXEC);
    adv_report(syscall(SYS_finit_module, fd, "", 0), mode);
  }
  if (strcmp(mode, "delete_module") == 0)
    adv_report(syscall(SYS_delete_module, "loop", O_NONBLOCK), mode);
  adv_usage(argv, "init_module|finit_module|delete_module");
}
