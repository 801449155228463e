// Executor::finish_job: a finished job's outcome, accounting, output and files read into its
// result, with its verdict.

#include <fcntl.h>
#include <fmt/core.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <vector>

#include "common/error.h"
#include "common/unique_fd.h"
#include "config/profile.h"
#include "isolate/cgroup.h"
#include "isolate/files.h"
#include "isolate/jail.h"
#include "isolate/perf_counter.h"
#include "isolate/seccomp.h"
#include "isolate/seccomp_cache.h"
#include "isolate/slot.h"
#include "pool/cgroup_pool.h"
#include "pool/slot_pool.h"
#include "pool/template_pool.h"
#include "sched/cpu_limit.h"
#include "sched/executor_internal.h"

namespace jailpool::sched {

using isolate::monotonic_now_ns;

namespace {

void report_counters(const isolate::PerfSupport* support, const isolate::JobPerfCounters* perf,
                     JobResult& res) {
  if (!res.counters_unavailable().empty()) return;  // the counters could not be opened
  if (!perf) {
    res.set_counters_unavailable(support ? support->hardware_detail : "not probed");
    return;
  }
  try {
    res.set_instructions(perf->instructions());
    res.set_cycles(perf->cycles());
  } catch (const Error& e) {
    res.set_counters_unavailable(e.what());
  }
}

}  // namespace

// Reads what is available; returns false at EOF or error.
bool drain(OutputPipe& pipe, uint64_t limit, bool* over_limit) {
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(pipe.fd, buf, sizeof buf);
    if (n > 0) {
      size_t len = static_cast<size_t>(n);
      pipe.total += len;
      if (pipe.total > limit) *over_limit = true;
      if (pipe.capture) {
        size_t room = pipe.data.size() < limit ? limit - pipe.data.size() : 0;
        if (len > room) pipe.truncated = true;
        pipe.data.append(buf, std::min(len, room));
      } else if (pipe.relay_fd >= 0) {
        size_t done = 0;
        while (done < len) {
          ssize_t w = ::write(pipe.relay_fd, buf + done, len - done);
          if (w < 0 && errno == EINTR) continue;
          if (w <= 0) {
            pipe.relay_fd = -1;  // the reader went away: keep counting, stop relaying
            break;
          }
          done += static_cast<size_t>(w);
        }
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return true;
    return false;
  }
}

void Executor::collect_files(Running& r) {
  for (const CopyOut& file : r.request.spec.copy_out()) {
    r.collected.push_back(isolate::collect_file(r.scratch->fd(), file, r.output_limit()));
  }
}

void Executor::drain_outputs(Running& r) {
  for (auto& pipe : r.out) {
    if (!pipe.open) continue;
    bool over = false;
    drain(pipe, r.output_limit(), &over);
    if (over && r.killed_for == VerdictFacts::Kill::kNone)
      r.killed_for = VerdictFacts::Kill::kOutput;
    pipe.open = false;
    pipe.owned.reset();
    pipe.fd = -1;
  }
}

void Executor::finish_job(Running& r, bool init_done) {
  uint64_t reaped_ns = monotonic_now_ns();
  isolate::JailOutcome outcome;
  std::optional<isolate::CgroupStats> stats_read;
  if (r.slot) {
    // Its pipes are the slot's: read to the end of this job's output before the slot can take
    // another job (or be destroyed, closing them).
    drain_outputs(r);
    // The slot's init reaped every process of the job (or died: then the job was lost).
    if (r.slot->result_ready()) outcome = r.slot->outcome();
    r.slot_held_fds.clear();
    if (r.slot->result_ready()) {
      // Every process of the job is dead: its accounting is final, and its cgroup, empty,
      // goes with the slot for its next job (JobCgroup::reuse).
      stats_read = r.cgroup->read_stats();
      r.slot->cgroup = std::move(r.cgroup);
      slots_->release(std::move(r.slot));
    } else {
      slots_->discard(std::move(r.slot));
    }
  } else {
    outcome = init_done ? r.jail->outcome_before_reap() : r.jail->reap();
  }
  if (r.outlived_kill && outcome.survivors == 0) outcome.survivors = 1;  // at least one
  if (r.jail_template) templates_->release(std::move(r.jail_template));
  drain_outputs(r);
  isolate::CgroupStats stats = stats_read ? *stats_read : r.cgroup->read_stats();

  JobResult& res = r.result;
  if (outcome.seccomp_denied_nr >= 0 && r.killed_for == VerdictFacts::Kill::kNone) {
    // The jail's init read a denied call from the listener and killed the jail.
    r.killed_for = VerdictFacts::Kill::kSeccomp;
    r.seccomp_syscall = isolate::syscall_name(outcome.seccomp_denied_nr);
    if (outcome.seccomp_denied_arch != isolate::native_audit_arch()) {
      r.seccomp_syscall += fmt::format(" (arch {:#x})", outcome.seccomp_denied_arch);
    }
  }
  for (int nr : outcome.seccomp_used) r.syscalls_used.insert(isolate::syscall_name(nr));
  if (r.seccomp_log && !outcome.setup_failed && outcome.exec_ns != 0) {
    // Never notified (see compile_seccomp), but a program that started used them.
    for (const char* name : {"execve", "exit", "exit_group"}) r.syscalls_used.insert(name);
  }
  VerdictFacts facts;
  facts.setup_failed = outcome.setup_failed;
  facts.killed_for = r.killed_for;
  facts.exited = outcome.job_exited;
  if (outcome.job_exited) {
    if (WIFEXITED(outcome.wait_status)) facts.exit_code = WEXITSTATUS(outcome.wait_status);
    if (WIFSIGNALED(outcome.wait_status)) facts.signal = WTERMSIG(outcome.wait_status);
  }
  facts.oom_kills = stats.oom_kills;
  facts.cpu_time_us = stats.cpu_usec;
  if (r.limits.has_cpu_time_ms()) facts.cpu_limit_us = r.limits.cpu_time_ms() * 1000;
  if (r.limits.has_wall_time_ms()) facts.wall_limit_us = r.limits.wall_time_ms() * 1000;
  if (outcome.exec_ns != 0 && outcome.exit_ns > outcome.exec_ns) {
    facts.wall_time_us = (outcome.exit_ns - outcome.exec_ns) / 1000;
  }
  facts.seccomp_enabled = r.seccomp_enabled;
  Status status = decide_status(facts);

  res.set_status(status);
  res.set_exit_code(facts.exit_code);
  res.set_signal(facts.signal);
  res.set_cpu_time_us(stats.cpu_usec);
  res.set_cpu_user_us(stats.cpu_user_usec);
  res.set_cpu_sys_us(stats.cpu_sys_usec);
  uint64_t exec_ns = outcome.exec_ns;
  uint64_t end_ns = outcome.exit_ns ? outcome.exit_ns : reaped_ns;
  // A job jailpool killed ran until the kill (SIGKILL takes a running task at its next entry
  // into the kernel, within µs); the jail's teardown after it is not the job's time.
  if (r.kill_ns != 0 && r.kill_ns < end_ns) end_ns = r.kill_ns;
  if (exec_ns != 0 && end_ns > exec_ns) res.set_wall_time_us((end_ns - exec_ns) / 1000);
  if (stats.memory_peak_bytes) {
    res.set_memory_peak_bytes(*stats.memory_peak_bytes);
    res.set_memory_peak_source(stats.memory_peak_source == isolate::MemoryPeakSource::kV2MemoryPeak
                                   ? CGROUP_V2_MEMORY_PEAK
                                   : CGROUP_V1_MAX_USAGE);
  } else if (outcome.job_exited) {
    res.set_memory_peak_bytes(static_cast<uint64_t>(outcome.rusage.ru_maxrss) * 1024);
    res.set_memory_peak_source(RUSAGE_MAXRSS);
  }
  if (stats.pids_peak) res.set_pids_peak(*stats.pids_peak);
  report_counters(perf_support_.get(), r.perf.get(), res);
  r.perf.reset();
  res.set_setup_us(((exec_ns ? exec_ns : reaped_ns) - r.request_ns) / 1000);
  if (exec_ns) res.set_run_us((reaped_ns - exec_ns) / 1000);

  switch (status) {
    case SETUP_ERROR:
      res.set_message(outcome.setup_error);
      break;
    case TIME_LIMIT_EXCEEDED:
      res.set_message(fmt::format("cpu time {} exceeded the limit {}", format_ms(stats.cpu_usec),
                                  format_ms(r.limits.cpu_time_ms() * 1000)));
      break;
    case WALL_TIME_LIMIT_EXCEEDED:
      res.set_message(
          fmt::format("wall time limit {} exceeded", format_ms(r.limits.wall_time_ms() * 1000)));
      break;
    case MEMORY_LIMIT_EXCEEDED:
      res.set_message(
          fmt::format("memory limit {} bytes exceeded ({} process(es) killed by the OOM killer)",
                      r.limits.memory_bytes(), stats.oom_kills));
      break;
    case OUTPUT_LIMIT_EXCEEDED:
      res.set_message(fmt::format("output limit {} bytes exceeded", r.output_limit()));
      break;
    case SECCOMP_VIOLATION:
      if (!r.seccomp_syscall.empty()) {
        res.set_seccomp_syscall(r.seccomp_syscall);
        res.set_message(fmt::format("forbidden system call {} (denied by the seccomp policy)",
                                    r.seccomp_syscall));
      } else {
        res.set_message("forbidden system call (killed by seccomp, SIGSYS)");
      }
      break;
    case SIGNALED:
      if (r.killed_for == VerdictFacts::Kill::kGroup) {
        res.set_message(fmt::format("killed: {}", r.group_kill_reason));
      } else {
        res.set_message(
            fmt::format("killed by signal {} (SIG{})", facts.signal, signal_name(facts.signal)));
      }
      break;
    case NONZERO_EXIT:
      res.set_message(fmt::format("exit code {}", facts.exit_code));
      break;
    case INTERNAL_ERROR:
      res.set_message(r.killed_for == VerdictFacts::Kill::kInterrupted
                          ? "interrupted"
                          : "the job's first process was not reaped");
      break;
    default:
      break;
  }
  if (stats.pids_limit_hit && status == NONZERO_EXIT) {
    res.set_message(res.message() + fmt::format(" (pids limit {} reached)", r.limits.pids()));
  }
  if (outcome.survivors > 0) {
    // The status is its first process's; what it left could not be killed (isolate reports
    // the count, launch.h: kSurvivorGraceNs).
    std::string note = fmt::format(
        "{} process{} of the job outlived SIGKILL for {:g} s (uninterruptible sleep or frozen); "
        "its jail was destroyed",
        outcome.survivors, outcome.survivors == 1 ? "" : "es",
        static_cast<double>(isolate::kSurvivorGraceNs) / 1e9);
    res.set_message(res.message().empty() ? note : res.message() + "; " + note);
  }
  res.set_stdout(sanitize_utf8(r.out[0].data));
  res.set_stderr(sanitize_utf8(r.out[1].data));
  res.set_stdout_truncated(r.out[0].truncated);
  res.set_stderr_truncated(r.out[1].truncated);
  if (r.scratch) {
    // Every process of the jail is dead (init reaped them all, and init writes no file):
    // nothing changes the files any more. They are collected off the loop (collect_files);
    // the tmpfs is freed when its last fd, r.scratch's, is closed and init's mount namespace
    // is gone.
    if (!outcome.setup_failed && r.request.spec.copy_out_size() > 0) {
      r.collecting = true;
    } else {
      r.scratch.reset();
    }
  }
  for (const std::string& name : r.syscalls_used) res.add_syscalls_used(name);
  if (init_done) {
    ++finished_at_init_done_;
    exiting_[r.serial] = std::move(r.jail);  // reaped when its pidfd says its exit is over
  } else {
    r.jail.reset();
  }
  r.finished = true;
}

}  // namespace jailpool::sched
