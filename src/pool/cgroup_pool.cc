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
}

std::string CgroupPool::next_name() {
  return fmt::format("{}{}", prefix_, ++counter_);
}

void CgroupPool::fill() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    wanted_.wait(lock, [this] { return stopping_ || ready_.size() < target_; });
    if (stopping_) return;
    std::string name = next_name();
    lock.unlock();
    std::unique_ptr<isolate::JobCgroup> cgroup;
    try {
      cgroup = system_.create(name, {});
    } catch (const Error&) {
      // The job path creates its own and reports the error; do not spin.
      lock.lock();
      wanted_.wait(lock, [this] { return stopping_ || ready_.empty(); });
      continue;
    }
    lock.lock();
    ready_.push_back(std::move(cgroup));
  }
}

std::unique_ptr<isolate::JobCgroup> CgroupPool::acquire(const isolate::CgroupLimits& limits) {
  std::unique_ptr<isolate::JobCgroup> cgroup;
  std::string name;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!ready_.empty()) {
      cgroup = std::move(ready_.front());
      ready_.pop_front();
      ++hits_;
    } else {
      name = next_name();
      ++misses_;
    }
  }
  wanted_.notify_one();
  if (!cgroup) return system_.create(name, limits);
  cgroup->set_limits(limits);
  return cgroup;
}

}  // namespace jailpool::pool
