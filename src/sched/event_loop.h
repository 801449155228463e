// The scheduler's event loop: one-shot readiness watches, absolute timers and asynchronous
// directory removal, on io_uring where the kernel allows it, else on poll(2).
//
// io_uring buys offload here, not latency (kernel.md §2.6: kernfs writes and UNLINKAT are punted
// to io-wq): cgroup rmdirs are submitted and forgotten by the loop's thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace jailpool::sched {

struct Completion {
  uint64_t token;
  int result;  // poll: revents mask or -errno; timer: 0; rmdir: 0 or -errno
};

class EventLoop {
 public:
  enum class Backend { kAuto, kUring, kPoll };
  // kAuto: io_uring if io_uring_setup works and the needed opcodes are supported, else poll.
  static std::unique_ptr<EventLoop> create(Backend backend = Backend::kAuto);
  virtual ~EventLoop() = default;
  virtual const char* name() const = 0;

  // One-shot: completes once fd is readable (or hung up / in error).
  virtual void watch_readable(int fd, uint64_t token) = 0;
  // One-shot: completes at CLOCK_MONOTONIC deadline_ns (or right away if it has passed).
  virtual void timer_at(uint64_t deadline_ns, uint64_t token) = 0;
  // rmdir(path), asynchronously where possible. The string is copied.
  virtual void rmdir(const std::string& path, uint64_t token) = 0;

  // Submits what is queued and waits until at least one completion (or timeout_ms, -1 =
  // forever) and appends the completions to out.
  virtual void wait(std::vector<Completion>& out, int timeout_ms) = 0;
  // Number of operations submitted and not yet completed.
  virtual size_t pending() const = 0;
};

}  // namespace jailpool::sched
