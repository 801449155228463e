#include "isolate/jail.h"

#include <fcntl.h>
#include <fmt/core.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>

#include "common/error.h"
#include "common/leak.h"
#include "isolate/cgroup.h"
#include "isolate/clone.h"
#include "isolate/files.h"
#include "isolate/overlay.h"
#include "isolate/seccomp.h"

#ifndef CLONE_CLEAR_SIGHAND
#define CLONE_CLEAR_SIGHAND 0x100000000ULL
#endif

namespace jailpool::isolate {

uint64_t monotonic_now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

namespace {

constexpr size_t kInitStackSize = 256 * 1024;

// Stacks of the jails' inits are reused: an munmap per job costs a TLB shootdown on every CPU
// jailpool's memory is active on (IPIs, slow under a hypervisor), and a fresh mapping costs
// page faults in init.
std::mutex g_stacks_mutex;
std::vector<void*> g_free_stacks;
constexpr size_t kMaxFreeStacks = 64;

void* acquire_stack() {
  {
    std::lock_guard<std::mutex> lock(g_stacks_mutex);
    if (!g_free_stacks.empty()) {
      void* stack = g_free_stacks.back();
      g_free_stacks.pop_back();
      return stack;
    }
  }
  void* stack = mmap(nullptr, kInitStackSize, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
  if (stack == MAP_FAILED) throw_errno("mmap jail stack");
  return stack;
}

void release_stack(void* stack) {
  std::lock_guard<std::mutex> lock(g_stacks_mutex);
  if (g_free_stacks.size() < kMaxFreeStacks) {
    g_free_stacks.push_back(stack);
  } else {
    munmap(stack, kInitStackSize);
  }
}
constexpr unsigned long kNoSuidDev = MS_NOSUID | MS_NODEV;
// A read-only file bind whose source is a mount of its own is copied up to this size.
constexpr off_t kMaxCopiedFile = 64 * 1024;

using Kind = MountOp::Kind;

std::string join(const char* prefix, const std::string& path) {
  return prefix + path;
}

// Host paths come from the profile or the command line (trusted, resolved in jailpool's own
// namespace before the jail exists); the job has not run yet and controls none of them.
struct ResolvedBind {
  std::string host;  // canonical host path
  std::string dst;
  bool is_dir = false;
  bool is_symlink = false;
  std::string link_target;
  bool rw = false;
  bool noexec = false;
};

std::optional<ResolvedBind> resolve_bind(const Bind& bind, const std::string& field) {
  ResolvedBind out;
  out.dst = bind.dst().empty() ? bind.src() : bind.dst();
  out.rw = bind.rw();
  out.noexec = bind.noexec();
  struct stat st;
  if (lstat(bind.src().c_str(), &st) < 0) {
    if (errno == ENOENT && bind.optional()) return std::nullopt;
    throw ConfigError(field, fmt::format("{}: {}", bind.src(), std::strerror(errno)));
  }
  if (S_ISLNK(st.st_mode)) {
    // A host symlink (merged /usr: /bin -> usr/bin) is recreated as the same symlink.
    char target[PATH_MAX];
    ssize_t n = readlink(bind.src().c_str(), target, sizeof target - 1);
    if (n < 0)
      throw ConfigError(field, fmt::format("readlink {}: {}", bind.src(), std::strerror(errno)));
    out.is_symlink = true;
    out.link_target.assign(target, static_cast<size_t>(n));
    return out;
  }
  char real[PATH_MAX];
  if (realpath(bind.src().c_str(), real) == nullptr) {
    throw ConfigError(field, fmt::format("{}: {}", bind.src(), std::strerror(errno)));
  }
  out.host = real;
  out.is_dir = S_ISDIR(st.st_mode);
  return out;
}

std::string tmpfs_options(uint64_t size, uint64_t inodes, uint32_t mode,
                          std::optional<std::pair<uint32_t, uint32_t>> owner) {
  std::string s = fmt::format("size={},nr_inodes={},mode={:o}", size, inodes, mode);
  if (owner) s += fmt::format(",uid={},gid={}", owner->first, owner->second);
  return s;
}

}  // namespace

std::vector<WritableFs> writable_filesystems(const Profile& profile, uint32_t uid, uint32_t gid) {
  std::vector<WritableFs> out;
  for (const Tmpfs& fs : profile.tmpfs()) {
    uint64_t size = fs.size_bytes() ? fs.size_bytes() : 64ull << 20;
    uint64_t inodes = fs.nr_inodes() ? fs.nr_inodes() : 16384;
    uint32_t mode_bits = fs.mode() ? fs.mode() : 01777;
    std::optional<std::pair<uint32_t, uint32_t>> owner;
    if (fs.job_owned()) owner = std::make_pair(uid, gid);
    out.push_back({fs.dst(), kNoSuidDev | (fs.noexec() ? MS_NOEXEC : 0),
                   tmpfs_options(size, inodes, mode_bits, owner)});
  }
  if (!profile.cwd().empty()) {
    uint64_t size = profile.cwd_size_bytes() ? profile.cwd_size_bytes() : 256ull << 20;
    out.push_back(
        {profile.cwd(), kNoSuidDev, tmpfs_options(size, 65536, 0755, std::make_pair(uid, gid))});
  }
  if (profile.dev_shm()) {
    out.push_back({"/dev/shm", kNoSuidDev | MS_NOEXEC, "size=67108864,nr_inodes=4096,mode=1777"});
  }
  return out;
}

namespace {

enum class MountMode {
  kFresh,      // one jail, everything before the pivot except /dev/shm and /proc
  kTemplate,   // a template holder: the job-independent part only
  kPooledJob,  // a job joining a template: the per-job filesystems only
};

void build_mounts(LaunchPlan& plan, const Profile& profile, const std::vector<Bind>& extra_binds,
                  MountMode mode, int cwd_mount_fd = -1) {
  const uint32_t uid = plan.uid, gid = plan.gid;
  auto op = [&](Kind kind, std::string path, std::string src = {}, unsigned long flags = 0,
                std::string data = {}) {
    MountOp m{kind, flags};
    m.path = plan.keep(std::move(path));
    if (!src.empty()) m.src = plan.keep(std::move(src));
    if (!data.empty()) m.data = plan.keep(std::move(data));
    return m;
  };

  // The job's own writable filesystems: fresh for every job (/dev/shm, the last, after the
  // pivot).
  struct Fs {
    std::string dst;
    unsigned long flags;
    std::string data;
    int mount_fd = -1;  // moved there instead of a fresh tmpfs
  };
  std::vector<Fs> job_fs;
  std::optional<WritableFs> dev_shm;
  std::vector<WritableFs> writable = writable_filesystems(profile, uid, gid);
  if (profile.dev_shm()) {  // the last
    dev_shm = std::move(writable.back());
    writable.pop_back();
  }
  for (size_t i = 0; i < writable.size(); ++i) {
    // The working directory follows the profile's tmpfs.
    int fd = !profile.cwd().empty() && i == static_cast<size_t>(profile.tmpfs_size()) ? cwd_mount_fd
                                                                                      : -1;
    job_fs.push_back(
        {std::move(writable[i].dst), writable[i].flags, std::move(writable[i].data), fd});
  }
  auto mount_fs = [&](const Fs& fs, std::string path) {
    if (fs.mount_fd < 0) return op(Kind::kTmpfs, std::move(path), {}, fs.flags, fs.data);
    MountOp m = op(Kind::kMoveMount, std::move(path));
    m.fd = fs.mount_fd;
    return m;
  };

  auto& t = plan.template_ops;
  auto& j = plan.job_ops;
  if (mode == MountMode::kPooledJob) {
    for (const Fs& fs : job_fs) j.push_back(mount_fs(fs, fs.dst));
  } else {
    t.push_back(op(Kind::kTmpfs, "/newroot", {}, kNoSuidDev, "size=1m,nr_inodes=4096,mode=755"));
    if (mode == MountMode::kFresh) {
      // Before the binds, so that a bind into the working directory (a CI checkout) lands on
      // top of the fresh tmpfs instead of under it.
      for (const Fs& fs : job_fs) {
        t.push_back(op(Kind::kMkdir, join("/newroot", fs.dst)));
        t.push_back(mount_fs(fs, join("/newroot", fs.dst)));
      }
    }
    std::vector<MountOp> remounts;
    // Read-only binds are bound from overlays of the host's mounts (overlay.h), so that the
    // jail's inodes, and the file locks on them, are its own: one overlay per host mount the
    // binds come from (the default profile's /usr and /etc files: one, of /), mounted in the
    // staging root as /ovl/N and dropped with it after the pivot (the binds keep it alive).
    // Overlays do not show the mounts inside their lower layer: a bind's submounts get their
    // own. rw binds stay plain binds: they are the writable space the profile shares on
    // purpose, a channel already, and locks there are what sharing it asks for.
    std::optional<MountTable> table;
    std::vector<std::string> overlays;  // host mount point of /ovl/<index>
    auto staged_host = [](const std::string& host) {
      return host == "/" ? std::string("/oldroot") : join("/oldroot", host);
    };
    auto overlay_of = [&](const std::string& mount_point) {
      auto it = std::find(overlays.begin(), overlays.end(), mount_point);
      size_t index = static_cast<size_t>(it - overlays.begin());
      std::string dir = fmt::format("/ovl/{}", index);
      if (it != overlays.end()) return dir;
      if (overlays.empty()) t.push_back(op(Kind::kMkdir, "/ovl/empty"));
      overlays.push_back(mount_point);
      t.push_back(op(Kind::kMkdir, dir));
      std::string lower = staged_host(mount_point);
      t.push_back(op(Kind::kOverlay, dir, lower, MS_RDONLY | kNoSuidDev,
                     overlay_lowerdir_option(lower, "/ovl/empty")));
      return dir;
    };
    std::function<void(const ResolvedBind&, bool)> add_bind = [&](const ResolvedBind& b,
                                                                  bool submounts) {
      std::string inside = join("/newroot", b.dst);
      if (b.is_symlink) {
        t.push_back(op(Kind::kSymlink, inside, b.link_target));
        return;
      }
      unsigned long flags = kNoSuidDev | (b.rw ? 0 : MS_RDONLY) | (b.noexec ? MS_NOEXEC : 0);
      std::string from = join("/oldroot", b.host);
      if (!b.rw) {
        if (!table) table = MountTable::read();
        const std::string& mount_point = table->mount_of(b.host);
        struct stat st;
        if (mount_point == b.host && !b.is_dir) {
          // A file mounted on its own (Docker's /etc/hosts): no directory to overlay. A small
          // one is copied into the jail's root; anything else is the host's inode, and the
          // jail keeps the lock ban.
          if (stat(b.host.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
              st.st_size <= kMaxCopiedFile) {
            MountOp copy = op(Kind::kCopyFile, inside, from);
            copy.arg = st.st_mode & (b.noexec ? 0666 : 0777);
            t.push_back(copy);
            return;
          }
          plan.ban_locks = true;
        } else {
          from = overlay_of(mount_point) +
                 (mount_point == "/" ? b.host : b.host.substr(mount_point.size()));
        }
      }
      t.push_back(op(b.is_dir ? Kind::kMkdir : Kind::kTouch, inside));
      t.push_back(op(Kind::kBind, inside, from));
      remounts.push_back(op(Kind::kRemount, inside, {}, flags));
      if (b.rw || !b.is_dir || !submounts) return;
      for (const std::string& sub : table->beneath(b.host)) {
        struct stat st;
        if (lstat(sub.c_str(), &st) != 0) continue;
        ResolvedBind s = b;
        s.host = sub;
        s.dst = b.dst + sub.substr(b.host == "/" ? 0 : b.host.size());
        s.is_dir = S_ISDIR(st.st_mode);
        add_bind(s, false);
      }
    };
    for (int i = 0; i < profile.bind_size(); ++i) {
      if (auto b = resolve_bind(profile.bind(i), fmt::format("bind[{}].src", i))) {
        add_bind(*b, true);
      }
    }
    for (size_t i = 0; i < extra_binds.size(); ++i) {
      if (auto b = resolve_bind(extra_binds[i], fmt::format("job bind[{}].src", i))) {
        add_bind(*b, true);
      }
    }

    // /dev: a small tmpfs with the harmless devices, nodes of the jail's own (the host's
    // nodes would share their lock state between jobs; bound from the host if mknod fails).
    t.push_back(op(Kind::kMkdir, "/newroot/dev"));
    t.push_back(op(Kind::kTmpfs, "/newroot/dev", {}, MS_NOSUID | MS_NOEXEC,
                   "size=64k,nr_inodes=64,mode=755"));
    // The kernel's fixed numbers of the mem devices (drivers/char/mem.c).
    static constexpr std::pair<const char*, unsigned> kDevices[] = {
        {"null", 3}, {"zero", 5}, {"full", 7}, {"random", 8}, {"urandom", 9}};
    for (const auto& [dev, minor] : kDevices) {
      MountOp node = op(Kind::kMknod, fmt::format("/newroot/dev/{}", dev),
                        fmt::format("/oldroot/dev/{}", dev));
      node.arg = makedev(1, minor);
      t.push_back(node);
    }
    t.push_back(op(Kind::kSymlink, "/newroot/dev/fd", "/proc/self/fd"));
    t.push_back(op(Kind::kSymlink, "/newroot/dev/stdin", "/proc/self/fd/0"));
    t.push_back(op(Kind::kSymlink, "/newroot/dev/stdout", "/proc/self/fd/1"));
    t.push_back(op(Kind::kSymlink, "/newroot/dev/stderr", "/proc/self/fd/2"));
    if (profile.dev_shm()) t.push_back(op(Kind::kMkdir, "/newroot/dev/shm"));
    remounts.push_back(op(Kind::kRemount, "/newroot/dev", {}, MS_RDONLY | MS_NOSUID | MS_NOEXEC));

    // Mount points of what is mounted per job, then the profile's symlinks.
    t.push_back(op(Kind::kMkdir, "/newroot/proc"));
    if (mode == MountMode::kTemplate) {
      for (const Fs& fs : job_fs) t.push_back(op(Kind::kMkdir, join("/newroot", fs.dst)));
    }
    for (const Symlink& link : profile.symlink()) {
      t.push_back(op(Kind::kSymlink, join("/newroot", link.link()), link.target()));
    }
    for (auto& m : remounts) t.push_back(m);
    t.push_back(op(Kind::kRemount, "/newroot", {}, MS_RDONLY | kNoSuidDev));
  }
  if (mode == MountMode::kTemplate) return;
  if (dev_shm) j.push_back(op(Kind::kTmpfs, dev_shm->dst, {}, dev_shm->flags, dev_shm->data));
  j.push_back(op(Kind::kProc, "/proc", {}, kNoSuidDev | MS_NOEXEC));
  // Masks over what /proc says about the host. Made by init before the job exists, so no path
  // can be swapped underneath them.
  for (const char* path : {"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug",
                           "/proc/sysrq-trigger", "/proc/kallsyms"}) {
    j.push_back(op(Kind::kMaskFile, path));
  }
  j.push_back(op(Kind::kBind, "/proc/sys", "/proc/sys"));
  j.push_back(op(Kind::kRemount, "/proc/sys", {}, MS_RDONLY | kNoSuidDev | MS_NOEXEC));
}

std::string env_value(const std::vector<std::string>& env, std::string_view key) {
  for (const auto& kv : env) {
    if (kv.size() > key.size() && kv.compare(0, key.size(), key) == 0 && kv[key.size()] == '=') {
      return kv.substr(key.size() + 1);
    }
  }
  return {};
}

}  // namespace

// What execvp would try for `program`: itself when it has a '/', else each PATH directory
// (the job's PATH, or the default) joined with it; an empty PATH entry means ".".
std::vector<std::string> exec_candidates(const std::string& program,
                                         const std::vector<std::string>& env) {
  if (program.find('/') != std::string::npos) return {program};
  std::string path = env_value(env, "PATH");
  if (path.empty()) path = "/usr/local/bin:/usr/bin:/bin";
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t end = path.find(':', pos);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(pos, end - pos);
    out.push_back((dir.empty() ? "." : dir) + "/" + program);
    pos = end + 1;
  }
  return out;
}

namespace {

std::string describe_op(const MountOp& op) {
  auto strip = [](const char* p) -> std::string {
    if (p == nullptr) return {};
    std::string s = p;
    for (const char* prefix : {"/newroot", "/oldroot"}) {
      size_t n = std::strlen(prefix);
      if (s.compare(0, n, prefix) == 0) s = s.size() == n ? "/" : s.substr(n);
    }
    return s;
  };
  switch (op.kind) {
    case Kind::kMkdir:
      return fmt::format("mkdir {}", strip(op.path));
    case Kind::kTouch:
      return fmt::format("create mount point {}", strip(op.path));
    case Kind::kBind:
      return fmt::format("bind {} on {}", strip(op.src), strip(op.path));
    case Kind::kTmpfs:
      return fmt::format("mount tmpfs on {}", strip(op.path));
    case Kind::kProc:
      return fmt::format("mount proc on {}", strip(op.path));
    case Kind::kSymlink:
      return fmt::format("symlink {} -> {}", strip(op.path), op.src);
    case Kind::kRemount:
      return fmt::format("remount {}", strip(op.path));
    case Kind::kMaskFile:
      return fmt::format("mask {}", strip(op.path));
    case Kind::kMoveMount:
      return fmt::format("move the working directory's tmpfs onto {}", strip(op.path));
    case Kind::kOverlay:
      return fmt::format("overlay of {} (or a bind of it) on {}", strip(op.src), op.path);
    case Kind::kMknod:
      return fmt::format("mknod {} (or a bind of {})", strip(op.path), strip(op.src));
    case Kind::kCopyFile:
      return fmt::format("copy {} to {} (or a bind of it)", strip(op.src), strip(op.path));
  }
  return "?";
}

}  // namespace

std::string describe_failure(const LaunchPlan& plan) {
  const LaunchReport& r = plan.report;
  const char* why = std::strerror(r.err);
  switch (r.stage) {
    case LaunchStage::kTemplateMount:
      if (r.index >= 0 && static_cast<size_t>(r.index) < plan.template_ops.size()) {
        return fmt::format("{}: {}", describe_op(plan.template_ops[r.index]), why);
      }
      break;
    case LaunchStage::kJobMount:
      if (r.index >= 0 && static_cast<size_t>(r.index) < plan.job_ops.size()) {
        return fmt::format("{}: {}", describe_op(plan.job_ops[r.index]), why);
      }
      if (plan.workdir_mount_fd >= 0) {
        return fmt::format("putting the working directory with the job's files in place: {}", why);
      }
      break;
    case LaunchStage::kExec:
      return fmt::format("cannot execute {}: {}",
                         plan.argv.empty() || plan.argv[0] == nullptr ? "" : plan.argv[0], why);
    case LaunchStage::kChdir:
      return fmt::format("chdir {}: {}", plan.cwd, why);
    case LaunchStage::kRlimit:
      return fmt::format("setrlimit (resource {}): {}", r.index, why);
    default:
      break;
  }
  return fmt::format("{}: {}", describe_stage(r.stage), why);
}

void plan_fresh_tree(LaunchPlan& plan, const Profile& profile) {
  build_mounts(plan, profile, {}, MountMode::kFresh);
  plan.hostname = plan.keep(profile.hostname().empty() ? "jailpool" : profile.hostname());
}

namespace {

bool path_has_prefix(const std::string& path, const std::string& prefix) {
  if (prefix == "/") return true;
  return path.compare(0, prefix.size(), prefix) == 0 &&
         (path.size() == prefix.size() || path[prefix.size()] == '/');
}

// The host path behind a path inside the jail, or "" when no bind provides it.
std::string host_path_of(const JailConfig& config, std::string path, int depth = 0) {
  if (depth > 8) return {};
  const Bind* best = nullptr;
  auto consider = [&](const Bind& b) {
    const std::string& dst = b.dst().empty() ? b.src() : b.dst();
    if (!path_has_prefix(path, dst)) return;
    const std::string& best_dst = best ? (best->dst().empty() ? best->src() : best->dst()) : "";
    if (best == nullptr || dst.size() > best_dst.size()) best = &b;
  };
  for (const Bind& b : config.profile->bind()) consider(b);
  for (const Bind& b : config.extra_binds) consider(b);
  if (best == nullptr) return {};
  const std::string& dst = best->dst().empty() ? best->src() : best->dst();
  std::string rest = path.substr(dst.size());
  struct stat st;
  if (lstat(best->src().c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
    // Recreated as the same symlink inside: follow it inside the jail.
    char target[PATH_MAX];
    ssize_t n = readlink(best->src().c_str(), target, sizeof target - 1);
    if (n <= 0) return {};
    std::string t(target, static_cast<size_t>(n));
    std::string base = t[0] == '/' ? t : dst.substr(0, dst.rfind('/') + 1) + t;
    if (base.empty() || base[0] != '/') base = "/" + base;
    return host_path_of(config, base + rest, depth + 1);
  }
  return best->src() + rest;
}

}  // namespace

// jailpool's ignored signals, read once (they are set at start-up, before any job).
uint64_t ignored_signals() {
  static const uint64_t mask = [] {
    // The raw call: glibc's sigaction() refuses its own signals (32, 33), which a parent may
    // still have left ignored.
    struct {
      void* handler;
      unsigned long flags;
      void* restorer;
      uint64_t mask;
    } ksa{};
    uint64_t m = 0;
    for (int sig = 1; sig <= 64; ++sig) {
      if (sig == SIGKILL || sig == SIGSTOP) continue;
      if (syscall(SYS_rt_sigaction, sig, nullptr, &ksa, 8) == 0 &&
          ksa.handler == reinterpret_cast<void*>(SIG_IGN)) {
        m |= 1ull << (sig - 1);
      }
    }
    return m;
  }();
  return mask;
}

bool poolable(const Profile& profile) {
  std::vector<std::string> job_fs;
  for (const Tmpfs& fs : profile.tmpfs()) job_fs.push_back(fs.dst());
  if (!profile.cwd().empty()) job_fs.push_back(profile.cwd());
  for (const Bind& b : profile.bind()) {
    const std::string& dst = b.dst().empty() ? b.src() : b.dst();
    for (const auto& fs : job_fs) {
      if (path_has_prefix(dst, fs)) return false;
    }
  }
  return true;
}

void check_program(const JailConfig& config) {
  if (config.argv.empty() || config.argv[0].empty()) throw ConfigError("argv", "empty command");
  const Profile& profile = *config.profile;
  const std::string& program = config.argv[0];
  std::string cwd =
      !config.cwd.empty() ? config.cwd : (profile.cwd().empty() ? "/" : profile.cwd());
  std::vector<std::string> candidates;
  for (const std::string& c : exec_candidates(program, config.env)) {
    candidates.push_back(c[0] == '/' ? c : cwd + "/" + c);  // relative: from the working dir
  }
  uint32_t uid = profile.has_uid() ? profile.uid() : 65534;
  uint32_t gid = profile.has_gid() ? profile.gid() : 65534;
  std::string problem = "no such file in the jail";
  for (const std::string& inside : candidates) {
    // Paths of the per-job filesystems cannot hold anything yet; /proc and /dev are the
    // kernel's: let those through to the exec.
    if (path_has_prefix(inside, "/proc") || path_has_prefix(inside, "/dev")) return;
    struct stat st;
    if (config.cwd_mount_fd >= 0 && inside != profile.cwd() &&
        path_has_prefix(inside, profile.cwd())) {
      // A file copied into the working directory (copy_in): look beneath its tmpfs.
      std::string relative;
      for (size_t pos = profile.cwd().size() + 1; pos <= inside.size();) {
        size_t end = std::min(inside.find('/', pos), inside.size());
        std::string component = inside.substr(pos, end - pos);
        if (!component.empty() && component != ".") {
          relative += (relative.empty() ? "" : "/") + component;
        }
        pos = end + 1;
      }
      int fd = open_beneath(config.cwd_mount_fd, relative, O_PATH);
      if (fd < 0) continue;
      UniqueFd held(fd);
      if (fstat(fd, &st) < 0) continue;
    } else {
      std::string host = host_path_of(config, inside);
      if (host.empty()) continue;
      if (stat(host.c_str(), &st) < 0) continue;
    }
    if (!S_ISREG(st.st_mode)) {
      problem = "not a regular file";
      continue;
    }
    bool exec = (st.st_mode & S_IXOTH) || (st.st_uid == uid && (st.st_mode & S_IXUSR)) ||
                (st.st_gid == gid && (st.st_mode & S_IXGRP));
    if (exec) return;
    problem = fmt::format("not executable by uid {}", uid);
  }
  throw ConfigError("argv[0]", fmt::format("{}: {}", program, problem));
}

std::unique_ptr<Jail> Jail::start(const JailConfig& config, const JobCgroup& cgroup) {
  if (config.profile == nullptr) throw Error("jail: no profile");
  if (config.argv.empty() || config.argv[0].empty()) throw ConfigError("argv", "empty command");
  std::unique_ptr<Jail> jail(new Jail());
  jail->plan_ = std::make_unique<LaunchPlan>();
  LaunchPlan& plan = *jail->plan_;
  const Profile& profile = *config.profile;
  plan.uid = profile.has_uid() ? profile.uid() : 65534;
  plan.gid = profile.has_gid() ? profile.gid() : 65534;
  const JailTemplate* tmpl = config.from_template;
  if (tmpl != nullptr) {
    if (&tmpl->profile() != config.profile) throw Error("jail: template of another profile");
    if (!config.extra_binds.empty()) throw Error("jail: a pooled jail cannot have extra binds");
    build_mounts(plan, profile, config.extra_binds, MountMode::kPooledJob, config.cwd_mount_fd);
    plan.ban_locks = tmpl->locks_shared();
    plan.build_root = false;
    plan.loopback_up = false;
    for (int i = 0; i < 3; ++i) {
      plan.join_ns_fds[i] = tmpl->ns_fds()[i];
      plan.keep_fds.push_back(tmpl->ns_fds()[i]);
    }
    plan.unshare_flags = CLONE_NEWNS | CLONE_NEWIPC;
  } else {
    build_mounts(plan, profile, config.extra_binds, MountMode::kFresh, config.cwd_mount_fd);
    plan.hostname = plan.keep(profile.hostname().empty() ? "jailpool" : profile.hostname());
  }

  // stdio: the jail dups these onto 0, 1, 2; keep them above 2 so the dups cannot clobber
  // each other.
  for (int i = 0; i < 3; ++i) {
    int fd = config.stdio[i];
    if (fd < 0 && i == 0) continue;  // the jail's own /dev/null
    if (fd < 0) throw Error(fmt::format("jail: no fd for stdio {}", i));
    if (fd < 3) {
      int dup = fcntl(fd, F_DUPFD_CLOEXEC, 3);
      if (dup < 0) throw_errno("dup stdio fd");
      jail->owned_fds_.emplace_back(dup);
      fd = dup;
    }
    plan.stdio[i] = fd;
    plan.keep_fds.push_back(fd);
  }
  bool into_cgroup = cgroup.v2_dir_fd() >= 0 && clone3_available();
  plan.attach_fds = cgroup.attach_fds(!into_cgroup);
  if (into_cgroup) plan.into_cgroup_fd = cgroup.v2_dir_fd();
  for (int fd : plan.attach_fds) plan.keep_fds.push_back(fd);
  if (plan.into_cgroup_fd >= 0) plan.keep_fds.push_back(plan.into_cgroup_fd);
  if (config.survivor_notice_fd >= 0) {
    plan.survivor_notice_fd = config.survivor_notice_fd;
    plan.keep_fds.push_back(config.survivor_notice_fd);
  }
  if (config.cwd_mount_fd >= 0) {
    if (profile.cwd().empty()) throw Error("jail: a working-directory mount without a cwd");
    plan.keep_fds.push_back(config.cwd_mount_fd);
  }
  std::sort(plan.keep_fds.begin(), plan.keep_fds.end());
  plan.keep_fds.erase(std::unique(plan.keep_fds.begin(), plan.keep_fds.end()), plan.keep_fds.end());

  plan.ignored_signals = ignored_signals();
  // Without CLONE_CLEAR_SIGHAND (clone(2) fallback) init keeps jailpool's handlers: reset all.
  if (!clone3_available()) plan.ignored_signals = ~0ull;
  plan.cwd =
      plan.keep(!config.cwd.empty() ? config.cwd : (profile.cwd().empty() ? "/" : profile.cwd()));
  plan.rlimits = config.rlimits;
  if (config.seccomp != nullptr && !config.seccomp->empty()) {
    plan.seccomp = config.seccomp->fprog();
    plan.seccomp_lock_ban = config.seccomp->lock_ban_fprog();
    if (config.seccomp->notifies()) {
      if (seccomp_notif_size() > kSeccompNotifBuffer) {
        throw Error("seccomp: this kernel's notification does not fit init's buffer");
      }
      plan.seccomp_listen = true;
      plan.seccomp_log = config.seccomp->logs_allowed();
    }
  }

  for (const std::string& c : exec_candidates(config.argv[0], config.env)) {
    plan.exec_paths.push_back(plan.keep(c));
  }
  for (const auto& a : config.argv) plan.argv.push_back(plan.keep_mutable(a));
  plan.argv.push_back(nullptr);
  for (const auto& e : config.env) plan.envp.push_back(plan.keep_mutable(e));
  plan.envp.push_back(nullptr);
  plan.freeze();

  jail->stack_size_ = kInitStackSize;
  jail->stack_ = acquire_stack();
  CloneRequest request;
  request.flags = CLONE_NEWPID | CLONE_PIDFD;
  if (tmpl == nullptr) request.flags |= CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET;
  // Handlers of jailpool must not run in init (5.5+; clone(2) fallback copies them instead,
  // harmlessly: init is a pid-namespace init and gets only SIGKILL from outside).
  if (clone3_available()) request.flags |= CLONE_CLEAR_SIGHAND;
  request.stack = jail->stack_;
  request.stack_size = jail->stack_size_;
  request.fn = jail_init_main;
  request.arg = &plan;
  int pidfd = -1;
  jail->start_ns_ = monotonic_now_ns();
  pid_t pid = clone_vm(request, &pidfd);
  if (pid < 0) throw SysError(-pid, "clone3 of the jail's init");
  jail->pid_ = pid;
  jail->pidfd_.reset(pidfd);
  return jail;
}

uint64_t Jail::exec_ns() const {
  return std::atomic_ref<uint64_t>(plan_->report.exec_ns).load(std::memory_order_relaxed);
}

void Jail::kill() {
  if (reaped_) return;
  if (syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0) < 0 && errno == ENOSYS) {
    ::kill(pid_, SIGKILL);
  }
}

JailOutcome Jail::reap() {
  if (reaped_) throw Error("jail reaped twice");
  siginfo_t info{};
  int rc;
  do {
    rc = waitid(P_PIDFD, static_cast<id_t>(pidfd_.get()), &info, WEXITED);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0 && errno == EINVAL) {  // P_PIDFD is 5.4+
    do {
      rc = waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED);
    } while (rc < 0 && errno == EINTR);
  }
  if (rc < 0) throw_errno("waitid for the jail's init");
  reaped_ = true;
  std::atomic_thread_fence(std::memory_order_acquire);
  JailOutcome out = read_outcome();
  out.killed = info.si_code == CLD_KILLED && info.si_status == SIGKILL;
  return out;
}

bool Jail::done() const {
  return std::atomic_ref<uint32_t>(plan_->report.init_done).load(std::memory_order_acquire) != 0;
}

uint32_t Jail::survivors() const {
  if (!done()) return given_up_ ? 1 : 0;
  const uint32_t n = plan_->report.survivors;  // written before init_done (acquired by done())
  return given_up_ && n == 0 ? 1 : n;
}

bool Jail::exited() const {
  if (reaped_) return true;
  pollfd p{pidfd_.get(), POLLIN, 0};
  return ::poll(&p, 1, 0) == 1;
}

JailOutcome Jail::outcome_before_reap() const {
  if (!done() && !given_up_) throw Error("jail: outcome read before its init was done");
  std::atomic_thread_fence(std::memory_order_acquire);
  return read_outcome();
}

JailOutcome Jail::read_outcome() const {
  JailOutcome out;
  const LaunchReport& r = plan_->report;
  out.job_exited = r.job_exited;
  out.wait_status = r.wait_status;
  out.rusage = r.rusage;
  out.exec_ns = r.exec_ns;
  out.exit_ns = r.exit_ns;
  out.seccomp_denied_nr = r.seccomp_denied_nr;
  out.seccomp_denied_arch = r.seccomp_denied_arch;
  out.survivors = r.survivors;
  for (int nr = 0; nr < 64 * 8; ++nr) {
    if (r.seccomp_used[nr / 64] & (1ull << (nr % 64))) out.seccomp_used.push_back(nr);
  }
  if (r.stage != LaunchStage::kNone) {
    out.setup_failed = true;
    out.setup_error = describe_failure(*plan_);
  }
  return out;
}

Jail::~Jail() {
  if (abandoned_) {
    leak_on_purpose(std::move(plan_));  // init may still be inside the kernel's exit with it
    return;
  }
  if (!reaped_ && pid_ > 0) {
    kill();
    siginfo_t info;
    while (waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED) < 0 && errno == EINTR) {
    }
  }
  if (stack_ != nullptr) release_stack(stack_);
}

