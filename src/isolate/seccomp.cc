// seccomp: the default deny-list, the allow-list mode and the export of libseccomp's BPF.
//
// Actions. A denied call kills the whole process (SCMP_ACT_KILL_PROCESS: the job ends with SIGSYS
// and the verdict is SECCOMP_VIOLATION) rather than failing with an errno: a denied call is either
// an attack or a program the profile does not fit, and a kill is unambiguous to report, whereas an
// errno would let a probing job carry on and hide the attempt. The exceptions are calls that
// ordinary programs make and cope with failing, where a kill would break them for nothing: clone3
// (ENOSYS), leases and dnotify (EPERM), file locks where a jail must refuse them (ENOLCK, a
// second filter: compile_lock_ban) and personality changes (EPERM); see below.
//
// Naming the call. A kill with SIGSYS does not tell the supervisor which call it was. Where the
// kernel has seccomp user notification (5.0), denied calls return SECCOMP_RET_USER_NOTIF instead:
// the jail's init holds the filter's listener (the job installs the filter sharing init's fd
// table), reads the notification (syscall number and arch), kills the whole job and reports
// the call, which jailpool names in the result. The call
// never runs: the task waits in it until it dies, and were the listener gone, the call would fail
// with ENOSYS. A job cannot take the notifications over: a second listener in its filter chain
// is refused (EBUSY), and a filter of its own can only make the call fail sooner.
//
// Arguments. The kernel declares the arguments we test (ioctl's and fcntl's cmd, socket's family,
// personality's persona) as 32-bit, and ignores the upper half of the register. libseccomp
// compares all 64 bits, so every equality test masks with 0xffffffff: otherwise cmd = TIOCSTI |
// 1 << 32 would pass the filter and still be TIOCSTI to the kernel (CVE-2019-10063 in flatpak).
// personality's "not equal" test cannot be masked and denies any upper half instead (see there).
//
// Foreign ABIs. The filter holds the native architecture only, so an i386 call (int 0x80) gets the
// bad-arch action, which we set to KILL_PROCESS. For x86_64, libseccomp also sends any number with
// __X32_SYSCALL_BIT set to the bad-arch action when x32 is not in the filter (tested).
#include "isolate/seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <fmt/core.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <set>

#include "common/error.h"
#include "common/unique_fd.h"

