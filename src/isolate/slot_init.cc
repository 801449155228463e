// The code that runs inside a slot (see slot.h): its init S and each job's first process J.
// Both share jailpool's memory (CLONE_VM) and S shares its fd table (CLONE_FILES): raw system
// calls only, no allocation, failures reported in shared memory. After S's filter is attached
// every call S makes is one the filter allows (a denied one would kill S, or block it on its
// own listener).
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/mount.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <linux/securebits.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>

#include <cerrno>

#include "isolate/job_steps.h"
#include "isolate/launch.h"
#include "isolate/raw_syscall.h"
#include "isolate/slot.h"

// clone(2) with CLONE_VM on a stack of its own: jp_clone_call(flags, stack_top, fn, arg)
// returns the pid in the parent; the child calls fn(arg) and exits with its result. (clone3,
// which jp_clone3_call uses, is ENOSYS under the filter S carries.)
extern "C" long jp_clone_call(unsigned long flags, void* stack_top, int (*fn)(void*), void* arg);

#if defined(__x86_64__)
__asm__(
    ".text\n"
    ".globl jp_clone_call\n"
    ".type jp_clone_call,@function\n"
    "jp_clone_call:\n"
    "  mov %rdx, %r8\n"  // fn (r8: clone's tls, unused without CLONE_SETTLS)
    "  mov %rcx, %r9\n"  // arg
    "  xor %edx, %edx\n"
    "  xor %r10d, %r10d\n"
    "  mov $56, %eax\n"  // __NR_clone
    "  syscall\n"
    "  test %rax, %rax\n"
    "  jnz 1f\n"
    "  xor %ebp, %ebp\n"
    "  mov %r9, %rdi\n"
    "  call *%r8\n"
    "  mov %eax, %edi\n"
    "  mov $231, %eax\n"  // exit_group
    "  syscall\n"
    "  hlt\n"
    "1:\n"
    "  ret\n"
    ".size jp_clone_call, .-jp_clone_call\n");
#elif defined(__aarch64__)
__asm__(
    ".text\n"
    ".globl jp_clone_call\n"
    ".type jp_clone_call,%function\n"
    "jp_clone_call:\n"
    "  mov x9, x2\n"
    "  mov x10, x3\n"
    "  mov x2, xzr\n"
    "  mov x3, xzr\n"
    "  mov x4, xzr\n"
    "  mov x8, #220\n"  // __NR_clone
    "  svc 0\n"
    "  cbnz x0, 1f\n"
    "  mov x29, xzr\n"
    "  mov x0, x10\n"
    "  blr x9\n"
    "  mov x8, #94\n"  // exit_group
    "  svc 0\n"
    "  brk #0\n"
    "1:\n"
    "  ret\n"
    ".size jp_clone_call, .-jp_clone_call\n");
#endif

