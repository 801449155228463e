// The code that runs inside a new jail before the program: the jail's init (pid 1) and the
// job's first process. Both share jailpool's memory (CLONE_VM), so they use raw system calls
// only and report failures in LaunchPlan::report (see launch.h).
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <linux/securebits.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include <cerrno>

#include "isolate/job_steps.h"
#include "isolate/launch.h"
#include "isolate/raw_syscall.h"

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

extern "C" long jp_clone3_call(struct clone_args* args, size_t size, int (*fn)(void*), void* arg);

namespace jailpool::isolate {

const char* describe_stage(LaunchStage stage) {
  switch (stage) {
    case LaunchStage::kNone:
      return "none";
    case LaunchStage::kCloseFds:
      return "closing inherited fds";
    case LaunchStage::kPrivateRoot:
      return "making / private";
    case LaunchStage::kStaging:
      return "mounting the staging tmpfs";
    case LaunchStage::kTemplateMount:
      return "building the root";
    case LaunchStage::kPivot:
      return "pivot_root";
    case LaunchStage::kJoinTemplate:
      return "joining the template's namespaces";
    case LaunchStage::kJobMount:
      return "mounting the job's filesystems";
    case LaunchStage::kHostname:
      return "sethostname";
    case LaunchStage::kLoopback:
      return "bringing up lo";
    case LaunchStage::kDeathSignal:
      return "prctl(PR_SET_PDEATHSIG)";
    case LaunchStage::kCloneJob:
      return "clone3 of the job";
    case LaunchStage::kCgroupAttach:
      return "joining the job's cgroups";
    case LaunchStage::kStdio:
      return "setting up stdin/stdout/stderr";
    case LaunchStage::kSession:
      return "setsid";
    case LaunchStage::kChdir:
      return "chdir to the working directory";
    case LaunchStage::kRlimit:
      return "setrlimit";
    case LaunchStage::kCredentials:
      return "dropping privileges";
    case LaunchStage::kNoNewPrivs:
      return "prctl(PR_SET_NO_NEW_PRIVS)";
    case LaunchStage::kSeccomp:
      return "installing the seccomp filter";
    case LaunchStage::kExec:
      return "execve";
  }
  return "?";
}

namespace {

using raw::call;

constexpr int kStagingFlags = MS_NOSUID | MS_NODEV | MS_NOEXEC;

[[noreturn]] void fail(LaunchPlan* plan, LaunchStage stage, long err, int index = -1) {
  plan->report.stage = stage;
  plan->report.index = index;
  plan->report.err = static_cast<int>(-err);
  raw::exit_group(127);
}

// mkdir -p without allocation; existing directories are fine. Most parents exist already (a
// root's directories are made top-down): one mkdir, and the walk from the top only when one
// is missing.
long mkdir_p(const char* path, int mode) {
  long first = call(SYS_mkdir, path, mode);
  if (first == 0 || first == -EEXIST) return 0;
  if (first != -ENOENT) return first;
  char buf[4096];
  size_t len = raw::strlen(path);
  if (len >= sizeof buf) return -ENAMETOOLONG;
  for (size_t i = 0; i <= len; ++i) {
    buf[i] = path[i];
    if ((path[i] == '/' && i > 0) || path[i] == '\0') {
      buf[i] = '\0';
      long rc = call(SYS_mkdir, buf, mode);
      if (rc < 0 && rc != -EEXIST) return rc;
      buf[i] = path[i];
    }
  }
  return 0;
}

long parent_dirs(const char* path) {
  char buf[4096];
  size_t len = raw::strlen(path);
  if (len >= sizeof buf) return -ENAMETOOLONG;
  size_t last = 0;
  for (size_t i = 0; i < len; ++i) {
    buf[i] = path[i];
    if (path[i] == '/') last = i;
  }
  if (last == 0) return 0;
  buf[last] = '\0';
  return mkdir_p(buf, 0755);
}

long touch(const char* path) {
  long rc = parent_dirs(path);
  if (rc < 0) return rc;
  // mknod, not open(O_CREAT): a slot's init (slot.h) shares jailpool's fd table, which other
  // children copy at any time; a copy of a file open for writing keeps the mount writable and
  // its read-only remount fails with EBUSY (see kRemount).
  rc = call(SYS_mknodat, AT_FDCWD, path, S_IFREG | 0644, 0);
  return rc == -EEXIST ? 0 : rc;
}

// The fallback of the lock-private kinds: the host's file itself, bound on path (created),
// remounted with `flags`. Returns 1 (fell back) or -errno.
long bind_host_file(const MountOp& op, unsigned long flags) {
  call(SYS_unlinkat, AT_FDCWD, op.path, 0);  // whatever a failed attempt left
  long rc = touch(op.path);
  if (rc == 0) rc = call(SYS_mount, op.src, op.path, nullptr, MS_BIND, nullptr);
  if (rc == 0) {
    rc = call(SYS_mount, nullptr, op.path, nullptr, MS_REMOUNT | MS_BIND | flags, nullptr);
  }
  return rc < 0 ? rc : 1;
}

// Copies a small regular file (sendfile: any file as the target since 2.6.33).
long copy_file(const MountOp& op) {
  long rc = parent_dirs(op.path);
  if (rc < 0) return rc;
  long in = call(SYS_openat, AT_FDCWD, op.src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (in < 0) return in;
  long out = call(SYS_openat, AT_FDCWD, op.path,
                  O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (out < 0) {
    call(SYS_close, in);
    return out;
  }
  do {
    rc = call(SYS_sendfile, out, in, nullptr, 1 << 20);
  } while (rc > 0 || rc == -EINTR);
  if (rc == 0) rc = call(SYS_fchmod, out, op.arg);
  call(SYS_close, in);
  call(SYS_close, out);
  return rc;
}

long run_op(const MountOp& op) {
  long rc = 0;
  switch (op.kind) {
    case MountOp::Kind::kOverlay:
      // Read-only with no upper layer: overlayfs wants two lower layers then (still 6.18).
      rc = call(SYS_mount, "jailpool", op.path, "overlay", op.flags, op.data);
      if (rc == 0) return 0;
      rc = call(SYS_mount, op.src, op.path, nullptr, MS_BIND | MS_REC, nullptr);
      return rc < 0 ? rc : 1;
    case MountOp::Kind::kMknod:
      // A node of the jail's own on its /dev tmpfs (locks are on the node's inode, not the
      // device's); mode 0666 whatever init's umask.
      rc = call(SYS_mknodat, AT_FDCWD, op.path, S_IFCHR | 0666, op.arg);
      if (rc == 0) rc = call(SYS_fchmodat, AT_FDCWD, op.path, 0666);
      if (rc == 0) return 0;
      return bind_host_file(op, MS_NOSUID | MS_NOEXEC);
    case MountOp::Kind::kCopyFile:
      if (copy_file(op) == 0) return 0;
      return bind_host_file(op, MS_RDONLY | MS_NOSUID | MS_NODEV);
    case MountOp::Kind::kMkdir:
      return mkdir_p(op.path, 0755);
    case MountOp::Kind::kTouch:
      return touch(op.path);
    case MountOp::Kind::kBind:
      return call(SYS_mount, op.src, op.path, nullptr, MS_BIND | MS_REC, nullptr);
    case MountOp::Kind::kTmpfs:
      return call(SYS_mount, "tmpfs", op.path, "tmpfs", op.flags, op.data);
    case MountOp::Kind::kProc:
      return call(SYS_mount, "proc", op.path, "proc", op.flags, op.data);
    case MountOp::Kind::kSymlink:
      if ((rc = parent_dirs(op.path)) < 0) return rc;
      return call(SYS_symlinkat, op.src, AT_FDCWD, op.path);
    case MountOp::Kind::kRemount:
      // EBUSY: a file on the mount is open for writing. In a slot's init that is a copy of a
      // file it copied in (kCopyFile), held for a moment by a child that cloned the shared fd
      // table and has not closed it yet: retry for up to ~100 ms.
      for (int attempt = 0;; ++attempt) {
        rc = call(SYS_mount, nullptr, op.path, nullptr, MS_REMOUNT | MS_BIND | op.flags, nullptr);
        if (rc != -EBUSY || attempt == 100) return rc;
        struct timespec ms {
          0, 1000000
        };
        call(SYS_nanosleep, &ms, nullptr);
      }
    case MountOp::Kind::kMaskFile:
      rc = call(SYS_mount, "/dev/null", op.path, nullptr, MS_BIND, nullptr);
      return rc == -ENOENT ? 0 : rc;
    case MountOp::Kind::kMoveMount:
      // A mount that belongs to no namespace yet (fsmount) may be attached in any (5.2).
      return call(SYS_move_mount, op.fd, "", AT_FDCWD, op.path, MOVE_MOUNT_F_EMPTY_PATH);
  }
  return -EINVAL;
}

long loopback_up() {
  long fd = call(SYS_socket, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fd;
  struct ifreq req {};
  req.ifr_name[0] = 'l';
  req.ifr_name[1] = 'o';
  long rc = call(SYS_ioctl, fd, SIOCGIFFLAGS, &req);
  if (rc == 0) {
    req.ifr_flags = static_cast<short>(req.ifr_flags | IFF_UP | IFF_RUNNING);
    rc = call(SYS_ioctl, fd, SIOCSIFFLAGS, &req);
  }
  call(SYS_close, fd);
  return rc;
}

// Closes every fd except plan->keep_fds (sorted ascending).
long close_other_fds(const LaunchPlan* plan) {
  unsigned int next = 0;
  for (int fd : plan->frozen.keep_fds) {
    if (static_cast<unsigned int>(fd) > next) {
      long rc = call(SYS_close_range, next, fd - 1, 0);
      if (rc < 0) return rc;
    }
    next = static_cast<unsigned int>(fd) + 1;
  }
  return call(SYS_close_range, next, ~0U, 0);
}

// The job's first process: joins the cgroups, drops everything, execs.
int job_main(void* arg) {
  auto* plan = static_cast<LaunchPlan*>(arg);
  long rc;
  for (int fd : plan->frozen.attach_fds) {
    if ((rc = call(SYS_write, fd, "0", 1)) < 0) fail(plan, LaunchStage::kCgroupAttach, rc);
  }
  job_enter(plan, fail);

  // Privileges: lock the securebits so that no uid change can regain capabilities, empty the
  // bounding and ambient sets, then become the unprivileged uid/gid with no groups. Changing
  // every uid away from 0 clears the permitted and effective sets; capset clears the rest.
  if ((rc = call(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)) < 0) {
    fail(plan, LaunchStage::kCredentials, rc, 0);
  }
  for (int cap = 0; cap <= 63; ++cap) {
    rc = call(SYS_prctl, PR_CAPBSET_DROP, cap, 0, 0, 0);
    if (rc == -EINVAL) break;  // past the last capability this kernel knows
    if (rc < 0) fail(plan, LaunchStage::kCredentials, rc, 1);
  }
  const long securebits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP_LOCKED |
                          SECBIT_KEEP_CAPS_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE |
                          SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
  if ((rc = call(SYS_prctl, PR_SET_SECUREBITS, securebits, 0, 0, 0)) < 0) {
    fail(plan, LaunchStage::kCredentials, rc, 2);
  }
  job_become_user(plan, fail);
  if ((rc = call(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) < 0) {
    fail(plan, LaunchStage::kNoNewPrivs, rc);
  }
  // Only 0, 1 and 2 cross into the program. Sharing init's table (seccomp_listen), spare
  // init's survivor notice: it is close-on-exec, so the program's copy never has it.
  const int notice = plan->seccomp_listen ? plan->survivor_notice_fd : -1;
  if (notice > 3 && (rc = call(SYS_close_range, 3, notice - 1, 0)) < 0) {
    fail(plan, LaunchStage::kCloseFds, rc);
  }
  if ((rc = call(SYS_close_range, notice >= 3 ? notice + 1 : 3, ~0U, 0)) < 0) {
    fail(plan, LaunchStage::kCloseFds, rc);
  }
  // The lock ban first: once a notifying filter is in place, this seccomp(2) call would wait
  // for init, which waits for this exec.
  if (plan->seccomp_lock_ban != nullptr && (plan->ban_locks || plan->report.locks_shared)) {
    if ((rc = call(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, plan->seccomp_lock_ban)) < 0) {
      fail(plan, LaunchStage::kSeccomp, rc);
    }
  }
  if (plan->seccomp != nullptr) {
    unsigned long flags = plan->seccomp_listen ? SECCOMP_FILTER_FLAG_NEW_LISTENER : 0;
    if ((rc = call(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, plan->seccomp)) < 0) {
      fail(plan, LaunchStage::kSeccomp, rc);
    }
    // The listener (close-on-exec) is in the fd table this process shares with init until the
    // exec, which gives the program a private copy of the table without it (CLONE_FILES).
    if (plan->seccomp_listen) plan->report.seccomp_listener = static_cast<int>(rc);
  }
  fail(plan, LaunchStage::kExec, job_exec(plan));
}

// Serves the job's seccomp listener until the job has ended (or no task uses the filter any
// more), reaping children as they end so that orphans do not count against the pids limit.
void serve_seccomp(LaunchPlan* plan, long job_pid, uint64_t sigchld) {
  const int listener = plan->report.seccomp_listener;
  const long sfd = call(SYS_signalfd4, -1, &sigchld, sizeof sigchld, SFD_NONBLOCK | SFD_CLOEXEC);
  while (!plan->report.job_exited) {
    struct pollfd fds[2] = {{listener, POLLIN, 0}, {static_cast<int>(sfd), POLLIN, 0}};
    // Without a signalfd (no fd left), look for ended children every 10 ms.
    struct timespec every {
      0, 10000000
    };
    long n = call(SYS_ppoll, fds, sfd >= 0 ? 2 : 1, sfd >= 0 ? nullptr : &every, nullptr, 8);
    if (n < 0 && n != -EINTR) break;
    if (fds[0].revents & POLLIN) {
      handle_seccomp_notification(plan, listener);
    } else if (fds[0].revents & (POLLHUP | POLLERR | POLLNVAL)) {
      break;  // no task uses the filter any more
    }
    if (sfd >= 0 && (fds[1].revents & POLLIN)) {
      struct signalfd_siginfo info;
      call(SYS_read, sfd, &info, sizeof info);
    }
    while (reap_one(plan, job_pid, WNOHANG) > 0) {
    }
  }
  if (sfd >= 0) call(SYS_close, sfd);
}

}  // namespace

namespace {

// The template part: a root built from the profile, pivoted into, hostname, loopback.
void build_template(LaunchPlan* plan) {
  long rc;
  if (plan->build_root) {
    if ((rc = call(SYS_mount, nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr)) < 0) {
      fail(plan, LaunchStage::kPrivateRoot, rc);
    }
    // Staging: a tmpfs over /tmp becomes the root, with the host's root under /oldroot, so
    // that bind sources anywhere on the host (even under /tmp) stay reachable.
    if ((rc = call(SYS_mount, "tmpfs", "/tmp", "tmpfs", kStagingFlags, "size=64k,mode=0700")) < 0) {
      fail(plan, LaunchStage::kStaging, rc);
    }
    if ((rc = call(SYS_mkdir, "/tmp/oldroot", 0700)) < 0) fail(plan, LaunchStage::kStaging, rc);
    if ((rc = call(SYS_mkdir, "/tmp/newroot", 0755)) < 0) fail(plan, LaunchStage::kStaging, rc);
    if ((rc = call(SYS_pivot_root, "/tmp", "/tmp/oldroot")) < 0) {
      fail(plan, LaunchStage::kStaging, rc);
    }
    if ((rc = call(SYS_chdir, "/")) < 0) fail(plan, LaunchStage::kStaging, rc);
    for (size_t i = 0; i < plan->frozen.template_ops.size; ++i) {
      if ((rc = run_op(plan->frozen.template_ops.data[i])) < 0) {
        fail(plan, LaunchStage::kTemplateMount, rc, static_cast<int>(i));
      }
      if (rc > 0) plan->report.locks_shared = 1;
    }
    // pivot_root(".", ".") stacks the old root on top of the new one; detaching it drops the
    // staging tmpfs and the whole host tree in one go.
    if ((rc = call(SYS_chdir, "/newroot")) < 0) fail(plan, LaunchStage::kPivot, rc);
    if ((rc = call(SYS_pivot_root, ".", ".")) < 0) fail(plan, LaunchStage::kPivot, rc);
    if ((rc = call(SYS_umount2, ".", MNT_DETACH)) < 0) fail(plan, LaunchStage::kPivot, rc);
    if ((rc = call(SYS_chdir, "/")) < 0) fail(plan, LaunchStage::kPivot, rc);
  }
  if (plan->hostname != nullptr) {
    if ((rc = call(SYS_sethostname, plan->hostname, raw::strlen(plan->hostname))) < 0) {
      fail(plan, LaunchStage::kHostname, rc);
    }
  }
  if (plan->loopback_up && (rc = loopback_up()) < 0) fail(plan, LaunchStage::kLoopback, rc);
}

void start_common(LaunchPlan* plan) {
  long rc;
  // If jailpool dies, this process dies, and with it every process of the jail.
  if ((rc = call(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0)) < 0) {
    fail(plan, LaunchStage::kDeathSignal, rc);
  }
  if ((rc = close_other_fds(plan)) < 0) fail(plan, LaunchStage::kCloseFds, rc);
}

}  // namespace

void build_jail_tree(LaunchPlan* plan) {
  build_template(plan);
  for (size_t i = 0; i < plan->frozen.job_ops.size; ++i) {
    long rc = run_op(plan->frozen.job_ops.data[i]);
    if (rc < 0) fail(plan, LaunchStage::kJobMount, rc, static_cast<int>(i));
  }
}

int template_holder_main(void* arg) {
  auto* plan = static_cast<LaunchPlan*>(arg);
  start_common(plan);
  build_template(plan);
  long rc = call(SYS_write, plan->ready_fd, "1", 1);
  if (rc < 0) fail(plan, LaunchStage::kNone, rc);
  call(SYS_close, plan->ready_fd);
  for (;;) call(SYS_ppoll, nullptr, 0, nullptr, nullptr, 8);
}

int jail_init_main(void* arg) {
  auto* plan = static_cast<LaunchPlan*>(arg);
  long rc;
  start_common(plan);
  // Pooled: join the template (the mount namespace's root becomes ours), then take a private
  // copy of its mount tree and fresh namespaces for what must not be shared between jobs.
  static constexpr int kJoinTypes[3] = {CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWUTS};
  for (int i = 0; i < 3; ++i) {
    if (plan->join_ns_fds[i] < 0) continue;
    if ((rc = call(SYS_setns, plan->join_ns_fds[i], kJoinTypes[i])) < 0) {
      fail(plan, LaunchStage::kJoinTemplate, rc, i);
    }
  }
  if (plan->unshare_flags != 0 && (rc = call(SYS_unshare, plan->unshare_flags)) < 0) {
    fail(plan, LaunchStage::kJoinTemplate, rc, 3);
  }
  build_template(plan);
  for (size_t i = 0; i < plan->frozen.job_ops.size; ++i) {
    if ((rc = run_op(plan->frozen.job_ops.data[i])) < 0) {
      fail(plan, LaunchStage::kJobMount, rc, static_cast<int>(i));
    }
    if (rc > 0) plan->report.locks_shared = 1;
  }

  // The job: vfork-style, on a stack of its own inside this frame (init is suspended until
  // the exec). CLONE_INTO_CGROUP (5.7) places it in the v2 cgroup from birth.
  alignas(64) char job_stack[32 * 1024];
  struct clone_args args {};
  args.flags = CLONE_VM | CLONE_VFORK;
  args.exit_signal = SIGCHLD;
  args.stack = reinterpret_cast<uint64_t>(job_stack);
  args.stack_size = sizeof job_stack;
  if (plan->into_cgroup_fd >= 0) {
    args.flags |= CLONE_INTO_CGROUP;
    args.cgroup = static_cast<uint64_t>(plan->into_cgroup_fd);
  }
  uint64_t sigchld = 1ull << (SIGCHLD - 1);
  if (plan->seccomp_listen) {
    // The job creates the filter's listener in this fd table. SIGCHLD stays pending (blocked)
    // for the signalfd init waits on; the job unblocks it for itself.
    args.flags |= CLONE_FILES;
    call(SYS_rt_sigprocmask, SIG_BLOCK, &sigchld, nullptr, sizeof sigchld);
  }
  long job_pid = jp_clone3_call(&args, sizeof args, job_main, plan);
  if (job_pid < 0) fail(plan, LaunchStage::kCloneJob, job_pid);
  bool exec_failed = plan->report.stage != LaunchStage::kNone;
  if (!exec_failed) plan->report.exec_ns = monotonic_ns();

  if (plan->seccomp_listen && plan->report.seccomp_listener >= 0) {
    // The job's stdio was dup'ed into this shared table. stdout and stderr stay open until
    // the end (below), like init's own copies without a listener.
    call(SYS_close, 0);
    serve_seccomp(plan, job_pid, sigchld);
  }
  // Reap everything; when the job itself ends, kill what it left behind (daemons, setsid'd
  // children: all are in this pid namespace), and give up on what outlives that (survivors).
  const uint32_t survivors = reap_jail(plan, job_pid, -1);
  plan->report.survivors = survivors;
  // The jail is empty (or holds survivors). Say so, then close every fd with a syscall of its
  // own: the files are released on its return (task work), so jailpool sees EOF on the job's
  // pipes now. At exit_group they would be released only after the namespaces' teardown
  // (exit_task_work runs after exit_task_namespaces), which is ~0.3 ms here (mount tree, ipc,
  // pid namespace).
  __atomic_store_n(&plan->report.init_done, 1u, __ATOMIC_RELEASE);
  if (survivors > 0 && plan->survivor_notice_fd >= 0) {
    // Survivors hold the job's pipes open (no EOF) and this exit waits for them in the kernel
    // (the pid namespace's teardown): tell jailpool the report is final.
    uint64_t one = 1;
    call(SYS_write, plan->survivor_notice_fd, &one, sizeof one);
  }
  call(SYS_close_range, 0, ~0U, 0);
  raw::exit_group(exec_failed ? 127 : 0);
}

}  // namespace jailpool::isolate
