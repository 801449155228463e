// The template pool: prepared jail templates per profile (root tree, net and uts namespaces
// held by a holder process), handed out for exclusive use and taken back for the next job.
// Knows nothing of jobs or verdicts.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "jailpool.pb.h"

namespace jailpool::isolate {
class JailTemplate;
}

namespace jailpool::pool {

struct TemplatePoolStats {
  size_t created = 0;   // templates built
  size_t reused = 0;    // acquisitions served by an idle template
  size_t replaced = 0;  // dead templates found and dropped
  size_t outdated = 0;  // dropped because the host's files changed (invalidate)
  size_t idle = 0;
};

class TemplatePool {
 public:
  // max_idle: idle templates kept per profile; more are destroyed on release (shrink).
  explicit TemplatePool(size_t max_idle) : max_idle_(max_idle) {}
  ~TemplatePool();

  // A healthy template of `profile` (which must outlive the pool), for exclusive use.
  // Builds one when none is idle. Throws Error when it cannot be built.
  std::unique_ptr<isolate::JailTemplate> acquire(const Profile& profile);
  // Takes a template back; a dead one is dropped.
  void release(std::unique_ptr<isolate::JailTemplate> jail_template);
  // Builds templates until `count` are idle for `profile`.
  void prefill(const Profile& profile, size_t count);

  // The host's files under the profiles' binds changed (isolate/host_watch.h): no template built
  // before now serves another job. Idle ones are destroyed now, those handed out at release.
  void invalidate();

  TemplatePoolStats stats() const;

 private:
  size_t max_idle_;
  std::map<const Profile*, std::vector<std::unique_ptr<isolate::JailTemplate>>> idle_;
  TemplatePoolStats stats_;
  std::set<const isolate::JailTemplate*> handed_out_, outdated_;
};

}  // namespace jailpool::pool
