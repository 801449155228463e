// A jail: one job's isolated process tree. Built fresh from a profile: new pid, mount, ipc,
// uts, net and cgroup namespaces; a read-only root assembled from the profile's binds; fresh
// tmpfs mounts; its own /proc; minimal /dev; loopback only; an unprivileged uid with no
// capabilities, no_new_privs and the profile's seccomp filter.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "isolate/launch.h"
#include "jailpool.pb.h"

namespace jailpool::isolate {

class JobCgroup;
class SeccompProgram;
class JailTemplate;

struct JailConfig {
  const Profile* profile = nullptr;
  std::vector<Bind> extra_binds;  // the job's binds, after the profile's
  std::vector<std::string> argv;
  std::vector<std::string> env;  // K=V, complete
  std::string cwd;               // inside the jail; "" = the profile's cwd
  std::vector<LaunchPlan::Rlimit> rlimits;
  // Host fds (not owned), dup'ed into the jail as 0, 1, 2. stdio[0] -1: the jail's own
  // /dev/null (the host's is one inode for every job: POSIX locks on it are a channel).
  int stdio[3] = {-1, -1, -1};
  // nullptr or empty: no filter. A notifying one (SeccompProgram::notifies) is served by the
  // jail's init; JailOutcome reports what it saw.
  SeccompProgram* seccomp = nullptr;
  // A detached tmpfs (isolate::ScratchFs, files.h) the jail's init moves onto the profile's
  // working directory instead of mounting a fresh tmpfs there; -1: a fresh tmpfs.
  int cwd_mount_fd = -1;
  // Start from this template (its profile must be `profile`; no extra_binds) instead of
  // building the root: the jail joins the template's mount, net and uts namespaces and takes a
  // private copy of the mount tree and a fresh ipc namespace.
  const JailTemplate* from_template = nullptr;
  // An eventfd the jail's init adds 1 to when it gives up on survivors (see kSurvivorGraceNs):
  // its report is final then (done()), though the job's pipes stay open and init's exit waits
  // for them. Must be close-on-exec. -1: none (the caller then learns of survivors only at
  // init's exit).
  int survivor_notice_fd = -1;
};

// A template: the expensive, job-independent part of a jail, built once and held by a small
// holder process: the profile's read-only root (pivoted into), a net namespace with lo up, a
// uts namespace with the hostname. Jobs join it; being unprivileged, they cannot change it
// (their writable filesystems live in their own copy of the mount namespace).
class JailTemplate {
 public:
  // Builds the template and waits until it is ready. Throws Error with the step that failed.
  static std::unique_ptr<JailTemplate> create(const Profile& profile);
  ~JailTemplate();
  JailTemplate(const JailTemplate&) = delete;
  JailTemplate& operator=(const JailTemplate&) = delete;

  const Profile& profile() const { return *profile_; }
  // fds of the holder's mnt, net and uts namespaces.
  const int* ns_fds() const { return ns_fds_; }
  // False once the holder died (the template must then be replaced).
  bool alive() const;
  pid_t holder_pid() const { return pid_; }
  // Some read-only file of the template is the host's own inode (no overlay for it): its
  // jobs keep the lock ban (LaunchPlan::seccomp_lock_ban).
  bool locks_shared() const { return locks_shared_; }

