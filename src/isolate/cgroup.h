// cgroups: one backend interface over cgroup v1, v2 and hybrid hierarchies.
//
// CgroupSystem is detected once at start-up. It owns jailpool's parent cgroup(s), one per
// hierarchy used, and creates a fresh JobCgroup per job (counters start at zero, so results
// never carry a previous job's peak or page cache; see kernel.md: reuse cannot be reset).
//
// Which hierarchy serves what, in order of preference:
//   placement + kill + CPU accounting : v2 (cpu.stat usage_usec needs no controller), else v1
//                                       cpuacct
//   memory limit/peak/OOM             : v2 memory controller if enabled there, else v1 memory
//   pids limit/peak                   : v2 pids controller if enabled there, else v1 pids
//   pinning (cpuset)                  : v2 cpuset if passed down to jailpool, else a v1 cpuset
//                                       made on first use, else none (sched_setaffinity)
//   CPU bandwidth (quota)             : v2 cpu if passed down to jailpool, else v1 cpu
// On this machine (hybrid) that is: v2 for placement, CPU and kill; v1 for memory and pids.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/unique_fd.h"

namespace jailpool::isolate {

enum class CgroupMode { kV1, kV2, kHybrid };
const char* to_string(CgroupMode mode);

enum class MemoryPeakSource { kNone, kV2MemoryPeak, kV1MaxUsage };

struct CgroupLimits {
  std::optional<uint64_t> memory_bytes;  // memory.max / memory.limit_in_bytes; swap off
  std::optional<uint64_t> pids;          // pids.max
  // A cpuset list ("1", "0-1", "0,2-3"; already validated): v2 cpuset.cpus, or a v1 cpuset
  // cgroup. "" = no pinning. Where no cpuset controller is available, pins_cpus() is false
  // and the caller pins with sched_setaffinity instead.
  std::string cpuset_cpus;
  // CPU bandwidth in percent of one CPU (150 = 1.5 CPUs) per kCpuPeriodUs: v2 cpu.max or v1
  // cpu.cfs_quota_us. A quota with no cpu controller to enforce it is an error.
  std::optional<uint32_t> cpu_quota_percent;
};

// The CFS bandwidth period jailpool writes with a quota (the kernel's default, 100 ms).
constexpr uint64_t kCpuPeriodUs = 100000;

// Parses a cpuset list ("0-1,3": comma-separated CPUs and ascending ranges, no spaces) into
// the sorted CPU numbers. Throws Error with the problem (for the caller to name the field).
std::vector<int> parse_cpu_list(std::string_view text);

// The online CPUs (/sys/devices/system/cpu/online).
std::vector<int> online_cpus();

struct CgroupStats {
  uint64_t cpu_usec = 0;       // user+sys of every task that was ever in the cgroup
  uint64_t cpu_user_usec = 0;  // tick-sampled split (kernel)
  uint64_t cpu_sys_usec = 0;
  std::optional<uint64_t> memory_peak_bytes;
  MemoryPeakSource memory_peak_source = MemoryPeakSource::kNone;
  uint64_t oom_kills = 0;         // memory.events oom_kill (v2) or memory.oom_control oom_kill (v1)
  bool memory_limit_hit = false;  // memory.events max > 0 (v2) or failcnt > 0 (v1)
  std::optional<uint64_t> pids_peak;
  bool pids_limit_hit = false;  // pids.events max > 0
};

// Facts found at detection time, printed by `jailpool check`.
struct CgroupInfo {
  CgroupMode mode;
  std::string v2_mount;                     // "" when there is no cgroup2 mount
  std::vector<std::string> v2_controllers;  // in the parent's subtree_control (jobs get these)
  std::vector<std::pair<std::string, std::string>> v1_mounts;  // controller -> mount point
  std::string cpu_source;                                      // e.g. "v2 cpu.stat" or "v1 cpuacct"
  std::string memory_source;                                   // "v2 memory" / "v1 memory" / "none"
  std::string pids_source;                                     // "v2 pids" / "v1 pids" / "none"
  // Pinning and bandwidth: "v2 cpuset" / "v1 cpuset, made on first use" / "none" (then
  // sched_setaffinity), and "v2 cpu.max" / "v1 cpu.cfs_quota_us" (cpu mounted with cpuacct) /
  // "v1 cpu.cfs_quota_us, made on first use" / "none". "Made on first use": the parent in that
  // v1 hierarchy is made by the first job asking for it; should that fail, pinning falls back
  // to sched_setaffinity and a quota is refused, as with "none".
  std::string cpuset_source;
  std::string cpu_bandwidth_source;
  bool has_cgroup_kill = false;  // v2 cgroup.kill (5.14+)
  bool has_memory_peak = false;  // v2 memory.peak (5.19+); v1 uses max_usage_in_bytes instead
  bool has_pids_peak = false;
  std::string delegated_subtree;  // pure v2: jailpool's own cgroup when it is not the root
  std::string
      supervisor_leaf;  // where jailpool moved itself in that subtree    // pids.peak (6.1+)
};

// One cgroup mount found in /proc/self/mountinfo.
struct CgroupMount {
  std::string mount_point;
  std::string root;  // the mount's root inside its hierarchy ("/" unless bind-mounted/namespaced)
  bool v2 = false;
  std::vector<std::string> controllers;  // v1 only: the controllers bound to this hierarchy
};

// Parses the cgroup and cgroup2 mounts out of mountinfo text (exposed for tests).
std::vector<CgroupMount> parse_cgroup_mounts(std::string_view mountinfo);

// Detection knobs. The defaults are what production uses; the others let tests run the pure-v1
// and pre-5.14 code paths on a hybrid machine.
struct CgroupOptions {
  bool use_v2 = true;           // false: ignore the cgroup2 mount, as on a pure v1 machine
  bool use_cgroup_kill = true;  // false: kill via cgroup.procs, as on kernels < 5.14
  // Pure v2 with jailpool in a non-root cgroup: make the parent below jailpool's own cgroup and
  // move jailpool into a leaf of it (<parent>-supervisor). false: below the hierarchy's root.
  bool delegate = true;
};

class JobCgroup;

class CgroupSystem {
 public:
  // Detects the hierarchies from /proc/self/mountinfo and creates (if missing) jailpool's
  // parent cgroup named `parent` (a relative path, e.g. "jailpool" or "jailpool-test-1234")
  // directly below the root of each hierarchy every job joins. The parents in the v1 cpuset and
  // cpu hierarchies, which only jobs asking for pinning or a CPU quota join, are made by the
  // first such job (create() or set_limits(), from any thread), not here: the first v1 cpuset
  // cgroup on a host costs the kernel a text patch on every CPU. Never touches any other cgroup.
  // On v2 it enables the memory and pids controllers in the parent's subtree_control when
  // the parent's parent offers them (writing the root's subtree_control only when the root has
  // the controller but does not pass it down yet; "+cpu" only when already offered). `parent`
  // must be a single path component. Throws Error when jailpool cannot work here, after
  // removing the parent directories unless another instance uses them.
  //
  // Any number of instances (processes, or CgroupSystems in one process) may share a parent:
  // each holds a shared lock on it until remove_parent_if_empty() or its destruction, and the
  // last one removes it (isolate/cgroup_parent.h). When the parent was there already, detect()
  // removes the job cgroups of dead instances found in it, after killing what is left inside:
  // a job cgroup named job-<pid>-<anything> belongs to the process <pid> (in this pid
  // namespace: instances in different pid namespaces must not share a parent), and other names
  // are never touched.
  static std::unique_ptr<CgroupSystem> detect(const std::string& parent,
                                              const CgroupOptions& options = {});