namespace jailpool::isolate {
namespace {

// Denied whatever the arguments, killing the process. Names the running libseccomp does not know,
// or that do not exist on this architecture, are skipped.
constexpr const char* kKilledSyscalls[] = {
    // io_uring: a large, much-exploited attack surface, and its ops bypass this filter (a ring
    // can open sockets of any family, isolate's reason).
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    // Kernel attack surface and cross-job side channels: eBPF, perf counters, userfaultfd (used
    // to win kernel races), keyrings (persistent per-user memory shared between jobs).
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "keyctl",
    "add_key",
    "request_key",
    // Reading or writing another process.
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    // Mounts, old and new API, and changing the root: the job's mount tree is ours.
    "mount",
    "umount",
    "umount2",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "open_tree",
    "open_tree_attr",
    "move_mount",
    "mount_setattr",
    "pivot_root",
    "chroot",
    // New namespaces give CAP_SYS_ADMIN in a user namespace, the entry to many kernel CVEs
    // (clone with CLONE_NEW* flags is handled below; clone3 below).
    "unshare",
    "setns",
    // Kernels and modules.
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "create_module",
    "get_kernel_syms",
    "query_module",
    // File handles bypass path lookup, and so the mount namespace (the "shocker" escape).
    "open_by_handle_at",
    "name_to_handle_at",
    // Host administration: accounting, swap, reboot, clocks, the kernel log, quotas, ttys, I/O
    // ports, and obsolete calls. Most need capabilities the job lacks; they have no business in a
    // job either way. adjtimex and clock_adjtime are denied even for a read (modes == 0): nothing
    // a job runs needs them.
    "acct",
    "swapon",
    "swapoff",
    "reboot",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "syslog",
    "quotactl",
    "lookup_dcookie",
    "vhangup",
    "iopl",
    "ioperm",
    "nfsservctl",
    "uselib",
    "_sysctl",
};

// Denied whatever the arguments, failing with an errno instead of a kill.
struct ErrnoSyscall {
  const char* name;
  int err;
  bool deny_kills;  // a profile's seccomp_deny naming it turns the errno into a kill
};
constexpr ErrnoSyscall kErrnoSyscalls[] = {
    // clone3 cannot be filtered on its flags (they are in memory, out of seccomp's reach), so it
    // is denied entirely. With ENOSYS and not a kill: glibc (2.34+) tries clone3 first for
    // pthread_create, fork-like spawns and posix_spawn, and falls back to clone on ENOSYS, whose
    // flags we can check. It stays ENOSYS even when a profile's seccomp_deny names it.
    {"clone3", ENOSYS, false},
    // inotify and fanotify watches on the shared read-only binds (/usr, the profile's binds)
    // see every open and read of those inodes by any other job (and the host): a channel the
    // adversarial suite found (AdversarialBatchTest.InotifyOnSharedPathsSeesNoOtherJob).
    // ENOSYS and not a kill: tail -f, make-like tools and file watchers fall back to polling.
    {"inotify_init", ENOSYS, true},
    {"inotify_init1", ENOSYS, true},
    {"fanotify_init", ENOSYS, true},
};

// Every call the default policy denies whatever its arguments.
template <typename F>
void for_each_unconditional(F&& f) {
  for (const char* name : kKilledSyscalls) f(name);
  for (const auto& call : kErrnoSyscalls) f(call.name);
}

// Numbers of calls newer than libseccomp 2.5.4 on x86_64, used when libseccomp does not know the
// name (the numbers are in asm-generic and x86_64's syscall table and never change).
struct KnownNumber {
  const char* name;
  int nr;
};
#if defined(__x86_64__)
constexpr std::array<KnownNumber, 1> kNewSyscalls = {{{"open_tree_attr", 467}}};
#else
constexpr std::array<KnownNumber, 0> kNewSyscalls = {};
#endif

// Profile.socket_families names.
struct SocketFamily {
  const char* name;
  int family;
};
constexpr SocketFamily kSocketFamilies[] = {
    {"unix", AF_UNIX},     {"inet", AF_INET},   {"inet6", AF_INET6}, {"netlink", AF_NETLINK},
    {"packet", AF_PACKET}, {"vsock", AF_VSOCK}, {"alg", AF_ALG},     {"bluetooth", AF_BLUETOOTH},
    {"can", AF_CAN},       {"tipc", AF_TIPC},   {"rds", AF_RDS},     {"xdp", AF_XDP},
    {"key", AF_KEY},       {"x25", AF_X25},     {"ax25", AF_AX25},   {"appletalk", AF_APPLETALK},
    {"llc", AF_LLC},       {"ib", AF_IB},       {"mpls", AF_MPLS},   {"qipcrtr", AF_QIPCRTR},
    {"smc", AF_SMC},       {"kcm", AF_KCM},     {"nfc", AF_NFC},     {"isdn", AF_ISDN},
};

struct CtxDeleter {
  void operator()(void* ctx) const { seccomp_release(static_cast<scmp_filter_ctx>(ctx)); }
};
using Ctx = std::unique_ptr<void, CtxDeleter>;

// libseccomp returns -errno.
void check_rc(int rc, std::string_view what) {
  if (rc < 0) throw_errno(-rc, fmt::format("libseccomp: {}", what));
}

// The syscall number of `name` on the native architecture: >= 0; kNotHere when libseccomp knows
// the name but the architecture has no such call (e.g. socketcall on x86_64; libseccomp returns a
// negative pseudo-number); kUnknown when libseccomp does not know the name.
constexpr int kNotHere = -1;
constexpr int kUnknown = -2;
int resolve(const std::string& name) {
  int nr = seccomp_syscall_resolve_name(name.c_str());
  if (nr >= 0) return nr;
  if (nr != __NR_SCMP_ERROR) return kNotHere;
  for (const auto& known : kNewSyscalls) {
    if (name == known.name) return known.nr;
  }
  return kUnknown;
}

// Resolves a name from the profile; unknown names are the profile's error.
int resolve_field(const std::string& name, std::string_view field) {
  int nr = resolve(name);
  if (nr == kUnknown) throw ConfigError(field, fmt::format("unknown syscall {}", name));
  return nr;
}

void add_rule(scmp_filter_ctx ctx, uint32_t action, int nr, std::string_view name,
              std::initializer_list<scmp_arg_cmp> args = {}) {
  int rc = seccomp_rule_add_array(ctx, action, nr, static_cast<unsigned>(args.size()),
                                  args.size() ? args.begin() : nullptr);
  check_rc(rc, fmt::format("add rule for {}", name));
}

// A rule on a call every architecture we build for has; skipped where it does not exist.
void add_rule(scmp_filter_ctx ctx, uint32_t action, const char* name,
              std::initializer_list<scmp_arg_cmp> args = {}) {
  int nr = resolve(name);
  if (nr >= 0) add_rule(ctx, action, nr, name, args);
}

// The 32-bit value of argument `arg` equals `value` (the upper half is ignored, as the kernel
// does).
scmp_arg_cmp arg32_eq(unsigned arg, uint32_t value) {
  return scmp_arg_cmp{arg, SCMP_CMP_MASKED_EQ, 0xffffffffu, value};
}
// Every bit of `bits` is set in argument `arg`.
scmp_arg_cmp arg_bits_set(unsigned arg, uint64_t bits) {
  return scmp_arg_cmp{arg, SCMP_CMP_MASKED_EQ, bits, bits};
}

// The default rules. A deny_kills call of kErrnoSyscalls that is in `deny` (the profile's
// seccomp_deny) gets no rule here, so that the caller's kill replaces the errno.
void add_default_rules(scmp_filter_ctx ctx, const std::set<int>& deny, uint32_t kill,
                       const std::set<int>& families, bool slot_spawner) {
  for (const char* name : kKilledSyscalls) {
    if (slot_spawner && std::string_view(name) == "unshare") {
      // The slot's init takes a new ipc namespace after each job, the job's first process its
      // own cgroup namespace: every other flag unshare knows is killed (one rule a flag, as
      // rules OR). A job, with no capability, gets EPERM for these two.
      for (uint64_t flag : {CLONE_THREAD, CLONE_FS, CLONE_NEWNS, CLONE_SIGHAND, CLONE_VM,
                            CLONE_FILES, CLONE_SYSVSEM, CLONE_NEWUTS, CLONE_NEWNET, CLONE_NEWUSER,
                            CLONE_NEWPID, CLONE_NEWTIME}) {
        add_rule(ctx, kill, name, {arg_bits_set(0, flag)});
      }
      continue;
    }
    if (slot_spawner && std::string_view(name) == "move_mount") {
      add_rule(ctx, kill, name, {scmp_arg_cmp{4, SCMP_CMP_NE, MOVE_MOUNT_F_EMPTY_PATH, 0}});
      continue;
    }
    if (slot_spawner && std::string_view(name) == "umount2") {
      add_rule(ctx, kill, name, {scmp_arg_cmp{1, SCMP_CMP_NE, MNT_DETACH, 0}});
      continue;
    }
    add_rule(ctx, kill, name);
  }
  for (const auto& call : kErrnoSyscalls) {
    int nr = resolve(call.name);
    if (nr < 0 || (call.deny_kills && deny.count(nr))) continue;
    add_rule(ctx, SCMP_ACT_ERRNO(static_cast<uint32_t>(call.err)), nr, call.name);
  }

  // clone with any namespace flag (arg0 is the flags on x86_64 and arm64; a rule per flag
  // because rules OR and a rule cannot say "masked != 0"). CLONE_NEWTIME (0x80) is in the exit
  // signal byte for clone(), so clone cannot ask for it; a set 0x80 there is a signal >= 128,
  // which no valid call has, so killing it costs nothing.
  for (uint64_t flag : {CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER,
                        CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWTIME}) {
    add_rule(ctx, kill, "clone", {arg_bits_set(0, flag)});
  }

  // A slot's writable filesystems outlive its jobs unless touched (isolate/slot.h): an unnamed
  // file (O_TMPFILE) takes an inode number of the tmpfs, which the next job's files would count
  // on from, and changes neither its usage once closed nor its root's times. So it fails as on
  // a filesystem without it (EOPNOTSUPP: glibc's tmpfile() and Python's tempfile fall back), and
  // openat2, whose flags a filter cannot read, as on a kernel without it (ENOSYS).
  if (slot_spawner) {
    add_rule(ctx, SCMP_ACT_ERRNO(EOPNOTSUPP), "openat", {arg_bits_set(2, __O_TMPFILE)});
    add_rule(ctx, SCMP_ACT_ERRNO(EOPNOTSUPP), "open", {arg_bits_set(1, __O_TMPFILE)});
    add_rule(ctx, SCMP_ACT_ERRNO(ENOSYS), "openat2");
  }

  // Terminal injection (CVE-2017-5226): pushing input into a terminal the job shares.
  // TIOCSETD: line disciplines (n_gsm, n_hdlc) are old, much-exploited kernel code.
  for (uint32_t cmd : {TIOCSTI, TIOCLINUX, TIOCSETD}) {
    add_rule(ctx, kill, "ioctl", {arg32_eq(1, cmd)});
  }

  // vsock reaches the host and every VM/job on it (host-wide scope, isolate's list); packet
  // sockets see all traffic of an interface. Netlink stays allowed: `ip` and glibc's
  // getaddrinfo use it, and it is confined by the network namespace.
  for (uint32_t family : {AF_VSOCK, AF_PACKET}) {
    add_rule(ctx, kill, "socket", {arg32_eq(0, family)});
  }
  // AF_ALG exposes the kernel's crypto API, a kernel attack surface no job needs. Its users
  // (libkcapi, OpenSSL's afalg engine) fall back to user-space crypto when the family is missing.
  add_rule(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), "socket", {arg32_eq(0, AF_ALG)});
  // The profile's socket_families: every other family fails as if the kernel lacked it (a rule
  // per family, as rules cannot say "not in a set"; AF_MAX is 46, so at most ~140 instructions).
  if (!families.empty()) {
    for (int family = 0; family < AF_MAX; ++family) {
      if (families.count(family) || family == AF_VSOCK || family == AF_PACKET || family == AF_ALG) {
        continue;
      }
      add_rule(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), "socket",
               {arg32_eq(0, static_cast<uint32_t>(family))});
    }
  }

