// The steps a job's first process takes in every kind of jail (a fresh jail's or a template's
// job from jail_init.cc, a slot's job from slot_init.cc), between joining its cgroups and its
// exec, and what the jail's init does around it (at the end). They run in children sharing
// jailpool's memory: raw syscalls only, nothing that throws or allocates. `fail(plan, stage, rc,
// index)` reports a failure and does not return.
#pragma once

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

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
  // A new session costs an autogroup (a task group) per job; a slot's S made its session once.
  rc = plan->slot_job ? raw::call(SYS_setpgid, 0, 0) : raw::call(SYS_setsid);
  if (rc < 0) fail(plan, LaunchStage::kSession, rc, -1);
  if ((rc = raw::call(SYS_chdir, plan->cwd)) < 0) fail(plan, LaunchStage::kChdir, rc, -1);
  for (const auto& r : plan->frozen.rlimits) {
    if ((rc = raw::call(SYS_prlimit64, 0, r.resource, &r.value, nullptr)) < 0) {
      fail(plan, LaunchStage::kRlimit, rc, r.resource);
    }
  }
}

// The job's uid and gid with no groups. Changing every uid away from 0 clears the permitted and
// effective sets (the caller has locked the securebits so that nothing keeps or regains them);
// capset clears the inheritable one (a slot's S emptied its groups and inheritable set once).
template <typename Fail>
void job_become_user(LaunchPlan* plan, Fail fail) {
  long rc;
  if (!plan->slot_job && (rc = raw::call(SYS_setgroups, 0, nullptr)) < 0) {
    fail(plan, LaunchStage::kCredentials, rc, 3);
  }
  if ((rc = raw::call(SYS_setresgid, plan->gid, plan->gid, plan->gid)) < 0) {
    fail(plan, LaunchStage::kCredentials, rc, 4);
  }
  if ((rc = raw::call(SYS_setresuid, plan->uid, plan->uid, plan->uid)) < 0) {
    fail(plan, LaunchStage::kCredentials, rc, 5);
  }
  if (plan->slot_job) return;
  struct __user_cap_header_struct cap_header {
    _LINUX_CAPABILITY_VERSION_3, 0
  };
  struct __user_cap_data_struct cap_data[2] = {};
  if ((rc = raw::call(SYS_capset, &cap_header, cap_data)) < 0) {
    fail(plan, LaunchStage::kCredentials, rc, 6);
  }
}

// Execs the first candidate that exists (PATH search was resolved into candidates) and returns
// the most telling error, like execvp. A text file busy (ETXTBSY) is retried for up to ~100 ms:
// another job's first process, between its clone and its close_range, holds a copy of every fd
// jailpool had open at that instant (a slot's spawner shares jailpool's table), which may
// include the write fd of this job's copied-in program; it lets go within microseconds (the
// fork/exec ETXTBSY race, golang/go#22315).
inline long job_exec(LaunchPlan* plan) {
  long err = -ENOENT;
  for (const char* path : plan->frozen.exec_paths) {
    long rc = raw::call(SYS_execve, path, plan->frozen.argv, plan->frozen.envp);
    for (int retry = 0; rc == -ETXTBSY && retry < 100; ++retry) {
      struct timespec pause {
        0, 1000000
      };
      raw::call(SYS_nanosleep, &pause, nullptr);
      rc = raw::call(SYS_execve, path, plan->frozen.argv, plan->frozen.envp);
    }
    if (rc != -ENOENT && rc != -ENOTDIR && (err == -ENOENT || err == -ENOTDIR)) err = rc;
  }
  return err;
}

// What a jail's init does around its job (a fresh jail's init, a slot's S).

