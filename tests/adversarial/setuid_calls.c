// Becoming root or another user from the job's unprivileged uid. Modes: setuid | setresuid |
// setgid | setgroups | capset.
#define _GNU_SOURCE

#include <linux/capability.h>
#include <sys/syscall.h>

#include "adv.h"

int main(int argc, char** argv) {
  const char* usage = "setuid|setresuid|setgid|setgroups|capset";
  const char* mode = adv_mode(argc, argv, usage);
  adv_attempt("%s", mode);
  if (strcmp(mode, "setuid") == 0) adv_report(syscall(SYS_setuid, 0), mode);
  if (strcmp(mode, "setresuid") == 0) adv_report(syscall(SYS_setresuid, 0, 0, 0), mode);
  if (strcmp(mode, "setgid") == 0) adv_report(syscall(SYS_setgid, 0), mode);
  if (strcmp(mode, "setgroups") == 0) {
    gid_t groups[1] = {0};
    adv_report(syscall(SYS_setgroups, 1, groups), mode);
  }
  if (strcmp(mode, "capset") == 0) {
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0xff, sizeof data);
    adv_report(syscall(SYS_capset, &header, data), mode);
  }
  adv_usage(argv, usage);
}
