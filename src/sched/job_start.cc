// Executor::start_job: a job from its request to its exec, in a fresh jail, a pooled template
// or a slot, with its cgroup, stdio, files, counters and timers in place.

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

namespace jailpool::sched {

using isolate::monotonic_now_ns;

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

UniqueFd open_host_file(const std::string& path, int flags, const char* field) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
  if (fd < 0) throw ConfigError(field, fmt::format("{}: {}", path, std::strerror(errno)));
  return UniqueFd(fd);
}

}  // namespace

void Executor::check_program(const isolate::JailConfig& config) {
  if (config.cwd_mount_fd >= 0 || config.argv.empty()) {  // files of the job's own
    isolate::check_program(config);
    return;
  }
  constexpr uint64_t kProgramCheckTtlNs = 1000000000;
  const std::string& program = config.argv[0];
  std::string key(reinterpret_cast<const char*>(&config.profile), sizeof config.profile);
  key += program;
  key += '\0';
  key += config.cwd;
  if (program.find('/') == std::string::npos) {
    for (const std::string& e : config.env) {
      if (e.compare(0, 5, "PATH=") == 0) key += "\0" + e;
    }
  }
  uint64_t now = monotonic_now_ns();
  auto it = programs_found_.find(key);
  if (it != programs_found_.end() && now < it->second) return;
  isolate::check_program(config);  // throws if not found
  if (programs_found_.size() >= 1024) programs_found_.clear();
  programs_found_[std::move(key)] = now + kProgramCheckTtlNs;
}

void Executor::prepare_files(const JobSpec& spec, const Profile& profile, PreparedFiles& out) {
  try {
    out.scratch = isolate::ScratchFs::create(profile);
    const uint32_t uid = profile.has_uid() ? profile.uid() : 65534;
    const uint32_t gid = profile.has_gid() ? profile.gid() : 65534;
    for (int i = 0; i < spec.copy_in_size(); ++i) {
      isolate::copy_in(out.scratch->fd(), spec.copy_in(i), fmt::format("copy_in[{}]", i), uid, gid);
    }
  } catch (const Error& e) {
    out.scratch.reset();
    out.error = e.what();
  } catch (const std::exception& e) {  // std::bad_alloc of a huge content
    out.scratch.reset();
    out.error = fmt::format("copy_in: {}", e.what());
  }
}

const Profile* Executor::intern_profile(const Profile& profile) {
  // Profile has no map field: its serialization is the same for the same content.
  std::string key = profile.SerializeAsString();
  auto it = interned_profiles_.find(key);
  if (it == interned_profiles_.end()) {
    it = interned_profiles_.emplace(std::move(key), std::make_unique<Profile>(profile)).first;
    watch_profile(*it->second);
  }
  return it->second.get();
}

void Executor::watch_profile(const Profile& profile) {
  if (!slots_ && !templates_) return;  // fresh jails mount their overlays per job
  if (!host_watch_tried_) {
    host_watch_tried_ = true;
    std::string why;
    host_watch_ = isolate::HostWatch::create(&why);
    if (!host_watch_) {
      fmt::print(stderr,
                 "jailpool: cannot watch the host's files ({}): a file replaced on the host may "
                 "keep its old content in slots and templates built before\n",
                 why);
    }
  }
  if (!host_watch_) return;
  try {
    host_watch_->add_profile(profile);
  } catch (const Error& e) {
    fmt::print(stderr,
               "jailpool: profile {}: {}: a file replaced there may keep its old content in "
               "slots and templates built before\n",
               profile.name().empty() ? "(unnamed)" : profile.name(), e.what());
  }
}

void Executor::notice_host_changes() {
  if (!host_watch_) return;
  bool changed = false;
  try {
    changed = host_watch_->changed();
  } catch (const Error& e) {
    fmt::print(stderr, "jailpool: {}\n", e.what());
    changed = true;
  }
  if (!changed) return;
  if (slots_) slots_->invalidate();
  if (templates_) templates_->invalidate();
}

