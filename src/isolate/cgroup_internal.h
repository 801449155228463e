// Internal to the cgroup backend (isolate/cgroup.h), shared by its parts:
//   cgroup.cc        detection from the mounts, which hierarchy serves what, and jailpool's
//                    parents and their lifecycle (CgroupSystem);
//   cgroup_job.cc    one job's cgroup: made, limited, read, killed, removed (JobCgroup);
//   cgroup_files.cc  the small string and control-file helpers both use.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/unique_fd.h"
#include "isolate/cgroup.h"

namespace jailpool::isolate::cgroup_detail {

// ---------------------------------------------------------------------------------------------
// Small string and file helpers (cgroup_files.cc).

std::string path_join(std::string_view dir, std::string_view name);
std::vector<std::string> split_words(std::string_view text);
bool contains(const std::vector<std::string>& words, std::string_view word);
std::optional<uint64_t> parse_u64(std::string_view text);
// The value of the "key N" line of a flat-keyed file (cpu.stat, memory.events, ...).
std::optional<uint64_t> find_key(std::string_view text, std::string_view key);
bool exists(const std::string& path);
UniqueFd open_file(const std::string& path, int flags);
// An invalid fd when the file does not exist (optional control files).
UniqueFd open_optional(const std::string& path, int flags);
void write_fd(int fd, std::string_view data, const std::string& path);
void write_file(const std::string& path, std::string_view data);
std::string read_file(const std::string& path);
// Reads the file behind `fd` from offset 0 into buf (NUL-terminated); returns the length.
// A seq file returns less than asked only at its end, so a short read ends the loop.
size_t pread_all(int fd, char* buf, size_t cap, const std::string& path);
// Directory names we create: one path component, nothing the kernel would interpret.
void check_component(const std::string& name, std::string_view what);
void sleep_us(int usec);
// Reads the pids in dir/cgroup.procs. An empty list when the directory is gone.
std::vector<pid_t> read_procs(const std::string& dir);

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
  std::string cpuset_prefix;  // v1 cpuset: "cpuset." (or "" when mounted with noprefix)
  std::string cpuset_mems;    // v1 cpuset: the parent's mems, copied into each job's cgroup
};

struct Layout {
  std::string parent;
  std::optional<Hierarchy> v2;
  std::vector<Hierarchy> v1;  // distinct mounts joined by every job, each with its roles
  Source cpu = Source::kNone;
  Source memory = Source::kNone;
  Source pids = Source::kNone;
  Source cpuset = Source::kNone;
  Source cpu_bandwidth = Source::kNone;
  bool cgroup_kill = false;
  uint64_t clk_tck = 100;
};

// The v1 hierarchies that only the jobs asking for pinning or a CPU quota join (cpuset, and cpu
// when it is not mounted with a hierarchy every job joins). Their parents are made the first
// time a job needs them, not at detect: the first v1 cpuset cgroup on a host turns on the
// kernel's cpusets_enabled static key (cpuset_css_online -> cpuset_inc), which patches kernel
// text with IPIs to every CPU, and removing the last one turns it off again (~3 ms each, 9 % of
// a no-op `jailpool run` on a hybrid host).
//
// Shared by the system and its jobs: a job makes the parent from set_limits(), on the cgroup
// filler's thread or the caller's. The parent lock covers these parents like the others: one is
// made only while this instance holds the lock shared (before close()), so no instance removes
// the parents meanwhile, and the instance that removes them removes these too, whoever made them
// (all_dirs(): an rmdir that finds nothing is no error).
class OnDemandParents {
 public:
  enum class Role { kCpuset, kCpuBandwidth };

  // Setup only, before any job exists: the entry for this hierarchy's mount, added when missing.
  Hierarchy& add(const Hierarchy& h) {
    for (Entry& e : entries_) {
      if (e.h.mount == h.mount) return e.h;
    }
    entries_.push_back(Entry{h, State::kUnmade, {}});
    return entries_.back().h;
  }
  Hierarchy* find(const std::string& mount) {
    for (Entry& e : entries_) {
      if (e.h.mount == mount) return &e.h;
    }
    return nullptr;
  }

  // The hierarchy serving `role`, its parent made and initialised by the first call; nullptr
  // (with the reason in *why) when none serves it or making it failed (not retried: the role
  // then falls back for the rest of this instance, as when detect found no controller).
  const Hierarchy* get(Role role, std::string* why) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (Entry& e : entries_) {
      if (!(role == Role::kCpuset ? e.h.cpuset : e.h.cpu_bandwidth)) continue;
      if (e.state == State::kUnmade) {
        if (closed_) {
          *why = "jailpool's use of the cgroup parent has ended";
          return nullptr;
        }
        try {
          make(e.h);
          e.state = State::kReady;
        } catch (const Error& err) {
          e.state = State::kFailed;
          e.error = err.what();
        }
      }
      if (e.state == State::kReady) return &e.h;
      *why = e.error;
      return nullptr;
    }
    *why = "no hierarchy serves it";
    return nullptr;
  }

  // This instance's use of the parent ends (it may no longer hold the lock): no parent is made
  // from now on.
  void close() {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
  }

  // The parents made (or found) by this instance, and every one it may use.
  std::vector<std::string> made_dirs() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<std::string> dirs;
    for (const Entry& e : entries_) {
      if (e.state != State::kUnmade) dirs.push_back(e.h.parent_dir);
    }
    return dirs;
  }
  std::vector<std::string> all_dirs() const {
    std::vector<std::string> dirs;
    for (const Entry& e : entries_) dirs.push_back(e.h.parent_dir);  // fixed after setup
    return dirs;
  }

 private:
  enum class State { kUnmade, kReady, kFailed };
  struct Entry {
    Hierarchy h;
    State state;
    std::string error;
  };

  // Makes the parent (or finds it, made by another instance) and, for a cpuset, gives it cpus
  // and mems. Throws Error.
  static void make(Hierarchy& h);

  mutable std::mutex mutex_;
  // Filled by setup, then fixed (pointers into it stay valid); states and the cpuset fields of a
  // hierarchy change under mutex_, once, before get() hands the hierarchy out.
  std::vector<Entry> entries_;
  bool closed_ = false;
};

// ---------------------------------------------------------------------------------------------
// The per-job cgroup (cgroup_job.cc).

// Makes the job's cgroup `name` in each hierarchy of `layout` and writes `limits` (see
// CgroupSystem::create); on a throw, whatever it had made is removed.
std::unique_ptr<JobCgroup> make_job_cgroup(const Layout& layout,
                                           std::shared_ptr<OnDemandParents> on_demand,
                                           const std::string& name, const CgroupLimits& limits);

}  // namespace jailpool::isolate::cgroup_detail