  // Ends this instance's use of the parent as remove_parent_if_empty() does.
  virtual ~CgroupSystem() = default;
  virtual const CgroupInfo& info() const = 0;

  // Creates a fresh cgroup `name` (a single path component) below the parent in each hierarchy
  // used, writes the limits, and opens the control files it will need. An existing directory
  // of that name is an error (EEXIST), never reused. A limit with no controller to enforce it
  // is an error. Throws Error (naming the file) on failure, after removing whatever it had
  // created.
  virtual std::unique_ptr<JobCgroup> create(const std::string& name,
                                            const CgroupLimits& limits) = 0;

  // Ends this instance's use of the parent (call it after every JobCgroup it created is gone;
  // create() must not be called afterwards). When no other instance uses the parent, removes
  // the parent directories, with any job cgroups of dead instances (or of this process) still
  // in them; what stays busy is not an error. A second call does nothing.
  virtual void remove_parent_if_empty() = 0;

  // Every parent directory made (absolute paths): those of the hierarchies every job joins,
  // then the on-demand v1 cpuset and cpu ones once a job has made them.
  virtual std::vector<std::string> parent_dirs() const = 0;
};

// One job's cgroup in every hierarchy used. The destructor kills what is left in it and
// removes the directories (retrying EBUSY briefly); use release_dirs() to hand removal to
// an asynchronous teardown instead.
class JobCgroup {
 public:
  virtual ~JobCgroup() = default;