namespace jailpool::isolate {

// MNT_DETACH: <sys/mount.h>, which clashes with <linux/mount.h> under glibc 2.36.
constexpr int kMntDetach = 2;

const char* describe_slot_reset(SlotReset what) {
  switch (what) {
    case SlotReset::kNone:
      return "none";
    case SlotReset::kProcesses:
      return "a process of the job survived";
    case SlotReset::kRenew:
      return "a writable filesystem the job touched could not be replaced";
    case SlotReset::kIpcNamespace:
      return "the ipc namespace could not be replaced";
    case SlotReset::kPidCounter:
      return "the pid namespace's last pid could not be reset";
    case SlotReset::kHostname:
      return "the hostname changed";
    case SlotReset::kSockets:
      return "an inet socket outlived the job";
    case SlotReset::kNetCounters:
      return "the net namespace's counters moved";
    case SlotReset::kWorkdir:
      return "the job's working directory could not be detached";
  }
  return "?";
}

namespace {

using raw::call;

void set_state(SlotControl* c, uint32_t state) {
  __atomic_store_n(&c->state, state, __ATOMIC_SEQ_CST);
  if (state == SlotControl::kReady && !__atomic_load_n(&c->ready_waiter, __ATOMIC_SEQ_CST)) return;
  uint64_t one = 1;
  call(SYS_write, c->done_fd, &one, sizeof one);
}

[[noreturn]] void job_fail(LaunchPlan* plan, LaunchStage stage, long err, int index = -1) {
  plan->report.stage = stage;
  plan->report.index = index;
  plan->report.err = static_cast<int>(-err);
  raw::exit_group(127);
}

// J: the job's first process, sharing S's memory until its exec, with a copy of the shared fd
// table. Privileges beyond the uid change were dropped once by S (bounding set, securebits,
// no_new_privs, the filter), and are inherited.
int slot_job_main(void* arg) {
  auto* plan = static_cast<LaunchPlan*>(arg);
  long rc;
  for (int fd : plan->frozen.attach_fds) {
    if ((rc = call(SYS_write, fd, "0", 1)) < 0) job_fail(plan, LaunchStage::kCgroupAttach, rc);
  }
  // (The slot's filter lets exactly unshare(CLONE_NEWCGROUP) through.)
  job_enter(plan, job_fail);
  // S locked the securebits and emptied the bounding and ambient sets once for all its jobs.
  job_become_user(plan, job_fail);
  if ((rc = call(SYS_close_range, 3, ~0U, 0)) < 0) job_fail(plan, LaunchStage::kCloseFds, rc);
  job_fail(plan, LaunchStage::kExec, job_exec(plan));
}

[[noreturn]] void setup_fail(SlotControl* c, LaunchStage stage, long err, int index = -1) {
  c->setup->report.stage = stage;
  c->setup->report.index = index;
  c->setup->report.err = static_cast<int>(-err);
  raw::exit_group(127);
}

void own_fd(SlotControl* c, long fd) {
  for (int& slot : c->owned_fds) {
    if (slot < 0) {
      slot = static_cast<int>(fd);
      return;
    }
  }
}

// What S recorded of a writable filesystem: its usage and its root's owner, mode and times.
// The ctime cannot be set back: any entry made or removed in the root, and any change to the
// root itself, moves it.
struct FsRecord {
  uint64_t bfree = 0, ffree = 0;
  uint32_t uid = 0, gid = 0, mode = 0;
  struct timespec atime {
  }, mtime{}, ctime{};
};

bool same_time(const struct timespec& a, const struct timespec& b) {
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

// Reads the record of the filesystem whose root `fd` is; false when it cannot be read.
bool read_record(int fd, FsRecord* out) {
  struct statfs sf;
  struct stat st;
  if (call(SYS_fstatfs, fd, &sf) < 0 || call(SYS_fstat, fd, &st) < 0) return false;
  *out = {sf.f_bfree, sf.f_ffree, st.st_uid,  st.st_gid,
          st.st_mode, st.st_atim, st.st_mtim, st.st_ctim};
  return true;
}

bool untouched(int fd, const FsRecord& was) {
  FsRecord now;
  return read_record(fd, &now) && now.bfree == was.bfree && now.ffree == was.ffree &&
         now.uid == was.uid && now.gid == was.gid && now.mode == was.mode &&
         same_time(now.atime, was.atime) && same_time(now.mtime, was.mtime) &&
         same_time(now.ctime, was.ctime);
}

void disown_fd(SlotControl* c, int fd) {
  for (int& slot : c->owned_fds) {
    if (slot == fd) slot = -1;
  }
}

// Replaces every writable filesystem the job touched with the fresh tmpfs jailpool made for it
// (SlotControl::spare_fds): the old one is detached (it goes with the last fd on it) and the
// spare moved onto the mount point. A wipe would empty it, but leave its inode counter (the
// next job's first file would be numbered after the last one's) and its root's times (when the
// job last wrote there) for the next job to read. fds[i]: the root S reads the record through.
bool renew_filesystems(SlotControl* c, int* fds, FsRecord* records) {
  for (int i = 0; i < c->fs_count; ++i) {
    if (untouched(fds[i], records[i])) continue;
    auto fail = [&](long rc) {
      c->reset_failure = SlotReset::kRenew;
      c->reset_index = i;
      c->reset_err = static_cast<int>(-rc);
      return false;
    };
    const int spare = __atomic_load_n(&c->spare_fds[i], __ATOMIC_ACQUIRE);
    if (spare < 0) return fail(-EBADF);
    long rc = call(SYS_umount2, c->fs_paths[i], kMntDetach);
    if (rc < 0) return fail(rc);
    rc = call(SYS_move_mount, spare, "", AT_FDCWD, c->fs_paths[i], MOVE_MOUNT_F_EMPTY_PATH);
    if (rc < 0) return fail(rc);
    __atomic_store_n(&c->spare_fds[i], -1, __ATOMIC_RELEASE);
    rc =
        call(SYS_openat, AT_FDCWD, c->fs_paths[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (rc < 0) return fail(rc);
    disown_fd(c, fds[i]);
    call(SYS_close, fds[i]);
    fds[i] = static_cast<int>(rc);
    own_fd(c, rc);
    if (!read_record(fds[i], &records[i])) return fail(-EIO);
  }
  return true;
}

bool same(const char* a, const char* b) {
  while (*a && *a == *b) ++a, ++b;
  return *a == *b;
}

// The sockets of S's net namespace, from /proc/net/sockstat or sockstat6 (fds S opened at its
// start; one pread at offset 0 regenerates a seq_file). inet: the sum of every "inuse" (TCP,
// UDP, UDPLITE, RAW, FRAG; TCP6, ... in sockstat6) and "tw" (TIME_WAIT, v4 and v6: one death
// row per namespace) count; used: "sockets: used", every socket of the namespace of any family
// (sockstat only). All of them are per namespace, unlike "orphan", "alloc" and "mem". Returns
// false if unreadable.
struct SocketCounts {
  long inet = 0, used = 0;
};
bool count_sockets(int fd, SocketCounts* out) {
  char buf[1024];
  long len = call(SYS_pread64, fd, buf, sizeof buf - 1, 0);
  if (len <= 0) return false;
  buf[len] = 0;
  *out = {};
  // Words separated by spaces and newlines; the number after "inuse", "tw" or "used" counts.
  long* counter = nullptr;
  for (const char* p = buf; *p;) {
    while (*p == ' ' || *p == '\n') ++p;
    const char* word = p;
    while (*p && *p != ' ' && *p != '\n') ++p;
    const long size = p - word;
    if (counter != nullptr) {
      long v = 0;
      for (const char* d = word; d < p && *d >= '0' && *d <= '9'; ++d) v = v * 10 + (*d - '0');
      *counter += v;
    }
    counter = nullptr;
    if (size == 2 && word[0] == 't' && word[1] == 'w') counter = &out->inet;
    if (size == 5 && word[0] == 'i' && word[1] == 'n' && word[2] == 'u' && word[3] == 's' &&
        word[4] == 'e') {
      counter = &out->inet;
    }
    if (size == 4 && word[0] == 'u' && word[1] == 's' && word[2] == 'e' && word[3] == 'd') {
      counter = &out->used;
    }
  }
  return true;
}

// Whether the namespace holds the inet sockets it held at S's start (none), and no other: a
// socket stays counted until it is unhashed, which its last close does; an orphaned TCP socket
// (FIN_WAIT, LAST_ACK, ...), a TIME_WAIT one (60 s) and one only an unreachable SCM_RIGHTS
// message holds outlive their processes. sockstat6 is read only when some socket of any family
// is left (a netlink one is freed after an RCU grace period): one pread for a job that left
// none.
bool same_sockets(const int* fds, const SocketCounts* base) {
  SocketCounts now[2];
  if (!count_sockets(fds[0], &now[0]) || now[0].inet != base[0].inet) return false;
  if (fds[1] < 0 || now[0].used == base[0].used) return true;
  return count_sockets(fds[1], &now[1]) && now[1].inet == base[1].inet;
}

// Whether the net namespace's counters files read as they did at S's start (`base`, or, when
// base is null, reads them into c->net_counters). Nothing resets them: lo's packet and byte
// counts (/proc/net/dev) and the IP, ICMP, UDP and TCP MIBs (snmp, snmp6: Ip OutNoRoutes moves
// on a failed send with no packet at all) are per namespace and cumulative, so a job that
// moved one left a number the next job of the slot could read. A job that used no network
// moves none (checked by the slot tests: the slot is kept).
bool same_net_counters(SlotControl* c, const int* fds, bool baseline) {
  char buf[SlotControl::kNetCounterBytes];
  for (int i = 0; i < SlotControl::kNetCounterFiles; ++i) {
    if (fds[i] < 0) continue;
    char* into = baseline ? c->net_counters[i] : buf;
    long len = call(SYS_pread64, fds[i], into, SlotControl::kNetCounterBytes, 0);
    if (len < 0) return false;
    if (baseline) {
      c->net_counters_len[i] = len;
      continue;
    }
    if (len != c->net_counters_len[i]) return false;
    for (long k = 0; k < len; ++k) {
      if (buf[k] != c->net_counters[i][k]) return false;
    }
  }
  return true;
}

// Runs one job: clone, wait (serving the listener), kill the rest, reap everything.
void run_job(SlotControl* c, int sfd) {
  LaunchPlan* plan = c->job;
  alignas(64) char job_stack[32 * 1024];
  long job_pid = jp_clone_call(CLONE_VM | CLONE_VFORK | SIGCHLD, job_stack + sizeof job_stack,
                               slot_job_main, plan);
  if (job_pid < 0) {
    plan->report.stage = LaunchStage::kCloneJob;
    plan->report.err = static_cast<int>(-job_pid);
    return;
  }
  if (plan->report.stage == LaunchStage::kNone) plan->report.exec_ns = monotonic_ns();
  if (__atomic_load_n(&c->kill_requested, __ATOMIC_ACQUIRE)) call(SYS_kill, -1, SIGKILL);
  if (c->seccomp_listener >= 0) {
    while (!plan->report.job_exited) {
      struct pollfd fds[2] = {{c->seccomp_listener, POLLIN, 0}, {sfd, POLLIN, 0}};
      long n = call(SYS_ppoll, fds, 2, nullptr, nullptr, 8);
      if (n < 0 && n != -EINTR) break;
      if (fds[0].revents & POLLIN) handle_seccomp_notification(plan, c->seccomp_listener);
      if (fds[1].revents & POLLIN) {
        struct signalfd_siginfo info;
        call(SYS_read, sfd, &info, sizeof info);
      }
      while (reap_one(plan, job_pid, WNOHANG) > 0) {
      }
    }
  }
  plan->report.survivors = reap_jail(plan, job_pid, sfd);
}

}  // namespace

int slot_main(void* arg) {
  auto* c = static_cast<SlotControl*>(arg);
  LaunchPlan* setup = c->setup;
  long rc;
  // If jailpool (the thread that made S) dies, S dies, and with it the pid namespace.
  if ((rc = call(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0)) < 0) {
    setup_fail(c, LaunchStage::kDeathSignal, rc);
  }
  // The socket counts of S's net namespace, opened through jailpool's /proc before the pivot
  // (a profile may mount none); /proc/self/net is the net namespace of the task that opens it.
  // sockstat6 exists only with IPv6.
  int sockstat_fds[2] = {-1, -1};
  int counter_fds[SlotControl::kNetCounterFiles] = {-1, -1, -1};
  const char* net_paths[2 + SlotControl::kNetCounterFiles] = {
      "/proc/self/net/sockstat", "/proc/self/net/sockstat6", "/proc/self/net/dev",
      "/proc/self/net/snmp", "/proc/self/net/snmp6"};
  for (int i = 0; i < 2 + SlotControl::kNetCounterFiles; ++i) {
    rc = call(SYS_openat, AT_FDCWD, net_paths[i], O_RDONLY | O_CLOEXEC);
    if (rc == -ENOENT && (i == 1 || i == 4)) continue;  // no IPv6
    if (rc < 0) setup_fail(c, LaunchStage::kJobMount, rc, 101 + i);
    own_fd(c, rc);
    (i < 2 ? sockstat_fds[i] : counter_fds[i - 2]) = static_cast<int>(rc);
  }
  // The pid namespace's last pid (3.3, CONFIG_CHECKPOINT_RESTORE; slot_capable checks it
  // exists): pids are handed out in a cycle, so each job would otherwise start at the pid after
  // the last one the jobs before it used, and read how many processes they made. Set to 1
  // before each job (S is 1), every job's first process is pid 2, as in a fresh jail. The
  // write acts on the writer's pid namespace, whichever /proc the file was opened through.
  rc = call(SYS_openat, AT_FDCWD, "/proc/sys/kernel/ns_last_pid", O_WRONLY | O_CLOEXEC);
  if (rc < 0) setup_fail(c, LaunchStage::kJobMount, rc, 106);
  own_fd(c, rc);
  const int last_pid_fd = static_cast<int>(rc);
  if ((rc = call(SYS_pwrite64, last_pid_fd, "1", 1, 0)) < 0) {
    setup_fail(c, LaunchStage::kJobMount, rc, 106);
  }
  build_jail_tree(setup);
  // After the tree (its lo was brought up through a socket, closed since).
  SocketCounts sockets_at_start[2];
  for (int i = 0; i < 2; ++i) {
    if (sockstat_fds[i] >= 0 && !count_sockets(sockstat_fds[i], &sockets_at_start[i])) {
      setup_fail(c, LaunchStage::kJobMount, -EIO, 101 + i);
    }
  }
  if (!same_net_counters(c, counter_fds, true)) setup_fail(c, LaunchStage::kJobMount, -EIO, 103);

  // What the reset needs, opened now, before any job ran: the writable filesystems' roots and
  // their empty usage.
  int fs_fds[8] = {-1, -1, -1, -1, -1, -1, -1, -1};
  FsRecord records[8];
  for (int i = 0; i < c->fs_count; ++i) {
    rc =
        call(SYS_openat, AT_FDCWD, c->fs_paths[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (rc < 0) setup_fail(c, LaunchStage::kJobMount, rc, i);
    own_fd(c, rc);
    fs_fds[i] = static_cast<int>(rc);
    if (!read_record(fs_fds[i], &records[i])) setup_fail(c, LaunchStage::kJobMount, -EIO, i);
  }

  // SIGCHLD through a signalfd (for the listener's loop); blocked, so it stays pending.
  uint64_t sigchld = 1ull << (SIGCHLD - 1);
  call(SYS_rt_sigprocmask, SIG_BLOCK, &sigchld, nullptr, sizeof sigchld);
  long sfd = call(SYS_signalfd4, -1, &sigchld, sizeof sigchld, SFD_NONBLOCK | SFD_CLOEXEC);
  if (sfd < 0) setup_fail(c, LaunchStage::kNone, sfd);
  own_fd(c, sfd);

  // What each job's first process would otherwise do, once: default actions for the signals
  // S inherited as ignored (its clone kept SIG_IGN; S writes no pipe; read here, not from
  // jailpool's mask read once at its start), a session of its own (the job
  // takes a process group in it: setsid's autogroup per job is dear), no supplementary groups
  // and an empty inheritable set (S keeps its permitted and effective sets).
  struct {
    void* handler;
    unsigned long flags;
    void* restorer;
    uint64_t mask;
  } dfl{}, now{};
  for (int sig = 1; sig <= 64; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    if (call(SYS_rt_sigaction, sig, nullptr, &now, 8) == 0 &&
        now.handler == reinterpret_cast<void*>(SIG_IGN)) {
      call(SYS_rt_sigaction, sig, &dfl, nullptr, 8);
    }
  }
  if ((rc = call(SYS_setsid)) < 0) setup_fail(c, LaunchStage::kSession, rc);
  if ((rc = call(SYS_setgroups, 0, nullptr)) < 0) setup_fail(c, LaunchStage::kCredentials, rc, 3);
  struct __user_cap_header_struct cap_header {
    _LINUX_CAPABILITY_VERSION_3, 0
  };
  struct __user_cap_data_struct caps[2] = {};
  if ((rc = call(SYS_capget, &cap_header, caps)) < 0) {
    setup_fail(c, LaunchStage::kCredentials, rc, 6);
  }
  caps[0].inheritable = caps[1].inheritable = 0;
  if ((rc = call(SYS_capset, &cap_header, caps)) < 0) {
    setup_fail(c, LaunchStage::kCredentials, rc, 6);
  }

  // Privileges, once for every job: no ambient set, an empty bounding set, securebits that make
  // any change away from uid 0 drop every capability for good, no_new_privs, the filter.
  if ((rc = call(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)) < 0) {
    setup_fail(c, LaunchStage::kCredentials, rc, 0);
  }
  for (int cap = 0; cap <= 63; ++cap) {
    rc = call(SYS_prctl, PR_CAPBSET_DROP, cap, 0, 0, 0);
    if (rc == -EINVAL) break;
    if (rc < 0) setup_fail(c, LaunchStage::kCredentials, rc, 1);
  }
  const long securebits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP_LOCKED |
                          SECBIT_KEEP_CAPS_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE |
                          SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
  if ((rc = call(SYS_prctl, PR_SET_SECUREBITS, securebits, 0, 0, 0)) < 0) {
    setup_fail(c, LaunchStage::kCredentials, rc, 2);
  }
  if ((rc = call(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) < 0) {
    setup_fail(c, LaunchStage::kNoNewPrivs, rc);
  }
  if (setup->seccomp != nullptr) {
    unsigned long flags = setup->seccomp_listen ? SECCOMP_FILTER_FLAG_NEW_LISTENER : 0;
    if ((rc = call(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, setup->seccomp)) < 0) {
      setup_fail(c, LaunchStage::kSeccomp, rc);
    }
    if (setup->seccomp_listen) {
      own_fd(c, rc);
      c->seccomp_listener = static_cast<int>(rc);
    }
  }
  struct utsname expected;
  call(SYS_uname, &expected);

  set_state(c, SlotControl::kReady);
  for (;;) {
    struct pollfd go {
      c->go_fd, POLLIN, 0
    };
    rc = call(SYS_ppoll, &go, 1, nullptr, nullptr, 8);
    if (rc < 0 && rc != -EINTR) raw::exit_group(3);
    uint64_t count;
    if (call(SYS_read, c->go_fd, &count, sizeof count) != sizeof count) continue;
    if (__atomic_load_n(&c->state, __ATOMIC_ACQUIRE) != SlotControl::kRunning) continue;
    // A job with files: their tmpfs (detached, made and filled by jailpool) goes over the
    // slot's own working directory, which stays empty beneath it; detached again below.
    LaunchPlan* job = c->job;
    bool workdir_mounted = false;
    if (job->workdir_mount_fd >= 0) {
      rc = call(SYS_move_mount, job->workdir_mount_fd, "", AT_FDCWD, c->workdir,
                MOVE_MOUNT_F_EMPTY_PATH);
      if (rc < 0) {
        job->report.stage = LaunchStage::kJobMount;
        job->report.err = static_cast<int>(-rc);
      } else {
        workdir_mounted = true;
      }
    }
    if (job->report.stage == LaunchStage::kNone) run_job(c, static_cast<int>(sfd));
    // Drain the SIGCHLDs of this job.
    struct signalfd_siginfo info;
    while (call(SYS_read, sfd, &info, sizeof info) > 0) {
    }
    ++c->jobs;
    const bool survivors = c->job->report.survivors > 0;
    set_state(c, SlotControl::kResult);  // the plan is jailpool's again

    // Processes that outlived SIGKILL (reap_jail): this pid namespace can never be emptied,
    // the slot is destroyed (S's own exit then waits for them in the kernel).
    if (survivors) c->reset_failure = SlotReset::kProcesses;
    bool ok = !survivors;
    // Every process of the job is gone: nothing holds the job's working directory. The umount
    // waits for an RCU grace period, so it comes after the result. jailpool keeps its fd for the
    // copy-out.
    if (ok && workdir_mounted && call(SYS_umount2, c->workdir, kMntDetach) < 0) {
      c->reset_failure = SlotReset::kWorkdir;
      ok = false;
    }
    ok = ok && renew_filesystems(c, fs_fds, records);
    // SysV IPC and POSIX message queues: a new ipc namespace for the next job. Removing the
    // objects would leave the namespace's id counters where the job left them (the next ids
    // tell how many objects it made); the old namespace goes with the last process in it.
    if (ok && (rc = call(SYS_unshare, CLONE_NEWIPC)) < 0) {
      c->reset_failure = SlotReset::kIpcNamespace;
      c->reset_err = static_cast<int>(-rc);
      ok = false;
    }
    if (ok) {
      struct utsname now;
      if (call(SYS_uname, &now) < 0 || !same(now.nodename, expected.nodename) ||
          !same(now.domainname, expected.domainname)) {
        c->reset_failure = SlotReset::kHostname;
        ok = false;
      }
    }
    // A TIME_WAIT socket would hold its port against the next job for 60 s (EADDRINUSE, a
    // channel between jobs); it cannot be removed, so the slot is replaced.
    if (ok && !same_sockets(sockstat_fds, sockets_at_start)) {
      c->reset_failure = SlotReset::kSockets;
      ok = false;
    }
    if (ok && !same_net_counters(c, counter_fds, false)) {
      c->reset_failure = SlotReset::kNetCounters;
      ok = false;
    }
    if (ok && call(SYS_wait4, -1, nullptr, __WALL | WNOHANG, nullptr) != -ECHILD) {
      c->reset_failure = SlotReset::kProcesses;
      ok = false;
    }
    if (ok && (rc = call(SYS_pwrite64, last_pid_fd, "1", 1, 0)) < 0) {
      c->reset_failure = SlotReset::kPidCounter;
      c->reset_err = static_cast<int>(-rc);
      ok = false;
    }
    if (!ok) {
      set_state(c, SlotControl::kBroken);
      for (;;) call(SYS_ppoll, nullptr, 0, nullptr, nullptr, 8);
    }
    set_state(c, SlotControl::kReady);
  }
}

}  // namespace jailpool::isolate
