// Small string and control-file helpers of the cgroup backend (see cgroup_internal.h).
#include <fcntl.h>
#include <fmt/core.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <thread>

#include "isolate/cgroup_internal.h"

namespace jailpool::isolate::cgroup_detail {

std::string path_join(std::string_view dir, std::string_view name) {
  std::string path(dir);
  if (path.empty() || path.back() != '/') path += '/';
  path += name;
  return path;
}

std::vector<std::string> split_words(std::string_view text) {
  std::vector<std::string> words;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t start = text.find_first_not_of(" \t\n", pos);
    if (start == std::string_view::npos) break;
    size_t end = text.find_first_of(" \t\n", start);
    if (end == std::string_view::npos) end = text.size();
    words.emplace_back(text.substr(start, end - start));
    pos = end;
  }
  return words;
}

bool contains(const std::vector<std::string>& words, std::string_view word) {
  return std::find(words.begin(), words.end(), word) != words.end();
}

std::optional<uint64_t> parse_u64(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// The value of the "key N" line of a flat-keyed file (cpu.stat, memory.events, ...).
std::optional<uint64_t> find_key(std::string_view text, std::string_view key) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    if (line.size() > key.size() && line.substr(0, key.size()) == key && line[key.size()] == ' ') {
      return parse_u64(line.substr(key.size() + 1));
    }
    pos = eol + 1;
  }
  return std::nullopt;
}

bool exists(const std::string& path) {
  return ::access(path.c_str(), F_OK) == 0;
}

UniqueFd open_file(const std::string& path, int flags) {
  UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC));
  if (!fd) throw_errno("open " + path);
  return fd;
}

// An invalid fd when the file does not exist (optional control files).
UniqueFd open_optional(const std::string& path, int flags) {
  UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC));
  if (!fd && errno != ENOENT) throw_errno("open " + path);
  return fd;
}

void write_fd(int fd, std::string_view data, const std::string& path) {
  ssize_t n;
  do {
    n = ::write(fd, data.data(), data.size());
  } while (n < 0 && errno == EINTR);
  if (n < 0) throw_errno("write " + path);
  if (static_cast<size_t>(n) != data.size()) throw Error("write " + path + ": short write");
}

void write_file(const std::string& path, std::string_view data) {
  UniqueFd fd = open_file(path, O_WRONLY);
  write_fd(fd.get(), data, path);
}

std::string read_file(const std::string& path) {
  UniqueFd fd = open_file(path, O_RDONLY);
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("read " + path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// Reads the file behind `fd` from offset 0 into buf (NUL-terminated); returns the length.
// A seq file returns less than asked only at its end, so a short read ends the loop.
size_t pread_all(int fd, char* buf, size_t cap, const std::string& path) {
  size_t len = 0;
  while (len + 1 < cap) {
    size_t want = cap - 1 - len;
    ssize_t n = ::pread(fd, buf + len, want, static_cast<off_t>(len));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("read " + path);
    }
    len += static_cast<size_t>(n);
    if (static_cast<size_t>(n) < want) break;
  }
  buf[len] = '\0';
  return len;
}

// Directory names we create: one path component, nothing the kernel would interpret.
void check_component(const std::string& name, std::string_view what) {
  if (name.empty() || name == "." || name == ".." || name.size() > 255 ||
      name.find_first_of("/\n") != std::string::npos) {
    throw Error(fmt::format("{} \"{}\": must be a single path component", what, name));
  }
}

void sleep_us(int usec) {
  std::this_thread::sleep_for(std::chrono::microseconds(usec));
}

// Reads the pids in dir/cgroup.procs. An empty list when the directory is gone.
std::vector<pid_t> read_procs(const std::string& dir) {
  std::string path = path_join(dir, "cgroup.procs");
  std::string text;
  try {
    text = read_file(path);
  } catch (const SysError& e) {
    if (e.err() == ENOENT) return {};
    throw;
  }
  std::vector<pid_t> pids;
  for (const std::string& word : split_words(text)) {
    if (auto v = parse_u64(word); v && *v > 0) pids.push_back(static_cast<pid_t>(*v));
  }
  return pids;
}

}  // namespace jailpool::isolate::cgroup_detail
