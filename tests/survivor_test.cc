// A process of a job that outlives SIGKILL (here frozen by a cgroup-v1 freezer, which SIGKILL
// does not wake; a task in uninterruptible sleep behaves the same) must not hang its job, the
// batch or a slot: the job gets its result at its init's deadline (isolate::kSurvivorGraceNs)
// with a message saying so, its slot is destroyed without waiting and never runs another job,
// and once the process is gone (thawed) nothing is left: no process, no cgroup.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "config/profile.h"
#include "isolate/slot.h"
#include "pool/slot_pool.h"
#include "sched/executor.h"
#include "test_support.h"

namespace jailpool {
namespace {

using namespace testing_env;
using namespace std::chrono_literals;

constexpr const char* kFreezerRoot = "/sys/fs/cgroup/freezer";

bool write_text(const std::string& path, const std::string& text) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  return ok;
}

// A v1 freezer cgroup of the test's own (jailpool-test-<pid>-frozen). Freezes only what the
// test puts in it; thawed and removed at the end, whatever happened.
class FrozenCgroup {
 public:
  FrozenCgroup() : path_(std::string(kFreezerRoot) + "/" + cgroup_parent() + "-frozen") {
    made_ = ::mkdir(path_.c_str(), 0755) == 0 && ::access(state_file().c_str(), W_OK) == 0;
  }
  ~FrozenCgroup() {
    if (!made_) {
      ::rmdir(path_.c_str());
      return;
    }
    thaw();
    // The thawed task dies of its pending SIGKILL and leaves; anything else goes back to the
    // root before the rmdir.
    for (int i = 0; i < 500 && ::rmdir(path_.c_str()) < 0 && errno == EBUSY; ++i) {
      if (i == 200) {
        std::ifstream procs(path_ + "/cgroup.procs");
        for (std::string pid; procs >> pid;)
          write_text(std::string(kFreezerRoot) + "/cgroup.procs", pid);
      }
      std::this_thread::sleep_for(10ms);
    }
  }
  bool usable() const { return made_; }
  bool freeze(const std::string& pid) {
    if (!write_text(path_ + "/cgroup.procs", pid) || !write_text(state_file(), "FROZEN")) {
      return false;
    }
    for (int i = 0; i < 1000; ++i) {
      if (read_file(state_file()).rfind("FROZEN", 0) == 0) return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }
  void thaw() { write_text(state_file(), "THAWED"); }

 private:
  std::string state_file() const { return path_ + "/freezer.state"; }
  std::string path_;
  bool made_ = false;
};

// The host pid of the process whose command line holds `argv1` then `marker` ("" if none).
std::string find_by_marker(const std::string& argv1, const std::string& marker) {
  for (const std::string& pid : proc_pids()) {
    std::string cmd = read_file("/proc/" + pid + "/cmdline");
    if (cmd.find(std::string(1, '\0') + argv1 + '\0' + marker + '\0') != std::string::npos) {
      return pid;
    }
  }
  return "";
}

class SurvivorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    struct stat st {};
    if (::stat(kFreezerRoot, &st) != 0) GTEST_SKIP() << "no cgroup-v1 freezer here";
    freezer_ = std::make_unique<FrozenCgroup>();
    if (!freezer_->usable()) GTEST_SKIP() << "cannot make a cgroup-v1 freezer cgroup";
    profile_ = default_profile();
    Bind* bind = profile_.add_bind();
    bind->set_src(JAILPOOL_TEST_PROGS);
    bind->set_dst(kProgsInJail);
    marker_ = "jailpool-survivor-" + std::to_string(::getpid());
    fds_before_ = count_own_fds();
  }

  void TearDown() override {
    if (freezer_) freezer_->thaw();  // before the executor waits for what it froze
    executor_.reset();
    freezer_.reset();
    if (marker_.empty()) return;
    auto procs = poll_until_empty([&] { return processes_mentioning(marker_); }, 2000ms);
    EXPECT_TRUE(procs.empty()) << "processes left behind:\n" << join(procs);
    auto dirs = poll_until_empty(job_cgroups_left, 2000ms);
    EXPECT_TRUE(dirs.empty()) << "job cgroups left behind:\n" << join(dirs);
    if (check_fds_) {
      EXPECT_EQ(count_own_fds(), fds_before_) << "fds leaked";
    }
  }

  void make_executor(bool slots) {
    sched::ExecutorOptions options;
    options.cgroup_parent = cgroup_parent();
    options.use_pool = slots;
    options.use_slots = slots;
    options.parallelism = 1;
    options.slot_spares = 0;  // the counts of slots built below are exact
    executor_ = std::make_unique<sched::Executor>(options);
  }

  JobSpec job(const std::string& id, std::vector<std::string> argv,
              uint64_t wall_ms = 120000) const {
    JobSpec spec = make_job(id, std::move(argv));
    spec.mutable_limits()->set_wall_time_ms(wall_ms);
    return spec;
  }

  // Runs `spec`, freezing its process "freeze_child child <marker>" once it has started;
  // returns its result, or nullopt when the job did not end within 60 s of the freeze (thawed
  // then, so that the executor returns: without the survivor handling, the job waits for the
  // frozen process).
  std::optional<JobResult> run_with_frozen_child(const JobSpec& spec) {
    auto pending =
        std::async(std::launch::async, [&] { return executor_->run_one(spec, profile_); });
    std::string pid;
    for (int i = 0; i < 3000 && pid.empty(); ++i) {
      if (pending.wait_for(10ms) == std::future_status::ready) break;
      pid = find_by_marker("child", marker_);
    }
    EXPECT_FALSE(pid.empty()) << "the job's child never appeared";
    if (!pid.empty()) {
      EXPECT_TRUE(freezer_->freeze(pid)) << "could not freeze " << pid;
    }
    if (pending.wait_for(60s) != std::future_status::ready) {
      freezer_->thaw();
      pending.wait();
      return std::nullopt;
    }
    return pending.get();
  }

