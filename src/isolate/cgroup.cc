// cgroup backend: detection from /proc/self/mountinfo, parent setup, per-job cgroups.
//
// Kernel facts this relies on (kernel.md sections 1.5, 1.6, 2):
//   - cpu.stat usage_usec exists in every non-root v2 cgroup, no controller needed (4.15+).
//   - cgroup.kill: 5.14+. memory.peak: 5.19+. pids.peak: 6.1+ (v2 and v1). oom_kill in v1
//     memory.oom_control: 4.13+. All optional files are probed, never assumed.
//   - Control files are seq files: pread at offset 0 on a pre-opened fd re-generates them.
#include "isolate/cgroup.h"

#include <fcntl.h>
#include <fmt/core.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <thread>

#include "common/error.h"
#include "isolate/cgroup_parent.h"

namespace jailpool::isolate {

const char* to_string(CgroupMode mode) {
  switch (mode) {
    case CgroupMode::kV1:
      return "v1";
    case CgroupMode::kV2:
      return "v2";
    case CgroupMode::kHybrid:
      return "hybrid";
  }
  return "unknown";
}

namespace {

// The v1 controllers we recognise in a cgroup mount's super options (the rest are options).
constexpr std::string_view kV1Controllers[] = {
    "cpuset",  "cpu",      "cpuacct", "blkio", "io",   "memory", "devices",   "freezer",
    "net_cls", "net_prio", "hugetlb", "pids",  "rdma", "misc",   "perf_event"};

// ---------------------------------------------------------------------------------------------
// Small string and file helpers.

std::string path_join(std::string_view dir, std::string_view name) {
  std::string path(dir);
  if (path.empty() || path.back() != '/') path += '/';
  path += name;
  return path;
}

std::vector<std::string> split_words(std::string_view text) {
  std::vector<std::string> words;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t start = text.find_first_not_of(" \t\n", pos);
    if (start == std::string_view::npos) break;
    size_t end = text.find_first_of(" \t\n", start);
    if (end == std::string_view::npos) end = text.size();
    words.emplace_back(text.substr(start, end - start));
    pos = end;
  }
  return words;
}

bool contains(const std::vector<std::string>& words, std::string_view word) {
  return std::find(words.begin(), words.end(), word) != words.end();
}

std::optional<uint64_t> parse_u64(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// The value of the "key N" line of a flat-keyed file (cpu.stat, memory.events, ...).
std::optional<uint64_t> find_key(std::string_view text, std::string_view key) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    if (line.size() > key.size() && line.substr(0, key.size()) == key && line[key.size()] == ' ') {
      return parse_u64(line.substr(key.size() + 1));
    }
    pos = eol + 1;
  }
  return std::nullopt;
}

bool exists(const std::string& path) {
  return ::access(path.c_str(), F_OK) == 0;
}

UniqueFd open_file(const std::string& path, int flags) {
  UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC));
  if (!fd) throw_errno("open " + path);
  return fd;
}

// An invalid fd when the file does not exist (optional control files).
UniqueFd open_optional(const std::string& path, int flags) {
  UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC));
  if (!fd && errno != ENOENT) throw_errno("open " + path);
  return fd;
}

void write_fd(int fd, std::string_view data, const std::string& path) {
  ssize_t n;
  do {
    n = ::write(fd, data.data(), data.size());
  } while (n < 0 && errno == EINTR);
  if (n < 0) throw_errno("write " + path);
  if (static_cast<size_t>(n) != data.size()) throw Error("write " + path + ": short write");
}

void write_file(const std::string& path, std::string_view data) {
  UniqueFd fd = open_file(path, O_WRONLY);
  write_fd(fd.get(), data, path);
}

