// A slot: a long-lived jail that runs one job after another, reset between jobs instead of
// rebuilt (issue 14).
//
// Its init S is cloned once by jailpool (CLONE_VM on a stack of its own, CLONE_FILES: every fd
// jailpool opens for a job, its pipes and cgroup fds, is already in S's table; new pid, mount,
// ipc, uts, net and cgroup namespaces). S is pid 1 of its pid namespace. At its start S builds
// the fresh jail's tree once (build_jail_tree: the profile's read-only root, the per-job
// tmpfs mounts, /proc, hostname, lo), opens what the reset needs (the roots of the writable
// filesystems, the net namespace's counters, its pid namespace's ns_last_pid), does once what
// each job's first process would (signal dispositions, a session, no supplementary groups, an
// empty inheritable set), drops the capability bounding set, sets the securebits and
// no_new_privs, and attaches the profile's seccomp filter to itself: every job inherits it with
// no per-job attach. S keeps its effective capabilities (it never execs) and uses only calls
// the filter allows (clone(2), wait4, kill, ppoll, and of the otherwise denied ones exactly
// umount2(MNT_DETACH), move_mount(F_EMPTY_PATH) and unshare(CLONE_NEWIPC); clone3 is ENOSYS
// under the filter, so no CLONE_INTO_CGROUP: the job's first process writes itself into the
// cgroups).
//
// Per job, jailpool writes the job's LaunchPlan into S's control block and wakes S (an
// eventfd). S clones the job's first process J (CLONE_VM|CLONE_VFORK): J joins the job's
// cgroups and its own cgroup namespace, sets stdio, rlimits, drops to the job's uid (losing
// every capability), closes every other fd and execs. The job is never pid 1 (a pid-1 job would
// be spared its own raise()/kill(getpid()) of default-action signals). When J ends, S kills
// every other process of the pid namespace (kill(-1, SIGKILL) from pid 1 spares only S), reaps
// them all, stores the report and wakes jailpool (done eventfd). Then it resets: replaces each
// writable filesystem the job touched by a fresh tmpfs jailpool made in advance (umount2
// MNT_DETACH, then move_mount of the spare; "touched": its usage, or its root's owner, mode or
// any of its times, differ from what S recorded, read through fds S opened, never a job's path;
// a wipe would leave the tmpfs's inode counter and the root's times where the job left them,
// and a slot's filter refuses O_TMPFILE, which takes an inode and changes neither), moves itself
// into a new ipc namespace (SysV IPC and POSIX message queues, with their id counters), sets the
// pid namespace's last pid back to 1, checks the hostname, that no inet socket is left in its net
// namespace (a TIME_WAIT one would hold its port against the next job), that the net namespace's
// cumulative counters did not move (lo's packets, the IP MIBs: nothing resets them) and that the
// pid namespace holds only S, and says ready (or broken: jailpool destroys the slot).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "isolate/jail.h"
#include "isolate/launch.h"
#include "jailpool.pb.h"

