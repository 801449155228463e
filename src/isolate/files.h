// Files crossing the sandbox boundary: copied into a job's working directory before it starts,
// collected from it after every process of the job is dead.
//
// The real escapes of judge systems were host-side file handling (Judge0 CVE-2024-28185/28189,
// go-judge #176): a job leaves a symlink, a FIFO or a hard link where the host later reads or
// writes. Here every host-side open of a path the job could touch resolves beneath a directory
// fd with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
// RESOLVE_NO_XDEV) and O_NOFOLLOW (or, without openat2, a walk of O_NOFOLLOW opens, one
// component at a time), and the result is checked with fstat before a byte is read: a regular
// file, one link, on the working directory's filesystem. Nothing is ever chown'ed or chmod'ed
// but what jailpool itself just created.
//
// The working directory of a job with files is a ScratchFs: a tmpfs made with fsopen/fsmount
// that belongs to no mount namespace until the jail's init moves it onto the working directory.
// jailpool's fd keeps it reachable after the jail is gone; closing that fd frees it. It never
// appears on the host's filesystems, so there is nothing to delete or to reclaim after a crash.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "common/unique_fd.h"
#include "jailpool.pb.h"

namespace jailpool::isolate {

// Whether openat2 (5.6) works here (probed once; ENOSYS or a seccomp EPERM: no).
bool openat2_available();

enum class Resolve {
  kAuto,  // openat2 when available, else the walk
  kWalk,  // the fallback: one O_NOFOLLOW openat per component (tested on its own)
};

// Opens `path` beneath `dirfd` without following any symlink (the last component included: with
// O_PATH a symlink there is opened itself) and without crossing a mount point. `path` is
// relative, its components neither empty, "." nor "..". O_NOFOLLOW and O_CLOEXEC are added.
// Returns the fd, or -errno: ELOOP (a symlink in the path), EXDEV (a mount point), ENOENT,
// ENOTDIR, EINVAL (a bad path), ...
int open_beneath(int dirfd, std::string_view path, int flags, mode_t mode = 0,
                 Resolve how = Resolve::kAuto);

// A file the job left, opened for reading.
struct JobFile {
  UniqueFd fd;        // O_RDONLY; valid when error is empty
  uint64_t size = 0;  // st_size
  std::string error;  // one line (see FileResult.error)
};

// Opens `path` beneath root_fd for reading when it is a regular file with one link, on
// root_fd's filesystem, of at most max_bytes. The file is first opened O_PATH (no side effect
// whatever it is), checked with fstat, then that very inode is reopened for reading.
JobFile open_job_file(int root_fd, std::string_view path, uint64_t max_bytes,
                      Resolve how = Resolve::kAuto);

// Reads at most max_bytes of fd from its start; Error when it holds more.
std::string read_capped(int fd, uint64_t max_bytes);

// Opens the host file `path` for writing: created (0644) or truncated, never through a symlink
// at `path` (O_NOFOLLOW), and only when it is a regular file (a FIFO or a device there is
// refused before it is opened). The path is the submitter's, not the job's. Throws Error.
UniqueFd create_host_file(const std::string& path);

// A tmpfs made with fsopen/fsmount (5.2), attached nowhere yet: `data` are mount(2)-style
// tmpfs options ("size=...,nr_inodes=...,mode=..."), `flags` MS_NOSUID, MS_NODEV, MS_NOEXEC.
// Returns the mount's fd (for move_mount). Throws Error naming `what`.
UniqueFd mount_detached_tmpfs(const std::string& data, unsigned long flags, std::string_view what);

// The working directory of a job with files (see the top of this file).
class ScratchFs {
 public:
  // A tmpfs of the profile's working-directory size, its root owned by the job's uid/gid
  // (mode 0755), nosuid and nodev. Throws Error (fsopen and friends are Linux 5.2).
  static ScratchFs create(const Profile& profile);

  // The mount's root: the fd the jail's init moves onto the working directory, and the dirfd
  // every copy-in and copy-out resolves beneath.
  int fd() const { return fd_.get(); }

 private:
  UniqueFd fd_;
};

// Puts one CopyIn into root_fd, a directory no job has touched yet: makes the missing parent
// directories (owned by uid:gid, 0755), creates the file (O_EXCL, owned by root, mode
// file.mode(), else 0555 for an executable src, else 0444) and writes file.content() or the
// host file file.src() (a regular file, opened O_NOFOLLOW). Throws ConfigError naming `field`
// (e.g. "copy_in[0].src").
void copy_in(int root_fd, const CopyIn& file, std::string_view field, uint32_t uid, uint32_t gid);

// Collects one CopyOut beneath root_fd after the job: into the result (content) or into the
// host file file.dst(); max_bytes when file.max_bytes() is 0. Never throws: every problem is
// the FileResult's error.
FileResult collect_file(int root_fd, const CopyOut& file, uint64_t default_max_bytes,
                        Resolve how = Resolve::kAuto);

}  // namespace jailpool::isolate
