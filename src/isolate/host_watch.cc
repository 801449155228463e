#include "isolate/host_watch.h"

#include <fcntl.h>
#include <fmt/core.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "common/error.h"

namespace jailpool::isolate {

namespace {

// Names created, removed or moved, of files and directories.
constexpr uint64_t kMask = FAN_CREATE | FAN_DELETE | FAN_MOVED_FROM | FAN_MOVED_TO | FAN_ONDIR;

bool under(const std::string& path, const std::string& dir) {
  if (dir == "/") return true;
  return path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
         path[dir.size()] == '/';
}

std::pair<int32_t, int32_t> fsid_key(const __kernel_fsid_t& fsid) {
  return {fsid.val[0], fsid.val[1]};
}

}  // namespace

std::unique_ptr<HostWatch> HostWatch::create(std::string* why_not) {
  int fd = fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK | FAN_REPORT_DFID_NAME,
                         O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (why_not) *why_not = fmt::format("fanotify_init: {}", std::strerror(errno));
    return nullptr;
  }
  std::unique_ptr<HostWatch> watch(new HostWatch());
  watch->fd_.reset(fd);
  return watch;
}

void HostWatch::add_profile(const Profile& profile) {
  for (const Bind& bind : profile.bind()) {
    if (bind.rw()) continue;  // a plain bind of the host's: changes show at once
    char resolved[PATH_MAX];
    if (::realpath(bind.src().c_str(), resolved) == nullptr) continue;  // optional and absent
    add(resolved);
  }
}

void HostWatch::add(const std::string& path) {
  for (const std::string& p : paths_) {
    if (p == path) return;
  }
  struct statfs fs {};
  if (::statfs(path.c_str(), &fs) < 0) throw_errno("statfs " + path);
  __kernel_fsid_t fsid;
  std::memcpy(&fsid, &fs.f_fsid, sizeof fsid);
  auto key = fsid_key(fsid);
  if (filesystems_.find(key) == filesystems_.end()) {
    if (fanotify_mark(fd_.get(), FAN_MARK_ADD | FAN_MARK_FILESYSTEM, kMask, AT_FDCWD,
                      path.c_str()) < 0) {
      throw_errno("fanotify_mark of the filesystem of " + path);
    }
    // open_by_handle_at takes no O_PATH fd. Nothing but a directory or a regular file is opened
    // (a device's open may act); a source of another kind is watched through its directory.
    struct stat st {};
    if (::stat(path.c_str(), &st) < 0) throw_errno("stat " + path);
    std::string on = path;
    int flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
    if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
      on = path.substr(0, std::max<size_t>(1, path.rfind('/')));
      flags |= O_DIRECTORY;
    }
    int fd = ::open(on.c_str(), flags);
    if (fd < 0) throw_errno("open " + on);
    filesystems_.emplace(key, UniqueFd(fd));
  }
  paths_.push_back(path);
}

bool HostWatch::concerns(const std::string& path) const {
  for (const std::string& p : paths_) {
    // At or under a source, or above one (a parent renamed or removed).
    if (path == p || under(path, p) || under(p, path)) return true;
  }
  return false;
}

std::optional<std::string> HostWatch::resolve_dir(const __kernel_fsid_t& fsid, const char* handle,
                                                  size_t handle_len) const {
  auto fs = filesystems_.find(fsid_key(fsid));
  if (fs == filesystems_.end()) return std::nullopt;  // not a filesystem we marked
  alignas(struct file_handle) char copy[sizeof(struct file_handle) + MAX_HANDLE_SZ];
  std::memcpy(copy, handle, std::min(handle_len, sizeof copy));
  int dfd = ::open_by_handle_at(fs->second.get(), reinterpret_cast<struct file_handle*>(copy),
                                O_PATH | O_CLOEXEC);
  if (dfd < 0) {
    // A directory already removed (ESTALE): its own removal is reported in an ancestor that
    // still exists, and judged there.
    if (errno == ESTALE || errno == ENOENT) return std::string();
    return std::nullopt;
  }
  char target[PATH_MAX];
  ssize_t len = ::readlink(fmt::format("/proc/self/fd/{}", dfd).c_str(), target, sizeof target - 1);
  ::close(dfd);
  std::string dir;
  if (len > 0) dir.assign(target, static_cast<size_t>(len));
  if (dir.size() > 10 && dir.compare(dir.size() - 10, 10, " (deleted)") == 0) return std::string();
  if (!dir.empty() && dir[0] != '/') return std::nullopt;  // outside the mount we resolve through
  return dir;
}

bool HostWatch::changed() {
  alignas(struct fanotify_event_metadata) char buf[16384];
  bool hit = false;
  // Directories resolved in this call: fsid and handle bytes -> whether their events concern us.
  std::map<std::string, std::string> dirs;  // key -> path ("" : gone)
  for (;;) {
    ssize_t n = ::read(fd_.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    if (n < 0) throw_errno("read fanotify");
    if (n == 0) break;
    // Events are as long as their names: one after another, at any alignment (copied out).
    for (size_t off = 0; off + sizeof(struct fanotify_event_metadata) <= static_cast<size_t>(n);) {
      struct fanotify_event_metadata meta;
      std::memcpy(&meta, buf + off, sizeof meta);
      if (meta.event_len < sizeof meta || off + meta.event_len > static_cast<size_t>(n)) break;
      const struct fanotify_event_metadata* m = &meta;
      const char* event = buf + off;
      off += meta.event_len;
      ++events_read_;
      if (m->fd >= 0) ::close(m->fd);  // none with fid reporting
      if (hit) continue;               // the rest is read only to empty the queue
      if (m->vers != FANOTIFY_METADATA_VERSION || (m->mask & FAN_Q_OVERFLOW)) {
        hit = true;  // events were lost: any of them may have concerned us
        continue;
      }
      const char* p = event + m->metadata_len;
      const char* end = event + m->event_len;
      bool any = false;
      while (p + sizeof(struct fanotify_event_info_header) <= end) {
        struct fanotify_event_info_header hdr;
        std::memcpy(&hdr, p, sizeof hdr);
        if (hdr.len == 0 || p + hdr.len > end) break;
        if (hdr.info_type == FAN_EVENT_INFO_TYPE_DFID_NAME) {
          any = true;
          struct fanotify_event_info_fid fid;
          std::memcpy(&fid, p, sizeof fid);
          const char* handle = p + sizeof fid;  // struct file_handle, then the name
          struct file_handle fh_head;
          std::memcpy(&fh_head, handle, sizeof fh_head);
          size_t handle_len = sizeof fh_head + fh_head.handle_bytes;
          const char* name = handle + handle_len;
          std::string key(reinterpret_cast<const char*>(&fid.fsid), sizeof fid.fsid);
          key.append(handle, handle_len);
          auto it = dirs.find(key);
          if (it == dirs.end()) {
            std::optional<std::string> dir = resolve_dir(fid.fsid, handle, handle_len);
            if (!dir) {
              hit = true;  // cannot tell: be safe
              break;
            }
            it = dirs.emplace(std::move(key), std::move(*dir)).first;
          }
          if (!it->second.empty()) {
            std::string path =
                it->second == "/" ? "/" + std::string(name) : it->second + "/" + std::string(name);
            if (concerns(path)) hit = true;
          }
        }
        p += hdr.len;
      }
      if (!any) hit = true;  // an event we cannot place
    }
  }
  return hit;
}

}  // namespace jailpool::isolate