  // O_PATH|O_DIRECTORY fd of the v2 cgroup for clone3(CLONE_INTO_CGROUP), or -1 when the
  // job cannot be placed that way (pure v1).
  virtual int v2_dir_fd() const = 0;

  // The v2 cgroup's directory ("" on pure v1): perf_event_open(PERF_FLAG_PID_CGROUP) needs an
  // fd of it that is not O_PATH.
  virtual const std::string& v2_dir_path() const = 0;

  // True when set_limits() pinned the job to its cpuset in a cgroup (false: no pinning was
  // asked, or no cpuset controller is available and the caller must pin another way).
  virtual bool pins_cpus() const = 0;

  // Open (O_WRONLY|O_CLOEXEC) cgroup.procs fds the job's first process writes "0" into
  // before exec: the v1 hierarchies, plus the v2 one when `include_v2` (used when
  // CLONE_INTO_CGROUP is unavailable).
  virtual std::vector<int> attach_fds(bool include_v2) const = 0;

  // Writes the limits (before the job starts); create() calls it. Throws Error naming the file.
  virtual void set_limits(const CgroupLimits& limits) = 0;

  // Prepares this cgroup, every process of its last job gone (a slot's, isolate/slot.h), for
  // another job with `limits`: the accounting read_stats() and read_cpu_usec() give from now on
  // counts from here (cumulative counters as differences, the memory peak reset and taken
  // relative to the usage left at the reset). Returns false, changing nothing the caller relies
  // on, when the next job's accounting could not be exact: other limits than those written, a
  // cpuset or quota, a memory peak that cannot be reset (v2 before 6.12), a pids.peak above 1
  // (it cannot be reset: a job's peak is exact only while the previous ones never had more
  // than one process). The caller then uses a fresh cgroup. A fresh cgroup needs no call.
  // The baselines are the counters of the last read_stats() when there was one since the last
  // reuse(): the caller reads the final accounting once every process is gone (nothing
  // changes the counters after that), and reuse() need not read them again.
  virtual bool reuse(const CgroupLimits& limits) = 0;

  virtual CgroupStats read_stats() const = 0;

  // The current CPU usage only (one pread), for limit enforcement.
  virtual uint64_t read_cpu_usec() const = 0;

  // Kills every process in the cgroup. With cgroup.kill (>= 5.14) it does not wait. Without
  // it, SIGKILLs each pid listed in cgroup.procs (checked against /proc/<pid>/cgroup through a
  // pidfd, so a recycled pid is never hit) and re-reads until the list is empty, for at most
  // ~100 ms. Never spawn into the job with CLONE_INTO_CGROUP after this (6.18 kill_seq bug,
  // kernel.md trap 1): create a new JobCgroup instead.
  virtual void kill_all() = 0;

  // True while any process is in the cgroup.
  virtual bool populated() const = 0;

  // Closes the control fds and returns the directories (deepest first) for the caller to
  // rmdir; afterwards the destructor removes nothing.
  virtual std::vector<std::string> release_dirs() = 0;
};

}  // namespace jailpool::isolate