  // File locks (flock, fcntl's POSIX and OFD locks) are allowed: a jail's read-only files are
  // its own inodes (overlays, overlay.h), its writable ones are its own tmpfs, so its locks
  // reach no other job. Where a jail could not get its own inodes, the job also installs the
  // lock ban (SeccompProgram::lock_ban_fprog). Leases and directory notifications stay
  // refused: they watch what other processes do to an inode (opens, a directory's changes),
  // which on a profile's rw bind means the host and other jobs, and no job needs them. EPERM,
  // which their users handle (ENOLCK is not among their errors).
  for (uint32_t cmd : {F_SETLEASE, F_NOTIFY}) {
    add_rule(ctx, SCMP_ACT_ERRNO(EPERM), "fcntl", {arg32_eq(1, cmd)});
  }

  // personality: only the query (0xffffffff) is allowed; every change (ADDR_NO_RANDOMIZE,
  // READ_IMPLIES_EXEC, MMAP_PAGE_ZERO, other execution domains) fails with EPERM, and so does
  // setting plain PER_LINUX (0), although that changes nothing for a normal process. Allowing 0
  // as well took 32 rules (96 of the program's 216 instructions, and attach cost grows with the
  // length); this one rule takes a few, and the program is 123. EPERM and not a kill, so that
  // programs that probe it (gdb disabling ASLR, SBCL re-executing itself without it) fail softly
  // and go on. libseccomp has no 32-bit or masked "not equal", so this compares all 64 bits: a
  // persona whose upper half is set gets EPERM even when the kernel, which reads 32 bits, would
  // take it as the query. That only refuses more; no value the kernel reads as a change gets
  // through. glibc's wrapper passes the persona zero-extended, so personality(0xffffffff) works.
  add_rule(ctx, SCMP_ACT_ERRNO(EPERM), "personality",
           {scmp_arg_cmp{0, SCMP_CMP_NE, 0xffffffffu, 0}});
}

