// Read-only overlays of the host's files, so that each jail has inodes of its own.
//
// File locks (flock, POSIX and OFD locks) belong to an inode. A read-only bind of the host's
// /usr shows every jail the same inodes, so a lock one job takes on /bin/sh is visible to every
// other job (and the host): a channel between jobs. An overlay mount has inodes of its own,
// distinct from its lower layer's and from another overlay's of the same layer, while reading
// through to the same files (and page cache). So a jail reads the host's files through overlays
// mounted for it (one per host mount its read-only binds come from), and its locks stay its own.
#pragma once

#include <string>
#include <vector>

namespace jailpool::isolate {

// The mount points of jailpool's mount namespace, from /proc/self/mountinfo.
class MountTable {
 public:
  // Reads /proc/self/mountinfo; an unreadable table gives {"/"} (every path on one mount).
  static MountTable read();
  explicit MountTable(std::vector<std::string> mount_points);

  // The mount point of the mount a canonical path is on (the longest mount point that is a
  // prefix of it, component-wise).
  const std::string& mount_of(const std::string& path) const;
  // Mount points strictly beneath a canonical directory, parents before children.
  std::vector<std::string> beneath(const std::string& dir) const;

 private:
  std::vector<std::string> points_;  // in mountinfo order (later mounts are on top)
};

// The overlay option lowerdir=<a>:<b> with both paths escaped for overlayfs's parser
// (backslash before '\', ',' and ':').
std::string overlay_lowerdir_option(const std::string& first, const std::string& second);

// Whether this kernel has overlayfs (probed with fsopen, 5.2+, or /proc/filesystems; mounting
// may still fail for a given lower layer, which jails handle by trying).
bool overlay_supported();

}  // namespace jailpool::isolate
