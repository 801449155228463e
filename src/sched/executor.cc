#include "sched/executor.h"

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
#include <tuple>
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
#include "sched/submission_queue.h"

namespace jailpool::sched {

using isolate::monotonic_now_ns;

namespace {

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
};
uint64_t make_token(uint64_t serial, TokenKind kind) {
  return serial << 8 | kind;
}

constexpr size_t kDefaultCaptureLimit = 64ull << 20;
constexpr int kRmdirRetries = 200;  // 1 ms apart

const char* signal_name(int sig) {
  const char* name = sigabbrev_np(sig);
  return name != nullptr ? name : "?";
}

std::string format_ms(uint64_t us) {
  return fmt::format("{:.3f} s", static_cast<double>(us) / 1e6);
}

}  // namespace

Status decide_status(const VerdictFacts& f) {
  using Kill = VerdictFacts::Kill;
  if (f.setup_failed) return SETUP_ERROR;
  switch (f.killed_for) {
    case Kill::kCpuTime:
      return TIME_LIMIT_EXCEEDED;
    case Kill::kWallTime:
      return WALL_TIME_LIMIT_EXCEEDED;
    case Kill::kOutput:
      return OUTPUT_LIMIT_EXCEEDED;
    case Kill::kInterrupted:
      return INTERNAL_ERROR;
    case Kill::kSeccomp:
      return SECCOMP_VIOLATION;
    case Kill::kNone:
      break;
  }
  // The OOM killer may pick a child, not the main process: any OOM kill is an MLE.
  if (f.oom_kills > 0) return MEMORY_LIMIT_EXCEEDED;
  bool over_cpu = f.cpu_limit_us && f.cpu_time_us > *f.cpu_limit_us;
  if (f.exited && f.signal != 0) {
    if (f.signal == SIGSYS && f.seccomp_enabled) return SECCOMP_VIOLATION;
    if (f.signal == SIGXFSZ) return OUTPUT_LIMIT_EXCEEDED;
    if (f.signal == SIGXCPU || (f.signal == SIGKILL && over_cpu)) return TIME_LIMIT_EXCEEDED;
  }
  if (over_cpu) return TIME_LIMIT_EXCEEDED;
  // With extra time a job may end by itself past its wall limit: still over it.
  if (f.wall_limit_us && f.wall_time_us > *f.wall_limit_us) return WALL_TIME_LIMIT_EXCEEDED;
  if (!f.exited) return INTERNAL_ERROR;
  if (f.signal != 0) return SIGNALED;
  return f.exit_code == 0 ? OK : NONZERO_EXIT;
}

std::string sanitize_utf8(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  size_t i = 0;
  while (i < in.size()) {
    unsigned char c = static_cast<unsigned char>(in[i]);
    size_t len = c < 0x80           ? 1
                 : (c >> 5) == 0x6  ? 2
                 : (c >> 4) == 0xe  ? 3
                 : (c >> 3) == 0x1e ? 4
                                    : 0;
    bool ok = len > 0 && i + len <= in.size();
    for (size_t k = 1; ok && k < len; ++k) {
      ok = (static_cast<unsigned char>(in[i + k]) & 0xc0) == 0x80;
    }
    if (ok && len > 1) {
      uint32_t cp = c & (0xff >> (len + 1));
      for (size_t k = 1; k < len; ++k)
        cp = cp << 6 | (static_cast<unsigned char>(in[i + k]) & 0x3f);
      static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
      ok = cp >= kMin[len] && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff);
    }
    if (ok) {
      out.append(in.substr(i, len));
      i += len;
    } else {
      out.append("\xef\xbf\xbd");
      ++i;
    }
  }
  return out;
}

// One output stream of a job that jailpool reads: captured into the result, or relayed to one
// of jailpool's own fds (CLI pass-through), counted against the output limit either way.
struct OutputPipe {
  UniqueFd read_end;
  bool capture = false;
  int relay_fd = -1;
  std::string data;
  uint64_t total = 0;
  bool truncated = false;
  bool open = false;
};

