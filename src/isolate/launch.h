// The launch plan of one jail: everything its init (pid 1 of the job's pid namespace) and the
// job's first process need, resolved in advance into plain memory, so that they run only raw
// system calls (see raw_syscall.h): no allocation, no locks, no exceptions.
//
// Process tree of one job:
//   jailpool --clone3(CLONE_VM|NEWPID|NEWNS|NEWNET|NEWIPC|NEWUTS|NEWCGROUP)--> init (pid 1)
//   init --clone3(CLONE_VM|CLONE_VFORK[|CLONE_INTO_CGROUP][|CLONE_FILES|CLONE_PIDFD])--> job
//   (pid 2) --execve--> program
// init is there so that the program is not a pid-namespace init: the kernel ignores signals an
// init sends itself, so raise(SIGSEGV) or `kill -SEGV $$` would not end it. init waits for
// the job, kills whatever the job left behind, and reports (status, rusage) in LaunchReport.
// With a notifying seccomp filter init also serves the filter's listener (see seccomp_listen).
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

struct sock_fprog;

namespace jailpool::isolate {

// A read-only view of an array, used by the code that runs in the jail (no std::vector calls
// there: sanitizer-instrumented copies of its inline functions must not run in the child).
template <typename T>
struct Span {
  const T* data = nullptr;
  size_t size = 0;
  const T* begin() const { return data; }
  const T* end() const { return data + size; }
};

struct MountOp {
  enum class Kind : uint8_t {
    kMkdir,      // mkdir -p path
    kTouch,      // create an empty file at path (target of a file bind)
    kBind,       // bind-mount src (recursively) on path
    kTmpfs,      // mount a tmpfs with options `data` on path
    kProc,       // mount proc on path (with options `data`, or none)
    kSymlink,    // symlink src at path
    kRemount,    // remount the bind at path with `flags` (MS_RDONLY, MS_NOSUID, ...)
    kMaskFile,   // bind /dev/null over path if it exists (masking)
    kMoveMount,  // move the detached mount of `fd` (fsmount, 5.2) onto path
    // Read-only binds made lock-private (overlay.h). Each may fall back to sharing the host's
    // inode (a plain bind of src), which init records in LaunchReport::locks_shared.
    kOverlay,   // mount an overlay (options `data`) on path; fallback: bind src on path
    kMknod,     // char device `arg` (makedev), mode 0666, at path; fallback: bind src on it
    kCopyFile,  // copy the regular file src to path, mode `arg`; fallback: bind src on it
  };
  Kind kind;
  unsigned long flags = 0;
  const char* src = nullptr;
  const char* path = nullptr;
  const char* data = nullptr;
  int fd = -1;            // kMoveMount
  unsigned long arg = 0;  // kMknod, kCopyFile
};

// Where setup stopped. The supervisor turns (stage, index, errno) into a message.
enum class LaunchStage : int {
  kNone = 0,
  kCloseFds,
  kPrivateRoot,
  kStaging,
  kTemplateMount,  // template_ops[index]
  kPivot,
  kJoinTemplate,  // index: 0 mnt, 1 net, 2 uts, 3 unshare
  kJobMount,      // job_ops[index]
  kHostname,
  kLoopback,
  kDeathSignal,
  kCloneJob,
  kCgroupAttach,
  kStdio,
  kSession,
  kChdir,
  kRlimit,
  kCredentials,
  kNoNewPrivs,
  kSeccomp,
  kExec,
};
const char* describe_stage(LaunchStage stage);

// init's buffer for a seccomp notification; the supervisor checks the kernel's struct fits.
constexpr size_t kSeccompNotifBuffer = 512;

// How long a jail's init waits, after the job's first process ended and it killed the rest,
// for the rest to be gone. A process can outlive SIGKILL: in uninterruptible sleep (a hung NFS
// or FUSE call), or frozen by a cgroup-v1 freezer (TASK_FROZEN ignores SIGKILL; v2's freezer
// lets it through). Past this, init reports them (LaunchReport::survivors) and gives up: the
// job still gets its result, and its jail is destroyed rather than reused. Short enough that a
// hung process costs little; long enough that a big process still exiting (freeing gigabytes
// takes a few hundred ms) is not counted, and if it is, it costs one slot's rebuild, no more.
constexpr uint64_t kSurvivorGraceNs = 1000000000ull;

// Written by init (shared memory), read by the supervisor after init has been reaped.
struct LaunchReport {
  LaunchStage stage = LaunchStage::kNone;  // kNone: the program was exec'd
  int index = -1;
  int err = 0;          // errno of the failed step
  int wait_status = 0;  // the job's (pid 2) status, valid when job_exited
  bool job_exited = false;
  struct rusage rusage {};  // of the job and its reaped descendants
  uint64_t exec_ns = 0;     // CLOCK_MONOTONIC right after the exec succeeded
  uint64_t exit_ns = 0;     // CLOCK_MONOTONIC when init saw the job exit
  // Seccomp notifications init read from the job's listener (LaunchPlan::seccomp_listen).
  int seccomp_listener = -1;   // its fd number in init's table (set by the job)
  int seccomp_denied_nr = -1;  // the first denied call, for which init killed the jail
  uint32_t seccomp_denied_arch = 0;
  uint64_t seccomp_used[8] = {};  // learning mode: bit N = syscall N was allowed and ran
  // Set by the code that built the root (a fresh jail's init, a template's holder) when some
  // read-only file of the jail is the host's own inode after all (an op of kind kOverlay, kMknod
  // or kCopyFile fell back to a plain bind): the job then installs the lock ban as well.
  uint32_t locks_shared = 0;
  // Set (release) by init once it has reaped every process of the jail, just before it closes
  // its fds (the last write ends of the job's stdout and stderr pipes) and exits. EOF on those
  // pipes with this set means the jail is empty and the report final, while init's own exit
  // (the namespaces' teardown) may still be running.
  uint32_t init_done = 0;
  // Processes of the jail still alive kSurvivorGraceNs after the job's first process ended and
  // init killed the rest (counted in the jail's /proc when mounted, else 1: at least one). Set
  // before init_done.
  uint32_t survivors = 0;
};

struct LaunchPlan {
  // Setup of init's own mount namespace; a fresh jail runs both lists, a pooled one (later)
  // joins a template that already ran template_ops.
  bool build_root = true;             // private root, staging, template_ops, pivot
  std::vector<MountOp> template_ops;  // under /newroot, host visible under /oldroot
  std::vector<MountOp> job_ops;       // after the pivot, paths inside the jail
  const char* hostname = nullptr;
  bool loopback_up = true;
  // A pooled jail joins a template's namespaces (mnt, net, uts: fds of /proc/PID/ns/*, -1 =
  // none) and then unshares these (a private copy of the mount tree, a fresh ipc namespace).
  int join_ns_fds[3] = {-1, -1, -1};
  int unshare_flags = 0;
  // Template holders only: written once the template is ready, then the holder waits.
  int ready_fd = -1;
  // An eventfd (kept: in keep_fds) init adds 1 to when it gives up on survivors (see
  // kSurvivorGraceNs), right after setting report.init_done; -1: none.
  int survivor_notice_fd = -1;

