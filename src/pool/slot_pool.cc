#include "pool/slot_pool.h"

#include <fmt/core.h>
#include <poll.h>

#include <cerrno>
#include <chrono>
#include <cstdio>

#include "common/error.h"
#include "isolate/slot.h"

namespace jailpool::pool {

namespace {
// How long acquire waits for a reset before it gives up on that slot (a reset of a job that
// left many files takes milliseconds; one that takes this long is not worth waiting for).
constexpr int kResetWaitMs = 2000;
}  // namespace

SlotPool::~SlotPool() {
  for (auto& [key, list] : idle_) {
    for (auto& slot : list) retire(std::move(slot));
  }
  idle_.clear();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kDyingWaitMs);
  for (;;) {
    reap_dying();
    auto left = deadline - std::chrono::steady_clock::now();
    if (dying_.empty() || left <= std::chrono::steady_clock::duration::zero()) break;
    std::vector<pollfd> fds;
    for (const auto& d : dying_) fds.push_back({d->pidfd(), POLLIN, 0});
    auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
    if (::poll(fds.data(), fds.size(), static_cast<int>(ms)) < 0 && errno != EINTR) break;
  }
  for (auto& d : dying_) {
    fmt::print(stderr, "jailpool: a slot's init did not exit {} ms after SIGKILL, left: {}\n",
               kDyingWaitMs, d->abandon());
  }
}

void SlotPool::retire(std::unique_ptr<isolate::Slot> slot) {
  std::unique_ptr<isolate::SlotRemains> rem = isolate::Slot::shut_down(std::move(slot));
  if (rem) dying_.push_back(std::move(rem));
}

void SlotPool::reap_dying() {
  std::erase_if(dying_,
                [](const std::unique_ptr<isolate::SlotRemains>& d) { return d->try_finish(); });
}

size_t SlotPool::idle() const {
  size_t n = 0;
  for (const auto& [key, list] : idle_) n += list.size();
  return n;
}

std::unique_ptr<isolate::Slot> SlotPool::acquire(const Profile& profile,
                                                 isolate::SeccompProgram* seccomp) {
  reap_dying();
  Key key{&profile, seccomp};
  auto& idle = idle_[key];
  bool waited = false;
  for (;;) {
    for (auto it = idle.begin(); it != idle.end();) {
      // The state first (shared memory), S's life (a poll) only for the one handed out.
      const isolate::SlotControl::State state = (*it)->state();
      if (state == isolate::SlotControl::kBroken ||
          (state == isolate::SlotControl::kReady && !(*it)->alive())) {
        ++stats_.replaced;
        retire(std::move(*it));
        it = idle.erase(it);
        continue;
      }
      if (state == isolate::SlotControl::kReady) {
        std::unique_ptr<isolate::Slot> slot = std::move(*it);
        idle.erase(it);
        ++out_[key];
        handed_out_.insert(slot.get());
        ++stats_.reused;
        if (waited) ++stats_.waited;
        return slot;
      }
      ++it;
    }
    // None ready: build one while the key has fewer than build_below_ (a spare: once there,
    // the reset of a job's slot runs while the next job starts in another), else wait for one
    // that is resetting (a reset takes tens of µs, a new slot milliseconds).
    if (idle.empty() || idle.size() + out_[key] < build_below_) break;
    // S says ready through done_fd only to a waiter (the state word is read first, then again
    // after asking: a reset that ended in between is seen by one or the other).
    bool ready_now = false;
    for (const auto& s : idle) {
      s->drain_done();  // the count of its last result, left for the next start to take
      s->want_ready_wake(true);
      ready_now = ready_now || s->state() != isolate::SlotControl::kResult;
    }
    std::vector<pollfd> fds;
    for (const auto& s : idle) {
      fds.push_back({s->done_fd(), POLLIN, 0});
      fds.push_back({s->pidfd(), POLLIN, 0});
    }
    int n = ready_now ? 1 : ::poll(fds.data(), fds.size(), kResetWaitMs);
    for (const auto& s : idle) s->want_ready_wake(false);
    if (n < 0 && errno != EINTR) throw_errno("poll slots");
    if (n == 0) {
      // None finished in time: drop the oldest and build a new one.
      ++stats_.replaced;
      retire(std::move(idle.front()));
      idle.erase(idle.begin());
      break;
    }
    // An init that died while resetting: destroyed here (its state never changes again).
    size_t i = 0;
    for (auto it = idle.begin(); it != idle.end(); ++i) {
      if (fds[2 * i + 1].revents != 0) {
        ++stats_.replaced;
        retire(std::move(*it));
        it = idle.erase(it);
        continue;
      }
      if (fds[2 * i].revents != 0) (*it)->drain_done();
      ++it;
    }
    waited = true;
  }
  std::unique_ptr<isolate::Slot> slot = isolate::Slot::create(profile, seccomp);
  ++stats_.created;
  ++out_[key];
  handed_out_.insert(slot.get());
  return slot;
}

void SlotPool::release(std::unique_ptr<isolate::Slot> slot) {
  if (!slot) return;
  reap_dying();
  Key key{&slot->profile(), slot->seccomp()};
  if (out_[key] > 0) --out_[key];
  handed_out_.erase(slot.get());
  if (outdated_.erase(slot.get()) > 0) {
    ++stats_.outdated;
    retire(std::move(slot));
    return;
  }
  if (slot->state() == isolate::SlotControl::kBroken) {  // a dead S is found at acquire
    ++stats_.replaced;
    retire(std::move(slot));
    return;
  }
  auto& idle = idle_[key];
  if (idle.size() >= max_) {  // shrink
    retire(std::move(slot));
    return;
  }
  idle.push_back(std::move(slot));
}

void SlotPool::invalidate() {
  for (auto& [key, list] : idle_) {
    for (auto& slot : list) {
      ++stats_.outdated;
      retire(std::move(slot));
    }
    list.clear();
  }
  outdated_.insert(handed_out_.begin(), handed_out_.end());
}

void SlotPool::discard(std::unique_ptr<isolate::Slot> slot) {
  if (!slot) return;
  Key key{&slot->profile(), slot->seccomp()};
  if (out_[key] > 0) --out_[key];
  handed_out_.erase(slot.get());
  outdated_.erase(slot.get());
  ++stats_.replaced;
  retire(std::move(slot));
}

}  // namespace jailpool::pool