struct Executor::Running {
  uint64_t serial = 0;
  JobRequest request;
  Limits limits;
  JobResult result;
  std::unique_ptr<isolate::JobCgroup> cgroup;
  std::unique_ptr<isolate::JailTemplate> jail_template;
  std::unique_ptr<isolate::Jail> jail;
  // Or a slot (isolate/slot.h) running the job, with the job's side of its stdio held open
  // until the result (the slot's init copies them when it clones the job).
  std::unique_ptr<isolate::Slot> slot;
  std::vector<UniqueFd> slot_held_fds;
  void kill_job() {
    if (jail) jail->kill();
    if (slot) {
      slot->kill_job();
      if (cgroup) cgroup->kill_all();
    }
  }
  uint64_t exec_ns() const { return jail ? jail->exec_ns() : slot ? slot->exec_ns() : 0; }
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
    auto key = std::make_tuple(profile, how.log_allowed, how.cgroup_unshare);
    auto it = programs.find(key);
    if (it == programs.end())
      it = programs.emplace(key, isolate::compile_seccomp_cached(*profile, how, dir)).first;
    return &it->second;
  }
};

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
    if (options_.use_slots) slots_ = std::make_unique<pool::SlotPool>(options_.parallelism * 2);
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) cpus_ = std::max(1, CPU_COUNT(&set));
  seccomp_notify_ = isolate::seccomp_notify_available();
}

Executor::~Executor() {
  slots_.reset();
  templates_.reset();
  cgroup_pool_.reset();
  if (cgroups_) cgroups_->remove_parent_if_empty();
}

const char* Executor::loop_name() const {
  return loop_->name();
}

namespace {

std::vector<isolate::LaunchPlan::Rlimit> job_rlimits(const Limits& limits) {
  std::vector<isolate::LaunchPlan::Rlimit> out;
  // Root here may lack CAP_SYS_RESOURCE: never ask for more than jailpool's own hard limits
  // (read once: jailpool never changes them).
  static const std::array<rlim_t, RLIM_NLIMITS> hard = [] {
    std::array<rlim_t, RLIM_NLIMITS> out{};
    for (int r = 0; r < RLIM_NLIMITS; ++r) {
      rlimit current{};
      out[r] = getrlimit(r, &current) == 0 ? current.rlim_max : RLIM_INFINITY;
    }
    return out;
  }();
  auto add = [&](int resource, uint64_t value) {
    rlim_t v = value;
    if (hard[resource] != RLIM_INFINITY && v > hard[resource]) v = hard[resource];
    out.push_back({resource, {v, v}});
  };
  add(RLIMIT_CORE, 0);
  if (limits.has_cpu_time_ms()) {
    // Backstop only: jailpool enforces the CPU limit itself, to the millisecond.
    add(RLIMIT_CPU, (limits.cpu_time_ms() + limits.extra_time_ms() + 999) / 1000 + 1);
  }
  if (limits.has_output_bytes()) add(RLIMIT_FSIZE, limits.output_bytes());
  if (limits.has_open_files()) add(RLIMIT_NOFILE, limits.open_files());
  if (limits.has_stack_bytes()) add(RLIMIT_STACK, limits.stack_bytes());
  return out;
}

// How many CPUs a job can burn at once: the CPU limit's timer never fires later than the
// earliest moment the rest of the budget could be spent.
unsigned cpu_parallelism(const Limits& limits, unsigned cpus) {
  unsigned n = cpus;
  if (limits.has_cpus()) {
    n = std::min<unsigned>(n, isolate::parse_cpu_list(limits.cpus()).size());
  }
  if (limits.has_cpu_quota_percent()) {
    n = std::min<unsigned>(n, (limits.cpu_quota_percent() + 99) / 100);
  }
  return std::max(1u, n);
}

// Pins the calling thread to a CPU list for its lifetime, then restores its affinity: the
// fallback for limits.cpus where no cpuset controller is available (a jail's processes inherit
// the affinity of the thread that clones them; being its own, a job may widen it again).
class ScopedAffinity {
 public:
  explicit ScopedAffinity(const std::string& cpus) {
    if (sched_getaffinity(0, sizeof saved_, &saved_) < 0) throw_errno("sched_getaffinity");
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int cpu : isolate::parse_cpu_list(cpus)) CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) < 0) throw_errno("sched_setaffinity " + cpus);
  }
  ~ScopedAffinity() { sched_setaffinity(0, sizeof saved_, &saved_); }
  ScopedAffinity(const ScopedAffinity&) = delete;
  ScopedAffinity& operator=(const ScopedAffinity&) = delete;

 private:
  cpu_set_t saved_;
};

