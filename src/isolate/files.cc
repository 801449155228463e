#include "isolate/files.h"

#include <fcntl.h>
#include <fmt/core.h>
#include <linux/openat2.h>
#include <sys/mount.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common/error.h"
#include "isolate/jail.h"

namespace jailpool::isolate {
namespace {

constexpr uint64_t kResolveFlags =
    RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;

// The components of a relative path, or an empty vector when it is not one we accept.
std::vector<std::string> split_relative(std::string_view path) {
  std::vector<std::string> out;
  if (path.empty() || path.front() == '/' || path.find('\0') != std::string_view::npos) return {};
  while (true) {
    const size_t slash = path.find('/');
    std::string_view component = path.substr(0, slash);
    if (component.empty() || component == "." || component == "..") return {};
    out.emplace_back(component);
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return out;
}

const char* file_type(mode_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return "regular file";
    case S_IFDIR:
      return "directory";
    case S_IFLNK:
      return "symlink";
    case S_IFIFO:
      return "fifo";
    case S_IFSOCK:
      return "socket";
    case S_IFCHR:
      return "character device";
    case S_IFBLK:
      return "block device";
  }
  return "unknown type";
}

// The mount of an fd: st_dev, and the mount id where statx reports it (5.8).
struct MountKey {
  dev_t dev = 0;
  uint64_t mnt_id = 0;
  bool has_mnt_id = false;
  bool operator==(const MountKey& o) const {
    return dev == o.dev && (!has_mnt_id || !o.has_mnt_id || mnt_id == o.mnt_id);
  }
};

int mount_key(int fd, MountKey* key) {
  struct statx stx {};
  if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, &stx) < 0) return -errno;
  key->dev = makedev(stx.stx_dev_major, stx.stx_dev_minor);
  key->has_mnt_id = (stx.stx_mask & STATX_MNT_ID) != 0;
  key->mnt_id = stx.stx_mnt_id;
  return 0;
}

// The fallback of open_beneath: one openat per component, each O_NOFOLLOW, each checked to be
// on dirfd's mount. Nothing it opens can be a symlink, so it cannot leave dirfd's tree.
int open_walk(int dirfd, const std::vector<std::string>& components, int flags, mode_t mode) {
  MountKey root;
  if (int rc = mount_key(dirfd, &root); rc < 0) return rc;
  UniqueFd dir;
  int at = dirfd;
  for (size_t i = 0; i + 1 < components.size(); ++i) {
    const char* name = components[i].c_str();
    int fd = ::openat(at, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      struct stat st;
      // O_NOFOLLOW|O_DIRECTORY on a symlink says ENOTDIR; openat2 says ELOOP. A directory or
      // nothing there now: swapped meanwhile, EAGAIN as openat2 says for a race (retried).
      if (err == ENOTDIR) {
        if (::fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
          err = EAGAIN;
        } else if (S_ISLNK(st.st_mode)) {
          err = ELOOP;
        } else if (S_ISDIR(st.st_mode)) {
          err = EAGAIN;
        }
      }
      return -err;
    }
    dir.reset(fd);
    at = fd;
    MountKey here;
    if (int rc = mount_key(at, &here); rc < 0) return rc;
    if (!(here == root)) return -EXDEV;
  }
  int fd = ::openat(at, components.back().c_str(), flags | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) return -errno;
  MountKey here;
  int rc = mount_key(fd, &here);
  if (rc < 0 || !(here == root)) {
    ::close(fd);
    return rc < 0 ? rc : -EXDEV;
  }
  return fd;
}

// One line for an error of open_beneath on a file the job left.
std::string describe_open_error(int err) {
  switch (err) {
    case ENOENT:
      return "missing";
    case ELOOP:
      return "symlink in the path";
    case ENOTDIR:
      return "missing (a component of the path is not a directory)";
    case EXDEV:
      return "crosses a mount point";
    case EAGAIN:
      return "changed while being collected";
    default:
      return fmt::format("cannot open: {}", std::strerror(err));
  }
}

