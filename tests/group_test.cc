// Job groups (JobRequest::group_rest): jobs started together, joined by pipes a front end hands
// over (JobRequest::stdio), killed together when one fails unless keep_going; each result
// routed to its own on_done. In fresh jails and in the pool (slots), which must agree.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "config/profile.h"
#include "sched/executor.h"
#include "test_support.h"

namespace jailpool::sched {
namespace {

using testing_env::describe;
using testing_env::join;
using testing_env::leftover_processes;
using testing_env::poll_until_empty;
using namespace std::chrono_literals;

struct Pipe {
  UniqueFd read_end, write_end;
  Pipe() {
    int fds[2];
    EXPECT_EQ(pipe2(fds, O_CLOEXEC), 0);
    read_end.reset(fds[0]);
    write_end.reset(fds[1]);
  }
};

class GroupTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    fds_before_ = testing_env::count_own_fds();
    ExecutorOptions options;
    options.cgroup_parent = testing_env::cgroup_parent();
    options.parallelism = 1;  // a group of two must start whole all the same
    options.use_pool = GetParam();
    executor_ = std::make_unique<Executor>(options);
    fds_with_executor_ = testing_env::count_own_fds();
    profile_ = default_profile();
  }
  void TearDown() override {
    // The pool keeps its slots' and templates' fds until it goes.
    if (!GetParam()) {
      EXPECT_EQ(testing_env::count_own_fds(), fds_with_executor_) << "fds leaked by the jobs";
    }
    executor_.reset();
    EXPECT_EQ(testing_env::count_own_fds(), fds_before_) << "fds leaked by the executor";
    auto dirs = poll_until_empty(testing_env::job_cgroups_left, 1000ms);
    EXPECT_TRUE(dirs.empty()) << "job cgroups left behind:\n" << join(dirs);
    auto procs = poll_until_empty(leftover_processes, 1000ms);
    EXPECT_TRUE(procs.empty()) << "processes left behind:\n" << join(procs);
  }

  JobRequest shell(const std::string& id, const std::string& script, uint32_t wall_ms = 10000) {
    JobRequest request;
    request.spec.set_id(id);
    request.spec.add_argv("/bin/sh");
    request.spec.add_argv("-c");
    request.spec.add_argv(script);
    request.spec.add_env(testing_env::job_marker());
    request.spec.mutable_limits()->set_wall_time_ms(wall_ms);
    request.profile = &profile_;
    return request;
  }

  // Runs one group (the first request is job 0) and returns the results by id; each job's
  // result must come through its own on_done, never through the run's OnResult.
  std::map<std::string, JobResult> run_group(std::vector<JobRequest> jobs, bool keep_going) {
    std::map<std::string, JobResult> results;
    for (JobRequest& j : jobs) {
      j.on_done = [&results](JobResult&& r) { results[r.id()] = std::move(r); };
    }
    JobRequest head = std::move(jobs[0]);
    head.keep_going = keep_going;
    for (size_t i = 1; i < jobs.size(); ++i) head.group_rest.push_back(std::move(jobs[i]));
    std::optional<JobRequest> next(std::move(head));
    int stray = 0;
    executor_->run(
        [&]() {
          std::optional<JobRequest> out = std::move(next);
          next.reset();
          return out;
        },
        [&](JobResult&&) { ++stray; });
    EXPECT_EQ(stray, 0) << "results not routed to their on_done";
    return results;
  }

  std::unique_ptr<Executor> executor_;
  Profile profile_;
  int fds_before_ = 0;
  int fds_with_executor_ = 0;
};

// An interactor and a solution talking through two pipes, started together although the
// executor runs one job at a time.
TEST_P(GroupTest, TwoJobsTalkThroughPipes) {
  Pipe to_solution, to_interactor;
  JobRequest interactor =
      shell("interactor", "echo 7; read answer; [ \"$answer\" = 49 ] && echo ok >&2");
  interactor.stdio[1] = std::move(to_solution.write_end);
  interactor.stdio[0] = std::move(to_interactor.read_end);
  JobRequest solution = shell("solution", "read n; echo $((n * n))");
  solution.stdio[0] = std::move(to_solution.read_end);
  solution.stdio[1] = std::move(to_interactor.write_end);
  std::vector<JobRequest> jobs;
  jobs.push_back(std::move(interactor));
  jobs.push_back(std::move(solution));
  auto results = run_group(std::move(jobs), false);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results["interactor"].status(), OK) << describe(results["interactor"]);
  EXPECT_EQ(results["interactor"].stderr(), "ok\n");
  EXPECT_EQ(results["interactor"].stdout(), "") << "a piped stdout is not captured";
  EXPECT_EQ(results["solution"].status(), OK) << describe(results["solution"]);
}

