#include "sched/submission_queue.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <memory>

#include "common/error.h"

namespace jailpool::sched {

SubmissionQueue::SubmissionQueue(size_t capacity) : queue_(capacity) {
  if (capacity == 0 || capacity > 65534) throw ConfigError("queue capacity", "must be 1..65534");
  int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) throw_errno("eventfd");
  wake_.reset(fd);
}

SubmissionQueue::~SubmissionQueue() {
  JobRequest* r;
  while (queue_.pop(r)) delete r;
}

bool SubmissionQueue::try_submit(JobRequest& request) {
  if (closed()) return false;
  auto copy = std::make_unique<JobRequest>(std::move(request));
  if (!queue_.bounded_push(copy.get())) {
    request = std::move(*copy);  // full: hand it back
    return false;
  }
  copy.release();
  uint64_t one = 1;
  (void)::write(wake_.get(), &one, sizeof one);
  return true;
}

void SubmissionQueue::close() {
  closed_.store(true, std::memory_order_release);
  uint64_t one = 1;
  (void)::write(wake_.get(), &one, sizeof one);
}

std::optional<JobRequest> SubmissionQueue::try_pop() {
  JobRequest* r = nullptr;
  if (!queue_.pop(r)) return std::nullopt;
  std::unique_ptr<JobRequest> owned(r);
  return std::move(*owned);
}

void SubmissionQueue::drain_wake() {
  uint64_t value;
  (void)::read(wake_.get(), &value, sizeof value);
}

}  // namespace jailpool::sched