// The job's instructions and cycles counters, where there is a PMU. A failure here only loses
// the counts: the result says why there are none.
std::unique_ptr<isolate::JobPerfCounters> open_job_counters(const isolate::PerfSupport& support,
                                                            const std::string& cgroup_dir,
                                                            JobResult& result) {
  if (!support.hardware) return nullptr;
  try {
    return std::make_unique<isolate::JobPerfCounters>(cgroup_dir);
  } catch (const Error& e) {
    result.set_counters_unavailable(e.what());
    return nullptr;
  }
}

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

UniqueFd open_host_file(const std::string& path, int flags, const char* field) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
  if (fd < 0) throw ConfigError(field, fmt::format("{}: {}", path, std::strerror(errno)));
  return UniqueFd(fd);
}

}  // namespace

void Executor::start_job(JobRequest request, std::vector<std::unique_ptr<Running>>& running) {
  auto job = std::make_unique<Running>();
  Running& r = *job;
  r.serial = ++next_serial_;
  r.request_ns = monotonic_now_ns();
  r.request = std::move(request);
  const JobSpec& spec = r.request.spec;
  const Profile& profile = *r.request.profile;
  r.result.set_id(spec.id());
  try {
    validate_job(spec);
    r.limits = effective_limits(profile, spec);
    isolate::JailConfig config;
    config.profile = &profile;
    config.extra_binds.assign(spec.bind().begin(), spec.bind().end());
    config.argv.assign(spec.argv().begin(), spec.argv().end());
    config.env = effective_env(profile, spec);
    config.cwd = spec.cwd();
    config.rlimits = job_rlimits(r.limits);
    isolate::SeccompReporting reporting;
    reporting.name_violations = seccomp_notify_ && !profile.seccomp_unnamed_kill();
    reporting.log_allowed = spec.seccomp_log();
    if (spec.seccomp_log() && !seccomp_notify_) {
      throw ConfigError("seccomp_log", "needs seccomp user notification (Linux 5.5)");
    }
    isolate::SeccompProgram* seccomp = seccomp_cache_->get(&profile, reporting);
    r.seccomp_enabled = !seccomp->empty();
    r.seccomp_log = spec.seccomp_log();
    config.seccomp = seccomp;
    if (spec.copy_in_size() > 0 || spec.copy_out_size() > 0) {
      // The working directory with the job's input files, before check_program: the program
      // may be one of them (in memory only: dropped with the fd if the job does not start).
      r.scratch = isolate::ScratchFs::create(profile);
      const uint32_t uid = profile.has_uid() ? profile.uid() : 65534;
      const uint32_t gid = profile.has_gid() ? profile.gid() : 65534;
      for (int i = 0; i < spec.copy_in_size(); ++i) {
        isolate::copy_in(r.scratch->fd(), spec.copy_in(i), fmt::format("copy_in[{}]", i), uid, gid);
      }
      config.cwd_mount_fd = r.scratch->fd();
    }
    isolate::check_program(config);  // before anything is opened, created or started

    // stdin: a host file, jailpool's own stdin, or /dev/null.
    UniqueFd in;
    if (spec.stdin().has_path()) {
      in = open_host_file(spec.stdin().path(), O_RDONLY, "stdin");
    } else if (spec.stdin().has_inherit() && spec.stdin().inherit()) {
      int fd = fcntl(options_.inherit_fds[0], F_DUPFD_CLOEXEC, 3);
      if (fd < 0) throw_errno("dup stdin");
      in.reset(fd);
    }
    // Else the jail's own /dev/null (-1): the host's is one inode for every job, and POSIX
    // locks on it would be a channel between jobs.
    config.stdio[0] = in ? in.get() : -1;
    if (in) r.job_side_fds.push_back(std::move(in));
    for (int i = 0; i < 2; ++i) {
      const Stream& stream = i == 0 ? spec.stdout() : spec.stderr();
      const char* field = i == 0 ? "stdout" : "stderr";
      if (stream.has_path()) {
        int flags = O_WRONLY | O_CREAT | (stream.append() ? O_APPEND : O_TRUNC);
        UniqueFd fd = open_host_file(stream.path(), flags, field);
        config.stdio[i + 1] = fd.get();
        r.job_side_fds.push_back(std::move(fd));
        continue;
      }
      // Captured (the default) or relayed to jailpool's own stream: a pipe jailpool reads.
      int fds[2];
      if (pipe2(fds, O_CLOEXEC) < 0) throw_errno("pipe");
      r.out[i].read_end.reset(fds[0]);
      fcntl(fds[0], F_SETFL, O_NONBLOCK);
      UniqueFd write_end(fds[1]);
      config.stdio[i + 1] = write_end.get();
      r.job_side_fds.push_back(std::move(write_end));
      r.out[i].open = true;
      if (stream.has_inherit() && stream.inherit()) {
        r.out[i].relay_fd = options_.inherit_fds[i + 1];
      } else {
        r.out[i].capture = true;
      }
    }

    isolate::CgroupLimits cg_limits;
    if (r.limits.has_memory_bytes()) cg_limits.memory_bytes = r.limits.memory_bytes();
    if (r.limits.has_pids()) cg_limits.pids = r.limits.pids();
    if (r.limits.has_cpus()) cg_limits.cpuset_cpus = r.limits.cpus();
    if (r.limits.has_cpu_quota_percent())
      cg_limits.cpu_quota_percent = r.limits.cpu_quota_percent();
    r.cgroup = cgroup_pool_
                   ? cgroup_pool_->acquire(cg_limits)
                   : cgroups_->create(fmt::format("job-{}-{}", getpid(), r.serial), cg_limits);
    r.cpu_parallelism = cpu_parallelism(r.limits, cpus_);
    if (!perf_support_) {
      perf_support_ =
          std::make_unique<isolate::PerfSupport>(isolate::probe_perf(r.cgroup->v2_dir_path()));
    }
    r.perf = open_job_counters(*perf_support_, r.cgroup->v2_dir_path(), r.result);
    const bool own_pinning = r.limits.has_cpus() && !r.cgroup->pins_cpus();
    if (slots_ && spec.bind_size() == 0 && !r.scratch && !spec.seccomp_log() && !own_pinning &&
        isolate::slot_capable(profile)) {
      // A slot: the filter is attached once to its init, which lets the job's first process
      // take its cgroup namespace (SeccompReporting::cgroup_unshare).
      reporting.cgroup_unshare = true;
      config.seccomp = seccomp_cache_->get(&profile, reporting);
      std::unique_ptr<isolate::Slot> slot = slots_->acquire(profile, config.seccomp);
      try {
        slot->start(config, *r.cgroup);
      } catch (const Error&) {
        slots_->release(std::move(slot));  // not started: still ready
        throw;
      }
      r.slot = std::move(slot);
      r.slot_held_fds = std::move(r.job_side_fds);
    } else if (templates_ && spec.bind_size() == 0 && isolate::poolable(profile)) {
      r.jail_template = templates_->acquire(profile);
      config.from_template = r.jail_template.get();
    }
    // No cpuset controller: the jail's init inherits this thread's affinity at its clone.
    std::optional<ScopedAffinity> pinned;
    if (own_pinning) pinned.emplace(r.limits.cpus());
    if (!r.slot) r.jail = isolate::Jail::start(config, *r.cgroup);
  } catch (const ConfigError& e) {
    r.result.set_status(SETUP_ERROR);
    r.result.set_message(e.what());
  } catch (const Error& e) {
    r.result.set_status(SETUP_ERROR);
    r.result.set_message(e.what());
  }
  r.job_side_fds.clear();
  if (!r.jail && !r.slot) {
    if (r.jail_template) templates_->release(std::move(r.jail_template));
    r.scratch.reset();
    r.out[0].open = r.out[1].open = false;
    r.finished = true;
    running.push_back(std::move(job));
    return;
  }
  if (r.slot) {
    loop_->watch_readable(r.slot->done_fd(), make_token(r.serial, kSlot));
    if (!r.slot->death_watched) {
      loop_->watch_readable(r.slot->pidfd(), make_token(r.slot->pid(), kSlotDeath));
      r.slot->death_watched = true;
    }
  } else {
    loop_->watch_readable(r.jail->pidfd(), make_token(r.serial, kExit));
  }
  for (int i = 0; i < 2; ++i) {
    if (r.out[i].open) {
      loop_->watch_readable(r.out[i].read_end.get(),
                            make_token(r.serial, i == 0 ? kStdout : kStderr));
    }
  }
  uint64_t start = r.slot ? r.slot->start_ns() : r.jail->start_ns();
  if (r.limits.has_wall_time_ms()) {
    loop_->timer_at(start + (r.limits.wall_time_ms() + r.limits.extra_time_ms()) * 1000000ull,
                    make_token(r.serial, kWall));
  }
  if (r.limits.has_cpu_time_ms()) {
    CpuLimitParams cpu;
    cpu.limit_us = (r.limits.cpu_time_ms() + r.limits.extra_time_ms()) * 1000;
    cpu.parallelism = r.cpu_parallelism;
    cpu.tick_ns = kernel_tick_ns();
    // Kicks of the CPUs the job may run on, or the task-clock of its cgroup (opened near the
    // limit only), or U alone: whatever runs here (CpuLimitMethods), chosen once.
    if (!cpu_methods_) {
      cpu_methods_ = std::make_unique<CpuLimitMethods>(
          options_.cpu_limit_method, perf_support_ ? *perf_support_ : isolate::PerfSupport());
    }
    std::vector<int> job_cpus;
    if (r.limits.has_cpus()) job_cpus = isolate::parse_cpu_list(r.limits.cpus());
    r.cpu_watch = cpu_methods_->watch(cpu, r.cgroup->v2_dir_path(), std::move(job_cpus));
    loop_->timer_at(r.cpu_watch->first_check_ns(start), make_token(r.serial, kCpu));
  }
  running.push_back(std::move(job));
}

