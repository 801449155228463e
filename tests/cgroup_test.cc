// cgroup backend tests. They run as root against the real hierarchies, below a parent that is
// unique per test process (jailpool-test-<pid>), and remove every directory they made.
// Every process they start is a fork()ed child that is waited for (with a SIGALRM backstop).
#include "isolate/cgroup.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <linux/sched.h>  // struct clone_args, CLONE_INTO_CGROUP
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

#include "common/error.h"
#include "pool/cgroup_pool.h"
#include "test_support.h"

namespace jailpool::isolate {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

using testing_env::kMiB;
using testing_env::read_file;

constexpr const char* kCgroupRoot = "/sys/fs/cgroup";

// ---------------------------------------------------------------------------------------------
// Helpers.

bool is_fs(const char* path, int64_t magic) {
  struct statfs st;
  return ::statfs(path, &st) == 0 && static_cast<int64_t>(st.f_type) == magic;
}
bool machine_is_pure_v2() {
  return is_fs(kCgroupRoot, CGROUP2_SUPER_MAGIC);
}
// The v1 cpuset and cpu parents are joined only by jobs that ask for pinning or a CPU quota
// (tests/precision_test.cc); every job has a directory below each other parent.
bool joined_by_every_job(const std::string& parent) {
  return parent.rfind("/sys/fs/cgroup/cpuset/", 0) != 0 &&
         parent.rfind("/sys/fs/cgroup/cpu/", 0) != 0;
}

bool machine_is_hybrid() {
  return is_fs("/sys/fs/cgroup/unified", CGROUP2_SUPER_MAGIC) &&
         is_fs("/sys/fs/cgroup/memory", CGROUP_SUPER_MAGIC);
}

// Every place a directory named after the parent could be: /sys/fs/cgroup/<parent> and
// /sys/fs/cgroup/*/<parent>.
std::vector<fs::path> parent_candidates() {
  const std::string& parent = testing_env::cgroup_parent();
  std::vector<fs::path> out{fs::path(kCgroupRoot) / parent};
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(kCgroupRoot, ec)) {
    if (entry.is_directory(ec) && entry.path().filename() != parent) {
      out.push_back(entry.path() / parent);
    }
  }
  return out;
}

// Removes whatever is left below the test parent (only ever our own directories). rmdir only:
// the JobCgroup destructors have already killed what was inside.
void sweep_test_parent() {
  for (const fs::path& parent : parent_candidates()) {
    std::error_code ec;
    if (!fs::is_directory(parent, ec)) continue;
    for (int attempt = 0; attempt < 100; ++attempt) {
      for (const auto& entry : fs::directory_iterator(parent, ec)) {
        if (entry.is_directory(ec)) ::rmdir(entry.path().c_str());
      }
      if (::rmdir(parent.c_str()) == 0 || errno == ENOENT) break;
      std::this_thread::sleep_for(10ms);
    }
  }
}

// Waits for a child with a deadline; on timeout kills it (it is ours, unreaped, so the pid
// cannot have been recycled) and reaps it.
bool wait_child(pid_t pid, int* status, std::chrono::milliseconds timeout = 20s,
                struct rusage* usage = nullptr) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    pid_t r = ::wait4(pid, status, WNOHANG, usage);
    if (r == pid) return true;
    if (r < 0 && errno != EINTR) return false;
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, status, 0);
      return false;
    }
    std::this_thread::sleep_for(1ms);
  }
}

// Kills and reaps a forked child if the test body did not (e.g. after a failed ASSERT).
class ChildGuard {
 public:
  explicit ChildGuard(pid_t pid) : pid_(pid) {}
  ~ChildGuard() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  ChildGuard(const ChildGuard&) = delete;
  ChildGuard& operator=(const ChildGuard&) = delete;

  // Waits for the child; returns its wait status, or -1 on timeout.
  int wait(std::chrono::milliseconds timeout = 20s, struct rusage* usage = nullptr) {
    int status = 0;
    bool ok = wait_child(pid_, &status, timeout, usage);
    pid_ = -1;
    return ok ? status : -1;
  }

 private:
  pid_t pid_;
};