inline uint64_t monotonic_ns() {
  struct timespec ts;
  raw::call(SYS_clock_gettime, CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// Waits for one child (`options`: 0 or WNOHANG); returns its pid, 0 (none ready) or -errno
// (-ECHILD: none left). When it is the job, records its end and kills what it left behind
// (daemons, setsid'd children: all are in this pid namespace).
inline long reap_one(LaunchPlan* plan, long job_pid, int options) {
  int status = 0;
  struct rusage usage {};
  long pid;
  do {
    pid = raw::call(SYS_wait4, -1, &status, __WALL | options, &usage);
  } while (pid == -EINTR);
  if (pid > 0 && pid == job_pid) {
    plan->report.exit_ns = monotonic_ns();
    plan->report.wait_status = status;
    plan->report.rusage = usage;
    plan->report.job_exited = true;
    // kill(-1) walks every task of the host, so only when something is left: every process of
    // this pid namespace is a child of its init (pid 1) once the job is gone, its orphans
    // reparented to init before the job could be reaped. waitid(WNOWAIT) reaps nothing:
    // ECHILD means none.
    siginfo_t any;
    if (raw::call(SYS_waitid, P_ALL, 0, &any, WEXITED | WNOHANG | WNOWAIT | __WALL, nullptr) !=
        -ECHILD) {
      raw::call(SYS_kill, -1, SIGKILL);
    }
  }
  return pid;
}

// The processes of this pid namespace but its init (pid 1), from its /proc (every jail mounts
// its own); 1 ("at least one") when it cannot be read.
inline uint32_t count_jail_processes() {
  long dir = raw::call(SYS_openat, AT_FDCWD, "/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return 1;
  alignas(8) char buf[4096];
  uint32_t n = 0;
  long len;
  while ((len = raw::call(SYS_getdents64, dir, buf, sizeof buf)) > 0) {
    for (long off = 0; off < len;) {
      const auto* d = reinterpret_cast<const struct dirent64*>(buf + off);
      off += d->d_reclen;
      const char* name = d->d_name;
      bool digits = name[0] != 0;
      for (const char* p = name; *p; ++p) digits = digits && *p >= '0' && *p <= '9';
      if (digits && !(name[0] == '1' && name[1] == 0)) ++n;
    }
  }
  raw::call(SYS_close, dir);
  return n > 0 ? n : 1;
}

// Reaps every process of the jail: blocking waits until the job's first process ends (which
// kills the rest), then the rest for at most kSurvivorGraceNs. Returns 0, or the number of
// processes that outlived SIGKILL that long (see kSurvivorGraceNs), which are left as they are.
// sfd: a signalfd for SIGCHLD, which the caller has blocked; -1: made here if needed. The
// common case, nothing left when the job ends, costs the same calls as a plain wait loop: the
// wait4 that follows the job's returns ECHILD.
inline uint32_t reap_jail(LaunchPlan* plan, long job_pid, int sfd) {
  long pid;
  while (!plan->report.job_exited) {
    if ((pid = reap_one(plan, job_pid, 0)) < 0) return 0;  // none left (the job never started)
  }
  uint64_t deadline = 0;
  bool own_sfd = false;
  uint32_t left = 0;
  for (;;) {
    pid = reap_one(plan, job_pid, WNOHANG);
    if (pid > 0) continue;
    if (pid < 0) break;  // ECHILD: the jail is empty
    // Killed, not gone yet: wait for SIGCHLD, up to the deadline.
    const uint64_t now = monotonic_ns();
    if (deadline == 0) {
      deadline = now + kSurvivorGraceNs;
      if (sfd < 0) {
        // Blocked first: a child that ends before the signalfd exists stays pending for it
        // (and one that ended already is a zombie the next wait4 finds).
        uint64_t sigchld = 1ull << (SIGCHLD - 1);
        raw::call(SYS_rt_sigprocmask, SIG_BLOCK, &sigchld, nullptr, sizeof sigchld);
        long fd =
            raw::call(SYS_signalfd4, -1, &sigchld, sizeof sigchld, SFD_NONBLOCK | SFD_CLOEXEC);
        if (fd >= 0) {
          sfd = static_cast<int>(fd);
          own_sfd = true;
        }
      }
    }
    if (now >= deadline) {
      left = count_jail_processes();
      break;
    }
    uint64_t rest = deadline - now;
    // Without a signalfd (no fd left), look again every millisecond.
    if (sfd < 0 && rest > 1000000) rest = 1000000;
    struct timespec timeout {
      static_cast<long>(rest / 1000000000ull), static_cast<long>(rest % 1000000000ull)
    };
    struct pollfd p {
      sfd, POLLIN, 0
    };
    raw::call(SYS_ppoll, sfd >= 0 ? &p : nullptr, sfd >= 0 ? 1 : 0, &timeout, nullptr, 8);
    if (sfd >= 0) {
      struct signalfd_siginfo info;
      while (raw::call(SYS_read, sfd, &info, sizeof info) > 0) {
      }
    }
  }
  if (own_sfd) raw::call(SYS_close, sfd);
  return left;
}

// One notification from the job's seccomp listener: in learning mode an allowed call, recorded
// and let run; otherwise a denied call, recorded (the first) before the whole jail is killed.
inline void handle_seccomp_notification(LaunchPlan* plan, int listener) {
  // Zeroed, as the kernel requires, and at least its struct's size (checked by the supervisor).
  alignas(8) unsigned char buf[kSeccompNotifBuffer];
  for (auto& b : buf) *static_cast<volatile unsigned char*>(&b) = 0;
  if (raw::call(SYS_ioctl, listener, SECCOMP_IOCTL_NOTIF_RECV, buf) < 0) return;  // the task died
  const auto* notif = reinterpret_cast<const struct seccomp_notif*>(buf);
  if (plan->seccomp_log) {
    const uint32_t nr = static_cast<uint32_t>(notif->data.nr);
    if (nr < 64 * 8) plan->report.seccomp_used[nr / 64] |= 1ull << (nr % 64);
    struct seccomp_notif_resp resp {};
    resp.id = notif->id;
    resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
    raw::call(SYS_ioctl, listener, SECCOMP_IOCTL_NOTIF_SEND, &resp);
    return;
  }
  if (plan->report.seccomp_denied_nr < 0) {
    plan->report.seccomp_denied_nr = notif->data.nr;
    plan->report.seccomp_denied_arch = notif->data.arch;
  }
  raw::call(SYS_kill, -1, SIGKILL);  // the call never runs: its task waits in it until it dies
}

}  // namespace jailpool::isolate