namespace {

// Reads what is available; returns false at EOF or error.
bool drain(OutputPipe& pipe, uint64_t limit, bool* over_limit) {
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(pipe.read_end.get(), buf, sizeof buf);
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

}  // namespace

void Executor::finish_job(Running& r, bool init_done) {
  uint64_t reaped_ns = monotonic_now_ns();
  isolate::JailOutcome outcome;
  if (r.slot) {
    // The slot's init reaped every process of the job (or died: then the job was lost).
    if (r.slot->result_ready()) outcome = r.slot->outcome();
    r.slot_held_fds.clear();
    if (r.slot->result_ready()) {
      slots_->release(std::move(r.slot));
    } else {
      slots_->discard(std::move(r.slot));
    }
  } else {
    outcome = init_done ? r.jail->outcome_before_reap() : r.jail->reap();
  }
  if (r.jail_template) templates_->release(std::move(r.jail_template));
  uint64_t output_limit =
      r.limits.has_output_bytes() ? r.limits.output_bytes() : kDefaultCaptureLimit;
  for (auto& pipe : r.out) {
    if (!pipe.open) continue;
    bool over = false;
    drain(pipe, output_limit, &over);
    if (over && r.killed_for == VerdictFacts::Kill::kNone)
      r.killed_for = VerdictFacts::Kill::kOutput;
    pipe.open = false;
    pipe.read_end.reset();
  }
  isolate::CgroupStats stats = r.cgroup->read_stats();

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
      res.set_message(fmt::format("output limit {} bytes exceeded", output_limit));
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
      res.set_message(
          fmt::format("killed by signal {} (SIG{})", facts.signal, signal_name(facts.signal)));
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
  res.set_stdout(sanitize_utf8(r.out[0].data));
  res.set_stderr(sanitize_utf8(r.out[1].data));
  res.set_stdout_truncated(r.out[0].truncated);
  res.set_stderr_truncated(r.out[1].truncated);
  if (r.scratch) {
    // Every process of the jail is dead (init reaped them all, and init writes no file):
    // nothing changes the files any more. The tmpfs is freed when its last fd, this one, is
    // closed and init's mount namespace is gone.
    if (!outcome.setup_failed) {
      for (const CopyOut& file : r.request.spec.copy_out()) {
        *res.add_files() = isolate::collect_file(r.scratch->fd(), file, output_limit);
      }
    }
    r.scratch.reset();
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
  struct PendingRmdir {
    std::string path;
    int tries = 0;
  };
  std::map<uint64_t, PendingRmdir> rmdirs;
  uint64_t next_rmdir = 0;
  bool source_done = false;
  bool wake_armed = false;
  std::vector<Completion> completions;

  auto teardown = [&](Running& r) {
    uint64_t t0 = monotonic_now_ns();
    if (r.cgroup) {
      for (auto& dir : r.cgroup->release_dirs()) {
        uint64_t id = ++next_rmdir;
        rmdirs[id] = {dir, 0};
        loop_->rmdir(dir, make_token(id, kRmdir));
      }
      r.cgroup.reset();
    }
    r.result.set_teardown_us((monotonic_now_ns() - t0) / 1000);
  };
  auto report = [&](Running& r) {
    teardown(r);
    on_result(std::move(r.result));
  };

  for (;;) {
    int stop = stop_.load(std::memory_order_relaxed);
    if (stop == 2) {
      for (auto& r : running) {
        if (!r->finished && (r->jail || r->slot) && r->killed_for == VerdictFacts::Kill::kNone) {
          r->mark_killed(VerdictFacts::Kill::kInterrupted);
          r->kill_job();
        }
      }
    }
    while (!source_done && stop == 0 && running.size() < options_.parallelism) {
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
      start_job(std::move(*request), running);
      Running& r = *running.back();
      if (r.finished) {
        report(r);
        running.pop_back();
      } else {
        by_serial[r.serial] = &r;
      }
    }
    if (running.empty() && (source_done || stop != 0) && rmdirs.empty() && exiting_.empty()) {
      break;
    }

    completions.clear();
    loop_->wait(completions, stop != 0 ? 100 : -1);
    for (const Completion& c : completions) {
      uint64_t serial = c.token >> 8;
      auto kind = static_cast<TokenKind>(c.token & 0xff);
      if (kind == kWake) {
        wake_armed = false;
        if (on_wake) on_wake();
        continue;
      }
      if (kind == kRmdir || kind == kRmdirRetry) {
        auto it = rmdirs.find(serial);
        if (it == rmdirs.end()) continue;
        if (kind == kRmdir && c.result == -EBUSY && it->second.tries < kRmdirRetries) {
          // A killed task leaves its cgroup a moment after it is reaped.
          ++it->second.tries;
          loop_->timer_at(monotonic_now_ns() + 1000000, make_token(serial, kRmdirRetry));
        } else if (kind == kRmdirRetry) {
          loop_->rmdir(it->second.path, make_token(serial, kRmdir));
        } else {
          if (c.result < 0 && c.result != -ENOENT) {
            fmt::print(stderr, "jailpool: rmdir {}: {}\n", it->second.path,
                       std::strerror(-c.result));
          }
          rmdirs.erase(it);
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
      if (kind == kExit) {
        auto exiting = exiting_.find(serial);
        if (exiting != exiting_.end()) {  // a job finished at its init's done: reap init now
          try {
            exiting->second->reap();
          } catch (const Error& e) {
            fmt::print(stderr, "jailpool: {}\n", e.what());
          }
          exiting_.erase(exiting);
          continue;
        }
      }
      auto it = by_serial.find(serial);
      if (it == by_serial.end()) continue;  // a stale timer of a finished job
      Running& r = *it->second;
      try {
        uint64_t output_limit =
            r.limits.has_output_bytes() ? r.limits.output_bytes() : kDefaultCaptureLimit;
        switch (kind) {
          case kStdout:
          case kStderr: {
            OutputPipe& pipe = r.out[kind == kStdout ? 0 : 1];
            if (!pipe.open) break;
            bool over = false;
            bool more = drain(pipe, output_limit, &over);
            if (over && r.killed_for == VerdictFacts::Kill::kNone) {
              r.mark_killed(VerdictFacts::Kill::kOutput);
              r.kill_job();
            }
            if (more) {
              loop_->watch_readable(pipe.read_end.get(), c.token);
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
              r.kill_job();
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
                r.kill_job();
              }
            } else {
              loop_->timer_at(check.next_ns, c.token);
            }
            break;
          }
          case kExit:
            finish_job(r, false);
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
          r.kill_job();
          r.slot_held_fds.clear();
          slots_->discard(std::move(r.slot));
        }
        r.result.set_status(INTERNAL_ERROR);
        r.result.set_message(e.what());
        r.finished = true;
      }
      if (r.finished) {
        by_serial.erase(r.serial);
        report(r);
        for (auto jt = running.begin(); jt != running.end(); ++jt) {
          if (jt->get() == &r) {
            running.erase(jt);
            break;
          }
        }
      }
    }
  }
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