std::string read_file(const std::string& path) {
  UniqueFd fd = open_file(path, O_RDONLY);
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("read " + path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// Reads the file behind `fd` from offset 0 into buf (NUL-terminated); returns the length.
// A seq file returns less than asked only at its end, so a short read ends the loop.
size_t pread_all(int fd, char* buf, size_t cap, const std::string& path) {
  size_t len = 0;
  while (len + 1 < cap) {
    size_t want = cap - 1 - len;
    ssize_t n = ::pread(fd, buf + len, want, static_cast<off_t>(len));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("read " + path);
    }
    len += static_cast<size_t>(n);
    if (static_cast<size_t>(n) < want) break;
  }
  buf[len] = '\0';
  return len;
}

// Directory names we create: one path component, nothing the kernel would interpret.
void check_component(const std::string& name, std::string_view what) {
  if (name.empty() || name == "." || name == ".." || name.size() > 255 ||
      name.find_first_of("/\n") != std::string::npos) {
    throw Error(fmt::format("{} \"{}\": must be a single path component", what, name));
  }
}

void sleep_us(int usec) {
  std::this_thread::sleep_for(std::chrono::microseconds(usec));
}

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

// Reads the pids in dir/cgroup.procs. An empty list when the directory is gone.
std::vector<pid_t> read_procs(const std::string& dir) {
  std::string path = path_join(dir, "cgroup.procs");
  std::string text;
  try {
    text = read_file(path);
  } catch (const SysError& e) {
    if (e.err() == ENOENT) return {};
    throw;
  }
  std::vector<pid_t> pids;
  for (const std::string& word : split_words(text)) {
    if (auto v = parse_u64(word); v && *v > 0) pids.push_back(static_cast<pid_t>(*v));
  }
  return pids;
}

// One pass: SIGKILL every listed member. Returns false when the list was empty.
bool kill_listed(const std::string& dir, const std::string& match, const std::string& cg_path) {
  std::vector<pid_t> pids = read_procs(dir);
  for (pid_t pid : pids) kill_member(pid, match, cg_path);
  return !pids.empty();
}

// ---------------------------------------------------------------------------------------------
// Layout: which hierarchy serves what. Shared (copied) by the system and its jobs.

enum class Source { kNone, kV2, kV1 };

struct Hierarchy {
  bool v2 = false;
  std::string mount;
  std::string mount_root;  // as /proc/<pid>/cgroup shows paths
  std::string match;       // v1: a controller of the hierarchy (its /proc/<pid>/cgroup line)
  std::string parent_dir;
  std::string base;     // where the parent is made: the mount, or a delegated subtree in it
  bool memory = false;  // v1 roles
  bool pids = false;
  bool cpuacct = false;
  bool cpuset = false;
  bool cpu_bandwidth = false;
  // Joined only by jobs that ask for it (pinning, a CPU quota): its directory is made by
  // set_limits(), not for every job.
  bool on_demand = false;
  std::string cpuset_prefix;  // v1 cpuset: "cpuset." (or "" when mounted with noprefix)
  std::string cpuset_mems;    // v1 cpuset: the parent's mems, copied into each job's cgroup
};

struct Layout {
  std::string parent;
  std::optional<Hierarchy> v2;
  std::vector<Hierarchy> v1;  // distinct mounts, each with its roles
  Source cpu = Source::kNone;
  Source memory = Source::kNone;
  Source pids = Source::kNone;
  Source cpuset = Source::kNone;
  Source cpu_bandwidth = Source::kNone;
  bool cgroup_kill = false;
  uint64_t clk_tck = 100;
};

// ---------------------------------------------------------------------------------------------
// JobCgroup.

class JobCgroupImpl final : public JobCgroup {
 public:
  explicit JobCgroupImpl(const Layout& layout)
      : cpu_src_(layout.cpu),
        mem_src_(layout.memory),
        pids_src_(layout.pids),
        cpuset_src_(layout.cpuset),
        cpu_bw_src_(layout.cpu_bandwidth),
        cgroup_kill_(layout.cgroup_kill),
        clk_tck_(layout.clk_tck),
        parent_(layout.parent) {
    for (const Hierarchy& h : layout.v1) {
      if (h.cpuset || h.cpu_bandwidth) cpu_roles_.push_back(h);
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
  // The job's directory in an on-demand v1 hierarchy (made, and joined before exec, on first
  // use).
  std::string on_demand_dir(const Hierarchy& h);
  void set_cpuset(const std::string& cpus);
  void set_cpu_quota(uint32_t percent);
  void teardown() noexcept;

  Source cpu_src_, mem_src_, pids_src_, cpuset_src_, cpu_bw_src_;
  bool cgroup_kill_;
  uint64_t clk_tck_;
  std::string parent_;
  std::string name_;
  std::vector<Hierarchy> cpu_roles_;  // v1 hierarchies for cpuset or cpu bandwidth
  std::string v2_path_;
  bool pins_cpus_ = false;
  bool released_ = false;

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
    if (h.on_demand) continue;
    make_dir(h.parent_dir, name, h.mount_root, layout.parent, h.match, false);
    if (h.memory) mem_path = dirs_.back().path;
    if (h.pids) pids_path = dirs_.back().path;
    if (h.cpuacct) cpuacct_path = dirs_.back().path;
  }
  if (mem_src_ == Source::kV2) mem_path = v2_path;
  if (pids_src_ == Source::kV2) pids_path = v2_path;

  mem_path_ = mem_path;
  pids_path_ = pids_path;
  set_limits(limits);

  // The fds the hot path uses.
  if (layout.v2) {
    v2_dir_.reset(::open(v2_path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!v2_dir_) throw_errno("open " + v2_path);
    v2_procs_ = open_control(v2_path, "cgroup.procs", O_WRONLY, false);
    v2_events_ = open_control(v2_path, "cgroup.events", O_RDONLY, false);
  }
  for (const Dir& d : dirs_) {
    if (!d.v2) v1_procs_.push_back(open_control(d.path, "cgroup.procs", O_WRONLY, false));
  }
  if (cpu_src_ == Source::kV2) {
    cpu_ = open_control(v2_path, "cpu.stat", O_RDONLY, false);
  } else if (cpu_src_ == Source::kV1) {
    cpu_ = open_control(cpuacct_path, "cpuacct.usage", O_RDONLY, false);
    cpuacct_stat_ = open_control(cpuacct_path, "cpuacct.stat", O_RDONLY, false);
  }
  if (mem_src_ == Source::kV2) {
    mem_peak_ = open_control(mem_path, "memory.peak", O_RDONLY, true);  // 5.19+
    mem_events_ = open_control(mem_path, "memory.events", O_RDONLY, false);
  } else if (mem_src_ == Source::kV1) {
    mem_peak_ = open_control(mem_path, "memory.max_usage_in_bytes", O_RDONLY, false);
    mem_events_ = open_control(mem_path, "memory.oom_control", O_RDONLY, false);
    mem_failcnt_ = open_control(mem_path, "memory.failcnt", O_RDONLY, false);
  }
  if (pids_src_ != Source::kNone) {
    pids_peak_ = open_control(pids_path, "pids.peak", O_RDONLY, true);  // 6.1+
    pids_events_ = open_control(pids_path, "pids.events", O_RDONLY, false);
  }
}

CgroupStats JobCgroupImpl::read_stats() const {
  CgroupStats stats;
  char buf[1024];
  if (cpu_src_ == Source::kV2) {
    std::string_view text(buf, pread_all(cpu_.fd.get(), buf, sizeof buf, cpu_.path));
    stats.cpu_usec = find_key(text, "usage_usec").value_or(0);
    stats.cpu_user_usec = find_key(text, "user_usec").value_or(0);
    stats.cpu_sys_usec = find_key(text, "system_usec").value_or(0);
  } else if (cpu_src_ == Source::kV1) {
    std::string_view text(buf, pread_all(cpu_.fd.get(), buf, sizeof buf, cpu_.path));
    stats.cpu_usec = parse_u64(text).value_or(0) / 1000;
    text = std::string_view(buf,
                            pread_all(cpuacct_stat_.fd.get(), buf, sizeof buf, cpuacct_stat_.path));
    // USER_HZ ticks, sampled.
    stats.cpu_user_usec = find_key(text, "user").value_or(0) * 1000000 / clk_tck_;
    stats.cpu_sys_usec = find_key(text, "system").value_or(0) * 1000000 / clk_tck_;
  }

  if (mem_peak_.fd) {
    std::string_view text(buf, pread_all(mem_peak_.fd.get(), buf, sizeof buf, mem_peak_.path));
    stats.memory_peak_bytes = parse_u64(text);
    if (stats.memory_peak_bytes) {
      stats.memory_peak_source =
          mem_src_ == Source::kV2 ? MemoryPeakSource::kV2MemoryPeak : MemoryPeakSource::kV1MaxUsage;
    }
  }
  if (mem_events_.fd) {
    std::string_view text(buf, pread_all(mem_events_.fd.get(), buf, sizeof buf, mem_events_.path));
    stats.oom_kills = find_key(text, "oom_kill").value_or(0);  // both files use this key
    if (mem_src_ == Source::kV2) stats.memory_limit_hit = find_key(text, "max").value_or(0) > 0;
  }
  if (mem_failcnt_.fd) {
    std::string_view text(buf,
                          pread_all(mem_failcnt_.fd.get(), buf, sizeof buf, mem_failcnt_.path));
    stats.memory_limit_hit = parse_u64(text).value_or(0) > 0;
  }

  if (pids_peak_.fd) {
    std::string_view text(buf, pread_all(pids_peak_.fd.get(), buf, sizeof buf, pids_peak_.path));
    stats.pids_peak = parse_u64(text);
  }
  if (pids_events_.fd) {
    std::string_view text(buf,
                          pread_all(pids_events_.fd.get(), buf, sizeof buf, pids_events_.path));
    stats.pids_limit_hit = find_key(text, "max").value_or(0) > 0;
  }
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
  if (cpu_src_ == Source::kV2) return find_key(text, "usage_usec").value_or(0);
  return parse_u64(text).value_or(0) / 1000;
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
  if (!limits.cpuset_cpus.empty()) set_cpuset(limits.cpuset_cpus);
  if (limits.cpu_quota_percent) set_cpu_quota(*limits.cpu_quota_percent);
}

std::string JobCgroupImpl::on_demand_dir(const Hierarchy& h) {
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
  return path;
}

void JobCgroupImpl::set_cpuset(const std::string& cpus) {
  if (cpuset_src_ == Source::kV2) {
    write_file(path_join(v2_path_, "cpuset.cpus"), cpus);
  } else if (cpuset_src_ == Source::kV1) {
    for (const Hierarchy& h : cpu_roles_) {
      if (!h.cpuset) continue;
      std::string dir = on_demand_dir(h);
      write_file(path_join(dir, h.cpuset_prefix + "cpus"), cpus);
      // Joined by the job's first process before exec, like the other v1 hierarchies.
      bool joined = false;
      for (const File& f : v1_procs_) joined = joined || f.path == path_join(dir, "cgroup.procs");
      if (!joined) v1_procs_.push_back(open_control(dir, "cgroup.procs", O_WRONLY, false));
    }
  } else {
    return;  // no cpuset controller: the caller pins with sched_setaffinity
  }
  pins_cpus_ = true;
}

void JobCgroupImpl::set_cpu_quota(uint32_t percent) {
  uint64_t quota_us = uint64_t{percent} * kCpuPeriodUs / 100;
  if (cpu_bw_src_ == Source::kV2) {
    write_file(path_join(v2_path_, "cpu.max"), fmt::format("{} {}", quota_us, kCpuPeriodUs));
  } else if (cpu_bw_src_ == Source::kV1) {
    for (const Hierarchy& h : cpu_roles_) {
      if (!h.cpu_bandwidth) continue;
      std::string dir = on_demand_dir(h);
      write_file(path_join(dir, "cpu.cfs_period_us"), fmt::format("{}", kCpuPeriodUs));
      write_file(path_join(dir, "cpu.cfs_quota_us"), fmt::format("{}", quota_us));
      bool joined = false;
      for (const File& f : v1_procs_) joined = joined || f.path == path_join(dir, "cgroup.procs");
      if (!joined) v1_procs_.push_back(open_control(dir, "cgroup.procs", O_WRONLY, false));
    }
  } else {
    throw Error(fmt::format(
        "cgroup {}: a CPU quota needs the cpu controller, which is not available to jailpool "
        "(see jailpool check)",
        dirs_.empty() ? std::string("?") : dirs_.front().path));
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

// ---------------------------------------------------------------------------------------------
// CgroupSystem.

// How many CgroupSystems this process has: with just one, a job cgroup named for this pid
// cannot be one of its own when detect() finds it (see reclaim_job_cgroups).
std::atomic<int> g_live_systems{0};

class CgroupSystemImpl final : public CgroupSystem {
 public:
  // On a throw, ends the use of the parent as remove_parent_if_empty() does.
  CgroupSystemImpl(const std::string& parent, const std::vector<CgroupMount>& mounts,
                   const CgroupOptions& options) {
    ++g_live_systems;
    try {
      setup(parent, mounts, options);
    } catch (...) {
      try {
        remove_parent_if_empty();
      } catch (const Error&) {
        // The first error is the one to report.
      }
      --g_live_systems;
      throw;
    }
  }

  ~CgroupSystemImpl() override {
    try {
      remove_parent_if_empty();
    } catch (const Error&) {
      // Best effort: the next instance to end removes it.
    }
    --g_live_systems;
  }

  const CgroupInfo& info() const override { return info_; }

  std::unique_ptr<JobCgroup> create(const std::string& name, const CgroupLimits& limits) override {
    check_component(name, "cgroup name");
    auto job = std::make_unique<JobCgroupImpl>(layout_);
    job->build(layout_, name, limits);
    return job;
  }

  // Other instances may be using the parent (concurrent runs): only the one that gets the
  // parent's lock exclusively removes it, with the dead instances' job cgroups it still holds
  // (cgroup_parent.h).
  void remove_parent_if_empty() override {
    if (!lock_.try_exclusive()) return;  // also when it was called before
    std::vector<std::string> dirs = parent_dirs();
    dirs.insert(dirs.end(), unused_dirs_.begin(), unused_dirs_.end());
    int err = 0;
    std::string failed;
    auto remove_all = [&] {
      bool busy = false;
      for (const std::string& dir : dirs) {
        if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) continue;
        if (errno == EBUSY || errno == ENOTEMPTY) {
          busy = true;
        } else if (err == 0) {
          err = errno;
          failed = dir;
        }
      }
      return busy;
    };
    if (remove_all()) {
      // Job cgroups are left: a dead instance's, or this one's that a slow exit kept busy.
      cgroup_parent::reclaim_job_cgroups(dirs, /*own_pid_is_orphan=*/true);
      remove_all();
    }
    lock_.release();
    if (err != 0) throw_errno(err, "rmdir " + failed);
  }

  std::vector<std::string> parent_dirs() const override {
    std::vector<std::string> dirs;
    if (layout_.v2) dirs.push_back(layout_.v2->parent_dir);
    for (const Hierarchy& h : layout_.v1) dirs.push_back(h.parent_dir);
    return dirs;
  }

 private:
  void setup(const std::string& parent, const std::vector<CgroupMount>& mounts,
             const CgroupOptions& options);

  // The first parent made is the lock directory: it is made (or found) under the shared lock,
  // and the others after it.
  void make_parent(const std::string& dir) {
    if (!lock_.held()) {
      if (!lock_.acquire(dir)) preexisting_.push_back(dir);
    } else if (::mkdir(dir.c_str(), 0755) < 0) {
      if (errno != EEXIST) throw_errno("mkdir " + dir);
      preexisting_.push_back(dir);
    }
  }
  bool enable_v2_controller(const Hierarchy& h, const std::string& controller);

  Layout layout_;
  CgroupInfo info_{};
  cgroup_parent::SharedLock lock_;
  std::vector<std::string> preexisting_;  // parents that existed: they may hold leftovers
  std::vector<std::string> unused_dirs_;  // parents made, then not used (removed at the end)
};

// Makes `controller` available to the job cgroups: the root must pass it to the parent, and
// the parent to its children. Returns false (leaving the fallback to the caller) when the
// kernel refuses, e.g. EBUSY in a container whose cgroup-namespace root holds processes.
// jailpool's own v2 cgroup ("0::/path" in /proc/self/cgroup), "" when there is none.
std::string own_v2_cgroup() {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("0::", 0) == 0) return line.substr(3);
  }
  return {};
}

// True when every process in the cgroup `dir` runs the same program as this one (none at all
// included): other jailpools, started beside this one in a delegated subtree.
bool only_jailpools_in(const std::string& dir) {
  auto exe = [](const std::string& link) {
    char buf[4096];
    ssize_t n = ::readlink(link.c_str(), buf, sizeof buf);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  };
  const std::string self = exe("/proc/self/exe");
  for (pid_t pid : read_procs(dir)) {
    if (self.empty() || exe(fmt::format("/proc/{}/exe", pid)) != self) return false;
  }
  return true;
}

bool CgroupSystemImpl::enable_v2_controller(const Hierarchy& h, const std::string& controller) {
  std::string root_ctl = path_join(h.base, "cgroup.subtree_control");
  std::string parent_ctl = path_join(h.parent_dir, "cgroup.subtree_control");
  try {
    if (!contains(split_words(read_file(root_ctl)), controller)) {
      for (int waited_ms = 0;; waited_ms += 2) {
        try {
          write_file(root_ctl, "+" + controller);
          break;
        } catch (const SysError& e) {
          // A delegated subtree that still holds processes cannot pass controllers down
          // (EBUSY). Other jailpools started in it beside this one move into the leaf within
          // milliseconds: wait for them, not for anything else.
          if (e.err() != EBUSY || h.base == h.mount || waited_ms >= 1000 ||
              !only_jailpools_in(h.base)) {
            throw;
          }
          sleep_us(2000);
        }
      }
    }
    if (!contains(split_words(read_file(parent_ctl)), controller)) {
      write_file(parent_ctl, "+" + controller);
    }
  } catch (const SysError&) {
    return false;
  }
  return true;
}

void CgroupSystemImpl::setup(const std::string& parent, const std::vector<CgroupMount>& mounts,
                             const CgroupOptions& options) {
  layout_.parent = parent;
  long tck = ::sysconf(_SC_CLK_TCK);
  layout_.clk_tck = tck > 0 ? static_cast<uint64_t>(tck) : 100;

  const CgroupMount* v2_mount = nullptr;
  std::map<std::string, const CgroupMount*> v1_by_controller;  // the first mount wins
  for (const CgroupMount& m : mounts) {
    if (m.v2) {
      if (!v2_mount && options.use_v2) v2_mount = &m;
      continue;
    }
    for (const std::string& c : m.controllers) {
      if (v1_by_controller.emplace(c, &m).second) info_.v1_mounts.emplace_back(c, m.mount_point);
    }
  }
  if (!v2_mount && v1_by_controller.empty()) {
    throw Error("no cgroup or cgroup2 hierarchy is mounted (/proc/self/mountinfo)");
  }
  info_.mode = !v2_mount                  ? CgroupMode::kV1
               : v1_by_controller.empty() ? CgroupMode::kV2
                                          : CgroupMode::kHybrid;

  bool v2_memory = false, v2_pids = false;
  if (v2_mount) {
    Hierarchy h;
    h.v2 = true;
    h.mount = v2_mount->mount_point;
    h.mount_root = v2_mount->root;
    h.base = h.mount;
    // A delegated subtree (systemd Delegate=yes, a container's cgroup namespace): jailpool's
    // own cgroup is not the root. Its jobs then live below it, and jailpool moves itself into
    // a leaf first: a cgroup whose children get controllers may hold no process itself.
    std::string own = own_v2_cgroup();
    if (v1_by_controller.empty() && options.delegate && !own.empty() && own != "/") {
      // Started in the leaf already (an earlier jailpool moved there, or the service manager
      // starts us there): its parent is the subtree.
      const std::string leaf_name = "/" + parent + "-supervisor";
      bool in_leaf = own.size() > leaf_name.size() &&
                     own.compare(own.size() - leaf_name.size(), leaf_name.size(), leaf_name) == 0;
      if (in_leaf) own.resize(own.size() - leaf_name.size());
      std::string base_rel = own.substr(1);
      h.base = path_join(h.mount, base_rel);
      std::string leaf = path_join(h.base, parent + "-supervisor");
      if (!in_leaf) {
        if (::mkdir(leaf.c_str(), 0755) < 0 && errno != EEXIST) throw_errno("mkdir " + leaf);
        write_file(path_join(leaf, "cgroup.procs"), fmt::format("{}", getpid()));
      }
      layout_.parent = base_rel + "/" + parent;
      info_.delegated_subtree = own;
      info_.supervisor_leaf = leaf;
    }
    h.parent_dir = path_join(h.base, parent);
    make_parent(h.parent_dir);
    info_.v2_mount = h.mount;

    // Only the controllers this v2 hierarchy has (in hybrid mode a controller bound to a v1
    // mount never shows up here).
    auto root_controllers = split_words(read_file(path_join(h.base, "cgroup.controllers")));
    if (contains(root_controllers, "memory")) v2_memory = enable_v2_controller(h, "memory");
    if (contains(root_controllers, "pids")) v2_pids = enable_v2_controller(h, "pids");
    // cpu is optional (only cpu.stat's extra fields); never enabled in the root for it.
    std::string parent_ctl = path_join(h.parent_dir, "cgroup.subtree_control");
    auto offered = split_words(read_file(path_join(h.parent_dir, "cgroup.controllers")));
    if (contains(offered, "cpu") && !contains(split_words(read_file(parent_ctl)), "cpu")) {
      try {
        write_file(parent_ctl, "+cpu");
      } catch (const SysError&) {
        // e.g. EINVAL with realtime tasks around on older kernels; harmless.
      }
    }
    // cpuset (pinning) likewise: only when the root already passes it down.
    if (contains(offered, "cpuset") && !contains(split_words(read_file(parent_ctl)), "cpuset")) {
      try {
        write_file(parent_ctl, "+cpuset");
      } catch (const SysError&) {
        // Pinning then falls back to a v1 cpuset or sched_setaffinity.
      }
    }
    info_.v2_controllers = split_words(read_file(parent_ctl));
    if (contains(info_.v2_controllers, "cpuset")) layout_.cpuset = Source::kV2;
    if (contains(info_.v2_controllers, "cpu")) layout_.cpu_bandwidth = Source::kV2;
    if (exists(path_join(h.parent_dir, "cpu.stat"))) layout_.cpu = Source::kV2;  // 4.15+
    info_.has_cgroup_kill = exists(path_join(h.parent_dir, "cgroup.kill"));      // 5.14+
    layout_.cgroup_kill = info_.has_cgroup_kill && options.use_cgroup_kill;
    layout_.v2 = std::move(h);
  }

  // A v1 hierarchy for a role; mounts shared by several controllers appear once.
  auto use_v1 = [&](const char* controller, bool on_demand = false) -> Hierarchy* {
    auto it = v1_by_controller.find(controller);
    if (it == v1_by_controller.end()) return nullptr;
    const CgroupMount& m = *it->second;
    for (Hierarchy& h : layout_.v1) {
      if (h.mount == m.mount_point) return &h;
    }
    Hierarchy h;
    h.on_demand = on_demand;
    h.mount = m.mount_point;
    h.mount_root = m.root;
    h.match = controller;
    h.parent_dir = path_join(h.mount, parent);
    make_parent(h.parent_dir);
    layout_.v1.push_back(std::move(h));
    return &layout_.v1.back();
  };

  std::string mem_parent, pids_parent;
  if (v2_memory) {
    layout_.memory = Source::kV2;
    mem_parent = layout_.v2->parent_dir;
  } else if (Hierarchy* h = use_v1("memory")) {
    h->memory = true;
    layout_.memory = Source::kV1;
    mem_parent = h->parent_dir;
    // Where the host has swap, keep jobs' anonymous memory out of it: at the limit a job is
    // OOM-killed instead of being swapped past it. A v1 memory cgroup takes its parent's
    // swappiness when it is made, so jailpool's parent is set once for all jobs.
    std::string swappiness = path_join(mem_parent, "memory.swappiness");
    if (UniqueFd fd = open_optional(swappiness, O_WRONLY)) write_fd(fd.get(), "0", swappiness);
  }
  if (v2_pids) {
    layout_.pids = Source::kV2;
    pids_parent = layout_.v2->parent_dir;
  } else if (Hierarchy* h = use_v1("pids")) {
    h->pids = true;
    layout_.pids = Source::kV1;
    pids_parent = h->parent_dir;
  }
  if (layout_.cpu != Source::kV2) {
    if (Hierarchy* h = use_v1("cpuacct")) {
      h->cpuacct = true;
      layout_.cpu = Source::kV1;
    }
  }
  // Pinning and CPU bandwidth, when v2 does not serve them: v1 hierarchies that only the jobs
  // asking for them join (a cgroup each costs a mkdir, a write and an rmdir).
  if (layout_.cpuset == Source::kNone && (layout_.v2 || !layout_.v1.empty())) {
    size_t before = layout_.v1.size();
    if (Hierarchy* h = use_v1("cpuset", /*on_demand=*/true); h && h->on_demand) {
      try {
        // A new v1 cpuset cgroup starts with empty cpus and mems (no task may join it): give
        // our parent those of the hierarchy's root, unless an earlier run did.
        h->cpuset_prefix = exists(path_join(h->mount, "cpuset.cpus")) ? "cpuset." : "";
        for (const char* what : {"cpus", "mems"}) {
          std::string file = path_join(h->parent_dir, h->cpuset_prefix + what);
          if (split_words(read_file(file)).empty()) {
            write_file(file, read_file(path_join(h->mount, h->cpuset_prefix + what)));
          }
        }
        h->cpuset_mems = read_file(path_join(h->parent_dir, h->cpuset_prefix + "mems"));
        while (!h->cpuset_mems.empty() && h->cpuset_mems.back() == '\n') h->cpuset_mems.pop_back();
        h->cpuset = true;
        layout_.cpuset = Source::kV1;
      } catch (const SysError&) {
        // Pinning falls back to sched_setaffinity.
        if (layout_.v1.size() > before) {
          // Removed with the others at the end (another instance may be using it now).
          unused_dirs_.push_back(layout_.v1.back().parent_dir);
          layout_.v1.pop_back();
        }
      }
    }
  }
  if (layout_.cpu_bandwidth == Source::kNone && (layout_.v2 || !layout_.v1.empty())) {
    if (Hierarchy* h = use_v1("cpu", /*on_demand=*/true)) {
      if (exists(path_join(h->parent_dir, "cpu.cfs_quota_us"))) {  // CONFIG_CFS_BANDWIDTH
        h->cpu_bandwidth = true;
        layout_.cpu_bandwidth = Source::kV1;
      }
    }
  }
  if (!layout_.v2 && layout_.v1.empty()) {
    throw Error(
        "no usable cgroup hierarchy: no cgroup2 mount and no v1 memory, pids or cpuacct mount "
        "(/proc/self/mountinfo)");
  }

  auto source_name = [](Source source, const char* v2, const char* v1) {
    return source == Source::kV2 ? v2 : source == Source::kV1 ? v1 : "none";
  };
  info_.cpu_source = source_name(layout_.cpu, "v2 cpu.stat", "v1 cpuacct");
  info_.memory_source = source_name(layout_.memory, "v2 memory", "v1 memory");
  info_.pids_source = source_name(layout_.pids, "v2 pids", "v1 pids");
  info_.cpuset_source = source_name(layout_.cpuset, "v2 cpuset", "v1 cpuset");
  info_.cpu_bandwidth_source =
      source_name(layout_.cpu_bandwidth, "v2 cpu.max", "v1 cpu.cfs_quota_us");
  if (layout_.memory == Source::kV2) {
    info_.has_memory_peak = exists(path_join(mem_parent, "memory.peak"));  // 5.19+
  }
  if (layout_.pids != Source::kNone) {
    info_.has_pids_peak = exists(path_join(pids_parent, "pids.peak"));
  }
  // A parent that was there already may hold the job cgroups of an instance that died (kill -9:
  // its jobs died with their jail's init, the directories remain). A fresh one holds nothing.
  if (!preexisting_.empty()) {
    cgroup_parent::reclaim_job_cgroups(preexisting_, /*own_pid_is_orphan=*/g_live_systems == 1);
  }
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape_mount_field(std::string_view field) {
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size() && field[i + 1] >= '0' && field[i + 1] <= '3' &&
        field[i + 2] >= '0' && field[i + 2] <= '7' && field[i + 3] >= '0' && field[i + 3] <= '7') {
      out += static_cast<char>((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 +
                               (field[i + 3] - '0'));
      i += 3;
    } else {
      out += field[i];
    }
  }
  return out;
}

}  // namespace

std::vector<int> parse_cpu_list(std::string_view text) {
  std::vector<int> cpus;
  if (text.empty()) throw Error("empty CPU list (e.g. \"0\", \"0-1\" or \"0,2-3\")");
  auto number = [&](std::string_view word) {
    int value = -1;
    auto [end, ec] = std::from_chars(word.data(), word.data() + word.size(), value);
    if (word.empty() || ec != std::errc() || end != word.data() + word.size() || value < 0 ||
        value >= CPU_SETSIZE) {
      throw Error(fmt::format("\"{}\" is not a CPU list (e.g. \"0\", \"0-1\" or \"0,2-3\")", text));
    }
    return value;
  };
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string_view::npos) comma = text.size();
    std::string_view item = text.substr(pos, comma - pos);
    size_t dash = item.find('-');
    int first = number(item.substr(0, dash));
    int last = dash == std::string_view::npos ? first : number(item.substr(dash + 1));
    if (last < first) throw Error(fmt::format("\"{}\": the range {} is descending", text, item));
    for (int cpu = first; cpu <= last; ++cpu) cpus.push_back(cpu);
    pos = comma + 1;
  }
  std::sort(cpus.begin(), cpus.end());
  cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
  return cpus;
}

