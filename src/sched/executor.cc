#include "sched/executor.h"

#include <fcntl.h>
#include <fmt/core.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
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
#include <tuple>
#include <vector>

#include "common/error.h"
#include "common/unique_fd.h"
#include "config/profile.h"
#include "isolate/cgroup.h"
#include "isolate/files.h"
#include "isolate/host_watch.h"
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
#include "sched/file_work.h"
#include "sched/submission_queue.h"

namespace jailpool::sched {

using isolate::monotonic_now_ns;

Executor::Executor(ExecutorOptions options)
    : options_(std::move(options)), seccomp_cache_(std::make_unique<SeccompCache>()) {
  if (options_.parallelism == 0) options_.parallelism = 1;
  seccomp_cache_->dir = options_.seccomp_cache_dir;
  cgroups_ = isolate::CgroupSystem::detect(options_.cgroup_parent);
  loop_ = EventLoop::create(options_.loop_backend);
  if (options_.use_pool) {
    templates_ = std::make_unique<pool::TemplatePool>(options_.parallelism);
    cgroup_pool_ = std::make_unique<pool::CgroupPool>(*cgroups_, fmt::format("job-{}-p", getpid()),
                                                      options_.parallelism + 1);
    if (options_.use_slots)
      slots_ = std::make_unique<pool::SlotPool>(options_.parallelism * 2,
                                                options_.parallelism + options_.slot_spares);
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) cpus_ = std::max(1, CPU_COUNT(&set));
  seccomp_notify_ = isolate::seccomp_notify_available();
  // Above 2 (the jails' inits dup the job's stdio there); without it, survivors are seen at
  // their init's exit only.
  UniqueFd notice(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (notice && notice.get() < 3) notice.reset(fcntl(notice.get(), F_DUPFD_CLOEXEC, 3));
  if (notice.get() >= 0) survivor_notice_ = std::move(notice);
}

Executor::~Executor() {
  slots_.reset();
  finish_stuck();
  templates_.reset();
  cgroup_pool_.reset();
  if (cgroups_) cgroups_->remove_parent_if_empty();
}

const char* Executor::loop_name() const {
  return loop_->name();
}
void Executor::run(const NextJob& next, const OnResult& on_result) {
  run_loop(
      [&](std::optional<JobRequest>& out) {
        out = next();
        return out ? PullState::kJob : PullState::kDone;
      },
      -1, nullptr, on_result);
}

void Executor::run(SubmissionQueue& queue, const OnResult& on_result) {
  run_loop(
      [&](std::optional<JobRequest>& out) {
        out = queue.try_pop();
        if (out) return PullState::kJob;
        // Closed is read before the second pop: a job pushed before close() is never lost.
        bool closed = queue.closed();
        out = queue.try_pop();
        if (out) return PullState::kJob;
        return closed ? PullState::kDone : PullState::kLater;
      },
      queue.wake_fd(), [&] { queue.drain_wake(); }, on_result);
}

namespace {

// Makes the calling thread SCHED_FIFO for its lifetime, then restores its policy. Under CFS a
// woken thread may wait up to a tick (4 ms at HZ=250) for a CPU a job is burning, and so do
// the CPU-limit checks: measured on this 2-CPU VM at load ~3, the 4-thread CPU-limit overshoot
// had p99 7-10 ms as SCHED_OTHER and 1.6 ms as SCHED_FIFO. SCHED_RESET_ON_FORK (2.6.32): every
// process or thread it creates (jails' inits, jobs, io_uring workers) starts as SCHED_OTHER.
// The loop sleeps between events; RT throttling (sched_rt_runtime_us) bounds it anyway.
class RealtimeScope {
 public:
  explicit RealtimeScope(bool wanted) {
    if (!wanted) return;
    old_policy_ = sched_getscheduler(0);
    if (old_policy_ < 0 || sched_getparam(0, &old_param_) < 0) return;
    sched_param param{};
    param.sched_priority = 1;
    // Fails without CAP_SYS_NICE, or in a cpu cgroup with no RT runtime: then as before.
    active_ = sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &param) == 0;
  }
  ~RealtimeScope() {
    if (active_) sched_setscheduler(0, old_policy_, &old_param_);
  }
  RealtimeScope(const RealtimeScope&) = delete;
  RealtimeScope& operator=(const RealtimeScope&) = delete;

 private:
  bool active_ = false;
  int old_policy_ = -1;
  sched_param old_param_{};
};

}  // namespace

void Executor::run_loop(const Pull& pull, int wake_fd, const std::function<void()>& on_wake,
                        const OnResult& on_result) {
  RealtimeScope realtime(options_.realtime_loop);
  std::vector<std::unique_ptr<Running>> running;
  std::map<uint64_t, Running*> by_serial;
  bool source_done = false;
  uint64_t stuck_deadline_ns = 0;  // see only_stuck_left
  bool wake_armed = false;
  std::vector<Completion> completions;
  // Groups whose copy_in is being made off the loop (FileWork), by key; and jobs whose
  // copy_out is being collected, by serial. Both count against the parallelism.
  struct Preparing {
    JobRequest head;
    std::vector<JobRequest> rest;
    std::vector<PreparedFiles> files;  // one per job of the group
  };
  std::map<uint64_t, Preparing> preparing;
  std::map<uint64_t, Running*> collecting;
  constexpr uint64_t kPrepKey = 1ull << 63;
  uint64_t next_prep = 0;
  size_t file_work_pending = 0;
  bool files_armed = false;
  auto submit_file_work = [&](uint64_t key, std::function<void()> work) {
    if (!file_work_) file_work_ = std::make_unique<FileWork>(2);
    file_work_->submit(key, std::move(work));
    ++file_work_pending;
    if (!files_armed) {
      loop_->watch_readable(file_work_->done_fd(), make_token(0, kFiles));
      files_armed = true;
    }
  };
  auto remove_running = [&](Running* r) {
    for (auto jt = running.begin(); jt != running.end(); ++jt) {
      if (jt->get() == r) {
        running.erase(jt);
        break;
      }
    }
  };

  auto teardown = [&](Running& r) {
    uint64_t t0 = monotonic_now_ns();
    if (r.cgroup) {
      std::shared_ptr<isolate::JobCgroup> cgroup(std::move(r.cgroup));
      for (auto& dir : cgroup->release_dirs()) {
        uint64_t id = ++next_rmdir_;
        rmdirs_[id] = {dir, 0, 0, cgroup, false};
        loop_->rmdir(dir, make_token(id, kRmdir));
      }
    }
    r.result.set_teardown_us((monotonic_now_ns() - t0) / 1000);
  };
  auto report_now = [&](Running& r) {
    teardown(r);
    if (r.request.on_done) {
      r.request.on_done(std::move(r.result));
    } else {
      on_result(std::move(r.result));
    }
  };
  // A finished job: reported, or first its copy_out collected off the loop.
  auto settle = [&](Running& r) {
    by_serial.erase(r.serial);
    if (r.collecting) {
      collecting[r.serial] = &r;
      submit_file_work(r.serial, [&r] { collect_files(r); });
      return;
    }
    report_now(r);
    remove_running(&r);
  };
  // A job of a group ended: with a failure, the others still running are killed (their pipes
  // would otherwise keep them waiting up to their limits), unless the group keeps going.
  auto end_in_group = [&](Running& r) {
    JobGroup* group = r.group.get();
    if (!group || group->keep_going || group->failed || r.result.status() == OK) return;
    group->failed = true;
    std::string reason = fmt::format("job {} of its group ended with {}", r.group_index,
                                     Status_Name(r.result.status()));
    for (uint64_t serial : group->serials) {
      auto it = by_serial.find(serial);
      if (serial == r.serial || it == by_serial.end()) continue;
      Running& other = *it->second;
      if (other.finished || other.killed_for != VerdictFacts::Kill::kNone) continue;
      other.group_kill_reason = reason;
      other.mark_killed(VerdictFacts::Kill::kGroup);
      other.kill_job(*loop_);
    }
  };

  // A group starts whole, even past the parallelism: its jobs may wait on each other.
  // files: the jobs' working directories made off the loop (one per job), or null.
  auto start_group = [&](JobRequest head, std::vector<JobRequest> rest,
                         std::vector<PreparedFiles>* files) {
    std::shared_ptr<JobGroup> group;
    if (!rest.empty()) {
      group = std::make_shared<JobGroup>();
      group->keep_going = head.keep_going;
    }
    std::vector<Running*> started;
    for (size_t i = 0; i <= rest.size(); ++i) {
      PreparedFiles* prepared = nullptr;
      if (files && ((i == 0 ? head : rest[i - 1]).spec.copy_in_size() > 0)) prepared = &(*files)[i];
      start_job(std::move(i == 0 ? head : rest[i - 1]), running, prepared);
      Running& r = *running.back();
      r.group = group;
      r.group_index = i;
      if (group) group->serials.push_back(r.serial);
      by_serial[r.serial] = &r;
      started.push_back(&r);
    }
    // Jobs that failed to start are reported after the whole group has started, so that
    // their failure can end the others.
    for (Running* r : started) {
      if (!r->finished) continue;
      end_in_group(*r);
      settle(*r);
    }
  };

  if (survivor_notice_ && !survivor_watch_armed_) {
    loop_->watch_readable(survivor_notice_.get(), make_token(0, kSurvivors));
    survivor_watch_armed_ = true;
  }
  for (;;) {
    int stop = stop_.load(std::memory_order_relaxed);
    if (stop == 2) {
      for (auto& r : running) {
        if (!r->finished && (r->jail || r->slot) && r->killed_for == VerdictFacts::Kill::kNone) {
          r->mark_killed(VerdictFacts::Kill::kInterrupted);
          r->kill_job(*loop_);
        }
      }
    }
    while (!source_done && stop == 0 && running.size() + preparing.size() < options_.parallelism) {
      std::optional<JobRequest> request;
      PullState state;
      try {
        state = pull(request);
      } catch (const Error& e) {
        // A bad job line is that job's result, not the batch's end.
        JobResult bad;
        bad.set_status(SETUP_ERROR);
        bad.set_message(e.what());
        on_result(std::move(bad));
        continue;
      }
      if (state == PullState::kDone) {
        source_done = true;
        break;
      }
      if (state == PullState::kLater) {
        if (!wake_armed) {
          loop_->watch_readable(wake_fd, make_token(0, kWake));
          wake_armed = true;
        }
        break;
      }
      std::vector<JobRequest> rest = std::move(request->group_rest);
      bool files = request->spec.copy_in_size() > 0;
      for (const JobRequest& j : rest) files = files || j.spec.copy_in_size() > 0;
      if (!files) {
        start_group(std::move(*request), std::move(rest), nullptr);
        continue;
      }
      // Copies run off the loop; the group starts when all its jobs' files are in place.
      uint64_t key = kPrepKey | ++next_prep;
      Preparing& p = preparing[key];
      p.head = std::move(*request);
      p.rest = std::move(rest);
      p.files.resize(1 + p.rest.size());
      for (PreparedFiles& f : p.files) f.request_ns = monotonic_now_ns();
      submit_file_work(key, [&p] {
        for (size_t i = 0; i < p.files.size(); ++i) {
          const JobRequest& j = i == 0 ? p.head : p.rest[i - 1];
          if (j.spec.copy_in_size() > 0) prepare_files(j.spec, *j.profile, p.files[i]);
        }
      });
    }
    int timeout_ms = stop != 0 ? 100 : -1;
    if (running.empty() && preparing.empty() && file_work_pending == 0 &&
        (source_done || stop != 0)) {
      bool end = rmdirs_.empty() && exiting_.empty();
      bool fresh = false;
      if (!end && only_stuck_left(&fresh)) {
        // What processes that outlived SIGKILL hold: waited for a while (once), then left to
        // a later run or the destructor.
        uint64_t now = monotonic_now_ns();
        if (stuck_deadline_ns == 0)
          stuck_deadline_ns = fresh ? now + kStuckWaitMs * 1000000ull : now;
        end = now >= stuck_deadline_ns;
        if (end) mark_stuck_waited();
        int left_ms =
            static_cast<int>((stuck_deadline_ns - std::min(now, stuck_deadline_ns)) / 1000000) + 1;
        timeout_ms = timeout_ms < 0 ? left_ms : std::min(timeout_ms, left_ms);
      }
      if (end) {
        file_work_.reset();  // its threads and eventfd live as long as a run
        break;
      }
    }

    completions.clear();
    loop_->wait(completions, timeout_ms);
    for (const Completion& c : completions) {
      uint64_t serial = c.token >> 8;
      auto kind = static_cast<TokenKind>(c.token & 0xff);
      if (kind == kWake) {
        wake_armed = false;
        if (on_wake) on_wake();
        continue;
      }
      if (kind == kFiles) {
        files_armed = false;
        for (uint64_t key : file_work_->take_done()) {
          --file_work_pending;
          if (key & kPrepKey) {
            auto it = preparing.find(key);
            Preparing p = std::move(it->second);
            preparing.erase(it);
            start_group(std::move(p.head), std::move(p.rest), &p.files);
            continue;
          }
          auto it = collecting.find(key);
          Running& r = *it->second;
          collecting.erase(it);
          for (FileResult& f : r.collected) *r.result.add_files() = std::move(f);
          r.collected.clear();
          r.scratch.reset();
          r.collecting = false;
          report_now(r);
          remove_running(&r);
        }
        if (file_work_pending > 0) {
          loop_->watch_readable(file_work_->done_fd(), make_token(0, kFiles));
          files_armed = true;
        }
        continue;
      }
      if (kind == kSurvivors) {
        // Fresh jails whose init gave up on processes that outlived SIGKILL: their reports
        // are final, though their pipes stay open and their inits' exits wait for them.
        survivor_watch_armed_ = false;
        uint64_t count;
        [[maybe_unused]] ssize_t n = ::read(survivor_notice_.get(), &count, sizeof count);
        loop_->watch_readable(survivor_notice_.get(), make_token(0, kSurvivors));
        survivor_watch_armed_ = true;
        std::vector<Running*> stuck;
        for (auto& job : running) {
          if (job->jail && !job->finished && job->jail->done() && job->jail->survivors() > 0) {
            stuck.push_back(job.get());
          }
        }
        for (Running* r : stuck) {
          finish_job(*r, true);
          end_in_group(*r);
          settle(*r);
        }
        continue;
      }
      if (kind == kRmdir || kind == kRmdirRetry) {
        auto it = rmdirs_.find(serial);
        if (it == rmdirs_.end()) continue;
        PendingRmdir& p = it->second;
        if (kind == kRmdirRetry) {
          loop_->rmdir(p.path, make_token(serial, kRmdir));
        } else if (c.result == -EBUSY && p.tries < kRmdirRetries) {
          // A killed task leaves its cgroup a moment after it is reaped.
          ++p.tries;
          loop_->timer_at(monotonic_now_ns() + 1000000, make_token(serial, kRmdirRetry));
        } else if (c.result == -EBUSY) {
          // Still busy: a process of the job outlived SIGKILL (isolate::kSurvivorGraceNs) or
          // escaped the kill. Killed once more, then retried ever less often.
          if (p.backoff_ns == 0 && p.cgroup) {
            std::shared_ptr<isolate::JobCgroup> cgroup = p.cgroup;
            for (auto& [id, other] : rmdirs_) {
              if (other.cgroup == cgroup) other.cgroup.reset();
            }
            try {
              cgroup->kill_all();
            } catch (const Error& e) {
              fmt::print(stderr, "jailpool: {}\n", e.what());
            }
          }
          p.backoff_ns = std::min(p.backoff_ns == 0 ? 10000000ull : 2 * p.backoff_ns,
                                  static_cast<unsigned long long>(kRmdirSlowMaxNs));
          loop_->timer_at(monotonic_now_ns() + p.backoff_ns, make_token(serial, kRmdirRetry));
        } else {
          if (c.result < 0 && c.result != -ENOENT) {
            fmt::print(stderr, "jailpool: rmdir {}: {}\n", p.path, std::strerror(-c.result));
          }
          rmdirs_.erase(it);
        }
        continue;
      }
      if (kind == kSlotDeath) {
        // A slot's init died: its job (if any) is lost; the pool replaces the slot.
        for (auto& job : running) {
          if (job->slot && job->slot->pid() == static_cast<pid_t>(serial) && !job->finished) {
            serial = job->serial;
            kind = kExit;
            break;
          }
        }
        if (kind == kSlotDeath) continue;
      }
      if (kind == kSlotStdout || kind == kSlotStderr) {
        on_slot_output(running, serial, kind == kSlotStdout ? 0 : 1, c.token);
        continue;
      }
      if (kind == kExit) {
        auto exiting = exiting_.find(serial);
        if (exiting != exiting_.end()) {  // a job finished at its init's done: reap init now
          try {
            exiting->second->reap();
          } catch (const Error& e) {
            fmt::print(stderr, "jailpool: {}\n", e.what());
          }
          exiting_.erase(exiting);
          exiting_waited_.erase(serial);
          continue;
        }
      }
      auto it = by_serial.find(serial);
      if (it == by_serial.end()) continue;  // a stale timer of a finished job
      Running& r = *it->second;
      try {
        switch (kind) {
          case kStdout:
          case kStderr: {
            OutputPipe& pipe = r.out[kind == kStdout ? 0 : 1];
            if (!pipe.open) break;
            if (read_output(r, kind == kStdout ? 0 : 1)) {
              loop_->watch_readable(pipe.fd, c.token);
            } else {
              pipe.open = false;
              // The last write ends were init's, closed once the jail was empty: the result
              // is final now, ~0.3 ms before init's exit is (its namespaces' teardown).
              if (!r.out[0].open && !r.out[1].open && r.jail && r.jail->done()) {
                finish_job(r, true);
              }
            }
            break;
          }
          case kWall: {
            uint64_t limit_ns = (r.limits.wall_time_ms() + r.limits.extra_time_ms()) * 1000000ull;
            uint64_t exec = r.exec_ns();
            uint64_t now = monotonic_now_ns();
            if (exec != 0 && now < exec + limit_ns) {
              // The limit counts from the exec, not from the start of the setup.
              loop_->timer_at(exec + limit_ns, c.token);
            } else if (r.killed_for == VerdictFacts::Kill::kNone) {
              r.mark_killed(VerdictFacts::Kill::kWallTime);
              r.kill_job(*loop_);
            }
            break;
          }
          case kCpu: {
            // cpu_limit.h: the cgroup's usage (what the result reports, charged at ticks), made
            // exact near the end by kicks (or combined with the cgroup's task-clock): a kill
            // within ~0.1 ms of the limit, never before the job's CPU has reached it.
            CpuCheck check = r.cpu_watch->check(*r.cgroup);
            if (check.kill) {
              if (r.killed_for == VerdictFacts::Kill::kNone) {
                r.mark_killed(VerdictFacts::Kill::kCpuTime);
                // Every task of the tree at once (cgroup.kill), not after its init's death:
                // a tree burning N CPUs overshoots N times the kill's latency.
                r.cgroup->kill_all();
                r.kill_job(*loop_);
              }
            } else {
              loop_->timer_at(check.next_ns, c.token);
            }
            break;
          }
          case kExit:
            finish_job(r, false);
            break;
          case kKillGrace:
            // Killed a while ago and not ended: a process outlives SIGKILL (uninterruptible
            // sleep, frozen): the job's first process itself (its init waits for it), or one
            // a killed fresh init's exit waits for. The job's result is given up on now.
            if (r.jail && !r.jail->done() && !r.jail->exited()) {
              r.outlived_kill = true;
              r.jail->give_up();
              finish_job(r, true);  // to exiting_, as a jail with survivors
            } else if (r.slot && !r.slot->result_ready()) {
              r.outlived_kill = true;
              finish_job(r, false);  // the slot is discarded (destroyed without waiting)
            }
            break;
          case kSlot:
            if (r.slot && r.slot->result_ready()) {
              finish_job(r, false);
            } else if (r.slot) {
              r.slot->drain_done();
              if (r.slot->result_ready()) {
                finish_job(r, false);
              } else {
                loop_->watch_readable(r.slot->done_fd(), c.token);
              }
            }
            break;
          default:
            break;
        }
      } catch (const Error& e) {
        // This job is lost to an internal failure; the others go on.
        if (r.jail) {
          r.jail->kill();
          try {
            r.jail->reap();
          } catch (const Error&) {
          }
          r.jail.reset();
        }
        if (r.slot) {
          r.kill_job(*loop_);
          r.slot_held_fds.clear();
          r.out[0].open = r.out[1].open = false;  // the slot's pipes, closed with it
          slots_->discard(std::move(r.slot));
        }
        r.result.set_status(INTERNAL_ERROR);
        r.result.set_message(e.what());
        r.finished = true;
      }
      if (r.finished) {
        end_in_group(r);
        settle(r);
      }
    }
  }
}

bool Executor::read_output(Running& r, int stream) {
  bool over = false;
  bool more = drain(r.out[stream], r.output_limit(), &over);
  if (over && r.killed_for == VerdictFacts::Kill::kNone) {
    r.mark_killed(VerdictFacts::Kill::kOutput);
    r.kill_job(*loop_);
  }
  return more;
}

void Executor::on_slot_output(std::vector<std::unique_ptr<Running>>& running, uint64_t slot_id,
                              int stream, uint64_t token) {
  Running* job = nullptr;
  for (auto& r : running) {
    if (!r->finished && r->slot && r->slot->id() == slot_id) job = r.get();
  }
  if (job == nullptr) {
    // The slot is idle (its last job's output was drained at its result) or gone (its pipe hung
    // up): its next job, if any, watches the pipe again.
    slot_output_watches_.erase(slot_id * 2 + stream);
    return;
  }
  // A job whose stream is not captured leaves the slot's pipe unused.
  if (job->out[stream].open && read_output(*job, stream)) {
    loop_->watch_readable(job->slot->output_read_fd(stream), token);
  } else {
    slot_output_watches_.erase(slot_id * 2 + stream);
  }
}

bool Executor::only_stuck_left(bool* fresh) const {
  *fresh = false;
  for (const auto& [serial, jail] : exiting_) {
    if (jail->survivors() == 0) return false;
    *fresh = *fresh || exiting_waited_.count(serial) == 0;
  }
  for (const auto& [id, pending] : rmdirs_) {
    if (pending.backoff_ns == 0) return false;
    *fresh = *fresh || !pending.waited;
  }
  return true;
}

void Executor::mark_stuck_waited() {
  for (const auto& [serial, jail] : exiting_) exiting_waited_.insert(serial);
  for (auto& [id, pending] : rmdirs_) pending.waited = true;
}

void Executor::finish_stuck() {
  const uint64_t deadline = monotonic_now_ns() + kStuckWaitMs * 1000000ull;
  for (;;) {
    for (auto it = exiting_.begin(); it != exiting_.end();) {
      if (!it->second->exited()) {
        ++it;
        continue;
      }
      try {
        it->second->reap();
      } catch (const Error& e) {
        fmt::print(stderr, "jailpool: {}\n", e.what());
      }
      it = exiting_.erase(it);
    }
    for (auto it = rmdirs_.begin(); it != rmdirs_.end();) {
      int rc = ::rmdir(it->second.path.c_str());
      if (rc < 0 && errno == EBUSY) {
        ++it;
        continue;
      }
      if (rc < 0 && errno != ENOENT) {
        fmt::print(stderr, "jailpool: rmdir {}: {}\n", it->second.path, std::strerror(errno));
      }
      it = rmdirs_.erase(it);
    }
    if ((exiting_.empty() && rmdirs_.empty()) || monotonic_now_ns() >= deadline) break;
    std::vector<pollfd> fds;
    for (const auto& [serial, jail] : exiting_) fds.push_back({jail->pidfd(), POLLIN, 0});
    ::poll(fds.data(), fds.size(), 10);
  }
  for (auto& [serial, jail] : exiting_) {
    fmt::print(stderr,
               "jailpool: a jail's init (pid {}) did not exit {} ms after its job ended: a "
               "process of the job outlives SIGKILL; its memory is leaked\n",
               jail->pid(), kStuckWaitMs);
    jail->abandon();
  }
  exiting_.clear();
  exiting_waited_.clear();
  for (auto& [id, pending] : rmdirs_) {
    fmt::print(stderr, "jailpool: cgroup {} still busy {} ms after its job ended, left in place\n",
               pending.path, kStuckWaitMs);
  }
  rmdirs_.clear();
}

JobResult Executor::run_one(const JobSpec& spec, const Profile& profile) {
  bool given = false;
  JobResult out;
  run(
      [&]() -> std::optional<JobRequest> {
        if (given) return std::nullopt;
        given = true;
        return JobRequest{spec, &profile};
      },
      [&](JobResult&& r) { out = std::move(r); });
  return out;
}

}  // namespace jailpool::sched
