// Changes to the host's names under a profile's read-only binds, so that long-lived jails
// (slots, templates) that show them can be replaced.
//
// A jail reads the host's files through read-only overlays (overlay.h), and overlayfs does not
// promise to show changes made to its lower layer after it was mounted: it keeps the dentries it
// looked up. A name replaced (`mv new prog`), removed or created on the host keeps showing the old
// file (or no file) in a slot or template that looked it up before, for its life (seen on 6.18).
// In-place writes to a file are seen (the overlay reads the same inode), as are mode changes.
//
// So jailpool watches, with fanotify (5.9: FAN_REPORT_DFID_NAME; CAP_SYS_ADMIN), every name
// created, removed or moved on the filesystems its profiles' read-only binds come from, and keeps
// those under (or above) a bind's source. A filesystem mark sees the whole filesystem: the events
// of unrelated directories are read and dropped, each directory resolved once per read.
#pragma once

#include <linux/types.h>
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "jailpool.pb.h"

namespace jailpool::isolate {

class HostWatch {
 public:
  // nullptr when this kernel or this process cannot watch (*why_not says why).
  static std::unique_ptr<HostWatch> create(std::string* why_not);
  HostWatch(const HostWatch&) = delete;
  HostWatch& operator=(const HostWatch&) = delete;

  // Watches the sources of the profile's read-only binds (those that exist). Throws Error when a
  // filesystem cannot be marked.
  void add_profile(const Profile& profile);
  // Watches a canonical host path: names created, removed or moved at or under it, and its own
  // ancestors' renames and removals. Throws Error when its filesystem cannot be marked.
  void add(const std::string& canonical_path);

  // Reads what is pending, without waiting: whether any of it concerns a watched path (or the
  // queue overflowed: then it may have). One read(2) when nothing is pending.
  bool changed();

  int fd() const { return fd_.get(); }
  uint64_t events_read() const { return events_read_; }

 private:
  HostWatch() = default;
  bool concerns(const std::string& path) const;
  // The path of a directory an event names (fanotify's fsid and file handle): "" when it is
  // gone, nullopt when that cannot be told.
  std::optional<std::string> resolve_dir(const __kernel_fsid_t& fsid, const char* handle,
                                         size_t handle_len) const;

  UniqueFd fd_;
  std::vector<std::string> paths_;
  // Per marked filesystem (its fsid, as fanotify reports it): an fd on it for open_by_handle_at.
  std::map<std::pair<int32_t, int32_t>, UniqueFd> filesystems_;
  uint64_t events_read_ = 0;
};

}  // namespace jailpool::isolate
