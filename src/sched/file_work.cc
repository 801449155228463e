#include "sched/file_work.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include "common/error.h"

namespace jailpool::sched {

FileWork::FileWork(unsigned threads) {
  int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) throw_errno("eventfd for file work");
  done_.reset(fd);
  for (unsigned i = 0; i < std::max(1u, threads); ++i) threads_.emplace_back([this] { body(); });
}

FileWork::~FileWork() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) t.join();
}

void FileWork::submit(uint64_t key, std::function<void()> work) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.emplace_back(key, std::move(work));
  }
  cv_.notify_one();
}

std::vector<uint64_t> FileWork::take_done() {
  uint64_t count;
  while (::read(done_.get(), &count, sizeof count) < 0 && errno == EINTR) {
  }
  std::lock_guard<std::mutex> lock(mu_);
  return std::exchange(done_keys_, {});
}

void FileWork::body() {
  for (;;) {
    std::pair<uint64_t, std::function<void()>> item;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything queued has run
      item = std::move(queue_.front());
      queue_.pop_front();
    }
    item.second();
    item.second = nullptr;  // its captures (fds) go before the key is reported
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_keys_.push_back(item.first);
    }
    uint64_t one = 1;
    while (::write(done_.get(), &one, sizeof one) < 0 && errno == EINTR) {
    }
  }
}

}  // namespace jailpool::sched
