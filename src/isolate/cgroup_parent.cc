// The parent cgroup's lifecycle: the shared lock that keeps it alive while any instance uses
// it, and reclaiming the job cgroups of dead instances (see cgroup_parent.h).
#include "isolate/cgroup_parent.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <string>

#include "common/error.h"

namespace jailpool::isolate::cgroup_parent {

namespace {

// An exiting instance removes the parent at most once per instance that ends; a starting one
// that keeps finding its directory removed is facing something other than jailpool.
constexpr int kMaxAcquireAttempts = 1000;

bool same_file(const struct stat& a, const struct stat& b) {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

// The pids in dir/cgroup.procs (empty when it cannot be read, e.g. the cgroup is gone).
std::vector<pid_t> listed_pids(const std::string& dir) {
  std::vector<pid_t> pids;
  UniqueFd fd(::open((dir + "/cgroup.procs").c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return pids;
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd.get(), buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0) text.append(buf, static_cast<size_t>(n));
  }
  const char* p = text.data();
  const char* end = p + text.size();
  while (p < end) {
    pid_t pid = 0;
    auto [next, ec] = std::from_chars(p, end, pid);
    if (ec == std::errc() && pid > 0) pids.push_back(pid);
    p = next + 1;  // past the newline (or the character that stopped the parse)
  }
  return pids;
}

// SIGKILLs every process in the cgroup `dir`: cgroup.kill where it exists (v2, 5.14+), else
// each listed pid through a pidfd taken before a second listing confirms membership, so that a
// recycled pid is never hit.
void kill_members(const std::string& dir) {
  if (UniqueFd kill_fd{::open((dir + "/cgroup.kill").c_str(), O_WRONLY | O_CLOEXEC)}) {
    if (::write(kill_fd.get(), "1", 1) == 1) return;
  }
  std::vector<pid_t> first = listed_pids(dir);
  std::vector<std::pair<pid_t, UniqueFd>> fds;
  for (pid_t pid : first) {
    fds.emplace_back(pid, UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0))));  // 5.3+
  }
  std::vector<pid_t> still = listed_pids(dir);
  for (auto& [pid, fd] : fds) {
    if (std::find(still.begin(), still.end(), pid) == still.end()) continue;
    if (fd) {
      ::syscall(SYS_pidfd_send_signal, fd.get(), SIGKILL, nullptr, 0);  // 5.1+
    } else if (errno != ESRCH) {
      ::kill(pid, SIGKILL);  // kernels without pidfd_open: a tiny pid-reuse window remains
    }
  }
}

// rmdir of a dead instance's job cgroup, killing what keeps it busy; gives up after ~100 ms.
void remove_orphan(const std::string& path) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    if (::rmdir(path.c_str()) == 0 || errno != EBUSY) return;  // ENOENT: another one did it
    kill_members(path);
    ::usleep(1000);
  }
}

bool process_exists(pid_t pid) {
  return ::kill(pid, 0) == 0 || errno != ESRCH;  // EPERM: it exists
}

}  // namespace

bool SharedLock::acquire(const std::string& dir) {
  release();
  for (int attempt = 1;; ++attempt) {
    bool made = ::mkdir(dir.c_str(), 0755) == 0;
    if (!made && errno != EEXIST) throw_errno("mkdir " + dir);
    UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd && (errno != ENOENT || attempt == kMaxAcquireAttempts)) throw_errno("open " + dir);
    if (!fd) continue;  // removed by an exiting instance since the mkdir
    while (::flock(fd.get(), LOCK_SH) < 0) {
      if (errno != EINTR) throw_errno("flock " + dir);
    }
    // The lock may have been granted on a directory that an exiting instance removed while
    // this one waited (it held the lock exclusively): keep it only if `dir` is still that
    // directory. (An instance removes the parent only while holding the lock exclusively, so
    // from here on `dir` stays.)
    struct stat locked {};
    struct stat now {};
    if (::fstat(fd.get(), &locked) < 0) throw_errno("stat " + dir);
    if (::stat(dir.c_str(), &now) == 0 && same_file(locked, now)) {
      fd_ = std::move(fd);
      return made;
    }
    if (attempt == kMaxAcquireAttempts) {
      throw Error("cgroup parent " + dir + ": removed and made again by others " +
                  std::to_string(attempt) + " times while jailpool was taking it");
    }
  }
}

bool SharedLock::try_exclusive() {
  if (!fd_) return false;
  if (::flock(fd_.get(), LOCK_EX | LOCK_NB) == 0) return true;
  // EWOULDBLOCK. flock(2) converts a lock by dropping it first: the shared lock is gone too.
  release();
  return false;
}

void SharedLock::release() noexcept {
  if (!fd_) return;
  // Explicitly: a child cloned since holds a copy of the fd, and the lock belongs to the open
  // file, not to this descriptor.
  ::flock(fd_.get(), LOCK_UN);
  fd_.reset();
}

pid_t job_cgroup_owner(std::string_view name) {
  constexpr std::string_view kPrefix = "job-";
  if (name.substr(0, kPrefix.size()) != kPrefix) return 0;
  name.remove_prefix(kPrefix.size());
  pid_t pid = 0;
  auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), pid);
  if (ec != std::errc() || pid <= 0 || end == name.data() + name.size() || *end != '-') return 0;
  return pid;
}

void reclaim_job_cgroups(const std::vector<std::string>& parent_dirs, bool own_pid_is_orphan) {
  const pid_t self = ::getpid();
  for (const std::string& parent : parent_dirs) {
    std::vector<std::string> orphans;
    if (DIR* dir = ::opendir(parent.c_str())) {
      while (dirent* e = ::readdir(dir)) {
        pid_t owner = job_cgroup_owner(e->d_name);
        if (owner == 0) continue;
        if (owner == self ? !own_pid_is_orphan : process_exists(owner)) continue;
        orphans.push_back(parent + "/" + e->d_name);
      }
      ::closedir(dir);
    }
    for (const std::string& path : orphans) remove_orphan(path);
  }
}

}  // namespace jailpool::isolate::cgroup_parent