// Copies fd `in` from its start to `out`, at most max_bytes; Error when `in` holds more.
uint64_t copy_capped(int in, int out, uint64_t max_bytes) {
  uint64_t done = 0;
  bool use_sendfile = true;
  std::vector<char> buf;
  for (;;) {
    // One byte more than allowed tells a file that is too long from one that is just right.
    uint64_t want = std::min<uint64_t>(max_bytes - done + 1, 1u << 30);
    ssize_t n;
    if (use_sendfile) {
      n = ::sendfile(out, in, nullptr, want);
      if (n < 0 && (errno == EINVAL || errno == ENOSYS) && done == 0) {
        use_sendfile = false;
        continue;
      }
    } else {
      if (buf.empty()) buf.resize(1 << 16);
      n = ::read(in, buf.data(), std::min<uint64_t>(want, buf.size()));
      if (n > 0) {
        if (done + static_cast<uint64_t>(n) > max_bytes) {
          throw Error(fmt::format("larger than max_bytes {}", max_bytes));
        }
        for (ssize_t w = 0; w < n;) {
          ssize_t k = ::write(out, buf.data() + w, static_cast<size_t>(n - w));
          if (k < 0 && errno == EINTR) continue;
          if (k <= 0) throw SysError(errno, "write");
          w += k;
        }
      }
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw SysError(errno, use_sendfile ? "sendfile" : "read");
    if (n == 0) return done;
    done += static_cast<uint64_t>(n);
    if (done > max_bytes) throw Error(fmt::format("larger than max_bytes {}", max_bytes));
  }
}

std::string one_line(std::string s) {
  for (char& c : s) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return s;
}

}  // namespace

bool openat2_available() {
  static const bool available = [] {
    open_how how{};
    how.flags = O_PATH | O_CLOEXEC;
    how.resolve = RESOLVE_NO_SYMLINKS;
    long fd = ::syscall(SYS_openat2, AT_FDCWD, "/", &how, sizeof how);
    if (fd < 0) return false;  // ENOSYS before 5.6; EPERM from a container's seccomp policy
    ::close(static_cast<int>(fd));
    return true;
  }();
  return available;
}

int open_beneath(int dirfd, std::string_view path, int flags, mode_t mode, Resolve how) {
  std::vector<std::string> components = split_relative(path);
  if (components.empty()) return -EINVAL;
  if (how == Resolve::kWalk || !openat2_available()) {
    int fd = -EAGAIN;
    for (int attempt = 0; fd == -EAGAIN && attempt < 32; ++attempt) {
      fd = open_walk(dirfd, components, flags, mode);
    }
    return fd;
  }
  open_how request{};
  request.flags = static_cast<uint64_t>(flags | O_NOFOLLOW | O_CLOEXEC);
  if (flags & (O_CREAT | O_TMPFILE)) request.mode = mode;  // openat2 refuses a mode otherwise
  request.resolve = kResolveFlags;
  std::string p(path);
  for (int attempt = 0;; ++attempt) {
    long fd = ::syscall(SYS_openat2, dirfd, p.c_str(), &request, sizeof request);
    if (fd >= 0) return static_cast<int>(fd);
    // RESOLVE_BENEATH gives EAGAIN when a rename or mount raced with the lookup.
    if ((errno == EAGAIN || errno == EINTR) && attempt < 32) continue;
    return -errno;
  }
}

JobFile open_job_file(int root_fd, std::string_view path, uint64_t max_bytes, Resolve how) {
  JobFile out;
  int fd = open_beneath(root_fd, path, O_PATH, 0, how);
  if (fd < 0) {
    out.error = describe_open_error(-fd);
    return out;
  }
  UniqueFd path_fd(fd);
  struct stat st, root_st;
  if (::fstat(path_fd.get(), &st) < 0 || ::fstat(root_fd, &root_st) < 0) {
    out.error = fmt::format("cannot stat: {}", std::strerror(errno));
    return out;
  }
  if (S_ISLNK(st.st_mode)) {
    out.error = "symlink";
    return out;
  }
  if (!S_ISREG(st.st_mode)) {
    out.error = fmt::format("not a regular file ({})", file_type(st.st_mode));
    return out;
  }
  if (st.st_dev != root_st.st_dev) {
    out.error = "on another filesystem";
    return out;
  }
  // The job may have linked a file it could see into its working directory (on a tmpfs of its
  // own that cannot happen across filesystems, but a second name is refused all the same).
  if (st.st_nlink == 0) {  // replaced (renamed over or unlinked) since the open
    out.error = "changed while being collected";
    return out;
  }
  if (st.st_nlink != 1) {
    out.error = fmt::format("hard link (nlink {})", static_cast<uint64_t>(st.st_nlink));
    return out;
  }
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    out.error = fmt::format("larger than max_bytes {} ({} bytes)", max_bytes,
                            static_cast<uint64_t>(st.st_size));
    return out;
  }
  // Reopening the O_PATH fd through its /proc/self/fd link opens exactly the inode checked
  // above: no second lookup of the path, so nothing can be swapped in between.
  std::string self = fmt::format("/proc/self/fd/{}", path_fd.get());
  int rd = ::open(self.c_str(), O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
  if (rd < 0) {
    out.error = fmt::format("cannot open: {}", std::strerror(errno));
    return out;
  }
  UniqueFd read_fd(rd);
  struct stat again;
  if (::fstat(read_fd.get(), &again) < 0 || again.st_ino != st.st_ino ||
      again.st_dev != st.st_dev || !S_ISREG(again.st_mode)) {
    out.error = "changed while being collected";
    return out;
  }
  out.fd = std::move(read_fd);
  out.size = static_cast<uint64_t>(again.st_size);
  return out;
}

