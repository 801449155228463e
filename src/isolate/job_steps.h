// The steps a job's first process takes in every kind of jail (a fresh jail's or a template's
// job from jail_init.cc, a slot's job from slot_init.cc), between joining its cgroups and its
// exec. They run in a child sharing jailpool's memory: raw syscalls only, nothing that throws or
// allocates. `fail(plan, stage, rc, index)` reports a failure and does not return.
#pragma once

#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>

#include <cstdint>

#include "isolate/launch.h"
#include "isolate/raw_syscall.h"

namespace jailpool::isolate {

// Its cgroup namespace, signals, stdio, a new session, the working directory and the rlimits.
template <typename Fail>
void job_enter(LaunchPlan* plan, Fail fail) {
  long rc;
  // The job sees its own cgroup as the root of the cgroup tree.
  if ((rc = raw::call(SYS_unshare, CLONE_NEWCGROUP)) < 0)
    fail(plan, LaunchStage::kCgroupAttach, rc, -1);
  // Signals: an empty mask, and default actions for what jailpool ignores (exec keeps SIG_IGN;
  // the jail's init was cloned with CLONE_CLEAR_SIGHAND, so no handler is left to reset).
  uint64_t empty_mask = 0;
  raw::call(SYS_rt_sigprocmask, SIG_SETMASK, &empty_mask, nullptr, sizeof empty_mask);
  struct kernel_sigaction {
    void* handler;
    unsigned long flags;
    void* restorer;
    uint64_t mask;
  } dfl{};
  for (int sig = 1; sig <= 64; ++sig) {
    if (plan->ignored_signals & (1ull << (sig - 1)))
      raw::call(SYS_rt_sigaction, sig, &dfl, nullptr, 8);
  }
  for (int i = 0; i < 3; ++i) {
    long fd = plan->stdio[i];
    if (fd < 0) {
      // The jail's own /dev/null: the host's, shared by every job, would carry POSIX locks
      // from job to job. Not close-on-exec; a number above 2 is closed before the exec.
      fd = raw::call(SYS_openat, AT_FDCWD, "/dev/null", O_RDONLY);
      if (fd < 0) fail(plan, LaunchStage::kStdio, fd, i);
      if (fd == i) continue;
    }
    if ((rc = raw::call(SYS_dup3, fd, i, 0)) < 0) fail(plan, LaunchStage::kStdio, rc, i);
  }
  if ((rc = raw::call(SYS_setsid)) < 0) fail(plan, LaunchStage::kSession, rc, -1);
  if ((rc = raw::call(SYS_chdir, plan->cwd)) < 0) fail(plan, LaunchStage::kChdir, rc, -1);
  for (const auto& r : plan->frozen.rlimits) {
    if ((rc = raw::call(SYS_prlimit64, 0, r.resource, &r.value, nullptr)) < 0) {
      fail(plan, LaunchStage::kRlimit, rc, r.resource);
    }
  }
}

// The job's uid and gid with no groups. Changing every uid away from 0 clears the permitted and
// effective sets (the caller has locked the securebits so that nothing keeps or regains them);
// capset clears the inheritable one.
template <typename Fail>
void job_become_user(LaunchPlan* plan, Fail fail) {
  long rc;
  if ((rc = raw::call(SYS_setgroups, 0, nullptr)) < 0) fail(plan, LaunchStage::kCredentials, rc, 3);
  if ((rc = raw::call(SYS_setresgid, plan->gid, plan->gid, plan->gid)) < 0) {
    fail(plan, LaunchStage::kCredentials, rc, 4);
  }
  if ((rc = raw::call(SYS_setresuid, plan->uid, plan->uid, plan->uid)) < 0) {
    fail(plan, LaunchStage::kCredentials, rc, 5);
  }
  struct __user_cap_header_struct cap_header {
    _LINUX_CAPABILITY_VERSION_3, 0
  };
  struct __user_cap_data_struct cap_data[2] = {};
  if ((rc = raw::call(SYS_capset, &cap_header, cap_data)) < 0) {
    fail(plan, LaunchStage::kCredentials, rc, 6);
  }
}

}  // namespace jailpool::isolate
