// Several jailpool processes sharing one cgroup parent (the test's, via JAILPOOL_CGROUP_PARENT),
// as a judge running many `jailpool run`s at once does: no instance removes the parent while
// another one uses it (the lost jobs of issue 11: SETUP_ERROR, mkdir .../job-<pid>-1: ENOENT),
// the last one leaves nothing, and a dead instance's job cgroups are reclaimed by the next one
// to start while a live instance's are not touched.
//
// JAILPOOL_SHARED_PARENT_RUNS sets the runs per stream (default 500; 100 under ASan).
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.h"
#include "isolate/cgroup_parent.h"
#include "test_support.h"

namespace jailpool {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

using testing_env::CliOutcome;
using testing_env::join;
using testing_env::poll_until_empty;
using testing_env::read_file;
using testing_env::run_cli;
using testing_env::spawn_cli;
using testing_env::TempDir;

int runs_per_stream() {
  if (const char* env = std::getenv("JAILPOOL_SHARED_PARENT_RUNS"); env && *env) {
    return std::max(1, std::atoi(env));
  }
#if defined(__SANITIZE_ADDRESS__)
  return 100;
#else
  return 500;
#endif
}

// The test parent's directories that exist, in any hierarchy.
std::vector<std::string> parent_dirs_left() {
  std::vector<std::string> out;
  for (const std::string& dir : testing_env::cgroup_parent_candidates()) {
    std::error_code ec;
    if (fs::exists(dir, ec)) out.push_back(dir);
  }
  return out;
}

// Processes started with the test's parent in their environment: the jailpool CLIs this test
// started and their clones (template holders, jails' inits).
std::vector<std::string> our_jailpool_processes() {
  std::string needle = std::string(1, '\0') +
                       "JAILPOOL_CGROUP_PARENT=" + testing_env::cgroup_parent() +
                       std::string(1, '\0');
  std::vector<std::string> out;
  for (const std::string& pid : testing_env::proc_pids()) {
    std::string env = std::string(1, '\0') + read_file("/proc/" + pid + "/environ");
    if (env.find(needle) != std::string::npos) out.push_back(pid);
  }
  return out;
}

// The job cgroups (job-<pid>-*) of one jailpool process, in any hierarchy.
std::vector<std::string> job_cgroups_of(pid_t pid) {
  std::vector<std::string> out;
  for (const std::string& dir : testing_env::job_cgroups_left()) {
    if (isolate::cgroup_parent::job_cgroup_owner(fs::path(dir).filename().string()) == pid) {
      out.push_back(dir);
    }
  }
  return out;
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) ++n;
  return n;
}

pid_t wait_child(pid_t pid, std::chrono::seconds budget, int* status) {
  auto deadline = Clock::now() + budget;
  for (;;) {
    pid_t got = ::waitpid(pid, status, WNOHANG);
    if (got != 0 || Clock::now() > deadline) return got;
    std::this_thread::sleep_for(10ms);
  }
}

class SharedParentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    // Nobody holds the parent at the start: the instances below make and remove it.
    auto left = parent_dirs_left();
    ASSERT_TRUE(left.empty()) << join(left);
  }

  void TearDown() override {
    auto procs = poll_until_empty(our_jailpool_processes, 2000ms);
    EXPECT_TRUE(procs.empty()) << "jailpool processes left: " << join(procs);
    auto jobs = poll_until_empty(testing_env::leftover_processes, 2000ms);
    EXPECT_TRUE(jobs.empty()) << "job processes left:\n" << join(jobs);
    // The last instance removed the parent in every hierarchy.
    auto dirs = parent_dirs_left();
    EXPECT_TRUE(dirs.empty()) << "left behind:\n" << join(dirs);
  }

  // A batch of sleepers (ms each), 2 at once, its results into `output`.
  pid_t start_sleepers(const std::string& name, int jobs, int ms, const std::string& output) {
    std::string lines;
    for (int i = 0; i < jobs; ++i) {
      lines += "{\"id\":\"" + name + "-" + std::to_string(i) +
               "\",\"argv\":[\"/progs/sleeper\",\"" + std::to_string(ms) + "\"],\"env\":[\"" +
               testing_env::job_marker() + "\"]}\n";
    }
    std::string input = dir_.write(name + ".jsonl", lines);
    log_ = UniqueFd(
        ::open(dir_.file(name + ".log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
    return spawn_cli(
        {"batch", "-j", "2", "--profile", profile(), "--input", input, "--output", output},
        log_.get(), log_.get());
  }

  // The default profile plus the test programs at /progs.
  std::string profile() {
    std::string text = read_file(std::string(JAILPOOL_SOURCE_DIR) + "/configs/default.textproto");
    EXPECT_FALSE(text.empty());
    text += "\nbind { src: \"" + std::string(JAILPOOL_TEST_PROGS) + "\" dst: \"/progs\" }\n";
    return dir_.write("profile.textproto", text);
  }

  TempDir dir_{"jailpool-shared-parent-test"};
  UniqueFd log_;
};

// Issue 11: 4 streams of `jailpool run` and a batch beside them, all on the same (default)
// parent. Each instance ending removed the parent while another was making a job in it: ~6 % of
// the runs failed with exit 125. The batch runs through the middle half of the streams only:
// while it lives, its ready cgroups keep the parent from being empty, which hid the race.
TEST_F(SharedParentTest, ConcurrentRunsAndABatchLoseNoJob) {
  constexpr int kStreams = 4;
  const int runs = runs_per_stream();

  // The batch reads its jobs from a FIFO that stream 0 feeds one line per run.
  const std::string fifo = dir_.file("batch.fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  UniqueFd feed(::open(fifo.c_str(), O_RDWR | O_CLOEXEC));  // a writer: the batch's open returns
  ASSERT_TRUE(feed.valid()) << std::strerror(errno);
  const std::string output = dir_.file("batch.results.jsonl");
  UniqueFd log(
      ::open(dir_.file("batch.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  pid_t batch = -1;

  std::mutex mu;
  std::vector<std::string> failures;
  std::atomic<int> failed{0};
  int fed = 0;
  auto stream = [&](int s) {
    for (int i = 0; i < runs; ++i) {
      if (s == 0 && i == runs / 4) {
        batch = spawn_cli({"batch", "-j", "2", "--output", output}, log.get(), log.get(), fifo);
      }
      if (s == 0 && i == runs * 3 / 4) feed.reset();  // EOF: the batch finishes and ends
      CliOutcome r = run_cli({"run", "--", "/bin/true"}, "/dev/null", 60s);
      if (r.exit_code != 0) {
        ++failed;
        std::lock_guard lock(mu);
        if (failures.size() < 20) failures.push_back(r.describe());
      }
      if (s == 0 && feed) {
        std::string line = "{\"id\":\"b-" + std::to_string(i) + "\",\"argv\":[\"/bin/true\"]}\n";
        if (::write(feed.get(), line.data(), line.size()) == static_cast<ssize_t>(line.size())) {
          ++fed;
        }
      }
    }
  };
  auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int s = 0; s < kStreams; ++s) threads.emplace_back(stream, s);
  for (auto& t : threads) t.join();
  feed.reset();
  ASSERT_GT(batch, 0);
  int status = 0;
  pid_t got = wait_child(batch, 120s, &status);
  if (got == 0) {
    ::kill(batch, SIGKILL);  // our own child
    ::waitpid(batch, &status, 0);
    ADD_FAILURE() << "the batch did not end within 120 s of its input's end";
  }
  std::cout << "[ shared   ] " << kStreams << " x " << runs << " runs and a batch of " << fed
            << " jobs in " << std::chrono::duration<double>(Clock::now() - t0).count() << " s"
            << std::endl;

  EXPECT_EQ(failed, 0) << failed << " of " << kStreams * runs << " runs failed, e.g.:\n"
                       << join(failures);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "batch status " << status << "\n"
                                                             << read_file(dir_.file("batch.log"));
  std::string results = read_file(output);
  EXPECT_GT(fed, 0);
  EXPECT_EQ(count(results, "\n"), static_cast<size_t>(fed));
  EXPECT_EQ(count(results, "\"status\":\"OK\""), static_cast<size_t>(fed))
      << "batch results that are not OK:\n"
      << results.substr(0, 4000);
}

// A batch killed with -9 leaves its job cgroups; the next instance to start (a `jailpool run`)
// removes them, while the job cgroups of a batch running beside it stay and its jobs finish.
TEST_F(SharedParentTest, ADeadInstancesCgroupsAreReclaimedALiveOnesAreNot) {
  // The live batch: 2 sleepers of 6 s, both running while the rest of the test happens.
  const std::string live_out = dir_.file("live.results.jsonl");
  pid_t live = start_sleepers("live", 2, 6000, live_out);
  ASSERT_GT(live, 0);
  // The batch to kill: sleepers that would take long.
  const std::string dead_out = dir_.file("dead.results.jsonl");
  UniqueFd live_log = std::move(log_);
  pid_t dead = start_sleepers("dead", 4, 60000, dead_out);
  ASSERT_GT(dead, 0);

  auto both_running = [&] {
    return job_cgroups_of(live).size() >= 2 && !job_cgroups_of(dead).empty() &&
           testing_env::leftover_processes().size() >= 4;
  };
  auto deadline = Clock::now() + 20s;
  while (!both_running() && Clock::now() < deadline) std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(both_running()) << "live: " << join(job_cgroups_of(live))
                              << "\ndead: " << join(job_cgroups_of(dead)) << "\n"
                              << read_file(dir_.file("live.log"))
                              << read_file(dir_.file("dead.log"));
  const std::vector<std::string> live_dirs = job_cgroups_of(live);

  ASSERT_EQ(::kill(dead, SIGKILL), 0);  // the batch we spawned
  int status = 0;
  ASSERT_EQ(::waitpid(dead, &status, 0), dead);
  // Its jobs die with their jails' inits; its job cgroups stay.
  std::vector<std::string> dead_dirs = job_cgroups_of(dead);
  ASSERT_FALSE(dead_dirs.empty()) << "the killed batch left no job cgroup: nothing to reclaim";

  CliOutcome r = run_cli({"run", "--", "/bin/true"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();

  auto not_reclaimed = job_cgroups_of(dead);
  EXPECT_TRUE(not_reclaimed.empty()) << "the dead batch's job cgroups are still there:\n"
                                     << join(not_reclaimed);
  // (Unless its jobs have ended meanwhile, as they may on a very slow machine.)
  if (read_file(live_out).empty()) {
    for (const std::string& dir : live_dirs) {
      std::error_code ec;
      EXPECT_TRUE(fs::is_directory(dir, ec)) << "a live instance's job cgroup was removed: " << dir;
    }
  }

  // The live batch's jobs were not killed: both end OK, and it removes the parent at its end.
  ASSERT_EQ(wait_child(live, 60s, &status), live);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "live batch status " << status << "\n"
      << read_file(dir_.file("live.log"));
  std::string results = read_file(live_out);
  EXPECT_EQ(count(results, "\"status\":\"OK\""), 2u) << results;
}

}  // namespace
}  // namespace jailpool
