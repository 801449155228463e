// The slot pool: long-lived jails (isolate/slot.h) per (profile, seccomp program), handed out
// for one job at a time and taken back while they reset. A slot whose reset failed, or whose
// init died, is destroyed and replaced, never handed out again. Knows nothing of jobs or
// verdicts.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <set>
#include <utility>
#include <vector>

#include "jailpool.pb.h"

namespace jailpool::isolate {
class Slot;
class SlotRemains;
class SeccompProgram;
}  // namespace jailpool::isolate

namespace jailpool::pool {

struct SlotPoolStats {
  size_t created = 0;   // slots built
  size_t reused = 0;    // acquisitions served by a reset slot
  size_t replaced = 0;  // broken or dead slots destroyed
  size_t outdated = 0;  // slots destroyed because the host's files changed (invalidate)
  size_t waited = 0;    // acquisitions that waited for a reset to finish
};

class SlotPool {
 public:
  // max_per_key: slots kept idle per (profile, program); more are destroyed on release.
  // build_below: while a key has fewer slots than this (idle and handed out), acquire builds a
  // new one rather than wait for a reset (0: never; SIZE_MAX: always).
  explicit SlotPool(size_t max_per_key, size_t build_below = 0)
      : max_(max_per_key), build_below_(build_below) {}
  // Destroys every slot, waiting for the inits still exiting (dying()) for at most
  // kDyingWaitMs in all; those that outlast it get one line on stderr each and are leaked.
  ~SlotPool();
  SlotPool(const SlotPool&) = delete;
  SlotPool& operator=(const SlotPool&) = delete;

  // A ready slot, for exclusive use: an idle one whose reset is complete, else a new one while
  // the key has fewer than build_below slots, else the first idle one to finish its reset
  // (waited for: tens of µs), else a new one. Throws Error when a slot
  // cannot be built.
  std::unique_ptr<isolate::Slot> acquire(const Profile& profile, isolate::SeccompProgram* seccomp);
  // Takes a slot back once its job's result was read (its reset may still run). A broken one
  // is destroyed.
  void release(std::unique_ptr<isolate::Slot> slot);
  // Destroys a slot whose job could not be finished cleanly.
  void discard(std::unique_ptr<isolate::Slot> slot);

  // The host's files under the profiles' binds changed (isolate/host_watch.h): no slot built
  // before now runs another job. Idle ones are destroyed now, those handed out at their release.
  void invalidate();

  SlotPoolStats stats() const { return stats_; }
  size_t idle() const;
  // Destroyed slots whose init has not exited yet: a slot's destruction never waits (its pid
  // namespace may hold a process that outlives SIGKILL). Reaped, without waiting, at each
  // acquire and release.
  size_t dying() const { return dying_.size(); }

  static constexpr int kDyingWaitMs = 2000;

 private:
  using Key = std::pair<const Profile*, const isolate::SeccompProgram*>;
  // Destroys a slot without waiting: what outlives it goes to dying_.
  void retire(std::unique_ptr<isolate::Slot> slot);
  void reap_dying();
  std::vector<std::unique_ptr<isolate::SlotRemains>> dying_;
  size_t max_;
  size_t build_below_;
  std::map<Key, std::vector<std::unique_ptr<isolate::Slot>>> idle_;
  std::map<Key, size_t> out_;  // handed out, per key
  // Handed out before the last invalidate(): destroyed at their release.
  std::set<const isolate::Slot*> outdated_;
  std::set<const isolate::Slot*> handed_out_;
  SlotPoolStats stats_;
};

}  // namespace jailpool::pool
