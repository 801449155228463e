// What the executor's files share (executor.cc: the loop; job_start.cc: a job's start;
// job_finish.cc: its result): the loop's tokens, a running job's state, the seccomp programs.
#pragma once

#include <fmt/core.h>
#include <signal.h>
#include <string.h>

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "common/unique_fd.h"
#include "isolate/cgroup.h"
#include "isolate/files.h"
#include "isolate/jail.h"
#include "isolate/perf_counter.h"
#include "isolate/seccomp.h"
#include "isolate/seccomp_cache.h"
#include "isolate/slot.h"
#include "sched/cpu_limit.h"
#include "sched/executor.h"

namespace jailpool::sched {

enum TokenKind : uint64_t {
  kExit = 1,
  kStdout = 2,
  kStderr = 3,
  kWall = 4,
  kCpu = 5,
  kRmdir = 6,
  kRmdirRetry = 7,
  kWake = 8,        // the submission queue has jobs (or was closed)
  kSlot = 9,        // a slot's state changed (its job's result may be ready)
  kSlotDeath = 10,  // a slot's init died (serial: its pid); one watch per slot's life
  kFiles = 11,      // file work is done (FileWork::done_fd)
  kSurvivors = 12,  // a fresh jail's init gave up on survivors (Executor::survivor_notice_)
  kKillGrace = 13,  // a killed job still not ended kSurvivorGraceNs after the kill
  // A slot's stdout or stderr pipe is readable (serial: the slot's id); one watch at a time per
  // slot pipe, kept across its jobs (Executor::slot_output_watches_).
  kSlotStdout = 14,
  kSlotStderr = 15,
};
inline uint64_t make_token(uint64_t serial, TokenKind kind) {
  return serial << 8 | kind;
}

constexpr size_t kDefaultCaptureLimit = 64ull << 20;
constexpr int kRmdirRetries = 200;  // 1 ms apart
// Then a cgroup still busy (a process of its job outlived SIGKILL: kSurvivorGraceNs) is killed
// again and retried with a backoff from 10 ms to kRmdirSlowMaxNs, for as long as the executor
// lives; a run that has nothing else left waits for it (and for inits still exiting with
// survivors) at most kStuckWaitMs, and the executor's destruction as long.
constexpr uint64_t kRmdirSlowMaxNs = 1000000000ull;
constexpr int kStuckWaitMs = 2000;

inline const char* signal_name(int sig) {
  const char* name = sigabbrev_np(sig);
  return name != nullptr ? name : "?";
}

inline std::string format_ms(uint64_t us) {
  return fmt::format("{:.3f} s", static_cast<double>(us) / 1e6);
}

// One output stream of a job that jailpool reads: captured into the result, or relayed to one
// of jailpool's own fds (CLI pass-through), counted against the output limit either way.
struct OutputPipe {
  int fd = -1;     // the read end: `owned`'s, or the slot's (isolate::Slot::output_read_fd)
  UniqueFd owned;  // a pipe of the job's own (a fresh jail, or a template's)
  bool capture = false;
  int relay_fd = -1;
  std::string data;
  uint64_t total = 0;
  bool truncated = false;
  bool open = false;
};

// A job's working directory made and filled off the loop (FileWork), before its start.
struct Executor::PreparedFiles {
  std::optional<isolate::ScratchFs> scratch;
  std::string error;        // "": ready; else the copy-in's failure (the job's SETUP_ERROR)
  uint64_t request_ns = 0;  // when the job was taken (its setup counts from there)
};

// The jobs of one group (JobRequest::group_rest), by serial in the group's order.
struct JobGroup {
  std::vector<uint64_t> serials;
  bool keep_going = false;
  bool failed = false;  // a job ended with a failure: the others were killed
};

struct Executor::Running {
  uint64_t serial = 0;
  JobRequest request;
  std::shared_ptr<JobGroup> group;  // null: a job alone
  size_t group_index = 0;
  std::string group_kill_reason;  // Kill::kGroup: which job ended, and how
  // Its copy_out is being collected off the loop (FileWork) into `collected`: the result waits.
  bool collecting = false;
  std::vector<FileResult> collected;
  Limits limits;
  JobResult result;
  std::unique_ptr<isolate::JobCgroup> cgroup;
  std::unique_ptr<isolate::JailTemplate> jail_template;
  std::unique_ptr<isolate::Jail> jail;
  // Or a slot (isolate/slot.h) running the job, with the job's side of its stdio held open
  // until the result (the slot's init copies them when it clones the job).
  std::unique_ptr<isolate::Slot> slot;
  std::vector<UniqueFd> slot_held_fds;
  // Kills the job; if it has not ended kSurvivorGraceNs later (kKillGrace), something of it
  // outlives SIGKILL: its first process, or what a killed init's exit waits for.
  void kill_job(EventLoop& loop) {
    if (jail) jail->kill();
    if (slot) {
      slot->kill_job();
      if (cgroup) cgroup->kill_all();
    }
    if ((jail || slot) && !kill_grace_armed) {
      loop.timer_at(isolate::monotonic_now_ns() + isolate::kSurvivorGraceNs,
                    make_token(serial, kKillGrace));
      kill_grace_armed = true;
    }
  }
  bool kill_grace_armed = false;
  // kKillGrace found it still running: its result was given up on (at least one survivor).
  bool outlived_kill = false;
  uint64_t exec_ns() const { return jail ? jail->exec_ns() : slot ? slot->exec_ns() : 0; }
  // What its output (each stream) and each copy_out file may hold.
  uint64_t output_limit() const {
    return limits.has_output_bytes() ? limits.output_bytes() : kDefaultCaptureLimit;
  }
  std::vector<UniqueFd> job_side_fds;  // closed right after the start
  OutputPipe out[2];
  // The working directory of a job with copy_in/copy_out: alive until its files are collected.
  std::optional<isolate::ScratchFs> scratch;
  bool seccomp_log = false;
  std::string seccomp_syscall;          // the denied call the jail's init reported
  std::set<std::string> syscalls_used;  // seccomp_log
  VerdictFacts::Kill killed_for = VerdictFacts::Kill::kNone;
  uint64_t kill_ns = 0;  // CLOCK_MONOTONIC of jailpool's kill (0: none)
  // Records why jailpool kills the job and when (where its wall time ends).
  void mark_killed(VerdictFacts::Kill why) {
    killed_for = why;
    kill_ns = isolate::monotonic_now_ns();
  }
  uint64_t request_ns = 0;
  bool finished = false;
  bool seccomp_enabled = false;
  std::unique_ptr<isolate::JobPerfCounters> perf;  // instructions, cycles of the job's cgroup
  unsigned cpu_parallelism = 1;  // how many CPUs the job can burn at once (pinning, quota)
  std::unique_ptr<CpuLimitWatch> cpu_watch;  // jobs with a CPU limit
};

struct Executor::SeccompCache {
  std::string dir;  // on disk too, when not ""
  std::map<std::tuple<const Profile*, bool, bool>, isolate::SeccompProgram> programs;
  isolate::SeccompProgram* get(const Profile* profile, const isolate::SeccompReporting& how) {
    auto key = std::make_tuple(profile, how.log_allowed, how.slot_spawner);
    auto it = programs.find(key);
    if (it == programs.end())
      it = programs.emplace(key, isolate::compile_seccomp_cached(*profile, how, dir)).first;
    return &it->second;
  }
};

// Reads what is available from a job's output pipe; returns false at EOF or error.
bool drain(OutputPipe& pipe, uint64_t limit, bool* over_limit);

}  // namespace jailpool::sched
