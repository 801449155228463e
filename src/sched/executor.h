// The executor: runs jobs in jails with limits, on one event loop, and turns what happened
// into a JobResult with exact accounting and a verdict. `jailpool run` is a batch of one.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "jailpool.pb.h"
#include "sched/cpu_limit.h"
#include "sched/event_loop.h"

namespace jailpool::isolate {
class CgroupSystem;
class Jail;
struct JailConfig;
class HostWatch;
class JobCgroup;
struct PerfSupport;
}  // namespace jailpool::isolate
namespace jailpool::sched {
class FileWork;
class SubmissionQueue;
}  // namespace jailpool::sched
namespace jailpool::pool {
class TemplatePool;
class CgroupPool;
class SlotPool;
}  // namespace jailpool::pool

namespace jailpool::sched {

struct ExecutorOptions {
  std::string cgroup_parent = "jailpool";  // directly below each cgroup hierarchy's root
  unsigned parallelism = 1;
  EventLoop::Backend loop_backend = EventLoop::Backend::kAuto;
  // jailpool's own fds that Stream.inherit refers to (the CLI's stdin/stdout/stderr).
  int inherit_fds[3] = {0, 1, 2};
  // Start jobs from pooled templates (jobs with extra binds still get a fresh jail).
  bool use_pool = false;
  // With use_pool: run jobs that need nothing of their own (no binds, no copy_in/out, no
  // learning mode, a default or no seccomp policy) in slots, long-lived jails reset between
  // jobs (isolate/slot.h); the others as above.
  bool use_slots = true;
  // With use_slots: slots built beyond the parallelism, per profile, so that a job finds one
  // whose reset is complete instead of waiting for the slot of the job that just ended (the
  // reset then runs off the critical path). 0: a job waits for a reset rather than build a slot.
  unsigned slot_spares = 1;
  // Run the event loop's thread as SCHED_FIFO (priority 1, reset on fork: the jails it clones
  // stay SCHED_OTHER) while it runs, where the kernel allows it: its timers must fire on time
  // even when jobs burn every CPU (see run_loop).
  bool realtime_loop = true;
  // Keep compiled seccomp programs in this directory between runs (isolate/seccomp_cache.h);
  // "": compile in memory only.
  std::string seccomp_cache_dir;
  // How CPU limits read the job's CPU near the end (sched/cpu_limit.h); kAuto: the best that
  // runs here. Another method is for measuring them against each other.
  CpuLimitMethod cpu_limit_method = CpuLimitMethod::kAuto;
};

struct JobRequest {
  JobSpec spec;
  const Profile* profile = nullptr;  // must live until the job starts (the executor keeps a copy)
  // Fds a front end hands over for the job's stdin, stdout and stderr (index 0..2), used
  // instead of spec.stdin/stdout/stderr where valid: the ends of pipes between the jobs of a
  // group, a memfd with the stdin's bytes. The executor owns them and closes them once the job
  // holds its copies. An output given this way is not captured nor counted.
  std::array<UniqueFd, 3> stdio;
  // Jobs started together with this one (an interactive group: this job is the group's job 0,
  // these are 1..n), even past the parallelism, so that pipes between them never wait on a
  // queue. When a job of the group ends with any status but OK, the others still running are
  // killed (SIGNALED, the message names the job that ended), unless keep_going.
  std::vector<JobRequest> group_rest;
  bool keep_going = false;
  // Called on the loop thread with this job's result instead of the run's OnResult, when set.
  std::function<void(JobResult&&)> on_done;
};

class Executor {
 public:
  explicit Executor(ExecutorOptions options);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  using NextJob = std::function<std::optional<JobRequest>()>;
  using OnResult = std::function<void(JobResult&&)>;

  // Pulls jobs from `next` (until it returns nullopt or stop() is called) and runs up to
  // `parallelism` at once. Each result is delivered as soon as its accounting is read; the
  // cgroup teardown finishes afterwards. Returns when every started job is reported and torn
  // down. A job's failure never ends the loop: it becomes that job's result.
  void run(const NextJob& next, const OnResult& on_result);

