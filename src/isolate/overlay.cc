#include "isolate/overlay.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <sstream>

namespace jailpool::isolate {
namespace {

bool has_prefix(const std::string& path, const std::string& prefix) {
  if (prefix == "/") return true;
  return path.compare(0, prefix.size(), prefix) == 0 &&
         (path.size() == prefix.size() || path[prefix.size()] == '/');
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '7') {
      out.push_back(
          static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

void escape_into(std::string& out, const std::string& path) {
  for (char c : path) {
    if (c == '\\' || c == ',' || c == ':') out.push_back('\\');
    out.push_back(c);
  }
}

}  // namespace

MountTable MountTable::read() {
  std::ifstream in("/proc/self/mountinfo");
  std::vector<std::string> points;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, point;
    if (fields >> id >> parent >> dev >> root >> point) points.push_back(unescape(point));
  }
  if (points.empty()) points.push_back("/");
  return MountTable(std::move(points));
}

MountTable::MountTable(std::vector<std::string> mount_points) : points_(std::move(mount_points)) {}

const std::string& MountTable::mount_of(const std::string& path) const {
  static const std::string root = "/";
  const std::string* best = &root;
  for (const std::string& p : points_) {
    if (has_prefix(path, p) && p.size() >= best->size()) best = &p;
  }
  return *best;
}

std::vector<std::string> MountTable::beneath(const std::string& dir) const {
  std::vector<std::string> out;
  for (const std::string& p : points_) {
    if (p != dir && has_prefix(p, dir) && std::find(out.begin(), out.end(), p) == out.end()) {
      out.push_back(p);
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const std::string& a, const std::string& b) {
    return std::count(a.begin(), a.end(), '/') < std::count(b.begin(), b.end(), '/');
  });
  return out;
}

std::string overlay_lowerdir_option(const std::string& first, const std::string& second) {
  std::string out = "lowerdir=";
  escape_into(out, first);
  out.push_back(':');
  escape_into(out, second);
  return out;
}

bool overlay_supported() {
#ifdef SYS_fsopen
  int fd = static_cast<int>(::syscall(SYS_fsopen, "overlay", FSOPEN_CLOEXEC));
  if (fd >= 0) {
    ::close(fd);
    return true;
  }
  if (errno != ENOSYS) return false;  // ENODEV: no such filesystem type
#endif
  std::ifstream in("/proc/filesystems");
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() >= 7 && line.compare(line.size() - 7, 7, "overlay") == 0) return true;
  }
  return false;
}

}  // namespace jailpool::isolate
