// Keyrings persist per user across jobs (a channel, and a kernel attack surface).
// Modes: keyctl | add_key | request_key.
#define _GNU_SOURCE

#include <linux/keyctl.h>
#include <sys/syscall.h>

#include "adv.h"

int main(int argc, char** argv) {
  const char* mode = adv_mode(argc, argv, "keyctl|add_key|request_key");
  adv_attempt("%s", mode);
  if (strcmp(mode, "keyctl") == 0)
    adv_report(syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, 1), mode);
  if (strcmp(mode, "add_key") == 0)
    adv_report(syscall(SYS_add_key, "user", "jailpool-adv", "x", 1, KEY_SPEC_USER_KEYRING), mode);
  if (strcmp(mode, "request_key") == 0)
    adv_report(syscall(SYS_request_key, "user", "jailpool-adv", NULL, KEY_SPEC_USER_KEYRING), mode);
  adv_usage(argv, "keyctl|add_key|request_key");
}