  // Runs the jobs submitted to `queue` from any thread, until the queue is closed and empty.
  void run(SubmissionQueue& queue, const OnResult& on_result);

  // Runs one job and returns its result.
  JobResult run_one(const JobSpec& spec, const Profile& profile);

  // Async-signal-safe: stop taking jobs; with kill_running, kill the running ones too (they
  // are reported as INTERNAL_ERROR "interrupted").
  void stop(bool kill_running) { stop_.store(kill_running ? 2 : 1, std::memory_order_relaxed); }

  const isolate::CgroupSystem& cgroups() const { return *cgroups_; }
  pool::TemplatePool* templates() { return templates_.get(); }
  pool::SlotPool* slots() { return slots_.get(); }
  const char* loop_name() const;
  // Jobs whose result was read when their jail's init said the jail was empty (EOF on the
  // job's pipes), before init's own exit was over; the others waited for init's reaping.
  uint64_t finished_at_init_done() const { return finished_at_init_done_; }
  // Jobs that ran in their slot's previous job's cgroup (JobCgroup::reuse) instead of a new one.
  uint64_t cgroups_reused() const { return cgroups_reused_; }
  // The CPU limits' method, chosen at the first CPU-limited job (null before).
  const CpuLimitMethods* cpu_limit_methods() const { return cpu_methods_.get(); }

 private:
  struct Running;
  struct PreparedFiles;
  // prepared: the job's working directory, made and filled off the loop (FileWork).
  void start_job(JobRequest request, std::vector<std::unique_ptr<Running>>& running,
                 PreparedFiles* prepared = nullptr);
  // The job's working directory, made and filled with its copy_in (any thread). Never throws:
  // a failure is out.error.
  static void prepare_files(const JobSpec& spec, const Profile& profile, PreparedFiles& out);
  // Collects the job's copy_out into r.collected (any thread, once every process of the job
  // is dead). Never throws.
  static void collect_files(Running& r);
  // Reads the outcome and accounting into the job's result. init_done: the jail's init said
  // the jail is empty and is exiting (not yet reaped): it goes to exiting_.
  void finish_job(Running& job, bool init_done);
  // Reads the rest of the job's captured output and closes its side of the pipes.
  void drain_outputs(Running& job);
  // Reads what the job's stream (0: stdout, 1: stderr) has now; kills the job past its output
  // limit. False at the stream's end.
  bool read_output(Running& job, int stream);
  // A slot's stdout (0) or stderr (1) pipe is readable: read it into its running job's output.
  void on_slot_output(std::vector<std::unique_ptr<Running>>& running, uint64_t slot_id, int stream,
                      uint64_t token);
  // Pull: a job, nothing for now (wait for wake_fd), or the end of the jobs.
  enum class PullState { kJob, kLater, kDone };
  using Pull = std::function<PullState(std::optional<JobRequest>&)>;
  void run_loop(const Pull& pull, int wake_fd, const std::function<void()>& on_wake,
                const OnResult& on_result);

