// seccomp: a profile's policy compiled once (libseccomp) into a BPF program that a job's
// first process installs with one seccomp(2) call just before exec.
#pragma once

#include <linux/filter.h>

#include <string>
#include <vector>

#include "jailpool.pb.h"

namespace jailpool::isolate {

class SeccompProgram {
 public:
  SeccompProgram() = default;
  explicit SeccompProgram(std::vector<sock_filter> insns) : insns_(std::move(insns)) {}

  bool empty() const { return insns_.empty(); }
  size_t size() const { return insns_.size(); }
  // Valid while this object lives; safe to pass to seccomp(2) in a child sharing memory.
  const sock_fprog* fprog() {
    fprog_.len = static_cast<unsigned short>(insns_.size());
    fprog_.filter = insns_.data();
    return &fprog_;
  }

 private:
  std::vector<sock_filter> insns_;
  sock_fprog fprog_{};
};

// The syscalls the default policy denies whatever the arguments (names as libseccomp knows them),
// for docs and tests: all are killed but clone3 (ENOSYS) and flock (ENOLCK).
const std::vector<std::string>& default_denied_syscalls();

// Compiles the profile's policy (profile.seccomp, seccomp_allow, seccomp_deny) for the native
// architecture. SECCOMP_NONE gives an empty program. Denied calls kill the whole process
// (SECCOMP_RET_KILL_PROCESS, so the job ends with SIGSYS), except in the default policy clone3
// (ENOSYS), flock and fcntl's lock commands (ENOLCK), fcntl F_SETLEASE/F_NOTIFY (EPERM) and
// personality other than the query 0xffffffff (EPERM), which fail softly; seccomp_deny kills
// any call it names but clone3. Foreign ABIs (i386, x32) are killed too.
// Throws ConfigError("seccomp_allow"/"seccomp_deny", "unknown syscall NAME").
SeccompProgram compile_seccomp(const Profile& profile);

// Name of a syscall number on the native architecture, or "syscall N".
std::string syscall_name(int nr);

}  // namespace jailpool::isolate
