// Terminal injection through stdin (CVE-2017-5226): TIOCSTI pushes input into the terminal's
// queue, which the terminal's next reader (a shell outside) would run. Modes: tiocsti |
// tiocsti_high (cmd with upper bits set, CVE-2019-10063) | tioclinux.
#define _GNU_SOURCE

#include <sys/ioctl.h>
#include <sys/syscall.h>

#include "adv.h"

int main(int argc, char** argv) {
  const char* mode = adv_mode(argc, argv, "tiocsti|tiocsti_high|tioclinux");
  char c = '!';
  adv_attempt("%s on fd 0 (isatty=%d)", mode, isatty(0));
  if (strcmp(mode, "tiocsti") == 0) adv_report(syscall(SYS_ioctl, 0, TIOCSTI, &c), mode);
  if (strcmp(mode, "tiocsti_high") == 0)
    adv_report(syscall(SYS_ioctl, 0, (unsigned long)TIOCSTI | (1UL << 32), &c), mode);
  if (strcmp(mode, "tioclinux") == 0) {
    char sub = 6;  // TIOCL_GETSHIFTSTATE: harmless if it got through
    adv_report(syscall(SYS_ioctl, 0, TIOCLINUX, &sub), mode);
  }
  adv_usage(argv, "tiocsti|tiocsti_high|tioclinux");
}
