// The parent cgroup's lifecycle when several jailpool instances share it (concurrent `jailpool
// run`s, a batch beside them, ...): who may remove it, and reclaiming what a dead instance left.
// Internal to isolate/ (cgroup.cc uses it).
//
// Every instance holds a shared flock(2) on the parent's directory in one hierarchy (the lock
// directory: the v2 parent, else the first v1 one) from before it makes anything below the
// parent until its last job cgroup is gone. An instance removes the parent directories only
// when it gets that lock exclusively, i.e. when no other instance holds it; one that starts
// meanwhile waits until the removal is over and makes the parent anew. Without this, one
// instance's rmdir of the (momentarily empty) parent made another's job mkdir fail with
// ENOENT. The lock is on the cgroup directory itself: shared by every process that sees that
// cgroup, through any mount, and nothing (no lock file) is left behind. flock locks go with
// their holder, however it ends (kill -9 included).
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "common/unique_fd.h"

namespace jailpool::isolate::cgroup_parent {

class SharedLock {
 public:
  SharedLock() = default;
  SharedLock(const SharedLock&) = delete;
  SharedLock& operator=(const SharedLock&) = delete;
  ~SharedLock() { release(); }

  // Makes `dir` when missing and takes the shared lock on it, waiting while another instance
  // holds it exclusively (it is removing the parent); when that one removed `dir`, makes it
  // anew. Returns true when this call made the directory. Throws SysError.
  bool acquire(const std::string& dir);

  bool held() const { return static_cast<bool>(fd_); }

  // Ends this instance's share and tries to take the lock exclusively, without waiting. True:
  // no other instance holds it, and none can take it until release(): the caller may remove
  // the parent. False: another instance uses the parent (this one no longer holds anything).
  bool try_exclusive();

  // Drops whatever this instance holds (also for copies of the fd in children).
  void release() noexcept;

 private:
  UniqueFd fd_;
};

// The pid in a job cgroup's name, job-<pid>-<anything> (the contract between isolate and the
// callers that name job cgroups); 0 when the name has another form.
pid_t job_cgroup_owner(std::string_view name);

// Kills what is left in the job cgroups of dead instances below each of `parent_dirs` and removes
// them (retrying EBUSY for ~100 ms each). A job cgroup's owner is dead when no process has its
// pid; those named for this process's own pid count as dead only with `own_pid_is_orphan`
// (a dead instance had this pid before: pids are reused), which the caller sets when none of
// them can be its own. An owner whose pid was reused by an unrelated process looks alive: its
// cgroups wait for a later reclaim. Best effort: what cannot be removed stays for the next one.
void reclaim_job_cgroups(const std::vector<std::string>& parent_dirs, bool own_pid_is_orphan);

}  // namespace jailpool::isolate::cgroup_parent
