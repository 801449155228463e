// Loading a new kernel. Modes: kexec_load | kexec_file_load.
#define _GNU_SOURCE

#include <sys/syscall.h>

#include "adv.h"

int main(int argc, char** argv) {
  const char* mode = adv_mode(argc, argv, "kexec_load|kexec_file_load");
  adv_attempt("%s", mode);
  if (strcmp(mode, "kexec_load") == 0) adv_report(syscall(SYS_kexec_load, 0, 0, NULL, 0), mode);
  if (strcmp(mode, "kexec_file_load") == 0)
    adv_report(syscall(SYS_kexec_file_load, -1, -1, 0, "", 0), mode);
  adv_usage(argv, "kexec_load|kexec_file_load");
}