 private:
  JailTemplate() = default;
  const Profile* profile_ = nullptr;
  std::unique_ptr<LaunchPlan> plan_;
  void* stack_ = nullptr;
  UniqueFd pidfd_;
  pid_t pid_ = -1;
  UniqueFd ns_owned_[3];
  int ns_fds_[3] = {-1, -1, -1};
  bool locks_shared_ = false;
};

// Checks, from the host and before anything starts, that the program exists in the jail's
// view of the filesystem (through the profile's and the job's binds, following recreated
// symlinks and PATH) and that the job's uid may execute it. Throws ConfigError("argv[0]", ...).
void check_program(const JailConfig& config);

// A writable filesystem every job gets fresh: a tmpfs of the profile's (tmpfs[]), its working
// directory, /dev/shm. flags: MS_NOSUID, MS_NODEV, MS_NOEXEC; data: tmpfs options.
struct WritableFs {
  std::string dst;
  unsigned long flags = 0;
  std::string data;
};
// In mount order: the profile's tmpfs, the working directory, /dev/shm. uid/gid: the job's.
std::vector<WritableFs> writable_filesystems(const Profile& profile, uint32_t uid, uint32_t gid);

// Whether jobs of this profile can start from a template: not when a profile bind lies inside
// one of the per-job filesystems (the fresh path mounts those first, a template cannot).
bool poolable(const Profile& profile);

// The signals jailpool ignores, as a mask (bit N-1 for signal N), read once: call it after
// setting up signal dispositions (the CLI ignores SIGPIPE before running anything).
uint64_t ignored_signals();

// What became of a jail, read after its init was reaped.
struct JailOutcome {
  bool setup_failed = false;
  std::string setup_error;  // one line, when setup_failed
  bool job_exited = false;  // the job's first process ended and was reaped by init
  int wait_status = 0;      // its wait status, when job_exited
  struct rusage rusage {};  // of the job and the descendants it waited for
  bool killed = false;      // init died of SIGKILL (jailpool killed the jail)
  uint64_t exec_ns = 0;     // CLOCK_MONOTONIC of the successful exec (0 if none)
  uint64_t exit_ns = 0;     // CLOCK_MONOTONIC when the job's first process ended (0 if not)
  // From init's seccomp listener: the denied call it killed the jail for (-1: none), and in
  // learning mode the calls that ran.
  int seccomp_denied_nr = -1;
  uint32_t seccomp_denied_arch = 0;
  std::vector<int> seccomp_used;
  // Processes that outlived SIGKILL for kSurvivorGraceNs (LaunchReport::survivors): the jail's
  // init gave up waiting for them. Its exit (the pid namespace's teardown) waits for them.
  uint32_t survivors = 0;
};

class Jail {
 public:
  // Resolves the plan and starts the jail's init. Host-side problems (a bind source that does
  // not exist, no memory) throw Error before anything starts; problems inside the new jail are
  // reported by reap().
  static std::unique_ptr<Jail> start(const JailConfig& config, const JobCgroup& cgroup);
  ~Jail();
  Jail(const Jail&) = delete;
  Jail& operator=(const Jail&) = delete;

  int pidfd() const { return pidfd_.get(); }
  pid_t pid() const { return pid_; }
  uint64_t start_ns() const { return start_ns_; }
  // CLOCK_MONOTONIC of the job's exec as init saw it; 0 until then (read while running).
  uint64_t exec_ns() const;

  // Kills the whole jail: SIGKILL to its init ends every process of its pid namespace.
  void kill();

  // Waits for init (immediately, once its pidfd is readable) and returns the outcome.
  JailOutcome reap();

  // True once init has reaped every process of the jail and is exiting by itself: the outcome
  // is final (outcome_before_reap). Its pidfd becomes readable when its exit (the namespaces'
  // teardown) is over; reap() it then, or let the destructor wait for it.
  bool done() const;
  JailOutcome outcome_before_reap() const;
  // Processes that outlived SIGKILL, once done() (LaunchReport::survivors); after give_up(),
  // at least 1.
  uint32_t survivors() const;
  // Gives up waiting for a killed init that has not exited (its exit waits for a process that
  // outlives SIGKILL): its report is read as it stands (outcome_before_reap), and it counts as
  // a jail with survivors. Its pidfd still says when it has exited.
  void give_up() { given_up_ = true; }
  // Whether init has exited (its pidfd is readable): reap() returns at once.
  bool exited() const;
  // Gives up on an init that does not exit (its pid namespace holds survivors): the destructor
  // neither kills nor waits, and the memory init ran on is leaked rather than freed.
  void abandon() { abandoned_ = true; }

 private:
  Jail() = default;
  JailOutcome read_outcome() const;
  std::unique_ptr<LaunchPlan> plan_;
  std::vector<UniqueFd> owned_fds_;
  void* stack_ = nullptr;
  size_t stack_size_ = 0;
  UniqueFd pidfd_;
  pid_t pid_ = -1;
  uint64_t start_ns_ = 0;
  bool reaped_ = false;
  bool abandoned_ = false;
  bool given_up_ = false;
};

uint64_t monotonic_now_ns();

// For slots (isolate/slot.h), which build a fresh jail's tree once and run many jobs in it:
// the fresh jail's mount plan and hostname; what execvp would try for a program; and the one
// line describing where a plan's setup failed.
void plan_fresh_tree(LaunchPlan& plan, const Profile& profile);
std::vector<std::string> exec_candidates(const std::string& program,
                                         const std::vector<std::string>& env);
std::string describe_failure(const LaunchPlan& plan);

}  // namespace jailpool::isolate