std::vector<int> online_cpus() {
  std::string text = read_file("/sys/devices/system/cpu/online");
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return parse_cpu_list(text);
}

std::vector<CgroupMount> parse_cgroup_mounts(std::string_view mountinfo) {
  std::vector<CgroupMount> mounts;
  size_t pos = 0;
  while (pos < mountinfo.size()) {
    size_t eol = mountinfo.find('\n', pos);
    if (eol == std::string_view::npos) eol = mountinfo.size();
    std::vector<std::string> f = split_words(mountinfo.substr(pos, eol - pos));
    pos = eol + 1;
    // id parent major:minor root mount-point options [optional...] - fstype source super-options
    auto sep = std::find(f.begin(), f.end(), "-");
    if (sep == f.end() || sep - f.begin() < 6 || f.end() - sep < 4) continue;
    const std::string& fstype = sep[1];
    if (fstype != "cgroup" && fstype != "cgroup2") continue;
    CgroupMount m;
    m.root = unescape_mount_field(f[3]);
    m.mount_point = unescape_mount_field(f[4]);
    m.v2 = fstype == "cgroup2";
    if (!m.v2) {
      std::string_view opts = sep[3];
      size_t p = 0;
      while (p <= opts.size()) {
        size_t comma = opts.find(',', p);
        if (comma == std::string_view::npos) comma = opts.size();
        std::string_view opt = opts.substr(p, comma - p);
        if (std::find(std::begin(kV1Controllers), std::end(kV1Controllers), opt) !=
            std::end(kV1Controllers)) {
          m.controllers.emplace_back(opt);
        }
        p = comma + 1;
      }
      if (m.controllers.empty()) continue;  // e.g. name=systemd: no controller of ours
    }
    mounts.push_back(std::move(m));
  }
  return mounts;
}

std::unique_ptr<CgroupSystem> CgroupSystem::detect(const std::string& parent,
                                                   const CgroupOptions& options) {
  check_component(parent, "cgroup parent");
  std::vector<CgroupMount> mounts = parse_cgroup_mounts(read_file("/proc/self/mountinfo"));
  return std::make_unique<CgroupSystemImpl>(parent, mounts, options);
}

}  // namespace jailpool::isolate
