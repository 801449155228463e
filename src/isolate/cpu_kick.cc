#include "isolate/cpu_kick.h"

#include <fmt/core.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

namespace jailpool::isolate {
namespace {

static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t) &&
              std::atomic<uint32_t>::is_always_lock_free);

uint32_t* word(std::atomic<uint32_t>& a) {
  return reinterpret_cast<uint32_t*>(&a);
}

void futex_wake(std::atomic<uint32_t>& a, int n) {
  ::syscall(SYS_futex, word(a), FUTEX_WAKE_PRIVATE, n, nullptr, nullptr, 0);
}

// Sleeps while `a` holds `expected`, at most `timeout` (none when null).
void futex_wait(std::atomic<uint32_t>& a, uint32_t expected, const timespec* timeout) {
  ::syscall(SYS_futex, word(a), FUTEX_WAIT_PRIVATE, expected, timeout, nullptr, 0);
}

uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000 + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace

std::unique_ptr<CpuKicker> CpuKicker::start(const std::vector<int>& cpus, std::string* why_not) {
  std::unique_ptr<CpuKicker> k(new CpuKicker());
  k->cpus_ = cpus;
  k->wanted_.reserve(cpus.size());
  for (int cpu : cpus) {
    auto slot = std::make_unique<Slot>();
    slot->cpu = cpu;
    k->slots_.push_back(std::move(slot));
  }
  std::string error;
  for (auto& slot : k->slots_) {
    Slot& s = *slot;
    s.owner = k.get();
    // Born on its CPU and SCHED_FIFO (attributes applied before it first runs): a thread that
    // pinned itself would have to migrate off the CPU it started on, and that waited ~2.4 ms
    // for the stopper here (PVM), on every `jailpool run`.
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(s.cpu, &set);
    sched_param param{};
    param.sched_priority = 1;
    int rc = pthread_attr_setaffinity_np(&attr, sizeof set, &set);
    if (rc == 0) rc = pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED);
    if (rc == 0) rc = pthread_attr_setschedpolicy(&attr, SCHED_FIFO);
    if (rc == 0) rc = pthread_attr_setschedparam(&attr, &param);
    if (rc == 0) rc = pthread_create(&s.thread, &attr, &CpuKicker::trampoline, &s);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
      error = fmt::format("{} for CPU {}: {}", rc == EPERM ? "SCHED_FIFO" : "a pinned thread",
                          s.cpu, std::strerror(rc));
      break;
    }
    s.joinable = true;
    s.state.wait(0);
    if (s.state.load() < 0) {
      error = fmt::format("SCHED_RESET_ON_FORK for CPU {}: {}", s.cpu, std::strerror(s.error));
      break;
    }
  }
  if (!error.empty()) {
    if (why_not) *why_not = error;
    return nullptr;  // the destructor stops and joins what started
  }
  return k;
}

CpuKicker::~CpuKicker() {
  stop();
}

void CpuKicker::stop() {
  stop_.store(true);
  for (auto& slot : slots_) {
    slot->seq.fetch_add(1);
    futex_wake(slot->seq, 1);
  }
  for (auto& slot : slots_) {
    if (slot->joinable) pthread_join(slot->thread, nullptr);
    slot->joinable = false;
  }
}

void* CpuKicker::trampoline(void* slot) {
  Slot& s = *static_cast<Slot*>(slot);
  s.owner->body(s);
  return nullptr;
}

void CpuKicker::body(Slot& s) {
  // Already pinned and SCHED_FIFO (start's attributes); only the reset-on-fork flag is left.
  int err = 0;
  sched_param param{};
  param.sched_priority = 1;
  if (::sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &param) < 0) err = errno;
  if (err != 0) {
    s.error = err;
    s.state.store(-1);
    s.state.notify_all();
    return;
  }
  uint32_t done = s.seq.load();
  s.state.store(1);
  s.state.notify_all();
  for (;;) {
    uint32_t seq = s.seq.load(std::memory_order_acquire);
    if (stop_.load()) return;
    if (seq != done) {
      // Running here means whatever ran on this CPU was switched out and charged.
      done = seq;
      s.acked.store(seq, std::memory_order_release);
      acks_.fetch_add(1, std::memory_order_release);
      futex_wake(acks_, INT_MAX);
    }
    futex_wait(s.seq, seq, nullptr);
  }
}

bool CpuKicker::kick(const std::vector<int>& cpus, uint64_t timeout_ns) {
  const int here = ::sched_getcpu();
  std::vector<Wanted>& wanted = wanted_;
  wanted.clear();
  for (auto& slot : slots_) {
    if (slot->cpu == here) continue;
    if (!cpus.empty() && std::find(cpus.begin(), cpus.end(), slot->cpu) == cpus.end()) continue;
    uint32_t seq = slot->seq.fetch_add(1, std::memory_order_acq_rel) + 1;
    futex_wake(slot->seq, 1);
    wanted.push_back({slot.get(), seq});
  }
  const uint64_t deadline = now_ns() + timeout_ns;
  for (;;) {
    uint32_t acks = acks_.load(std::memory_order_acquire);
    bool all = true;
    for (size_t i = 0; i < wanted.size() && all; ++i) {
      // Wrap-safe "acked >= seq".
      all = static_cast<int32_t>(wanted[i].slot->acked.load(std::memory_order_acquire) -
                                 wanted[i].seq) >= 0;
    }
    if (all) return true;
    uint64_t now = now_ns();
    if (now >= deadline) return false;
    uint64_t left = deadline - now;
    timespec ts{static_cast<time_t>(left / 1000000000), static_cast<long>(left % 1000000000)};
    futex_wait(acks_, acks, &ts);
  }
}

}  // namespace jailpool::isolate