namespace jailpool::isolate {

class JobCgroup;
class SeccompProgram;
class SlotRemains;

// Where a slot's reset failed (SlotControl::reset_failure).
enum class SlotReset : int {
  kNone = 0,
  kProcesses,     // a process of the job could not be reaped in time
  kRenew,         // a writable filesystem the job touched could not be replaced (index: which)
  kIpcNamespace,  // a new ipc namespace (SysV IPC, POSIX message queues) could not be made
  kPidCounter,    // the pid namespace's last pid could not be set back
  kHostname,
  kSockets,      // an inet socket of the slot's net namespace outlived the job (TIME_WAIT, ...)
  kNetCounters,  // the net namespace's counters moved (lo's packets, the IP/UDP/TCP MIBs)
  kWorkdir,      // the job's working directory with its files could not be detached
};
const char* describe_slot_reset(SlotReset what);

// The memory S and jailpool share. Written by jailpool before S starts (setup) or before each
// wake (job); the rest by S.
struct SlotControl {
  enum State : uint32_t {
    kStarting = 0,
    kReady,    // idle, reset complete: a job may be started
    kRunning,  // a job was handed over
    kResult,   // the job's report is final; S is resetting
    kBroken,   // setup or reset failed: never hand it out again
  };
  uint32_t state = kStarting;   // atomic (acquire/release)
  uint32_t kill_requested = 0;  // jailpool asks S to kill the running job
  // jailpool waits for kReady (seq_cst, as the state: a store on each side, then a load of the
  // other's, so that one of them sees the other's). S is ready far more often than anyone waits
  // for it: a wake-up nobody waits for costs a write here and a read at the next start.
  uint32_t ready_waiter = 1;
  int go_fd = -1;    // eventfd: jailpool -> S
  int done_fd = -1;  // eventfd: S -> jailpool, at kResult and kBroken, at kReady to a waiter
  LaunchPlan* setup = nullptr;   // the tree, hostname, seccomp filter
  LaunchPlan* job = nullptr;     // the job handed over (valid until kResult)
  const char* fs_paths[8] = {};  // the writable filesystems' mount points (jailpool)
  int fs_count = 0;
  // For each, a fresh tmpfs, attached nowhere (jailpool's fd, for move_mount): S replaces a
  // touched filesystem with it and sets -1 (atomic); jailpool makes another before the next job.
  int spare_fds[8] = {-1, -1, -1, -1, -1, -1, -1, -1};
  // The working directory's mount point (jailpool), where a job's files go (LaunchPlan::
  // workdir_mount_fd); nullptr when the profile has none.
  const char* workdir = nullptr;
  // fds S opened in the shared table, closed by jailpool once S is gone.
  // At most: 5 net files, 8 writable filesystems, ns_last_pid, the signalfd, a listener.
  int owned_fds[24] = {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                       -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1};
  // The net namespace's counters as S found them after building the tree (S): the text of
  // /proc/self/net/dev, snmp and snmp6, compared whole after each job.
  static constexpr int kNetCounterFiles = 3;
  static constexpr long kNetCounterBytes = 8192;
  char net_counters[kNetCounterFiles][kNetCounterBytes] = {};
  long net_counters_len[kNetCounterFiles] = {};
  int seccomp_listener = -1;
  SlotReset reset_failure = SlotReset::kNone;
  int reset_index = -1;
  int reset_err = 0;
  uint64_t jobs = 0;  // jobs run
};

// Runs in S (see above). Never returns.
int slot_main(void* control);

class Slot {
 public:
  // Starts a slot for `profile` with `seccomp` (nullptr or empty: none; both must outlive the
  // slot) and waits until it is ready. Throws Error with the step that failed.
  static std::unique_ptr<Slot> create(const Profile& profile, SeccompProgram* seccomp);
  // Kills S (and so the whole pid namespace) and waits for its exit, for at most
  // kSlotExitWaitMs: past that (a process of the namespace outlives SIGKILL, see
  // kSurvivorGraceNs), one line on stderr, and what S may still use is leaked. A caller that
  // must never wait uses shut_down().
  ~Slot();
  // Kills S and returns at once: nullptr when S has exited already (everything is freed),
  // else what must outlive it until it does (SlotRemains::try_finish).
  static std::unique_ptr<SlotRemains> shut_down(std::unique_ptr<Slot> slot);
  Slot(const Slot&) = delete;
  Slot& operator=(const Slot&) = delete;

  const Profile& profile() const { return *profile_; }
  const SeccompProgram* seccomp() const { return seccomp_; }
  pid_t pid() const { return pid_; }
  int pidfd() const { return pidfd_.get(); }  // readable once S died
  // Readable at each state change of S (consume with drain_done()).
  int done_fd() const { return done_fd_.get(); }
  void drain_done() const;
  SlotControl::State state() const;
  // Ready for a job: S alive and its reset complete.
  bool ready() const;
  // Broken or S dead: destroy it.
  bool broken() const;
  // S has not died (one poll of its pidfd; the others read shared memory only).
  bool alive() const;
  std::string broken_reason() const;
  // Whether S writes done_fd when its reset completes (kReady); the caller reads state() after
  // asking, before it waits.
  void want_ready_wake(bool on) const;

  // Hands a job over (the slot must be ready: its state is checked, S's life is not, as the
  // caller has just done that; should S die now, its pidfd says so). config: no extra binds, no
  // working-directory mount; its stdio fds must stay open until the result (S's job copies them at
  // its clone; those below 3 are dup'ed and held here).
  void start(const JailConfig& config, const JobCgroup& cgroup);
  // The job's report is final (every process of the job is dead).
  bool result_ready() const;
  JailOutcome outcome() const;
  uint64_t start_ns() const { return start_ns_; }
  uint64_t exec_ns() const;
  // Asks S to kill the job (the caller kills the job's cgroup too: S acts at its next wake).
  void kill_job();

