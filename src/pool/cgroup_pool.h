// Pre-created job cgroups: a background thread keeps a few fresh cgroups ready (directories
// made, control files open, and the memory and pids limits of the last job written, as the
// next job most often has the same), so that a job's start does not wait for mkdir. Each is
// used by one job and then removed (a cgroup is never reused: its peak and page cache cannot be
// reset).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "isolate/cgroup.h"

namespace jailpool::pool {

class CgroupPool {
 public:
  // Keeps `ready` cgroups named <prefix><n> below the system's parent.
  CgroupPool(isolate::CgroupSystem& system, std::string prefix, size_t ready);
  ~CgroupPool();
  CgroupPool(const CgroupPool&) = delete;
  CgroupPool& operator=(const CgroupPool&) = delete;

  // A fresh cgroup with these limits: a pre-created one when ready, else made now.
  std::unique_ptr<isolate::JobCgroup> acquire(const isolate::CgroupLimits& limits);

  size_t hits() const { return hits_; }
  size_t misses() const { return misses_; }

 private:
  struct Ready {
    std::unique_ptr<isolate::JobCgroup> cgroup;
    isolate::CgroupLimits written;  // memory and pids only
  };
  void fill();
  std::string next_name();

  isolate::CgroupSystem& system_;
  std::string prefix_;
  size_t target_;
  std::mutex mutex_;
  std::condition_variable wanted_;
  std::deque<Ready> ready_;
  isolate::CgroupLimits predicted_;  // memory and pids limits of the last acquire
  // Ready cgroups whose written limits the job did not want: the filler removes them.
  std::vector<std::unique_ptr<isolate::JobCgroup>> unwanted_;
  size_t counter_ = 0;
  bool stopping_ = false;
  size_t hits_ = 0, misses_ = 0;
  std::thread filler_;
};

}  // namespace jailpool::pool