std::vector<sock_filter> export_bpf(scmp_filter_ctx ctx) {
  UniqueFd fd(::memfd_create("jailpool-seccomp", MFD_CLOEXEC));
  if (!fd) throw_errno("memfd_create for the seccomp filter");
  check_rc(seccomp_export_bpf(ctx, fd.get()), "export BPF");
  struct stat st;
  check_sys(::fstat(fd.get(), &st), "fstat seccomp memfd");
  if (st.st_size <= 0 || st.st_size % sizeof(sock_filter) != 0) {
    throw Error(fmt::format("libseccomp: exported BPF has {} bytes", st.st_size));
  }
  std::vector<sock_filter> insns(st.st_size / sizeof(sock_filter));
  size_t want = insns.size() * sizeof(sock_filter);
  auto* out = reinterpret_cast<char*>(insns.data());
  size_t done = 0;
  while (done < want) {
    ssize_t n = ::pread(fd.get(), out + done, want - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno("read seccomp memfd");
    if (n == 0) throw Error("libseccomp: exported BPF is truncated");
    done += static_cast<size_t>(n);
  }
  return insns;
}

Ctx make_ctx(uint32_t default_action) {
  Ctx ctx(seccomp_init(default_action));
  if (!ctx) throw Error("libseccomp: seccomp_init failed");
  check_rc(seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS),
           "set the bad-arch action");
  // A binary tree on the syscall number instead of a chain of comparisons. At attach the kernel
  // emulates the filter for every syscall number to fill its action cache (5.11), with the
  // sighand lock held: over a ~60-deep chain that was most of the attach cost (BM_SeccompInstall
  // 512 us against 196 us as a tree, 6.18 under PVM), paid by every job.
  check_rc(seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_OPTIMIZE, 2), "set the optimization level");
  return ctx;
}