  ExecutorOptions options_;
  std::unique_ptr<isolate::CgroupSystem> cgroups_;
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<pool::TemplatePool> templates_;
  std::unique_ptr<pool::CgroupPool> cgroup_pool_;
  std::unique_ptr<pool::SlotPool> slots_;
  // The profiles jobs ran with, by content: the seccomp programs, templates and slots are keyed
  // by these copies, so that a caller may free or reload its profiles (a server) and a new
  // profile at a freed one's address never gets another's jail.
  std::map<std::string, std::unique_ptr<Profile>> interned_profiles_;
  // Programs check_program found executable, by profile, program, working directory and PATH,
  // with when the answer expires (kProgramCheckTtlNs): a batch of one program stats it once a
  // second, not once a job. The exec stays the authority: a program removed since fails there,
  // with the jail's SETUP_ERROR.
  std::map<std::string, uint64_t> programs_found_;
  // Names created, removed or moved on the host under the profiles' read-only binds: slots and
  // templates built before such a change may not show it (isolate/host_watch.h), and are
  // replaced. Checked (one read) before a job takes a slot or a template.
  std::unique_ptr<isolate::HostWatch> host_watch_;
  bool host_watch_tried_ = false;
  void watch_profile(const Profile& profile);
  void notice_host_changes();
  void check_program(const isolate::JailConfig& config);
  const Profile* intern_profile(const Profile& profile);
  // Copy-in and copy-out off the loop (file_work.h), made at the first job with files.
  std::unique_ptr<FileWork> file_work_;
  std::atomic<int> stop_{0};
  uint64_t next_serial_ = 0;
  unsigned cpus_ = 1;
  struct SeccompCache;
  std::unique_ptr<SeccompCache> seccomp_cache_;
  // Perf counters of the jobs' cgroups (instructions, cycles), probed at the first job.
  std::unique_ptr<isolate::PerfSupport> perf_support_;
  // What the CPU limits use (and the kickers of the kick method), chosen at the first job
  // with a CPU limit.
  std::unique_ptr<CpuLimitMethods> cpu_methods_;
  // Seccomp user notification works: denied calls are named (by the jails' inits) and
  // seccomp_log is possible.
  bool seccomp_notify_ = false;
  // Jails of reported jobs whose inits are still exiting, by job serial (their pidfds' kExit).
  // Those with survivors (isolate::kSurvivorGraceNs) may take any time: they do not hold a
  // run's end for more than kStuckWaitMs, and are reaped by a later run or the destructor.
  std::map<uint64_t, std::unique_ptr<isolate::Jail>> exiting_;
  // An eventfd the fresh jails' inits write when they give up on survivors (watched as
  // kSurvivors while a run loops; the watch outlives a run).
  UniqueFd survivor_notice_;
  bool survivor_watch_armed_ = false;
  // Job cgroup directories being removed (EBUSY retried), by id; they outlive a run whose end
  // they would hold too long (see kRmdirRetries), and their timers complete in a later run.
  struct PendingRmdir {
    std::string path;
    int tries = 0;
    uint64_t backoff_ns = 0;                     // 0: still in the fast retries
    std::shared_ptr<isolate::JobCgroup> cgroup;  // released: to kill what is left again
    bool waited = false;                         // a run's end waited for it already (kStuckWaitMs)
  };
  std::map<uint64_t, PendingRmdir> rmdirs_;
  uint64_t next_rmdir_ = 0;
  std::set<uint64_t> exiting_waited_;  // serials in exiting_ a run's end waited for already
  // The slot pipes watched now (a slot's id * 2 + stream): a watch stays across the slot's jobs,
  // re-armed when it completes for a running job, dropped when it completes for none.
  std::set<uint64_t> slot_output_watches_;
  // Whether nothing is left but inits with survivors and busy cgroups in their slow retries
  // (what the jobs' survivors hold): the run may end after waiting for them at most
  // kStuckWaitMs, once (*fresh: some were not waited for yet).
  bool only_stuck_left(bool* fresh) const;
  void mark_stuck_waited();
  // ~Executor: waits for the inits and cgroups above (kStuckWaitMs), then names what is left.
  void finish_stuck();
  uint64_t finished_at_init_done_ = 0;
  uint64_t cgroups_reused_ = 0;
};

// The status a job's facts give (pure function, unit-tested).
struct VerdictFacts {
  bool setup_failed = false;
  enum class Kill {
    kNone,
    kCpuTime,
    kWallTime,
    kOutput,
    kInterrupted,
    kSeccomp,  // a denied call, reported by the job's seccomp listener
    kGroup     // another job of its group ended with a failure (JobRequest::group_rest)
  } killed_for = Kill::kNone;
  bool exited = false;  // the job's first process was reaped by its init
  int exit_code = 0;
  int signal = 0;
  uint64_t oom_kills = 0;
  uint64_t cpu_time_us = 0;
  std::optional<uint64_t> cpu_limit_us;
  uint64_t wall_time_us = 0;
  std::optional<uint64_t> wall_limit_us;
  bool seccomp_enabled = false;
};
Status decide_status(const VerdictFacts& facts);

// Replaces invalid UTF-8 with U+FFFD (captured output goes into a proto3 string).
std::string sanitize_utf8(std::string_view bytes);

}  // namespace jailpool::sched