std::string read_capped(int fd, uint64_t max_bytes) {
  std::string data;
  struct stat st;
  if (::fstat(fd, &st) == 0 && st.st_size > 0) {
    data.reserve(std::min<uint64_t>(static_cast<uint64_t>(st.st_size), max_bytes));
  }
  char buf[65536];
  uint64_t offset = 0;
  for (;;) {
    ssize_t n = ::pread(fd, buf, sizeof buf, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw SysError(errno, "read");
    if (n == 0) return data;
    offset += static_cast<uint64_t>(n);
    if (offset > max_bytes) throw Error(fmt::format("larger than max_bytes {}", max_bytes));
    data.append(buf, static_cast<size_t>(n));
  }
}

UniqueFd create_host_file(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    throw Error(fmt::format("{}: a {}, not a regular file", path, file_type(st.st_mode)));
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC,
                  0644);
  if (fd < 0) {
    throw Error(fmt::format("{}: {}", path, errno == ELOOP ? "a symlink" : std::strerror(errno)));
  }
  UniqueFd out(fd);
  if (::fstat(fd, &st) < 0) throw SysError(errno, "fstat " + path);
  if (!S_ISREG(st.st_mode)) {
    throw Error(fmt::format("{}: a {}, not a regular file", path, file_type(st.st_mode)));
  }
  if (::ftruncate(fd, 0) < 0) throw SysError(errno, "truncate " + path);
  return out;
}

UniqueFd mount_detached_tmpfs(const std::string& data, unsigned long flags, std::string_view what) {
  UniqueFd context(::fsopen("tmpfs", FSOPEN_CLOEXEC));
  if (!context) throw_errno(fmt::format("fsopen tmpfs for {} (Linux 5.2)", what));
  size_t at = 0;
  while (at < data.size()) {
    size_t end = data.find(',', at);
    if (end == std::string::npos) end = data.size();
    std::string option = data.substr(at, end - at);
    at = end + 1;
    size_t eq = option.find('=');
    std::string key = option.substr(0, eq);
    std::string value = eq == std::string::npos ? std::string() : option.substr(eq + 1);
    int rc = eq == std::string::npos
                 ? ::fsconfig(context.get(), FSCONFIG_SET_FLAG, key.c_str(), nullptr, 0)
                 : ::fsconfig(context.get(), FSCONFIG_SET_STRING, key.c_str(), value.c_str(), 0);
    if (rc < 0) throw_errno(fmt::format("tmpfs option {} for {}", option, what));
  }
  if (::fsconfig(context.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) < 0) {
    throw_errno(fmt::format("create the tmpfs for {}", what));
  }
  unsigned attrs = 0;
  if (flags & MS_NOSUID) attrs |= MOUNT_ATTR_NOSUID;
  if (flags & MS_NODEV) attrs |= MOUNT_ATTR_NODEV;
  if (flags & MS_NOEXEC) attrs |= MOUNT_ATTR_NOEXEC;
  int fd = ::fsmount(context.get(), FSMOUNT_CLOEXEC, attrs);
  if (fd < 0) throw_errno(fmt::format("fsmount the tmpfs for {}", what));
  return UniqueFd(fd);
}

ScratchFs ScratchFs::create(const Profile& profile) {
  if (profile.cwd().empty()) throw Error("files need a working directory (cwd)");
  const uint32_t uid = profile.has_uid() ? profile.uid() : 65534;
  const uint32_t gid = profile.has_gid() ? profile.gid() : 65534;
  // The fresh jail's working-directory tmpfs, the one after the profile's own tmpfs.
  const WritableFs cwd = writable_filesystems(profile, uid, gid).at(profile.tmpfs_size());
  ScratchFs out;
  out.fd_ = mount_detached_tmpfs(cwd.data, cwd.flags, "the working directory");
  return out;
}

