// One job's cgroup in every hierarchy used (JobCgroup): made below jailpool's parents, its
// limits written, its accounting read through pre-opened control files, killed and removed.
//
// Kernel facts this relies on (kernel.md sections 1.5, 1.6, 2):
//   - cpu.stat usage_usec exists in every non-root v2 cgroup, no controller needed (4.15+).
//   - cgroup.kill: 5.14+. memory.peak: 5.19+. pids.peak: 6.1+ (v2 and v1). oom_kill in v1
//     memory.oom_control: 4.13+. All optional files are probed, never assumed.
//   - Control files are seq files: pread at offset 0 on a pre-opened fd re-generates them.
#include <fcntl.h>
#include <fmt/core.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>

#include "isolate/cgroup_internal.h"

namespace jailpool::isolate::cgroup_detail {

namespace {

// ---------------------------------------------------------------------------------------------
// Killing what a cgroup lists, without ever hitting a recycled pid.

// The path a hierarchy shows in /proc/<pid>/cgroup for a directory `parent/name` below a mount
// whose root is `mount_root`.
std::string proc_path(const std::string& mount_root, const std::string& parent,
                      const std::string& name) {
  std::string base = mount_root == "/" ? "" : mount_root;
  return base + "/" + parent + "/" + name;
}

// True when /proc/<pid>/cgroup puts pid in `cg_path` of the hierarchy selected by `match`
// (a v1 controller name, or "" for the v2 line "0::").
bool pid_in_cgroup(pid_t pid, const std::string& match, const std::string& cg_path) {
  std::string text;
  try {
    text = read_file(fmt::format("/proc/{}/cgroup", pid));
  } catch (const SysError&) {
    return false;  // gone
  }
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    std::string_view line(text.data() + pos, eol - pos);
    pos = eol + 1;
    size_t c1 = line.find(':');
    size_t c2 = c1 == std::string_view::npos ? c1 : line.find(':', c1 + 1);
    if (c2 == std::string_view::npos) continue;
    std::string_view id = line.substr(0, c1);
    std::string_view ctrls = line.substr(c1 + 1, c2 - c1 - 1);
    std::string_view path = line.substr(c2 + 1);
    bool hierarchy_matches;
    if (match.empty()) {
      hierarchy_matches = id == "0" && ctrls.empty();
    } else {
      hierarchy_matches = false;
      size_t p = 0;
      while (p <= ctrls.size()) {
        size_t comma = ctrls.find(',', p);
        if (comma == std::string_view::npos) comma = ctrls.size();
        if (ctrls.substr(p, comma - p) == match) hierarchy_matches = true;
        p = comma + 1;
      }
    }
    if (hierarchy_matches) return path == cg_path;
  }
  return false;
}

// SIGKILLs pid if it is (still) a member of the cgroup. The pidfd is taken before the
// membership check, so the signal goes to the process that was checked or to nobody.
void kill_member(pid_t pid, const std::string& match, const std::string& cg_path) {
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));  // 5.3+
  if (pidfd < 0 && errno == ESRCH) return;
  UniqueFd owner(pidfd);
  if (!pid_in_cgroup(pid, match, cg_path)) return;
  if (owner) {
    ::syscall(SYS_pidfd_send_signal, owner.get(), SIGKILL, nullptr, 0);  // 5.1+
  } else {
    ::kill(pid, SIGKILL);  // kernels without pidfd_open: a tiny pid-reuse window remains
  }
}

// One pass: SIGKILL every listed member. Returns false when the list was empty.
bool kill_listed(const std::string& dir, const std::string& match, const std::string& cg_path) {
  std::vector<pid_t> pids = read_procs(dir);
  for (pid_t pid : pids) kill_member(pid, match, cg_path);
  return !pids.empty();
}

// ---------------------------------------------------------------------------------------------
// JobCgroup.

class JobCgroupImpl final : public JobCgroup {
 public:
  JobCgroupImpl(const Layout& layout, std::shared_ptr<OnDemandParents> on_demand)
      : cpu_src_(layout.cpu),
        mem_src_(layout.memory),
        pids_src_(layout.pids),
        cpuset_src_(layout.cpuset),
        cpu_bw_src_(layout.cpu_bandwidth),
        cgroup_kill_(layout.cgroup_kill),
        clk_tck_(layout.clk_tck),
        parent_(layout.parent),
        on_demand_(std::move(on_demand)) {
    for (const Hierarchy& h : layout.v1) {
      if (h.cpu_bandwidth) cpu_roles_.push_back(h);
    }
  }