  // For the caller's event loop: whether it already watches pidfd() (once per slot's life).
  bool death_watched = false;
  // Unique in the process, never reused (a pid may be, once S is gone).
  uint64_t id() const { return id_; }
  // The slot's stdout (0) and stderr (1) pipes, made with it and kept for its life: no pipe is
  // made, watched or closed per job. A job's end goes into its stdio (write_fd); the caller
  // reads read_fd (non-blocking). Every process of a job is dead by its result (S killed and
  // reaped them): all it wrote is in the pipe then, and the caller drains it before the slot's
  // next job. Never at EOF while the slot lives.
  int output_write_fd(int stream) const { return out_write_[stream].get(); }
  int output_read_fd(int stream) const { return out_read_[stream].get(); }

  // The cgroup of the slot's last job, kept for its next one (JobCgroup::reuse: no mkdir,
  // open and rmdir per job), or nullptr. Destroyed (its directories removed) after S.
  std::unique_ptr<JobCgroup> cgroup;

 private:
  Slot() = default;
  // A spare of each writable filesystem whose last one S used (SlotControl::spare_fds).
  void make_spares();
  // Sends S SIGKILL and moves into the result what must outlive S; the slot keeps nothing.
  std::unique_ptr<SlotRemains> kill_and_take();
  const Profile* profile_ = nullptr;
  SeccompProgram* seccomp_ = nullptr;
  std::unique_ptr<LaunchPlan> setup_;
  std::unique_ptr<LaunchPlan> job_;
  std::vector<WritableFs> filesystems_;  // the writable filesystems, as SlotControl::fs_paths
  std::vector<UniqueFd> spares_;         // SlotControl::spare_fds
  std::vector<UniqueFd> job_fds_;  // the job's stdio fds moved above 2, held until the next job
  std::unique_ptr<SlotControl> control_;
  UniqueFd go_fd_, done_fd_;
  UniqueFd out_read_[2], out_write_[2];
  uint64_t id_ = 0;
  void* stack_ = nullptr;
  UniqueFd pidfd_;
  pid_t pid_ = -1;
  uint64_t start_ns_ = 0;
};

// How long ~Slot waits for S's exit after its SIGKILL.
constexpr int kSlotExitWaitMs = 2000;

// What must outlive a killed slot's init S until S has exited: S's exit (its pid namespace's
// teardown) waits in the kernel for every process of the namespace, and one may outlive
// SIGKILL (uninterruptible sleep, a cgroup-v1 freezer). Holds S's pidfd, the stack and shared
// memory S ran on, the fds S opened in the shared table, and the cgroup of its last job (busy
// while such a process lives in it). Movable; isolate/ knows nothing of who keeps it.
class SlotRemains {
 public:
  // Not finished: leaks the memory and fds S may still use, and leaves the cgroup's
  // directories (busy) in place; the owner says so first (abandon()).
  ~SlotRemains();
  SlotRemains(const SlotRemains&) = delete;
  SlotRemains& operator=(const SlotRemains&) = delete;

  // True once S has exited (waitid WNOHANG on its pidfd): then it is reaped, its fds closed,
  // its stack unmapped, the cgroup removed. Never waits.
  bool try_finish();
  pid_t pid() const { return pid_; }
  int pidfd() const { return pidfd_.get(); }  // readable once S has exited
  // Gives up on S: returns what is left ("pid N: its stack, K fds, cgroup DIR ...") for the
  // owner's one-line message; the destructor then leaks it.
  std::string abandon();

 private:
  friend class Slot;
  SlotRemains() = default;
  pid_t pid_ = -1;
  UniqueFd pidfd_;
  void* stack_ = nullptr;
  std::unique_ptr<SlotControl> control_;
  std::unique_ptr<LaunchPlan> setup_, job_;
  std::vector<UniqueFd> spares_;
  std::unique_ptr<JobCgroup> cgroup_;
  bool finished_ = false;
};

// Whether jobs of this profile can run in slots: poolable, and a seccomp mode whose filter a
// spawner can carry (default or none).
bool slot_capable(const Profile& profile);

}  // namespace jailpool::isolate