std::unique_ptr<JailTemplate> JailTemplate::create(const Profile& profile) {
  std::unique_ptr<JailTemplate> t(new JailTemplate());
  t->profile_ = &profile;
  t->plan_ = std::make_unique<LaunchPlan>();
  LaunchPlan& plan = *t->plan_;
  plan.uid = profile.has_uid() ? profile.uid() : 65534;
  plan.gid = profile.has_gid() ? profile.gid() : 65534;
  build_mounts(plan, profile, {}, MountMode::kTemplate);
  plan.hostname = plan.keep(profile.hostname().empty() ? "jailpool" : profile.hostname());
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) < 0) throw_errno("pipe");
  UniqueFd ready_read(ready[0]), ready_write(ready[1]);
  plan.ready_fd = ready[1];
  plan.keep_fds.push_back(ready[1]);
  plan.freeze();

  t->stack_ = mmap(nullptr, kInitStackSize, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
  if (t->stack_ == MAP_FAILED) {
    t->stack_ = nullptr;
    throw_errno("mmap template stack");
  }
  CloneRequest request;
  request.flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWUTS | CLONE_PIDFD;
  if (clone3_available()) request.flags |= CLONE_CLEAR_SIGHAND;
  request.stack = t->stack_;
  request.stack_size = kInitStackSize;
  request.fn = template_holder_main;
  request.arg = &plan;
  int pidfd = -1;
  pid_t pid = clone_vm(request, &pidfd);
  if (pid < 0) throw SysError(-pid, "clone3 of a template holder");
  t->pid_ = pid;
  t->pidfd_.reset(pidfd);
  ready_write.reset();
  char byte;
  ssize_t n;
  do {
    n = read(ready_read.get(), &byte, 1);
  } while (n < 0 && errno == EINTR);
  if (n != 1) {
    siginfo_t info;
    while (waitid(P_PIDFD, static_cast<id_t>(pidfd), &info, WEXITED) < 0 && errno == EINTR) {
    }
    t->pid_ = -1;
    std::atomic_thread_fence(std::memory_order_acquire);
    throw Error("template: " + describe_failure(plan));
  }
  std::atomic_thread_fence(std::memory_order_acquire);  // the holder wrote its report first
  t->locks_shared_ = plan.ban_locks || plan.report.locks_shared != 0;
  static constexpr const char* kNs[3] = {"mnt", "net", "uts"};
  for (int i = 0; i < 3; ++i) {
    std::string path = fmt::format("/proc/{}/ns/{}", pid, kNs[i]);
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw_errno("open " + path);
    t->ns_owned_[i].reset(fd);
    t->ns_fds_[i] = fd;
  }
  return t;
}

bool JailTemplate::alive() const {
  if (pid_ < 0) return false;
  pollfd p{pidfd_.get(), POLLIN, 0};
  return ::poll(&p, 1, 0) == 0;
}

JailTemplate::~JailTemplate() {
  if (pid_ > 0) {
    syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0);
    siginfo_t info;
    while (waitid(P_PIDFD, static_cast<id_t>(pidfd_.get()), &info, WEXITED) < 0 && errno == EINTR) {
    }
  }
  if (stack_ != nullptr) munmap(stack_, kInitStackSize);
}

}  // namespace jailpool::isolate