  ~JobCgroupImpl() override { teardown(); }

  // Called once by CgroupSystemImpl::create. On a throw the destructor removes what was made.
  void build(const Layout& layout, const std::string& name, const CgroupLimits& limits);

  int v2_dir_fd() const override { return v2_dir_.get(); }
  const std::string& v2_dir_path() const override { return v2_path_; }
  bool pins_cpus() const override { return pins_cpus_; }

  std::vector<int> attach_fds(bool include_v2) const override {
    std::vector<int> fds;
    if (include_v2 && v2_procs_.fd) fds.push_back(v2_procs_.fd.get());
    for (const File& f : v1_procs_) fds.push_back(f.fd.get());
    return fds;
  }

  bool reuse(const CgroupLimits& limits) override;
  CgroupStats read_stats() const override;
  uint64_t read_cpu_usec() const override;
  void kill_all() override;
  bool populated() const override;
  std::vector<std::string> release_dirs() override;
  void set_limits(const CgroupLimits& limits) override;

 private:
  struct File {
    UniqueFd fd;
    std::string path;
  };
  struct Dir {
    std::string path;
    std::string cg_path;  // as in /proc/<pid>/cgroup
    std::string match;    // "" for v2
    bool v2 = false;
  };

  void make_dir(const std::string& parent_dir, const std::string& name, const std::string& root,
                const std::string& parent, const std::string& match, bool v2);
  static File open_control(const std::string& dir, const char* file, int flags, bool optional);
  // The job's directory in a v1 hierarchy for pinning or a quota: made on first use in an
  // on-demand one, and joined by the job's first process before exec.
  std::string cpu_role_dir(const Hierarchy& h);
  void set_cpuset(const std::string& cpus);
  void set_cpu_quota(uint32_t percent);
  void teardown() noexcept;

  Source cpu_src_, mem_src_, pids_src_, cpuset_src_, cpu_bw_src_;
  bool cgroup_kill_;
  uint64_t clk_tck_;
  std::string parent_;
  std::string name_;
  std::shared_ptr<OnDemandParents> on_demand_;
  std::vector<Hierarchy> cpu_roles_;  // v1 hierarchies every job joins that give cpu bandwidth
  std::string v2_path_;
  bool pins_cpus_ = false;
  bool released_ = false;

  // For reuse(): the limits written (memory and pids; a cpuset or a quota makes the cgroup
  // single-use), and the counters at the current job's start, which the readers subtract (all
  // zero in a fresh cgroup).
  CgroupLimits written_;
  bool single_use_ = false;
  bool peak_resettable_ = false;  // mem_peak_ is open for writing: v1, or v2 on 6.12+
  struct Base {
    uint64_t cpu_usec = 0, cpu_user_usec = 0, cpu_sys_usec = 0;
    uint64_t memory_usage = 0;  // at the peak's reset
    uint64_t oom_kills = 0;
    uint64_t memory_max = 0;            // v2 memory.events max, v1 memory.failcnt
    uint64_t pids_max = 0;              // pids.events max
    std::optional<uint64_t> pids_peak;  // never reset
  } base_;
  // The raw counters of the last read_stats() (reuse() takes them as the next baselines).
  mutable std::optional<Base> last_;
  // The raw counters (cumulative, never subtracted) read into `base` by one pass.
  void read_counters(Base& base) const;

  std::string mem_path_, pids_path_;
  std::vector<Dir> dirs_;  // v2 first; one level each, so any order is deepest-first
  UniqueFd v2_dir_;
  File v2_procs_, v2_events_;
  std::vector<File> v1_procs_;
  File cpu_;           // v2 cpu.stat or v1 cpuacct.usage
  File cpuacct_stat_;  // v1 only
  File mem_peak_;      // memory.peak or memory.max_usage_in_bytes
  File mem_events_;    // memory.events or memory.oom_control
  File mem_failcnt_;   // v1 only
  File pids_peak_;     // optional
  File pids_events_;
};

void JobCgroupImpl::make_dir(const std::string& parent_dir, const std::string& name,
                             const std::string& root, const std::string& parent,
                             const std::string& match, bool v2) {
  std::string path = path_join(parent_dir, name);
  if (::mkdir(path.c_str(), 0755) < 0) throw_errno("mkdir " + path);
  dirs_.push_back(Dir{path, proc_path(root, parent, name), match, v2});
}

