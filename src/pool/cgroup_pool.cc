#include "pool/cgroup_pool.h"

#include <fmt/core.h>

#include "common/error.h"

namespace jailpool::pool {

CgroupPool::CgroupPool(isolate::CgroupSystem& system, std::string prefix, size_t ready)
    : system_(system), prefix_(std::move(prefix)), target_(ready) {
  filler_ = std::thread([this] { fill(); });
}

CgroupPool::~CgroupPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wanted_.notify_all();
  filler_.join();
  ready_.clear();  // removes the directories
  unwanted_.clear();
}

std::string CgroupPool::next_name() {
  return fmt::format("{}{}", prefix_, ++counter_);
}

namespace {

isolate::CgroupLimits memory_and_pids(const isolate::CgroupLimits& limits) {
  isolate::CgroupLimits out;
  out.memory_bytes = limits.memory_bytes;
  out.pids = limits.pids;
  return out;
}

bool same_memory_and_pids(const isolate::CgroupLimits& a, const isolate::CgroupLimits& b) {
  return a.memory_bytes == b.memory_bytes && a.pids == b.pids;
}

}  // namespace

void CgroupPool::fill() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    wanted_.wait(lock,
                 [this] { return stopping_ || ready_.size() < target_ || !unwanted_.empty(); });
    if (stopping_) return;
    if (!unwanted_.empty()) {
      auto doomed = std::move(unwanted_);
      unwanted_.clear();
      lock.unlock();
      doomed.clear();  // removes the directories
      lock.lock();
      continue;
    }
    std::string name = next_name();
    isolate::CgroupLimits limits = predicted_;
    lock.unlock();
    std::unique_ptr<isolate::JobCgroup> cgroup;
    try {
      cgroup = system_.create(name, limits);
    } catch (const Error&) {
      // The job path creates its own and reports the error; do not spin.
      lock.lock();
      wanted_.wait(lock, [this] { return stopping_ || ready_.empty(); });
      continue;
    }
    lock.lock();
    ready_.push_back({std::move(cgroup), limits});
  }
}

std::unique_ptr<isolate::JobCgroup> CgroupPool::acquire(const isolate::CgroupLimits& limits) {
  Ready ready;
  std::string name;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    predicted_ = memory_and_pids(limits);
    if (!ready_.empty()) {
      ready = std::move(ready_.front());
      ready_.pop_front();
      const bool unlimited = !ready.written.memory_bytes && !ready.written.pids;
      if (!unlimited && !same_memory_and_pids(ready.written, limits)) {
        // Limits cannot be unwritten: a job without one must not inherit it.
        unwanted_.push_back(std::move(ready.cgroup));
      }
    }
    if (ready.cgroup) {
      ++hits_;
    } else {
      name = next_name();
      ++misses_;
    }
  }
  wanted_.notify_one();
  if (!ready.cgroup) return system_.create(name, limits);
  // What the filler wrote already (memory, pids) is skipped.
  isolate::CgroupLimits rest = limits;
  if (same_memory_and_pids(ready.written, limits)) {
    rest.memory_bytes.reset();
    rest.pids.reset();
  }
  ready.cgroup->set_limits(rest);
  return std::move(ready.cgroup);
}

}  // namespace jailpool::pool