// The lock ban, for a jail whose read-only files are not all its own inodes (no overlayfs, a
// large file mounted on its own): flock and fcntl's lock commands fail with ENOLCK (what
// sqlite, pip and the JVM expect when locking is unavailable; they carry on or report a clean
// error). F_GETLK stays allowed: with nothing able to set a lock it reads nothing. A call the
// profile's seccomp_deny names gets no rule: the main filter's kill (or notification, which
// an errno here would outrank) applies.
std::vector<sock_filter> compile_lock_ban(const std::set<int>& deny) {
  Ctx ctx = make_ctx(SCMP_ACT_ALLOW);
  const uint32_t enolck = SCMP_ACT_ERRNO(ENOLCK);
  int flock_nr = resolve("flock"), fcntl_nr = resolve("fcntl");
  if (flock_nr >= 0 && !deny.count(flock_nr)) add_rule(ctx.get(), enolck, flock_nr, "flock");
  if (fcntl_nr >= 0 && !deny.count(fcntl_nr)) {
    for (uint32_t cmd : {F_SETLK, F_SETLKW, F_OFD_SETLK, F_OFD_SETLKW}) {
      add_rule(ctx.get(), enolck, fcntl_nr, "fcntl", {arg32_eq(1, cmd)});
    }
  }
  return export_bpf(ctx.get());
}

}  // namespace

const std::vector<std::string>& default_denied_syscalls() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for_each_unconditional([&](const char* name) {
      if (resolve(name) >= 0) out.emplace_back(name);
    });
    return out;
  }();
  return names;
}