JobCgroupImpl::File JobCgroupImpl::open_control(const std::string& dir, const char* file, int flags,
                                                bool optional) {
  std::string path = path_join(dir, file);
  UniqueFd fd = optional ? open_optional(path, flags) : open_file(path, flags);
  return File{std::move(fd), std::move(path)};
}

void JobCgroupImpl::build(const Layout& layout, const std::string& name,
                          const CgroupLimits& limits) {
  // Directories first (all of them, so a failure below removes each).
  name_ = name;
  std::string v2_path, mem_path, pids_path, cpuacct_path;
  if (layout.v2) {
    make_dir(layout.v2->parent_dir, name, layout.v2->mount_root, layout.parent, "", true);
    v2_path = dirs_.back().path;
    v2_path_ = v2_path;
  }
  for (const Hierarchy& h : layout.v1) {
    make_dir(h.parent_dir, name, h.mount_root, layout.parent, h.match, false);
    if (h.memory) mem_path = dirs_.back().path;
    if (h.pids) pids_path = dirs_.back().path;
    if (h.cpuacct) cpuacct_path = dirs_.back().path;
  }
  if (mem_src_ == Source::kV2) mem_path = v2_path;
  if (pids_src_ == Source::kV2) pids_path = v2_path;

  mem_path_ = mem_path;
  pids_path_ = pids_path;
  for (const Dir& d : dirs_) {
    if (!d.v2) v1_procs_.push_back(open_control(d.path, "cgroup.procs", O_WRONLY, false));
  }
  // After those: a cpuset or cpu directory it makes adds its own.
  set_limits(limits);

  // The fds the hot path uses.
  if (layout.v2) {
    v2_dir_.reset(::open(v2_path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!v2_dir_) throw_errno("open " + v2_path);
    v2_procs_ = open_control(v2_path, "cgroup.procs", O_WRONLY, false);
    v2_events_ = open_control(v2_path, "cgroup.events", O_RDONLY, false);
  }
  if (cpu_src_ == Source::kV2) {
    cpu_ = open_control(v2_path, "cpu.stat", O_RDONLY, false);
  } else if (cpu_src_ == Source::kV1) {
    cpu_ = open_control(cpuacct_path, "cpuacct.usage", O_RDONLY, false);
    cpuacct_stat_ = open_control(cpuacct_path, "cpuacct.stat", O_RDONLY, false);
  }
  if (mem_src_ == Source::kV2) {
    // Writable (a reset through this fd, for reuse()) from 6.12; read-only before, and absent
    // before 5.19.
    mem_peak_ = open_control(mem_path, "memory.peak", O_RDWR, true);
    peak_resettable_ = static_cast<bool>(mem_peak_.fd);
    if (!mem_peak_.fd) mem_peak_ = open_control(mem_path, "memory.peak", O_RDONLY, true);
    mem_events_ = open_control(mem_path, "memory.events", O_RDONLY, false);
  } else if (mem_src_ == Source::kV1) {
    // Writing 0 resets the peak to the current usage (reuse()).
    mem_peak_ = open_control(mem_path, "memory.max_usage_in_bytes", O_RDWR, false);
    peak_resettable_ = true;
    mem_events_ = open_control(mem_path, "memory.oom_control", O_RDONLY, false);
    mem_failcnt_ = open_control(mem_path, "memory.failcnt", O_RDONLY, false);
  }
  if (pids_src_ != Source::kNone) {
    pids_peak_ = open_control(pids_path, "pids.peak", O_RDONLY, true);  // 6.1+
    pids_events_ = open_control(pids_path, "pids.events", O_RDONLY, false);
  }
}

namespace {
uint64_t minus(uint64_t value, uint64_t base) {
  return value > base ? value - base : 0;
}
}  // namespace

void JobCgroupImpl::read_counters(Base& base) const {
  char buf[1024];
  if (cpu_src_ == Source::kV2) {
    std::string_view text(buf, pread_all(cpu_.fd.get(), buf, sizeof buf, cpu_.path));
    base.cpu_usec = find_key(text, "usage_usec").value_or(0);
    base.cpu_user_usec = find_key(text, "user_usec").value_or(0);
    base.cpu_sys_usec = find_key(text, "system_usec").value_or(0);
  } else if (cpu_src_ == Source::kV1) {
    std::string_view text(buf, pread_all(cpu_.fd.get(), buf, sizeof buf, cpu_.path));
    base.cpu_usec = parse_u64(text).value_or(0) / 1000;
    text = std::string_view(buf,
                            pread_all(cpuacct_stat_.fd.get(), buf, sizeof buf, cpuacct_stat_.path));
    base.cpu_user_usec = find_key(text, "user").value_or(0) * 1000000 / clk_tck_;
    base.cpu_sys_usec = find_key(text, "system").value_or(0) * 1000000 / clk_tck_;
  }
  if (mem_events_.fd) {
    std::string_view text(buf, pread_all(mem_events_.fd.get(), buf, sizeof buf, mem_events_.path));
    base.oom_kills = find_key(text, "oom_kill").value_or(0);
    if (mem_src_ == Source::kV2) base.memory_max = find_key(text, "max").value_or(0);
  }
  if (mem_failcnt_.fd) {
    std::string_view text(buf,
                          pread_all(mem_failcnt_.fd.get(), buf, sizeof buf, mem_failcnt_.path));
    base.memory_max = parse_u64(text).value_or(0);
  }
  if (pids_events_.fd) {
    std::string_view text(buf,
                          pread_all(pids_events_.fd.get(), buf, sizeof buf, pids_events_.path));
    base.pids_max = find_key(text, "max").value_or(0);
  }
  if (pids_peak_.fd) {
    std::string_view text(buf, pread_all(pids_peak_.fd.get(), buf, sizeof buf, pids_peak_.path));
    base.pids_peak = parse_u64(text);
  }
}

bool JobCgroupImpl::reuse(const CgroupLimits& limits) {
  if (released_ || single_use_ || !peak_resettable_ ||
      limits.memory_bytes != written_.memory_bytes || limits.pids != written_.pids ||
      !limits.cpuset_cpus.empty() || limits.cpu_quota_percent) {
    return false;
  }
  try {
    // The counters of the last read_stats(), made once every process had left (nothing has
    // changed them since), else read now.
    Base base;
    if (last_) {
      base = *last_;
    } else {
      read_counters(base);
    }
    if (pids_peak_.fd && base.pids_peak.value_or(UINT64_MAX) > 1) return false;
    char buf[128];
    if (mem_peak_.fd) {
      // v1: the peak becomes the current usage; v2 (6.12+): this fd's peak does. The usage
      // left (page cache the last jobs read, charged here) is the new job's zero.
      write_fd(mem_peak_.fd.get(), mem_src_ == Source::kV1 ? "0" : "reset", mem_peak_.path);
      std::string_view text(buf, pread_all(mem_peak_.fd.get(), buf, sizeof buf, mem_peak_.path));
      base.memory_usage = parse_u64(text).value_or(0);
    }
    base_ = base;
    last_.reset();
  } catch (const Error&) {
    return false;
  }
  return true;
}

CgroupStats JobCgroupImpl::read_stats() const {
  Base raw;
  read_counters(raw);
  CgroupStats stats;
  stats.cpu_usec = minus(raw.cpu_usec, base_.cpu_usec);
  stats.cpu_user_usec = minus(raw.cpu_user_usec, base_.cpu_user_usec);
  stats.cpu_sys_usec = minus(raw.cpu_sys_usec, base_.cpu_sys_usec);
  if (mem_peak_.fd) {
    char buf[128];
    std::string_view text(buf, pread_all(mem_peak_.fd.get(), buf, sizeof buf, mem_peak_.path));
    stats.memory_peak_bytes = parse_u64(text);
    if (stats.memory_peak_bytes) {
      *stats.memory_peak_bytes = minus(*stats.memory_peak_bytes, base_.memory_usage);
      stats.memory_peak_source =
          mem_src_ == Source::kV2 ? MemoryPeakSource::kV2MemoryPeak : MemoryPeakSource::kV1MaxUsage;
    }
  }
  stats.oom_kills = minus(raw.oom_kills, base_.oom_kills);
  stats.memory_limit_hit = raw.memory_max > base_.memory_max;
  stats.pids_peak = raw.pids_peak;
  stats.pids_limit_hit = raw.pids_max > base_.pids_max;
  last_ = raw;
  return stats;
}

uint64_t JobCgroupImpl::read_cpu_usec() const {
  if (cpu_src_ == Source::kNone) return 0;
  char buf[256];  // usage_usec is the first line of cpu.stat
  ssize_t n;
  do {
    n = ::pread(cpu_.fd.get(), buf, sizeof buf - 1, 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) throw_errno("read " + cpu_.path);
  std::string_view text(buf, static_cast<size_t>(n));
  if (cpu_src_ == Source::kV2)
    return minus(find_key(text, "usage_usec").value_or(0), base_.cpu_usec);
  return minus(parse_u64(text).value_or(0) / 1000, base_.cpu_usec);
}

void JobCgroupImpl::set_limits(const CgroupLimits& limits) {
  if (limits.memory_bytes && mem_src_ == Source::kNone) {
    throw Error(
        fmt::format("cgroup {}: a memory limit needs the memory controller, which is "
                    "not available (see jailpool check)",
                    dirs_.empty() ? std::string("?") : dirs_.front().path));
  }
  if (limits.pids && pids_src_ == Source::kNone) {
    throw Error(
        fmt::format("cgroup {}: a pids limit needs the pids controller, which is not "
                    "available (see jailpool check)",
                    dirs_.empty() ? std::string("?") : dirs_.front().path));
  }
  if (mem_src_ == Source::kV2) {
    if (limits.memory_bytes) {
      write_file(path_join(mem_path_, "memory.max"), fmt::format("{}", *limits.memory_bytes));
    }
    // No swap for jobs: absent without CONFIG_SWAP (or swapaccount=0).
    std::string swap = path_join(mem_path_, "memory.swap.max");
    if (UniqueFd fd = open_optional(swap, O_WRONLY)) write_fd(fd.get(), "0", swap);
  } else if (mem_src_ == Source::kV1 && limits.memory_bytes) {
    // Only limit_in_bytes: with memsw.limit set too, failcnt stays 0 on an anon OOM (6.18,
    // kernel.md trap 3), and there is no swap to limit anyway.
    write_file(path_join(mem_path_, "memory.limit_in_bytes"),
               fmt::format("{}", *limits.memory_bytes));
    // memory.swappiness 0 comes from jailpool's parent (see CgroupSystemImpl).
  }
  if (limits.pids) write_file(path_join(pids_path_, "pids.max"), fmt::format("{}", *limits.pids));
  if (limits.memory_bytes) written_.memory_bytes = limits.memory_bytes;
  if (limits.pids) written_.pids = limits.pids;
  if (!limits.cpuset_cpus.empty() || limits.cpu_quota_percent) single_use_ = true;
  if (!limits.cpuset_cpus.empty()) set_cpuset(limits.cpuset_cpus);
  if (limits.cpu_quota_percent) set_cpu_quota(*limits.cpu_quota_percent);
}

std::string JobCgroupImpl::cpu_role_dir(const Hierarchy& h) {
  for (const Dir& d : dirs_) {
    if (!d.v2 && d.match == h.match) return d.path;
  }
  make_dir(h.parent_dir, name_, h.mount_root, parent_, h.match, false);
  std::string path = dirs_.back().path;
  if (h.cpuset) {
    // A new v1 cpuset cgroup has empty cpus and mems, and no task may join it (ENOSPC) until
    // both are set: the mems are the parent's, the cpus are written by set_cpuset.
    write_file(path_join(path, h.cpuset_prefix + "mems"), h.cpuset_mems);
  }
  // Joined by the job's first process before exec, like the other v1 hierarchies.
  v1_procs_.push_back(open_control(path, "cgroup.procs", O_WRONLY, false));
  return path;
}

void JobCgroupImpl::set_cpuset(const std::string& cpus) {
  if (cpuset_src_ == Source::kV2) {
    write_file(path_join(v2_path_, "cpuset.cpus"), cpus);
  } else if (cpuset_src_ == Source::kV1) {
    std::string why;
    const Hierarchy* h = on_demand_->get(OnDemandParents::Role::kCpuset, &why);
    if (!h) return;  // the parent could not be made: the caller pins with sched_setaffinity
    write_file(path_join(cpu_role_dir(*h), h->cpuset_prefix + "cpus"), cpus);
  } else {
    return;  // no cpuset controller: the caller pins with sched_setaffinity
  }
  pins_cpus_ = true;
}

void JobCgroupImpl::set_cpu_quota(uint32_t percent) {
  uint64_t quota_us = uint64_t{percent} * kCpuPeriodUs / 100;
  std::string why;
  const Hierarchy* h = nullptr;
  if (cpu_bw_src_ == Source::kV1) {
    // A hierarchy every job joins (cpu mounted with cpuacct), else the on-demand one.
    h = cpu_roles_.empty() ? on_demand_->get(OnDemandParents::Role::kCpuBandwidth, &why)
                           : &cpu_roles_.front();
  }
  if (cpu_bw_src_ == Source::kV2) {
    write_file(path_join(v2_path_, "cpu.max"), fmt::format("{} {}", quota_us, kCpuPeriodUs));
  } else if (h) {
    std::string dir = cpu_role_dir(*h);
    write_file(path_join(dir, "cpu.cfs_period_us"), fmt::format("{}", kCpuPeriodUs));
    write_file(path_join(dir, "cpu.cfs_quota_us"), fmt::format("{}", quota_us));
  } else {
    throw Error(fmt::format(
        "cgroup {}: a CPU quota needs the cpu controller, which is not available to jailpool "
        "(see jailpool check){}",
        dirs_.empty() ? std::string("?") : dirs_.front().path, why.empty() ? "" : ": " + why));
  }
}

void JobCgroupImpl::kill_all() {
  for (const Dir& d : dirs_) {
    if (!d.v2) continue;
    if (cgroup_kill_) {
      write_file(path_join(d.path, "cgroup.kill"), "1");
      return;
    }
    for (int pass = 0; pass < 200 && kill_listed(d.path, d.match, d.cg_path); ++pass) {
      sleep_us(500);
    }
    return;
  }
  // Pure v1: every hierarchy, since a process may have attached itself to only some.
  for (const Dir& d : dirs_) {
    for (int pass = 0; pass < 200 && kill_listed(d.path, d.match, d.cg_path); ++pass) {
      sleep_us(500);
    }
  }
}

bool JobCgroupImpl::populated() const {
  if (v2_events_.fd) {
    char buf[128];
    std::string_view text(buf, pread_all(v2_events_.fd.get(), buf, sizeof buf, v2_events_.path));
    return find_key(text, "populated").value_or(0) != 0;
  }
  for (const Dir& d : dirs_) {
    if (!read_procs(d.path).empty()) return true;
  }
  return false;
}

std::vector<std::string> JobCgroupImpl::release_dirs() {
  v2_dir_.reset();
  v2_procs_ = File{};
  v2_events_ = File{};
  v1_procs_.clear();
  cpu_ = File{};
  cpuacct_stat_ = File{};
  mem_peak_ = File{};
  mem_events_ = File{};
  mem_failcnt_ = File{};
  pids_peak_ = File{};
  pids_events_ = File{};
  std::vector<std::string> dirs;
  if (!released_) {
    for (const Dir& d : dirs_) dirs.push_back(d.path);
  }
  released_ = true;
  return dirs;
}

void JobCgroupImpl::teardown() noexcept {
  if (released_ || dirs_.empty()) return;
  try {
    if (!v2_events_.fd || populated()) kill_all();
  } catch (...) {
    // Best effort; the rmdir loop below retries with per-directory kills.
  }
  // A killed task takes a moment to leave (about 4 ms for 10 processes here), so rmdir may
  // report EBUSY for a while. Give up after ~100 ms rather than block the caller.
  std::vector<const Dir*> left;
  for (const Dir& d : dirs_) left.push_back(&d);
  auto start = std::chrono::steady_clock::now();
  for (int round = 0;; ++round) {
    std::vector<const Dir*> busy;
    for (const Dir* d : left) {
      if (::rmdir(d->path.c_str()) < 0 && errno == EBUSY) busy.push_back(d);
    }
    left.swap(busy);
    if (left.empty()) return;
    auto elapsed = std::chrono::steady_clock::now() - start;
    if (elapsed > std::chrono::milliseconds(100)) return;
    if (round % 10 == 9) {
      // Something that was not reached by kill_all (e.g. a process in a v1 cgroup only).
      for (const Dir* d : left) {
        try {
          kill_listed(d->path, d->match, d->cg_path);
        } catch (...) {
        }
      }
    }
    sleep_us(1000);
  }
}

}  // namespace

std::unique_ptr<JobCgroup> make_job_cgroup(const Layout& layout,
                                           std::shared_ptr<OnDemandParents> on_demand,
                                           const std::string& name, const CgroupLimits& limits) {
  auto job = std::make_unique<JobCgroupImpl>(layout, std::move(on_demand));
  job->build(layout, name, limits);
  return job;
}

}  // namespace jailpool::isolate::cgroup_detail
