// seccomp: a profile's policy compiled once (libseccomp) into a BPF program that a job's
// first process installs with one seccomp(2) call just before exec.
#pragma once

#include <linux/filter.h>

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "jailpool.pb.h"

namespace jailpool::isolate {

class SeccompProgram {
 public:
  SeccompProgram() = default;
  SeccompProgram(std::vector<sock_filter> insns, bool notifies, bool logs_allowed)
      : insns_(std::move(insns)), notifies_(notifies), logs_allowed_(logs_allowed) {}

  bool empty() const { return insns_.empty(); }
  // Some action is SECCOMP_RET_USER_NOTIF: install with SECCOMP_FILTER_FLAG_NEW_LISTENER; the
  // jail's init serves the listener.
  bool notifies() const { return notifies_; }
  // Learning mode: the notifications are allowed calls, to record and let run.
  bool logs_allowed() const { return logs_allowed_; }
  size_t size() const { return insns_.size(); }
  // The default policy's lock ban (flock, fcntl's lock commands: ENOLCK), a filter the job
  // installs as well when its jail's read-only files are not all its own inodes (no overlay);
  // nullptr for the other modes.
  const sock_fprog* lock_ban_fprog() {
    if (lock_ban_.empty()) return nullptr;
    lock_ban_fprog_.len = static_cast<unsigned short>(lock_ban_.size());
    lock_ban_fprog_.filter = lock_ban_.data();
    return &lock_ban_fprog_;
  }
  void set_lock_ban(std::vector<sock_filter> insns) { lock_ban_ = std::move(insns); }
  const std::vector<sock_filter>& lock_ban_instructions() const { return lock_ban_; }
  const std::vector<sock_filter>& instructions() const { return insns_; }
  // Valid while this object lives; safe to pass to seccomp(2) in a child sharing memory.
  const sock_fprog* fprog() {
    fprog_.len = static_cast<unsigned short>(insns_.size());
    fprog_.filter = insns_.data();
    return &fprog_;
  }

 private:
  std::vector<sock_filter> insns_;
  bool notifies_ = false;
  bool logs_allowed_ = false;
  sock_fprog fprog_{};
  std::vector<sock_filter> lock_ban_;
  sock_fprog lock_ban_fprog_{};
};

// The syscalls the default policy denies whatever the arguments (names as libseccomp knows them),
// for docs and tests: all are killed but clone3, inotify_init, inotify_init1 and fanotify_init
// (ENOSYS).
const std::vector<std::string>& default_denied_syscalls();

// How denied and allowed calls are reported.
struct SeccompReporting {
  // Denied calls notify the jail's init (SECCOMP_RET_USER_NOTIF) instead of killing the process,
  // so that it can report the call and kill the whole job; the syscall never runs either way
  // (with the listener gone it fails with ENOSYS). Foreign ABIs are still killed outright.
  bool name_violations = false;
  // Learning mode (jailpool run --seccomp-log): every call the policy allows notifies, and init
  // records it and lets it continue; denied calls kill.
  bool log_allowed = false;
  // For a slot's spawner (isolate/slot.h), which attaches the filter to itself once and keeps
  // its capabilities: unshare with exactly CLONE_NEWCGROUP (the job's first process, still
  // privileged, takes its own cgroup namespace), move_mount with exactly
  // MOVE_MOUNT_F_EMPTY_PATH (S puts a job's working directory with its files, a detached
  // tmpfs, in place) and umount2 with exactly MNT_DETACH (S takes it away after the job) are let
  // through. The job holds no capability and cannot make a user namespace, so for it these
  // calls fail with EPERM; with any other flags they are denied as before.
  bool slot_spawner = false;
};

// Compiles the profile's policy (profile.seccomp, seccomp_allow, seccomp_deny) for the native
// architecture. SECCOMP_NONE gives an empty program. Denied calls kill the whole process
// (SECCOMP_RET_KILL_PROCESS, so the job ends with SIGSYS) or notify (see SeccompReporting),
// except in the default policy clone3, inotify_init(1) and fanotify_init (ENOSYS), socket(AF_ALG)
// (EAFNOSUPPORT), fcntl F_SETLEASE/F_NOTIFY (EPERM) and personality other than the query 0xffffffff
// (EPERM), which fail softly; seccomp_deny denies any call it names but clone3. Foreign ABIs (i386,
// x32) are killed. Throws ConfigError("seccomp_allow"/"seccomp_deny", "unknown syscall NAME").
SeccompProgram compile_seccomp(const Profile& profile, const SeccompReporting& reporting = {});

// SECCOMP_RET_USER_NOTIF and SECCOMP_FILTER_FLAG_NEW_LISTENER work (Linux 5.0; the CONTINUE
// response that learning mode needs is 5.5).
bool seccomp_notify_available();

// AUDIT_ARCH_* of the native ABI (as in seccomp_data.arch).
uint32_t native_audit_arch();
// The kernel's size of struct seccomp_notif (SECCOMP_GET_NOTIF_SIZES; at least our header's).
size_t seccomp_notif_size();

// The AF_* number of an address family name as in Profile.socket_families ("unix", "inet",
// "inet6", "netlink", ...), or -1; and the names known, for error messages.
int socket_family_number(const std::string& name);
std::string known_socket_families();
// The AF_* numbers of profile.socket_families (empty: no restriction beyond the default
// policy's). Throws ConfigError("socket_families[i]", ...) for an unknown name.
std::set<int> allowed_socket_families(const Profile& profile);

// Name of a syscall number on the native architecture, or "syscall N".
std::string syscall_name(int nr);

}  // namespace jailpool::isolate