uint64_t rusage_usec(const struct rusage& ru) {
  return static_cast<uint64_t>((ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 +
                               ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

// --- code that runs in forked children: no gtest, only _exit ---

void child_attach(const std::vector<int>& fds) {
  alarm(30);  // backstop: no test process outlives a broken test by long
  for (int fd : fds) {
    if (::write(fd, "0", 1) != 1) _exit(100);
  }
}

void burn_cpu(std::chrono::milliseconds amount) {
  struct timespec start, now;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &start);
  volatile uint64_t sink = 0;
  for (;;) {
    for (int i = 0; i < 10000; ++i) sink = sink + i;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
    int64_t ns = (now.tv_sec - start.tv_sec) * 1000000000LL + (now.tv_nsec - start.tv_nsec);
    if (ns >= std::chrono::duration_cast<std::chrono::nanoseconds>(amount).count()) return;
  }
}

void touch_memory(uint64_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) _exit(101);
  for (uint64_t off = 0; off < bytes; off += 4096) static_cast<volatile char*>(p)[off] = 1;
}

// ---------------------------------------------------------------------------------------------
// Fixture: detects with the per-run parent and removes everything at the end, even on failure.

class CgroupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "the cgroup tests run as root";
    system_ = CgroupSystem::detect(testing_env::cgroup_parent());
  }

  void TearDown() override {
    if (::geteuid() != 0) return;
    if (system_) {
      EXPECT_NO_THROW(system_->remove_parent_if_empty());
      system_.reset();
    }
    sweep_test_parent();
    for (const fs::path& p : parent_candidates()) {
      std::error_code ec;
      EXPECT_FALSE(fs::exists(p, ec)) << "left behind: " << p;
    }
  }

  // Re-detects with other options (after removing the current parents).
  void redetect(const CgroupOptions& options) {
    system_->remove_parent_if_empty();
    system_ = CgroupSystem::detect(testing_env::cgroup_parent(), options);
  }

  std::string job_dir(const std::string& parent_dir, const std::string& name) {
    return parent_dir + "/" + name;
  }

  std::unique_ptr<CgroupSystem> system_;
};

// Forks a process that attaches itself to `job` (every attach fd), runs `body`, and _exits
// with its result.
template <typename Body>
pid_t fork_in_job(const JobCgroup& job, Body body) {
  std::vector<int> fds = job.attach_fds(true);
  pid_t pid = ::fork();
  if (pid == 0) {
    child_attach(fds);
    _exit(body());
  }
  return pid;
}

// Starts a subreaper process R that forks a job process J attached to `job`; J forks
// `sleepers` children that sleep, writes a byte to the returned pipe when all are running,
// and sleeps too. R reaps J and every orphaned sleeper, then exits 0 iff J died of SIGKILL.
pid_t start_tree(const JobCgroup& job, int sleepers, UniqueFd* ready) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) < 0) return -1;
  std::vector<int> fds = job.attach_fds(true);
  pid_t reaper = ::fork();
  if (reaper == 0) {
    alarm(30);
    ::close(p[0]);
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    pid_t j = ::fork();
    if (j == 0) {
      child_attach(fds);
      for (int i = 0; i < sleepers; ++i) {
        if (::fork() == 0) {
          alarm(30);
          for (;;) ::pause();
        }
      }
      if (::write(p[1], "r", 1) != 1) _exit(102);
      for (;;) ::pause();
    }
    ::close(p[1]);
    int status = 0;
    if (j < 0 || ::waitpid(j, &status, 0) != j) _exit(2);
    while (::wait(nullptr) > 0 || errno == EINTR) {
    }
    _exit(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL ? 0 : 1);
  }
  ::close(p[1]);
  ready->reset(p[0]);
  return reaper;
}

bool wait_ready(const UniqueFd& ready) {
  struct pollfd pfd = {ready.get(), POLLIN, 0};
  if (::poll(&pfd, 1, 10000) != 1) return false;
  char c;
  return ::read(ready.get(), &c, 1) == 1;
}

