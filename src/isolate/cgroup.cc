// cgroup backend, detection and parents: the hierarchies from /proc/self/mountinfo, which one
// serves what, jailpool's parent cgroups and their lifecycle (CgroupSystem). One job's cgroup is
// in cgroup_job.cc, the helpers both use in cgroup_files.cc (cgroup_internal.h).
//
// Kernel facts this relies on (kernel.md sections 1.5, 1.6, 2):
//   - cpu.stat usage_usec exists in every non-root v2 cgroup, no controller needed (4.15+).
//   - cgroup.kill: 5.14+. memory.peak: 5.19+. pids.peak: 6.1+ (v2 and v1).
#include "isolate/cgroup.h"

#include <fcntl.h>
#include <fmt/core.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <fstream>
#include <map>

#include "common/error.h"
#include "isolate/cgroup_internal.h"
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

using namespace cgroup_detail;

// The v1 controllers we recognise in a cgroup mount's super options (the rest are options).
constexpr std::string_view kV1Controllers[] = {
    "cpuset",  "cpu",      "cpuacct", "blkio", "io",   "memory", "devices",   "freezer",
    "net_cls", "net_prio", "hugetlb", "pids",  "rdma", "misc",   "perf_event"};

// How many CgroupSystems this process has: with just one, a job cgroup named for this pid
// cannot be one of its own when detect() finds it (see reclaim_job_cgroups).
std::atomic<int> g_live_systems{0};

}  // namespace

// Beside g_live_systems, which it reads.
void cgroup_detail::OnDemandParents::make(Hierarchy& h) {
  if (::mkdir(h.parent_dir.c_str(), 0755) < 0) {
    if (errno != EEXIST) throw_errno("mkdir " + h.parent_dir);
    // It may hold the job cgroups of a dead instance (detect reclaims these only when the
    // lock directory was there already).
    cgroup_parent::reclaim_job_cgroups({h.parent_dir},
                                       /*own_pid_is_orphan=*/g_live_systems == 1);
  }
  if (!h.cpuset) return;
  // A new v1 cpuset cgroup starts with empty cpus and mems (no task may join it): give our
  // parent those of the hierarchy's root, unless another instance did.
  h.cpuset_prefix = exists(path_join(h.mount, "cpuset.cpus")) ? "cpuset." : "";
  for (const char* what : {"cpus", "mems"}) {
    std::string file = path_join(h.parent_dir, h.cpuset_prefix + what);
    if (split_words(read_file(file)).empty()) {
      write_file(file, read_file(path_join(h.mount, h.cpuset_prefix + what)));
    }
  }
  h.cpuset_mems = read_file(path_join(h.parent_dir, h.cpuset_prefix + "mems"));
  while (!h.cpuset_mems.empty() && h.cpuset_mems.back() == '\n') h.cpuset_mems.pop_back();
}