SeccompProgram compile_seccomp(const Profile& profile, const SeccompReporting& reporting) {
  // Names are checked in every mode, so a typo shows up even while the filter is switched off.
  std::set<int> allow;
  for (const auto& name : profile.seccomp_allow()) {
    int nr = resolve_field(name, "seccomp_allow");
    if (nr >= 0) allow.insert(nr);
  }
  std::set<int> deny;
  for (const auto& name : profile.seccomp_deny()) {
    int nr = resolve_field(name, "seccomp_deny");
    if (nr >= 0) deny.insert(nr);
  }
  const std::set<int> families = allowed_socket_families(profile);
  const int socket_nr = resolve("socket");

  // In learning mode allowed calls notify and denied ones kill (one filter has one action per
  // call, and the supervisor must tell the two apart); otherwise denied calls notify when asked.
  const bool log = reporting.log_allowed;
  const uint32_t allowed = log ? SCMP_ACT_NOTIFY : SCMP_ACT_ALLOW;
  const uint32_t denied =
      !log && reporting.name_violations ? SCMP_ACT_NOTIFY : SCMP_ACT_KILL_PROCESS;
  const bool notifies = log || reporting.name_violations;
  // The job installs the filter before its execve and may end with exit/exit_group before the
  // exec succeeds, while the jail's init (which serves the listener) waits for that exec
  // (CLONE_VFORK). So these calls never notify: allowed, they run (and learning mode lists
  // them: execve when the program started, all three whenever anything was learned); denied,
  // they kill outright (SIGSYS, unnamed).
  const std::set<int> never_notify = {resolve("execve"), resolve("exit"), resolve("exit_group")};
  // (libseccomp refuses a rule with the filter's default action: those are left out.)
  auto pin_never_notified = [&](scmp_filter_ctx ctx, uint32_t default_action, bool allow_list) {
    if (!notifies) return;
    for (int nr : never_notify) {
      if (nr < 0) continue;
      const bool runs = !deny.count(nr) && (!allow_list || allow.count(nr));
      const uint32_t action = runs ? SCMP_ACT_ALLOW : SCMP_ACT_KILL_PROCESS;
      if (action != default_action) add_rule(ctx, action, nr, syscall_name(nr));
    }
  };

  switch (profile.seccomp()) {
    case SECCOMP_NONE:
      return SeccompProgram();

    case SECCOMP_ALLOW_LIST: {
      // Only the named calls run; a name also in seccomp_deny stays denied. Names of calls this
      // architecture does not have were skipped, so one profile serves several architectures.
      Ctx ctx = make_ctx(denied);
      pin_never_notified(ctx.get(), denied, true);
      for (int nr : allow) {
        if (deny.count(nr) || (notifies && never_notify.count(nr))) continue;
        if (nr == socket_nr && !families.empty()) {
          // socket only for the profile's families (the rest gets the denied action).
          for (int family : families) {
            add_rule(ctx.get(), allowed, nr, "socket",
                     {arg32_eq(0, static_cast<uint32_t>(family))});
          }
          continue;
        }
        add_rule(ctx.get(), allowed, nr, syscall_name(nr));
      }
      return SeccompProgram(export_bpf(ctx.get()), notifies, log);
    }

    case SECCOMP_DEFAULT: {
      Ctx ctx = make_ctx(allowed);
      pin_never_notified(ctx.get(), allowed, false);
      add_default_rules(ctx.get(), deny, denied, families, reporting.slot_spawner);
      std::set<int> already;
      for (const char* name : kKilledSyscalls) already.insert(resolve(name));
      for (const auto& call : kErrnoSyscalls) {
        if (!call.deny_kills) already.insert(resolve(call.name));
      }
      // An unconditional kill replaces the argument rules of the same call (libseccomp keeps the
      // broader rule, whatever the actions) and the inotify calls' ENOSYS (add_default_rules
      // left them out); calls already killed outright keep their rule, and clone3 stays ENOSYS.
      for (int nr : deny) {
        if (notifies && never_notify.count(nr)) continue;
        if (!already.count(nr)) add_rule(ctx.get(), denied, nr, syscall_name(nr));
      }
      SeccompProgram program(export_bpf(ctx.get()), notifies, log);
      program.set_lock_ban(compile_lock_ban(deny));
      return program;
    }

    default:
      throw ConfigError("seccomp",
                        fmt::format("unknown mode {}", static_cast<int>(profile.seccomp())));
  }
}

uint32_t native_audit_arch() {
  return seccomp_arch_native();  // libseccomp's SCMP_ARCH_* are the AUDIT_ARCH_* values
}

bool seccomp_notify_available() {
  static const bool available = [] {
    uint32_t action = SECCOMP_RET_USER_NOTIF;
    return ::syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action) == 0;
  }();
  return available;
}

size_t seccomp_notif_size() {
  // Newer kernels may append fields; the buffer given to SECCOMP_IOCTL_NOTIF_RECV must be that
  // large and zeroed.
  static const size_t size = [] {
    seccomp_notif_sizes kernel{};
    size_t out = sizeof(seccomp_notif);
    if (::syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &kernel) == 0) {
      out = std::max<size_t>(out, kernel.seccomp_notif);
    }
    return out;
  }();
  return size;
}

std::set<int> allowed_socket_families(const Profile& profile) {
  std::set<int> out;
  for (int i = 0; i < profile.socket_families_size(); ++i) {
    int family = socket_family_number(profile.socket_families(i));
    if (family < 0) {
      throw ConfigError(fmt::format("socket_families[{}]", i),
                        fmt::format("unknown address family \"{}\" (known: {})",
                                    profile.socket_families(i), known_socket_families()));
    }
    out.insert(family);
  }
  return out;
}

int socket_family_number(const std::string& name) {
  for (const auto& f : kSocketFamilies) {
    if (name == f.name) return f.family;
  }
  return -1;
}

std::string known_socket_families() {
  std::string out;
  for (const auto& f : kSocketFamilies) out += (out.empty() ? "" : ", ") + std::string(f.name);
  return out;
}

std::string syscall_name(int nr) {
  char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
  if (name == nullptr) {
    for (const auto& known : kNewSyscalls) {
      if (known.nr == nr) return known.name;
    }
    return fmt::format("syscall {}", nr);
  }
  std::string out(name);
  std::free(name);
  return out;
}

}  // namespace jailpool::isolate