bool wait_unpopulated(const JobCgroup& job, std::chrono::milliseconds timeout = 2s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (job.populated()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// clone3(CLONE_INTO_CGROUP), fork-style; glibc 2.36 has no wrapper.
pid_t clone_into(int cgroup_fd) {
  struct clone_args args;
  std::memset(&args, 0, sizeof args);
  args.flags = CLONE_INTO_CGROUP;
  args.exit_signal = SIGCHLD;
  args.cgroup = static_cast<uint64_t>(cgroup_fd);
  return static_cast<pid_t>(::syscall(SYS_clone3, &args, sizeof args));
}

// Child side: exit 0 iff /proc/self/cgroup has the v2 line "0::<path>".
[[noreturn]] void exit_if_in_v2(const std::string& path) {
  alarm(30);
  int fd = ::open("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);
  char buf[4096];
  ssize_t n = fd < 0 ? -1 : ::read(fd, buf, sizeof buf - 1);
  if (n <= 0) _exit(3);
  buf[n] = '\0';
  std::string want = "0::" + path + "\n";
  std::string_view text(buf, static_cast<size_t>(n));
  bool found = text.starts_with(want) || text.find("\n" + want) != std::string_view::npos;
  _exit(found ? 0 : 1);
}

// ---------------------------------------------------------------------------------------------
// Pure parsing.

TEST(CgroupMountsTest, ParsesHybridPureV2AndEscapes) {
  const char* hybrid =
      "30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
      "31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
      "34 30 0:31 / /sys/fs/cgroup/memory rw,relatime shared:5 - cgroup cgroup rw,memory\n"
      "39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
      "41 30 0:38 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct,noprefix\n"
      "40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate\n"
      "50 30 0:40 /sub /mnt/my\\040cg rw - cgroup cgroup rw,pids\n";
  auto mounts = parse_cgroup_mounts(hybrid);
  ASSERT_EQ(mounts.size(), 5u);  // tmpfs and name=systemd are skipped
  EXPECT_EQ(mounts[0].mount_point, "/sys/fs/cgroup/cpu");
  EXPECT_EQ(mounts[0].controllers, std::vector<std::string>{"cpu"});
  EXPECT_EQ(mounts[1].controllers, std::vector<std::string>{"memory"});
  EXPECT_EQ(mounts[2].controllers, (std::vector<std::string>{"cpu", "cpuacct"}));
  EXPECT_TRUE(mounts[3].v2);
  EXPECT_EQ(mounts[3].mount_point, "/sys/fs/cgroup/unified");
  EXPECT_EQ(mounts[4].mount_point, "/mnt/my cg");
  EXPECT_EQ(mounts[4].root, "/sub");

  auto v2 = parse_cgroup_mounts(
      "25 19 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 "
      "cgroup2 rw,nsdelegate,memory_recursiveprot\n");
  ASSERT_EQ(v2.size(), 1u);
  EXPECT_TRUE(v2[0].v2);
  EXPECT_EQ(v2[0].mount_point, "/sys/fs/cgroup");
  EXPECT_EQ(v2[0].root, "/");
}

// ---------------------------------------------------------------------------------------------
// Against the real hierarchies.

TEST_F(CgroupTest, DetectsThisMachine) {
  const CgroupInfo& info = system_->info();
  if (machine_is_hybrid()) {
    EXPECT_EQ(info.mode, CgroupMode::kHybrid);
    EXPECT_EQ(info.v2_mount, "/sys/fs/cgroup/unified");
    EXPECT_EQ(info.cpu_source, "v2 cpu.stat");
    EXPECT_EQ(info.memory_source, "v1 memory");
    EXPECT_EQ(info.pids_source, "v1 pids");
    EXPECT_FALSE(info.has_memory_peak);  // no v2 memory: v1 max_usage_in_bytes instead
    const std::string parent = testing_env::cgroup_parent();
    EXPECT_EQ(info.has_cgroup_kill,
              fs::exists("/sys/fs/cgroup/unified/" + parent + "/cgroup.kill"));
    EXPECT_EQ(info.has_pids_peak, fs::exists("/sys/fs/cgroup/pids/" + parent + "/pids.peak"));
  } else if (machine_is_pure_v2()) {
    EXPECT_EQ(info.mode, CgroupMode::kV2);
    EXPECT_EQ(info.v2_mount, "/sys/fs/cgroup");
    EXPECT_EQ(info.cpu_source, "v2 cpu.stat");
    EXPECT_EQ(info.memory_source, "v2 memory");
    EXPECT_EQ(info.pids_source, "v2 pids");
  }
  EXPECT_STREQ(to_string(info.mode), info.mode == CgroupMode::kHybrid ? "hybrid"
                                     : info.mode == CgroupMode::kV2   ? "v2"
                                                                      : "v1");
  bool has_memory_v1 = false;
  for (const auto& [controller, mount] : info.v1_mounts) {
    if (controller == "memory") has_memory_v1 = mount == "/sys/fs/cgroup/memory";
  }
  EXPECT_EQ(has_memory_v1, machine_is_hybrid());

  // The parents exist, directly below each hierarchy root used, and nowhere else.
  auto parents = system_->parent_dirs();
  for (const std::string& dir : parents) {
    EXPECT_TRUE(fs::is_directory(dir)) << dir;
    EXPECT_EQ(fs::path(dir).filename(), testing_env::cgroup_parent());
  }
  if (machine_is_hybrid()) {
    std::string p = testing_env::cgroup_parent();
    EXPECT_EQ(parents,
              (std::vector<std::string>{"/sys/fs/cgroup/unified/" + p, "/sys/fs/cgroup/memory/" + p,
                                        "/sys/fs/cgroup/pids/" + p, "/sys/fs/cgroup/cpuset/" + p,
                                        "/sys/fs/cgroup/cpu/" + p}));
  }
}

// Two instances on one parent (two jailpool processes, or two systems in one): the first to
// end leaves the parent to the other, which still makes jobs in it; the last removes it. (Each
// used to rmdir the parent when it looked empty: the other's next mkdir failed with ENOENT.)
TEST_F(CgroupTest, TheLastInstanceToEndRemovesTheParent) {
  auto other = CgroupSystem::detect(testing_env::cgroup_parent());
  system_->remove_parent_if_empty();
  for (const std::string& dir : other->parent_dirs()) EXPECT_TRUE(fs::is_directory(dir)) << dir;
  EXPECT_NO_THROW(other->create("job-after", {.memory_bytes = 32 * kMiB, .pids = 8}));
  other->remove_parent_if_empty();
  for (const std::string& dir : other->parent_dirs()) EXPECT_FALSE(fs::exists(dir)) << dir;
  other->remove_parent_if_empty();  // a second call does nothing
}

// A pid for a job cgroup's name: one of a process that has exited (and been reaped).
pid_t dead_pid() {
  pid_t pid = ::fork();
  if (pid == 0) _exit(0);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return pid;
}

// detect() on an existing parent removes the job cgroups of dead owners (killing what is left
// in them), keeps those of live ones and other names; the last instance to end removes the
// rest of the dead ones', and then the parent.
TEST_F(CgroupTest, ReclaimsOnlyTheJobCgroupsOfDeadInstances) {
  pid_t live = ::fork();
  if (live == 0) {
    for (;;) ::pause();
  }
  ASSERT_GT(live, 0);
  pid_t dead = dead_pid();
  pid_t stray = ::fork();  // a process left in a dead instance's job cgroup
  if (stray == 0) {
    for (;;) ::pause();
  }
  ASSERT_GT(stray, 0);
  const std::string dead_name = "job-" + std::to_string(dead) + "-1";
  const std::string live_name = "job-" + std::to_string(live) + "-1";
  const std::string own_name = "job-" + std::to_string(::getpid()) + "-1";
  std::vector<std::string> parents = system_->parent_dirs();
  for (const std::string& parent : parents) {
    for (const std::string& name : {dead_name, live_name, own_name, std::string("keep-me")}) {
      ASSERT_EQ(::mkdir(job_dir(parent, name).c_str(), 0755), 0) << job_dir(parent, name);
    }
  }
  const std::string v2_dead = job_dir(parents.front(), dead_name);
  if (!system_->info().v2_mount.empty()) {
    std::string pid = std::to_string(stray);
    UniqueFd procs(::open((v2_dead + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC));
    ASSERT_EQ(::write(procs.get(), pid.data(), pid.size()), static_cast<ssize_t>(pid.size()));
  }

  auto second = CgroupSystem::detect(testing_env::cgroup_parent());
  for (const std::string& parent : parents) {
    EXPECT_FALSE(fs::exists(job_dir(parent, dead_name))) << job_dir(parent, dead_name);
    EXPECT_TRUE(fs::is_directory(job_dir(parent, live_name))) << job_dir(parent, live_name);
    // This process has another system, whose job cgroups these may be.
    EXPECT_TRUE(fs::is_directory(job_dir(parent, own_name))) << job_dir(parent, own_name);
    EXPECT_TRUE(fs::is_directory(job_dir(parent, "keep-me")));
  }
  int status = 0;
  if (!system_->info().v2_mount.empty()) {
    EXPECT_TRUE(wait_child(stray, &status, 5s));
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  } else {
    ::kill(stray, SIGKILL);  // our own child
    wait_child(stray, &status);
  }
  ::kill(live, SIGKILL);  // our own child: its job cgroups are now a dead instance's
  wait_child(live, &status);

  second.reset();  // not the last: changes nothing
  EXPECT_TRUE(fs::is_directory(job_dir(parents.front(), live_name)));
  for (const std::string& parent : parents) ::rmdir(job_dir(parent, "keep-me").c_str());
  system_->remove_parent_if_empty();
  for (const std::string& parent : parents) EXPECT_FALSE(fs::exists(parent)) << parent;
}

TEST_F(CgroupTest, RejectsBadNames) {
  EXPECT_THROW(CgroupSystem::detect("a/b"), Error);
  EXPECT_THROW(CgroupSystem::detect(".."), Error);
  EXPECT_THROW(system_->create("", {}), Error);
  EXPECT_THROW(system_->create("x/y", {}), Error);
  EXPECT_THROW(system_->create("..", {}), Error);
}

TEST_F(CgroupTest, CreateWritesLimitsAndDestroyLeavesNothing) {
  const std::string name = "create";
  std::vector<std::string> dirs;
  for (const std::string& parent : system_->parent_dirs()) {
    if (joined_by_every_job(parent)) dirs.push_back(job_dir(parent, name));
  }
  {
    auto job = system_->create(name, {.memory_bytes = 32 * kMiB, .pids = 8});
    for (const std::string& dir : dirs) EXPECT_TRUE(fs::is_directory(dir)) << dir;
    EXPECT_GE(job->v2_dir_fd(), 0);
    EXPECT_FALSE(job->populated());
    if (machine_is_hybrid()) {
      std::string p = testing_env::cgroup_parent();
      EXPECT_EQ(read_file("/sys/fs/cgroup/memory/" + p + "/" + name + "/memory.limit_in_bytes"),
                "33554432\n");
      EXPECT_EQ(read_file("/sys/fs/cgroup/pids/" + p + "/" + name + "/pids.max"), "8\n");
      EXPECT_EQ(job->attach_fds(true).size(), 3u);   // v2, memory, pids
      EXPECT_EQ(job->attach_fds(false).size(), 2u);  // memory, pids
    } else if (machine_is_pure_v2()) {
      std::string dir = "/sys/fs/cgroup/" + testing_env::cgroup_parent() + "/" + name;
      EXPECT_EQ(read_file(dir + "/memory.max"), "33554432\n");
      EXPECT_EQ(read_file(dir + "/pids.max"), "8\n");
      if (fs::exists(dir + "/memory.swap.max")) {
        EXPECT_EQ(read_file(dir + "/memory.swap.max"), "0\n");
      }
      EXPECT_EQ(job->attach_fds(true).size(), 1u);
      EXPECT_EQ(job->attach_fds(false).size(), 0u);
    }
    CgroupStats stats = job->read_stats();
    EXPECT_EQ(stats.cpu_usec, 0u);
    EXPECT_EQ(stats.oom_kills, 0u);
    EXPECT_FALSE(stats.memory_limit_hit);
    EXPECT_FALSE(stats.pids_limit_hit);
    EXPECT_EQ(job->read_cpu_usec(), 0u);

    // A second job of the same name is refused (EEXIST) and does not disturb the first.
    try {
      system_->create(name, {});
      ADD_FAILURE() << "duplicate create did not throw";
    } catch (const SysError& e) {
      EXPECT_EQ(e.err(), EEXIST);
      EXPECT_NE(std::string(e.what()).find(dirs[0]), std::string::npos) << e.what();
    }
    for (const std::string& dir : dirs) EXPECT_TRUE(fs::is_directory(dir)) << dir;
  }
  for (const std::string& dir : dirs) EXPECT_FALSE(fs::exists(dir)) << dir;
}

TEST_F(CgroupTest, ReleaseDirsHandsRemovalToTheCaller) {
  auto job = system_->create("release", {});
  std::vector<std::string> dirs = job->release_dirs();
  auto parents = system_->parent_dirs();
  EXPECT_EQ(dirs.size(), std::count_if(parents.begin(), parents.end(), joined_by_every_job));
  job.reset();
  for (const std::string& dir : dirs) {
    EXPECT_TRUE(fs::is_directory(dir)) << dir;
    EXPECT_EQ(::rmdir(dir.c_str()), 0) << dir << ": " << std::strerror(errno);
  }
}

TEST_F(CgroupTest, AccountsCpuAndMemory) {
  auto job = system_->create("cpu", {});
  ChildGuard child(fork_in_job(*job, [] {
    burn_cpu(50ms);
    touch_memory(kMiB);  // small: page faults are slow under emulation (TCG)
    return 0;
  }));
  struct rusage usage;
  int status = child.wait(20s, &usage);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;

  CgroupStats stats = job->read_stats();
  // The cgroup sees the child's CPU after it attached: a little less than its rusage.
  EXPECT_GE(stats.cpu_usec, 40000u) << "rusage " << rusage_usec(usage);
  EXPECT_LT(stats.cpu_usec, 200000u) << "rusage " << rusage_usec(usage);
  EXPECT_LE(stats.cpu_usec, rusage_usec(usage) + 1000);
  EXPECT_GT(stats.cpu_user_usec + stats.cpu_sys_usec, 0u);
  EXPECT_EQ(job->read_cpu_usec(), stats.cpu_usec);  // the job is over: the counter is final
  ASSERT_TRUE(stats.memory_peak_bytes.has_value());
  EXPECT_GE(*stats.memory_peak_bytes, kMiB / 2);
  EXPECT_LT(*stats.memory_peak_bytes, 256 * kMiB);
  if (machine_is_hybrid()) {
    EXPECT_EQ(stats.memory_peak_source, MemoryPeakSource::kV1MaxUsage);
  } else if (system_->info().has_memory_peak) {
    EXPECT_EQ(stats.memory_peak_source, MemoryPeakSource::kV2MemoryPeak);
  }
  EXPECT_EQ(stats.oom_kills, 0u);
  EXPECT_FALSE(stats.pids_limit_hit);
  EXPECT_FALSE(job->populated());
}

TEST_F(CgroupTest, MemoryLimitOomKills) {
  auto job = system_->create("oom", {.memory_bytes = 32 * kMiB});
  ChildGuard child(fork_in_job(*job, [] {
    touch_memory(64 * kMiB);
    return 0;
  }));
  int status = child.wait();
  ASSERT_TRUE(WIFSIGNALED(status)) << "status " << status;
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
  CgroupStats stats = job->read_stats();
  EXPECT_GE(stats.oom_kills, 1u);
  EXPECT_TRUE(stats.memory_limit_hit);
  ASSERT_TRUE(stats.memory_peak_bytes.has_value());
  EXPECT_LE(*stats.memory_peak_bytes, 32 * kMiB);
  EXPECT_GE(*stats.memory_peak_bytes, 16 * kMiB);
}

TEST_F(CgroupTest, PidsLimitIsEnforcedAndReported) {
  auto job = system_->create("pids", {.pids = 8});
  ChildGuard child(fork_in_job(*job, [] {
    int p[2];
    if (::pipe(p) < 0) return 103;
    int forked = 0;
    for (int i = 0; i < 20; ++i) {
      pid_t pid = ::fork();
      if (pid == 0) {  // holds its pid until the pipe closes
        alarm(30);
        ::close(p[1]);
        char c;
        while (::read(p[0], &c, 1) < 0 && errno == EINTR) {
        }
        _exit(0);
      }
      if (pid > 0) ++forked;
    }
    ::close(p[1]);
    while (::wait(nullptr) > 0 || errno == EINTR) {
    }
    return forked;
  }));
  int status = child.wait();
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_LE(WEXITSTATUS(status), 7);  // the job process itself is the 8th
  EXPECT_GE(WEXITSTATUS(status), 1);
  CgroupStats stats = job->read_stats();
  EXPECT_TRUE(stats.pids_limit_hit);
  if (system_->info().has_pids_peak) {
    ASSERT_TRUE(stats.pids_peak.has_value());
    EXPECT_EQ(*stats.pids_peak, 8u);
  }
}

// kill_all on a tree of 1 + 3 sleeping processes, with the configured kill method.
void expect_kill_all_kills_tree(JobCgroup& job) {
  UniqueFd ready;
  ChildGuard reaper(start_tree(job, 3, &ready));
  ASSERT_TRUE(wait_ready(ready)) << "the job tree did not start";
  EXPECT_TRUE(job.populated());
  job.kill_all();
  int status = reaper.wait(10s);
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 0) << "the job process was not SIGKILLed";
  EXPECT_TRUE(wait_unpopulated(job));
}

TEST_F(CgroupTest, KillAllKillsTheTree) {
  auto job = system_->create("kill", {.pids = 32});
  expect_kill_all_kills_tree(*job);
}

TEST_F(CgroupTest, KillAllWithoutCgroupKill) {
  redetect({.use_cgroup_kill = false});
  auto job = system_->create("killprocs", {.pids = 32});
  expect_kill_all_kills_tree(*job);
}

TEST_F(CgroupTest, DestructorKillsWhatIsLeft) {
  auto job = system_->create("dtor", {});
  std::vector<std::string> dirs;
  for (const std::string& parent : system_->parent_dirs()) dirs.push_back(job_dir(parent, "dtor"));
  UniqueFd ready;
  ChildGuard reaper(start_tree(*job, 2, &ready));
  ASSERT_TRUE(wait_ready(ready));
  job.reset();  // kills, waits for the tree to leave, removes the directories
  int status = reaper.wait(10s);
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  for (const std::string& dir : dirs) EXPECT_FALSE(fs::exists(dir)) << dir;
}

// The pure-v1 code path, run on this machine's v1 hierarchies.
TEST_F(CgroupTest, PureV1Path) {
  if (system_->info().v1_mounts.empty()) GTEST_SKIP() << "no cgroup v1 here";
  redetect({.use_v2 = false});
  const CgroupInfo& info = system_->info();
  EXPECT_EQ(info.mode, CgroupMode::kV1);
  EXPECT_EQ(info.v2_mount, "");
  EXPECT_EQ(info.cpu_source, "v1 cpuacct");
  EXPECT_EQ(info.memory_source, "v1 memory");
  EXPECT_EQ(info.pids_source, "v1 pids");
  EXPECT_FALSE(info.has_cgroup_kill);

  auto job = system_->create("v1", {.memory_bytes = 64 * kMiB, .pids = 16});
  EXPECT_EQ(job->v2_dir_fd(), -1);
  EXPECT_EQ(job->attach_fds(true), job->attach_fds(false));
  EXPECT_EQ(job->attach_fds(true).size(), 3u);  // memory, pids, cpuacct
  ChildGuard child(fork_in_job(*job, [] {
    burn_cpu(50ms);
    touch_memory(kMiB);  // small: page faults are slow under emulation (TCG)
    return 0;
  }));
  struct rusage usage;
  int status = child.wait(20s, &usage);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  CgroupStats stats = job->read_stats();
  EXPECT_GE(stats.cpu_usec, 40000u) << "rusage " << rusage_usec(usage);
  EXPECT_LT(stats.cpu_usec, 200000u) << "rusage " << rusage_usec(usage);
  EXPECT_LE(stats.cpu_usec, rusage_usec(usage) + 1000);
  EXPECT_EQ(job->read_cpu_usec(), stats.cpu_usec);
  EXPECT_EQ(stats.memory_peak_source, MemoryPeakSource::kV1MaxUsage);
  EXPECT_GE(stats.memory_peak_bytes.value_or(0), kMiB / 2);
  EXPECT_FALSE(job->populated());

  auto killed = system_->create("v1kill", {.pids = 32});
  expect_kill_all_kills_tree(*killed);
}

TEST_F(CgroupTest, CloneIntoCgroupPlacesTheChild) {
  auto job = system_->create("clone", {});
  if (job->v2_dir_fd() < 0) GTEST_SKIP() << "no cgroup v2 here";
  const std::string path = "/" + testing_env::cgroup_parent() + "/clone";
  pid_t pid = clone_into(job->v2_dir_fd());
  if (pid == 0) exit_if_in_v2(path);
  ASSERT_GT(pid, 0) << "clone3: " << std::strerror(errno);
  ChildGuard child(pid);
  int status = child.wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;

  // After cgroup.kill a job cgroup is never reused (6.18 kill_seq bug); a fresh cgroup of the
  // same name places a child normally.
  job->kill_all();
  job.reset();
  job = system_->create("clone", {});
  pid = clone_into(job->v2_dir_fd());
  if (pid == 0) exit_if_in_v2(path);
  ASSERT_GT(pid, 0) << "clone3: " << std::strerror(errno);
  ChildGuard child2(pid);
  status = child2.wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
}

// The pool writes the last job's memory and pids limits into the cgroups it prepares; a job
// with other limits, or none, must never run under them.
TEST_F(CgroupTest, PoolPrewrittenLimitsNeverLeakToAJobWithOthers) {
  pool::CgroupPool pool(*system_, "pooltest-", 2);
  // The memory and pids limits a job's cgroup has ("max" when none), read from its
  // directories, which are then removed.
  auto limits_of = [](std::unique_ptr<JobCgroup> job) {
    std::pair<std::string, std::string> out{"?", "?"};
    auto normalize = [](std::string v) {
      if (!v.empty() && v.back() == '\n') v.pop_back();
      if (v != "max" && v.size() >= 19) v = "max";  // v1: 9223372036854771712
      return v;
    };
    const std::vector<std::string> dirs = job->release_dirs();
    for (const std::string& dir : dirs) {
      for (const char* f : {"memory.limit_in_bytes", "memory.max"}) {
        if (fs::exists(dir + "/" + f)) out.first = normalize(read_file(dir + "/" + f));
      }
      if (fs::exists(dir + "/pids.max")) out.second = normalize(read_file(dir + "/pids.max"));
    }
    for (const std::string& dir : dirs) ::rmdir(dir.c_str());
    return out;
  };
  const CgroupLimits limited{.memory_bytes = 32 * kMiB, .pids = 8};
  const std::pair<std::string, std::string> limited_text{"33554432", "8"};
  const std::pair<std::string, std::string> none{"max", "max"};
  // Each acquire after a pause takes a cgroup the filler prepared with the previous limits.
  std::vector<std::pair<CgroupLimits, std::pair<std::string, std::string>>> sequence = {
      {limited, limited_text},
      {limited, limited_text},
      {{}, none},
      {limited, limited_text},
      {{.memory_bytes = 16 * kMiB}, {"16777216", "max"}},
      {{.pids = 8}, {"max", "8"}},
      {{}, none}};
  for (size_t i = 0; i < sequence.size(); ++i) {
    std::this_thread::sleep_for(300ms);  // the filler refills
    auto job = pool.acquire(sequence[i].first);
    EXPECT_EQ(limits_of(std::move(job)), sequence[i].second) << "acquire " << i;
  }
  EXPECT_GE(pool.hits(), 1u);
}

}  // namespace
}  // namespace jailpool::isolate