void Executor::start_job(JobRequest request, std::vector<std::unique_ptr<Running>>& running,
                         PreparedFiles* prepared) {
  auto job = std::make_unique<Running>();
  Running& r = *job;
  r.serial = ++next_serial_;
  r.request_ns = prepared ? prepared->request_ns : monotonic_now_ns();
  r.request = std::move(request);
  const JobSpec& spec = r.request.spec;
  r.request.profile = intern_profile(*r.request.profile);
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
    config.survivor_notice_fd = survivor_notice_.get();
    if (prepared) {
      // Made and filled off the loop (run_loop's file work).
      if (!prepared->error.empty()) throw Error(prepared->error);
      r.scratch = std::move(prepared->scratch);
      config.cwd_mount_fd = r.scratch->fd();
    } else if (spec.copy_in_size() > 0 || spec.copy_out_size() > 0) {
      // The working directory with the job's input files, before check_program: the program
      // may be one of them (in memory only: dropped with the fd if the job does not start).
      PreparedFiles files;
      prepare_files(spec, profile, files);
      if (!files.error.empty()) throw Error(files.error);
      r.scratch = std::move(files.scratch);
      config.cwd_mount_fd = r.scratch->fd();
    }
    check_program(config);  // before anything is opened, created or started
    notice_host_changes();  // before a slot or template is taken

    // stdin: the front end's fd, a host file, jailpool's own stdin, or /dev/null.
    UniqueFd in;
    if (r.request.stdio[0]) {
      in = std::move(r.request.stdio[0]);
    } else if (spec.stdin().has_path()) {
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
      if (r.request.stdio[i + 1]) {  // the front end's: a pipe to another job of the group
        config.stdio[i + 1] = r.request.stdio[i + 1].get();
        r.job_side_fds.push_back(std::move(r.request.stdio[i + 1]));
        continue;
      }
      if (stream.has_path()) {
        int flags = O_WRONLY | O_CREAT | (stream.append() ? O_APPEND : O_TRUNC);
        UniqueFd fd = open_host_file(stream.path(), flags, field);
        config.stdio[i + 1] = fd.get();
        r.job_side_fds.push_back(std::move(fd));
        continue;
      }
      // Captured (the default) or relayed to jailpool's own stream: a pipe jailpool reads, the
      // slot's or one of the job's own (below).
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
    // A slot, for a job that needs nothing of its own but files (its CPUs pinned by a cgroup,
    // when it pins them; its files' tmpfs, r.scratch, put on the working directory by the
    // slot's init). Its filter is attached once to the slot's init, which lets the job's first
    // process take its cgroup namespace (SeccompReporting::slot_spawner).
    std::unique_ptr<isolate::Slot> slot;
    if (slots_ && spec.bind_size() == 0 && (!r.scratch || !profile.cwd().empty()) &&
        !spec.seccomp_log() && isolate::slot_capable(profile)) {
      reporting.slot_spawner = true;
      isolate::SeccompProgram* slot_seccomp = seccomp_cache_->get(&profile, reporting);
      slot = slots_->acquire(profile, slot_seccomp);
      config.seccomp = slot_seccomp;
      // The slot's last job's cgroup, when it can count this job exactly from here.
      if (slot->cgroup && slot->cgroup->reuse(cg_limits)) {
        r.cgroup = std::move(slot->cgroup);
        ++cgroups_reused_;
      }
      slot->cgroup.reset();  // not reusable: removed now (it is empty)
    }
    bool own_pinning = false;
    try {
      if (!r.cgroup) {
        r.cgroup = cgroup_pool_
                       ? cgroup_pool_->acquire(cg_limits)
                       : cgroups_->create(fmt::format("job-{}-{}", getpid(), r.serial), cg_limits);
      }
      r.cpu_parallelism = cpu_parallelism(r.limits, cpus_);
      if (!perf_support_) {
        perf_support_ = std::make_unique<isolate::PerfSupport>(
            isolate::probe_perf(r.cgroup->v2_dir_path(), false));
      }
      r.perf = open_job_counters(*perf_support_, r.cgroup->v2_dir_path(), r.result);
      own_pinning = r.limits.has_cpus() && !r.cgroup->pins_cpus();
    } catch (const Error&) {
      if (slot) slots_->release(std::move(slot));  // not started: still ready
      throw;
    }
    if (slot && own_pinning) {
      // Pinned by this thread's affinity at a fresh jail's clone: not in a slot.
      slots_->release(std::move(slot));
      config.seccomp = seccomp;
    }
    for (int i = 0; i < 2; ++i) {
      if (!r.out[i].open) continue;
      if (slot) {
        r.out[i].fd = slot->output_read_fd(i);
        config.stdio[i + 1] = slot->output_write_fd(i);
        continue;
      }
      int fds[2];
      if (pipe2(fds, O_CLOEXEC) < 0) throw_errno("pipe");
      r.out[i].owned.reset(fds[0]);
      r.out[i].fd = fds[0];
      fcntl(fds[0], F_SETFL, O_NONBLOCK);
      config.stdio[i + 1] = fds[1];
      r.job_side_fds.emplace_back(fds[1]);
    }
    if (slot) {
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
    if (!r.out[i].open) continue;
    if (!r.slot) {
      loop_->watch_readable(r.out[i].fd, make_token(r.serial, i == 0 ? kStdout : kStderr));
    } else if (slot_output_watches_.insert(r.slot->id() * 2 + i).second) {
      // The slot's pipe: its watch, once armed, outlives the job (on_slot_output).
      loop_->watch_readable(r.out[i].fd,
                            make_token(r.slot->id(), i == 0 ? kSlotStdout : kSlotStderr));
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
      // The task-clock, if it comes to that, is probed on the jobs' v2 parent (this job's
      // cgroup may be gone by then).
      std::string v2_parent;
      if (!cgroups_->info().v2_mount.empty()) v2_parent = cgroups_->parent_dirs().front();
      cpu_methods_ = std::make_unique<CpuLimitMethods>(options_.cpu_limit_method, v2_parent);
    }
    std::vector<int> job_cpus;
    if (r.limits.has_cpus()) job_cpus = isolate::parse_cpu_list(r.limits.cpus());
    r.cpu_watch = cpu_methods_->watch(cpu, r.cgroup->v2_dir_path(), std::move(job_cpus));
    loop_->timer_at(r.cpu_watch->first_check_ns(start), make_token(r.serial, kCpu));
  }
  running.push_back(std::move(job));
}

}  // namespace jailpool::sched
