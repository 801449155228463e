// Submission from any thread: a bounded lock-free queue (Boost.Lockfree) with backpressure,
// and an eventfd that wakes the executor's loop.
#pragma once

#include <atomic>
#include <boost/lockfree/queue.hpp>
#include <cstddef>
#include <optional>

#include "common/unique_fd.h"
#include "sched/executor.h"

namespace jailpool::sched {

class SubmissionQueue {
 public:
  // capacity: 1..65534 (Boost.Lockfree's fixed-size limit).
  explicit SubmissionQueue(size_t capacity);
  ~SubmissionQueue();
  SubmissionQueue(const SubmissionQueue&) = delete;
  SubmissionQueue& operator=(const SubmissionQueue&) = delete;

  // Any thread. False when the queue is full (backpressure: retry later) or closed; the
  // request is then left untouched.
  bool try_submit(JobRequest& request);
  // No more submissions; the executor finishes what is queued and returns.
  void close();
  bool closed() const { return closed_.load(std::memory_order_acquire); }

  // The executor's side.
  std::optional<JobRequest> try_pop();
  int wake_fd() const { return wake_.get(); }
  void drain_wake();

 private:
  boost::lockfree::queue<JobRequest*, boost::lockfree::fixed_sized<true>> queue_;
  std::atomic<bool> closed_{false};
  UniqueFd wake_;
};

}  // namespace jailpool::sched