namespace {

// ---------------------------------------------------------------------------------------------
// CgroupSystem.

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
    return make_job_cgroup(layout_, on_demand_, name, limits);
  }

  // Other instances may be using the parent (concurrent runs): only the one that gets the
  // parent's lock exclusively removes it, with the dead instances' job cgroups it still holds
  // (cgroup_parent.h).
  void remove_parent_if_empty() override {
    on_demand_->close();                 // before the lock may go
    if (!lock_.try_exclusive()) return;  // also when it was called before
    // Every on-demand parent too, made by this instance or by another that has ended.
    std::vector<std::string> dirs = eager_parent_dirs();
    for (std::string& dir : on_demand_->all_dirs()) dirs.push_back(std::move(dir));
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

  // The parents every job joins, then the on-demand ones made so far.
  std::vector<std::string> parent_dirs() const override {
    std::vector<std::string> dirs = eager_parent_dirs();
    for (std::string& dir : on_demand_->made_dirs()) dirs.push_back(std::move(dir));
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
  std::vector<std::string> eager_parent_dirs() const {
    std::vector<std::string> dirs;
    if (layout_.v2) dirs.push_back(layout_.v2->parent_dir);
    for (const Hierarchy& h : layout_.v1) dirs.push_back(h.parent_dir);
    return dirs;
  }

  Layout layout_;
  std::shared_ptr<OnDemandParents> on_demand_ = std::make_shared<OnDemandParents>();
  CgroupInfo info_{};
  cgroup_parent::SharedLock lock_;
  std::vector<std::string> preexisting_;  // parents that existed: they may hold leftovers
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
  auto use_v1 = [&](const char* controller) -> Hierarchy* {
    auto it = v1_by_controller.find(controller);
    if (it == v1_by_controller.end()) return nullptr;
    const CgroupMount& m = *it->second;
    for (Hierarchy& h : layout_.v1) {
      if (h.mount == m.mount_point) return &h;
    }
    Hierarchy h;
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
  // asking for them join, their parents made on first use (OnDemandParents). Decided here from
  // the mounts alone: nothing is made or written.
  auto on_demand_v1 = [&](const char* controller) -> Hierarchy* {
    auto it = v1_by_controller.find(controller);
    if (it == v1_by_controller.end()) return nullptr;
    const CgroupMount& m = *it->second;
    for (const Hierarchy& h : layout_.v1) {
      if (h.mount == m.mount_point) return nullptr;  // joined by every job (see below for cpu)
    }
    Hierarchy h;
    h.mount = m.mount_point;
    h.mount_root = m.root;
    h.match = controller;
    h.parent_dir = path_join(h.mount, parent);
    return &on_demand_->add(h);
  };
  bool usable = layout_.v2 || !layout_.v1.empty();
  if (layout_.cpuset == Source::kNone && usable) {
    if (Hierarchy* h = on_demand_v1("cpuset")) {
      h->cpuset = true;
      layout_.cpuset = Source::kV1;
    }
  }
  bool bandwidth_every_job = false;
  if (layout_.cpu_bandwidth == Source::kNone && usable) {
    auto it = v1_by_controller.find("cpu");
    Hierarchy* every_job = nullptr;  // cpu mounted with a controller every job joins (cpuacct)
    for (Hierarchy& h : layout_.v1) {
      if (it != v1_by_controller.end() && h.mount == it->second->mount_point) every_job = &h;
    }
    if (every_job) {
      if (exists(path_join(every_job->parent_dir, "cpu.cfs_quota_us"))) {  // CFS_BANDWIDTH
        every_job->cpu_bandwidth = bandwidth_every_job = true;
        layout_.cpu_bandwidth = Source::kV1;
      }
    } else if (it != v1_by_controller.end() &&
               exists(path_join(it->second->mount_point, "cpu.cfs_quota_us"))) {
      // The hierarchy's own top cgroup has the file too (only writing it there is refused).
      Hierarchy* h = on_demand_->find(it->second->mount_point);
      if (!h) h = on_demand_v1("cpu");
      h->cpu_bandwidth = true;
      layout_.cpu_bandwidth = Source::kV1;
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
  info_.cpuset_source = source_name(layout_.cpuset, "v2 cpuset", "v1 cpuset, made on first use");
  info_.cpu_bandwidth_source = source_name(
      layout_.cpu_bandwidth, "v2 cpu.max",
      bandwidth_every_job ? "v1 cpu.cfs_quota_us" : "v1 cpu.cfs_quota_us, made on first use");
  if (layout_.memory == Source::kV2) {
    info_.has_memory_peak = exists(path_join(mem_parent, "memory.peak"));  // 5.19+
  }
  if (layout_.pids != Source::kNone) {
    info_.has_pids_peak = exists(path_join(pids_parent, "pids.peak"));
  }
  // A parent that was there already may hold the job cgroups of an instance that died (kill -9:
  // its jobs died with their jail's init, the directories remain). A fresh one holds nothing.
  // The on-demand parents too, should another instance have made them (an opendir each).
  if (!preexisting_.empty()) {
    std::vector<std::string> dirs = preexisting_;
    for (std::string& dir : on_demand_->all_dirs()) dirs.push_back(std::move(dir));
    cgroup_parent::reclaim_job_cgroups(dirs, /*own_pid_is_orphan=*/g_live_systems == 1);
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