void copy_in(int root_fd, const CopyIn& file, std::string_view field, uint32_t uid, uint32_t gid) {
  const std::string dst_field = fmt::format("{}.dst", field);
  const std::string src_field = fmt::format("{}.src", field);
  std::vector<std::string> components = split_relative(file.dst());
  if (components.empty()) {
    throw ConfigError(dst_field, "must be relative and must not contain \"..\", \".\" or \"//\"");
  }
  // The source first: nothing is made for a source that cannot be read. It is the submitter's
  // path; still, a symlink, FIFO or device there is refused before it is opened.
  UniqueFd src;
  uint32_t mode = file.mode() ? file.mode() : 0444;
  if (file.source_case() == CopyIn::kSrc) {
    const std::string& path = file.src();
    struct stat st;
    if (::lstat(path.c_str(), &st) < 0) {
      throw ConfigError(src_field, fmt::format("{}: {}", path, std::strerror(errno)));
    }
    if (!S_ISREG(st.st_mode)) {
      throw ConfigError(src_field,
                        fmt::format("{}: a {}, not a regular file", path, file_type(st.st_mode)));
    }
    src.reset(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
    if (!src) throw ConfigError(src_field, fmt::format("{}: {}", path, std::strerror(errno)));
    if (::fstat(src.get(), &st) < 0 || !S_ISREG(st.st_mode)) {
      throw ConfigError(src_field, fmt::format("{}: changed while being opened", path));
    }
    if (file.mode() == 0 && (st.st_mode & 0111)) mode = 0555;  // a program stays one
  } else if (file.source_case() != CopyIn::kContent) {
    throw ConfigError(src_field, "missing (give src or content)");
  }

  // No job has run in root_fd yet; O_NOFOLLOW all the same.
  UniqueFd dir;
  int at = root_fd;
  std::string so_far;
  for (size_t i = 0; i + 1 < components.size(); ++i) {
    const char* name = components[i].c_str();
    so_far += (so_far.empty() ? "" : "/") + components[i];
    bool made = ::mkdirat(at, name, 0755) == 0;
    if (!made && errno != EEXIST) {
      throw ConfigError(dst_field, fmt::format("mkdir {}: {}", so_far, std::strerror(errno)));
    }
    int fd = ::openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      throw ConfigError(dst_field, fmt::format("{}: {}", so_far, std::strerror(errno)));
    }
    dir.reset(fd);
    at = fd;
    // A directory jailpool just made (one, not a tree): the job's, so it can write there.
    if (made && (::fchmod(fd, 0755) < 0 || ::fchown(fd, uid, gid) < 0)) {
      throw SysError(errno, "chown " + so_far);
    }
  }
  int fd = ::openat(at, components.back().c_str(),
                    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    throw ConfigError(dst_field, fmt::format("{}: {}", file.dst(), std::strerror(errno)));
  }
  UniqueFd out(fd);
  try {
    if (src) {
      copy_capped(src.get(), out.get(), UINT64_MAX - 1);
    } else {
      const std::string& data = file.content();
      for (size_t done = 0; done < data.size();) {
        ssize_t n = ::write(out.get(), data.data() + done, data.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) throw SysError(errno, "write");
        done += static_cast<size_t>(n);
      }
    }
  } catch (const Error& e) {
    throw ConfigError(dst_field, fmt::format("{}: {}", file.dst(), e.what()));
  }
  if (::fchmod(out.get(), mode) < 0) throw SysError(errno, "chmod " + file.dst());
}

FileResult collect_file(int root_fd, const CopyOut& file, uint64_t default_max_bytes, Resolve how) {
  FileResult out;
  out.set_path(file.path());
  if (!file.dst().empty()) out.set_dst(file.dst());
  const uint64_t max_bytes = file.max_bytes() ? file.max_bytes() : default_max_bytes;
  JobFile job_file = open_job_file(root_fd, file.path(), max_bytes, how);
  if (!job_file.error.empty()) {
    out.set_error(job_file.error);
    return out;
  }
  try {
    if (file.dst().empty()) {
      std::string data = read_capped(job_file.fd.get(), max_bytes);
      out.set_size(data.size());
      out.set_content(std::move(data));
    } else {
      UniqueFd host = create_host_file(file.dst());
      try {
        out.set_size(copy_capped(job_file.fd.get(), host.get(), max_bytes));
      } catch (const Error&) {
        (void)::ftruncate(host.get(), 0);  // no partial file
        throw;
      }
    }
  } catch (const Error& e) {
    out.set_error(one_line(e.what()));
  }
  return out;
}

}  // namespace jailpool::isolate