  // The job's first process.
  std::vector<int> keep_fds;    // fds init keeps open (all others are closed at start)
  std::vector<int> attach_fds;  // cgroup.procs fds to write "0" into
  int into_cgroup_fd = -1;      // for CLONE_INTO_CGROUP
  int stdio[3] = {-1, -1, -1};  // stdio[0] -1: the jail's own /dev/null
  // Signals jailpool ignores (bit N-1 for signal N): exec keeps SIG_IGN, so the job resets them.
  uint64_t ignored_signals = 0;
  // A slot's job: its init S already did, once for every job, what the job's first process
  // otherwise does itself (a session of its own, no supplementary groups, an empty inheritable
  // set); the job only takes a process group of its own.
  bool slot_job = false;
  const char* cwd = "/";
  // A slot's job with files (isolate/slot.h): S moves this detached tmpfs (the job's working
  // directory, filled by jailpool) onto the slot's working directory before the job, and
  // detaches it after.
  int workdir_mount_fd = -1;
  uint32_t uid = 65534, gid = 65534;
  struct Rlimit {
    int resource;
    struct rlimit value;
  };
  std::vector<Rlimit> rlimits;
  const sock_fprog* seccomp = nullptr;  // nullptr: no filter
  // A second filter refusing file locks (ENOLCK), installed first when the jail's read-only
  // files are not all its own inodes (ban_locks, set by jailpool, or report.locks_shared).
  const sock_fprog* seccomp_lock_ban = nullptr;
  bool ban_locks = false;
  // With a filter that notifies: the job installs it with SECCOMP_FILTER_FLAG_NEW_LISTENER,
  // sharing init's fd table until its exec (CLONE_FILES), so that init holds the listener and
  // serves it while it waits: a denied call is recorded and the jail killed; in learning mode
  // (seccomp_log) every allowed call is recorded and let through. jailpool is not involved.
  bool seccomp_listen = false;
  bool seccomp_log = false;
  std::vector<const char*> exec_paths;  // candidates tried in order (PATH search done here)
  std::vector<char*> argv;              // null-terminated
  std::vector<char*> envp;              // null-terminated

  LaunchReport report;

  // Views of the vectors above for the jail's code; filled by freeze() before the launch.
  struct Frozen {
    Span<MountOp> template_ops, job_ops;
    Span<int> keep_fds, attach_fds;
    Span<Rlimit> rlimits;
    Span<const char*> exec_paths;
    char* const* argv = nullptr;
    char* const* envp = nullptr;
  } frozen;
  void freeze() {
    frozen.template_ops = {template_ops.data(), template_ops.size()};
    frozen.job_ops = {job_ops.data(), job_ops.size()};
    frozen.keep_fds = {keep_fds.data(), keep_fds.size()};
    frozen.attach_fds = {attach_fds.data(), attach_fds.size()};
    frozen.rlimits = {rlimits.data(), rlimits.size()};
    frozen.exec_paths = {exec_paths.data(), exec_paths.size()};
    frozen.argv = argv.data();
    frozen.envp = envp.data();
  }

  // Owns every string the pointers above refer to (stable addresses).
  const char* keep(std::string s) { return strings_.emplace_back(std::move(s)).c_str(); }
  char* keep_mutable(std::string s) { return strings_.emplace_back(std::move(s)).data(); }

 private:
  std::deque<std::string> strings_;
};

// Runs in init (CLONE_VM child). Never returns an error to the caller: reports it in
// plan->report and exits non-zero.
int jail_init_main(void* plan);

// Runs in a slot's init (isolate/slot.h), at its start: builds a fresh jail's tree (the
// profile's root, pivoted into, the per-job filesystems, /proc), hostname and lo, as a fresh
// jail's init does. On failure reports in plan->report and exits.
void build_jail_tree(LaunchPlan* plan);

// Runs in a template holder (CLONE_VM child with its own mount, net, uts namespaces): builds
// the root and pivots into it, sets the hostname, brings lo up, writes one byte to ready_fd and
// then waits until it is killed (or jailpool dies).
int template_holder_main(void* plan);

}  // namespace jailpool::isolate
