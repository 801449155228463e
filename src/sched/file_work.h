// File work off the event loop: a job's copy-in (before its start) and copy-out (after its
// end) run on a small pool of threads, so that a large copy (a 64 MiB copy-out) never stalls
// the other jobs' events. Each piece of work is a function; when it has run, its key comes back
// through done_fd(), which the loop watches.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "common/unique_fd.h"

namespace jailpool::sched {

class FileWork {
 public:
  explicit FileWork(unsigned threads);
  ~FileWork();  // waits for the work queued: its functions may hold fds and result fields
  FileWork(const FileWork&) = delete;
  FileWork& operator=(const FileWork&) = delete;

  // Any thread. `work` must not throw (it records its own errors).
  void submit(uint64_t key, std::function<void()> work);
  // Readable when keys are done; take_done() returns them (and clears the fd's count).
  int done_fd() const { return done_.get(); }
  std::vector<uint64_t> take_done();

 private:
  void body();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<uint64_t, std::function<void()>>> queue_;
  std::vector<uint64_t> done_keys_;
  bool stopping_ = false;
  UniqueFd done_;  // eventfd
  std::vector<std::thread> threads_;
};

}  // namespace jailpool::sched