// The interactor rejects the answer: the solution, blocked on a read that never comes, is
// killed at once instead of waiting for its wall limit, and its result says why.
TEST_P(GroupTest, AFailureKillsTheRestOfTheGroup) {
  JobRequest interactor = shell("interactor", "exit 3");
  // The solution waits on a stdin whose writer (this test) never writes nor closes.
  Pipe never;
  JobRequest solution = shell("solution", "read x", 60000);
  solution.stdio[0] = std::move(never.read_end);
  std::vector<JobRequest> jobs;
  jobs.push_back(std::move(interactor));
  jobs.push_back(std::move(solution));
  auto results = run_group(std::move(jobs), false);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results["interactor"].status(), NONZERO_EXIT) << describe(results["interactor"]);
  const JobResult& s = results["solution"];
  EXPECT_EQ(s.status(), SIGNALED) << describe(s);
  EXPECT_EQ(s.message(), "killed: job 0 of its group ended with NONZERO_EXIT") << describe(s);
  EXPECT_LT(s.wall_time_us(), 30000000u) << "waited for its wall limit";
}

// keep_going: the others run to their own end.
TEST_P(GroupTest, KeepGoingLetsTheOthersFinish) {
  std::vector<JobRequest> jobs;
  jobs.push_back(shell("failing", "exit 1"));
  jobs.push_back(shell("slow", "sleep 0.3; echo done"));
  auto results = run_group(std::move(jobs), true);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results["failing"].status(), NONZERO_EXIT);
  EXPECT_EQ(results["slow"].status(), OK) << describe(results["slow"]);
  EXPECT_EQ(results["slow"].stdout(), "done\n");
}

// A job of the group that cannot start (a bad argv) ends the others as any failure does.
TEST_P(GroupTest, ASetupErrorEndsTheGroup) {
  std::vector<JobRequest> jobs;
  jobs.push_back(shell("waiting", "sleep 60", 60000));
  JobRequest bad = shell("bad", "");
  bad.spec.clear_argv();
  jobs.push_back(std::move(bad));
  auto results = run_group(std::move(jobs), false);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results["bad"].status(), SETUP_ERROR) << describe(results["bad"]);
  EXPECT_EQ(results["waiting"].status(), SIGNALED) << describe(results["waiting"]);
  EXPECT_EQ(results["waiting"].message(), "killed: job 1 of its group ended with SETUP_ERROR");
}

// A writer into a pipe whose reader is gone gets SIGPIPE, as between two bare processes.
TEST_P(GroupTest, AWriterWhoseReaderIsGoneGetsSigpipe) {
  Pipe p;
  JobRequest writer = shell("writer", "sleep 0.5; while :; do echo flood; done");
  writer.stdio[1] = std::move(p.write_end);
  JobRequest reader = shell("reader", "exit 0");
  reader.stdio[0] = std::move(p.read_end);
  std::vector<JobRequest> jobs;
  jobs.push_back(std::move(writer));
  jobs.push_back(std::move(reader));
  auto results = run_group(std::move(jobs), true);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results["reader"].status(), OK);
  // The shell's echo builtin dies of SIGPIPE (or reports EPIPE and exits nonzero).
  EXPECT_NE(results["writer"].status(), OK) << describe(results["writer"]);
  EXPECT_NE(results["writer"].status(), WALL_TIME_LIMIT_EXCEEDED) << describe(results["writer"]);
}

// A caller may change or free a profile once its jobs have started (a server reloads them):
// the pool's templates, slots and seccomp programs follow the profile's content, not its
// address. Here one Profile object changes its hostname between two jobs.
TEST_P(GroupTest, JailsFollowTheProfilesContentNotItsAddress) {
  std::vector<std::string> seen;
  for (const char* name : {"first", "second", "first"}) {
    profile_.set_hostname(name);
    std::optional<JobRequest> next(shell(name, "hostname"));
    executor_->run(
        [&]() {
          std::optional<JobRequest> out = std::move(next);
          next.reset();
          return out;
        },
        [&](JobResult&& r) {
          EXPECT_EQ(r.status(), OK) << describe(r);
          seen.push_back(r.stdout());
        });
  }
  EXPECT_EQ(join(seen), "first\n\nsecond\n\nfirst\n\n");
}

// A job killed for its group's sake is SIGNALED, unless it had ended by itself before the kill
// (its exit was still on the way when the other job's failure was handled).
TEST(GroupVerdict, KilledForTheGroupUnlessItEndedFirst) {
  VerdictFacts f;
  f.killed_for = VerdictFacts::Kill::kGroup;
  f.exited = true;
  f.signal = SIGKILL;
  EXPECT_EQ(decide_status(f), SIGNALED);
  f.signal = 0;
  EXPECT_EQ(decide_status(f), OK);
  f.exit_code = 2;
  EXPECT_EQ(decide_status(f), NONZERO_EXIT);
  f.exited = false;
  EXPECT_EQ(decide_status(f), SIGNALED);
}

INSTANTIATE_TEST_SUITE_P(FreshAndPooled, GroupTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Pooled" : "Fresh"; });

}  // namespace
}  // namespace jailpool::sched
