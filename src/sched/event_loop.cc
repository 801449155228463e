#include "sched/event_loop.h"

#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <map>
#include <queue>

#include "common/error.h"

namespace jailpool::sched {
namespace {

uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// --- io_uring -------------------------------------------------------------------------------
bool uring_usable(io_uring* ring);

class UringLoop final : public EventLoop {
 public:
  UringLoop() {
    int rc = io_uring_queue_init(256, &ring_, 0);
    if (rc < 0) throw SysError(-rc, "io_uring_queue_init");
  }
  ~UringLoop() override { io_uring_queue_exit(&ring_); }
  const char* name() const override { return "io_uring"; }
  bool usable() { return uring_usable(&ring_); }

  void watch_readable(int fd, uint64_t token) override {
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_poll_add(sqe, fd, POLLIN);
    submit_op(sqe, token, nullptr);
  }
  void timer_at(uint64_t deadline_ns, uint64_t token) override {
    auto op = std::make_unique<Op>();
    op->ts.tv_sec = static_cast<long long>(deadline_ns / 1000000000ull);
    op->ts.tv_nsec = static_cast<long long>(deadline_ns % 1000000000ull);
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_timeout(sqe, &op->ts, 0, IORING_TIMEOUT_ABS);
    submit_op(sqe, token, std::move(op));
  }
  void rmdir(const std::string& path, uint64_t token) override {
    auto op = std::make_unique<Op>();
    op->path = path;
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_unlinkat(sqe, AT_FDCWD, op->path.c_str(), AT_REMOVEDIR);
    submit_op(sqe, token, std::move(op));
  }

  void wait(std::vector<Completion>& out, int timeout_ms) override {
    io_uring_cqe* cqe = nullptr;
    int rc;
    if (timeout_ms < 0) {
      rc = io_uring_submit_and_wait(&ring_, 1);
      if (rc < 0 && rc != -EINTR && rc != -ETIME) throw SysError(-rc, "io_uring_submit_and_wait");
    } else {
      io_uring_submit(&ring_);
      __kernel_timespec ts{timeout_ms / 1000, (timeout_ms % 1000) * 1000000ll};
      rc = io_uring_wait_cqe_timeout(&ring_, &cqe, &ts);
      if (rc < 0 && rc != -EINTR && rc != -ETIME) throw SysError(-rc, "io_uring_wait_cqe");
    }
    unsigned head;
    unsigned count = 0;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      ++count;
      auto it = ops_.find(cqe->user_data);
      if (it == ops_.end()) continue;
      uint64_t token = it->second.token;
      int res = cqe->res;
      if (it->second.op && res == -ETIME) res = 0;  // a timer that fired
      ops_.erase(it);
      out.push_back({token, res});
    }
    io_uring_cq_advance(&ring_, count);
  }
  size_t pending() const override { return ops_.size(); }

 private:
  struct Op {
    __kernel_timespec ts{};
    std::string path;
  };
  struct Entry {
    uint64_t token;
    std::unique_ptr<Op> op;  // memory the kernel reads until completion
  };

  io_uring_sqe* get_sqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {
      io_uring_submit(&ring_);
      sqe = io_uring_get_sqe(&ring_);
      if (sqe == nullptr) throw Error("io_uring: submission queue full");
    }
    return sqe;
  }
  void submit_op(io_uring_sqe* sqe, uint64_t token, std::unique_ptr<Op> op) {
    uint64_t id = ++next_id_;
    io_uring_sqe_set_data64(sqe, id);
    ops_.emplace(id, Entry{token, std::move(op)});
  }

  io_uring ring_{};
  uint64_t next_id_ = 0;
  std::map<uint64_t, Entry> ops_;
};

// --- poll(2) fallback -----------------------------------------------------------------------
class PollLoop final : public EventLoop {
 public:
  const char* name() const override { return "poll"; }
  void watch_readable(int fd, uint64_t token) override { watches_.push_back({fd, token}); }
  void timer_at(uint64_t deadline_ns, uint64_t token) override {
    timers_.push({deadline_ns, token});
  }
  void rmdir(const std::string& path, uint64_t token) override {
    int rc = ::rmdir(path.c_str()) < 0 ? -errno : 0;
    ready_.push_back({token, rc});
  }
  void wait(std::vector<Completion>& out, int timeout_ms) override {
    if (!ready_.empty()) {
      out.insert(out.end(), ready_.begin(), ready_.end());
      ready_.clear();
      timeout_ms = 0;
    }
    uint64_t now = now_ns();
    if (!timers_.empty()) {
      uint64_t deadline = timers_.top().deadline;
      int until = deadline <= now ? 0 : static_cast<int>((deadline - now + 999999) / 1000000);
      if (timeout_ms < 0 || until < timeout_ms) timeout_ms = until;
    }
    std::vector<pollfd> fds;
    fds.reserve(watches_.size());
    for (auto& w : watches_) fds.push_back({w.fd, POLLIN, 0});
    int rc = ::poll(fds.data(), fds.size(), timeout_ms);
    if (rc < 0 && errno != EINTR) throw_errno("poll");
    if (rc > 0) {
      std::vector<Watch> still;
      for (size_t i = 0; i < fds.size(); ++i) {
        if (fds[i].revents != 0) {
          out.push_back({watches_[i].token, fds[i].revents});
        } else {
          still.push_back(watches_[i]);
        }
      }
      watches_.swap(still);
    }
    now = now_ns();
    while (!timers_.empty() && timers_.top().deadline <= now) {
      out.push_back({timers_.top().token, 0});
      timers_.pop();
    }
  }
  size_t pending() const override { return watches_.size() + timers_.size() + ready_.size(); }

 private:
  struct Watch {
    int fd;
    uint64_t token;
  };
  struct Timer {
    uint64_t deadline;
    uint64_t token;
    bool operator>(const Timer& o) const { return deadline > o.deadline; }
  };
  std::vector<Watch> watches_;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> timers_;
  std::vector<Completion> ready_;
};

// The opcodes the loop needs, probed on its own ring: a ring made only to probe costs a setup,
// two mappings and their unmapping (TLB shootdowns) at every start.
bool uring_usable(io_uring* ring) {
  io_uring_probe* probe = io_uring_get_probe_ring(ring);
  if (probe == nullptr) return false;
  bool ok = io_uring_opcode_supported(probe, IORING_OP_POLL_ADD) &&
            io_uring_opcode_supported(probe, IORING_OP_TIMEOUT) &&
            io_uring_opcode_supported(probe, IORING_OP_UNLINKAT);
  io_uring_free_probe(probe);
  return ok;
}

}  // namespace

std::unique_ptr<EventLoop> EventLoop::create(Backend backend) {
  if (backend == Backend::kPoll) return std::make_unique<PollLoop>();
  if (backend == Backend::kUring) return std::make_unique<UringLoop>();
  try {
    auto loop = std::make_unique<UringLoop>();
    if (loop->usable()) return loop;
  } catch (const Error&) {
  }
  return std::make_unique<PollLoop>();
}

}  // namespace jailpool::sched