  std::optional<JobResult> run_with_frozen_child() {
    return run_with_frozen_child(job("leave", {in_jail("freeze_child"), "leave", marker_}));
  }

  static void expect_survivor_result(const std::optional<JobResult>& r) {
    ASSERT_TRUE(r.has_value()) << "the job hung on its frozen child";
    EXPECT_EQ(r->status(), OK) << describe(*r);
    EXPECT_EQ(parse_facts(r->stdout())["frozen"], "1") << describe(*r);
    EXPECT_NE(r->message().find("1 process of the job outlived SIGKILL"), std::string::npos)
        << describe(*r);
  }

  // The executor ends while the job's child is still frozen: it waits a bounded time, says
  // what it leaves (by design: the fds and memory a task that cannot exit may still use, the
  // busy cgroups), and returns. The test then thaws and removes the cgroups it left.
  void executor_ends_while_still_frozen() {
    std::optional<JobResult> left = run_with_frozen_child();
    expect_survivor_result(left);
    testing::internal::CaptureStderr();
    executor_.reset();
    std::string err = testing::internal::GetCapturedStderr();
    EXPECT_NE(err.find("did not exit"), std::string::npos) << err;
    freezer_->thaw();
    auto dirs = poll_until_empty(
        [] {
          for (const std::string& dir : job_cgroups_left()) ::rmdir(dir.c_str());
          return job_cgroups_left();
        },
        5000ms);
    EXPECT_TRUE(dirs.empty()) << "busy after the thaw:\n" << join(dirs);
    check_fds_ = false;  // a slot's init leaves its fds to the process (see SlotRemains)
  }

  // The job's first process itself frozen: its wall limit kills it, in vain.
  void frozen_first_process_past_its_wall_limit() {
    std::optional<JobResult> frozen =
        run_with_frozen_child(job("frozen", {in_jail("freeze_child"), "child", marker_}, 2000));
    ASSERT_TRUE(frozen.has_value()) << "the job hung on its frozen first process";
    EXPECT_EQ(frozen->status(), WALL_TIME_LIMIT_EXCEEDED) << describe(*frozen);
    EXPECT_NE(frozen->message().find("outlived SIGKILL"), std::string::npos) << describe(*frozen);
    JobResult next = executor_->run_one(job("next", {in_jail("freeze_child"), "ns"}), profile_);
    EXPECT_EQ(next.status(), OK) << describe(next);
  }

  Profile profile_;
  std::unique_ptr<FrozenCgroup> freezer_;
  std::unique_ptr<sched::Executor> executor_;
  std::string marker_;
  int fds_before_ = 0;
  bool check_fds_ = true;
};

TEST_F(SurvivorTest, SlotWithAFrozenProcessIsReplaced) {
  make_executor(true);
  JobResult first = executor_->run_one(job("ns", {in_jail("freeze_child"), "ns"}), profile_);
  ASSERT_EQ(first.status(), OK) << describe(first);
  std::optional<JobResult> left = run_with_frozen_child();
  expect_survivor_result(left);
  ASSERT_TRUE(left.has_value());
  EXPECT_EQ(parse_facts(left->stdout())["netns"], parse_facts(first.stdout())["netns"])
      << "the job did not run in the slot";
  // The next job runs, in a new slot; the old one is destroyed without waiting for its init.
  JobResult next = executor_->run_one(job("next", {in_jail("freeze_child"), "ns"}), profile_);
  EXPECT_EQ(next.status(), OK) << describe(next);
  EXPECT_NE(parse_facts(next.stdout())["netns"], parse_facts(left->stdout())["netns"])
      << "the slot with a frozen process ran another job";
  EXPECT_EQ(executor_->slots()->stats().replaced, 1u);
  EXPECT_EQ(executor_->slots()->stats().created, 2u);
  EXPECT_EQ(executor_->slots()->dying(), 1u) << "the broken slot's init exited under a freeze?";
}

TEST_F(SurvivorTest, FreshJailWithAFrozenProcessEndsItsJobAndBatch) {
  make_executor(false);
  std::optional<JobResult> left = run_with_frozen_child();
  expect_survivor_result(left);
  JobResult next = executor_->run_one(job("next", {in_jail("freeze_child"), "ns"}), profile_);
  EXPECT_EQ(next.status(), OK) << describe(next);
  ASSERT_TRUE(left.has_value());
  EXPECT_NE(parse_facts(next.stdout())["netns"], parse_facts(left->stdout())["netns"]);
}

TEST_F(SurvivorTest, SlotWhoseFrozenFirstProcessOutlivesItsKill) {
  make_executor(true);
  frozen_first_process_past_its_wall_limit();
  EXPECT_EQ(executor_->slots()->stats().created, 2u) << "the slot was not replaced";
}

TEST_F(SurvivorTest, FreshJailWhoseFrozenFirstProcessOutlivesItsKill) {
  make_executor(false);
  frozen_first_process_past_its_wall_limit();
}

TEST_F(SurvivorTest, ExecutorWithSlotsEndsWhileAProcessIsStillFrozen) {
  make_executor(true);
  executor_ends_while_still_frozen();
}

TEST_F(SurvivorTest, ExecutorWithFreshJailsEndsWhileAProcessIsStillFrozen) {
  make_executor(false);
  executor_ends_while_still_frozen();
}

}  // namespace
}  // namespace jailpool
