// reboot(2). The command only toggles Ctrl-Alt-Del handling (harmless if it got through); in a
// child pid namespace a real restart would end the namespace, which is worse to test.
#define _GNU_SOURCE

#include <linux/reboot.h>
#include <sys/syscall.h>

#include "adv.h"

int main(void) {
  adv_attempt("reboot CAD_ON");
  adv_report(
      syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, LINUX_REBOOT_CMD_CAD_ON, NULL),
      "reboot");
}
