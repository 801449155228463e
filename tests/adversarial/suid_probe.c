// Run as a setuid-root (or file-capability) binary bound into the jail: the effective uid must
// not become 0 and no capability may be gained (nosuid mounts, no_new_privs).
#define _GNU_SOURCE

#include <sys/syscall.h>

#include "adv.h"

static unsigned long long cap_eff(void) {
  char buf[4096];
  if (adv_read_file("/proc/self/status", buf, sizeof buf) <= 0) return ~0ULL;
  const char* p = strstr(buf, "CapEff:");
  return p ? strtoull(p + 7, NULL, 16) : ~0ULL;
}

int main(void) {
  uid_t ruid, euid, suid;
  getresuid(&ruid, &euid, &suid);
  unsigned long long caps = cap_eff();
  adv_attempt("run setuid: ruid %d euid %d suid %d capeff %llx", (int)ruid, (int)euid, (int)suid,
              caps);
  if (euid == 0 || suid == 0) adv_escaped("euid %d suid %d", (int)euid, (int)suid);
  if (caps != 0) adv_escaped("capabilities %llx", caps);
  if (syscall(SYS_setuid, 0) == 0) adv_escaped("setuid(0) worked");
  adv_blocked(errno, "euid %d", (int)euid);
}
