// The executor end to end: every status provoked by a real program (tests/progs/*.c, bound into
// the jail at /progs), the accounting checked against what the programs measure themselves, the
// isolation as a program inside sees it, and the hygiene after every job: no cgroup directory,
// no process and no fd left behind.
#include "sched/executor.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "config/profile.h"
#include "isolate/seccomp.h"
#include "test_support.h"

namespace jailpool::sched {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

using testing_env::count_own_fds;
using testing_env::describe;
using testing_env::in_jail;
using testing_env::job_marker;
using testing_env::join;
using testing_env::kMiB;
using testing_env::kProgsInJail;
using testing_env::leftover_processes;
using testing_env::parse_facts;
using testing_env::poll_until_empty;
using testing_env::TempDir;

class ExecutorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fds_before_ = count_own_fds();
    ExecutorOptions options;
    options.cgroup_parent = testing_env::cgroup_parent();
    executor_ = std::make_unique<Executor>(options);
    fds_with_executor_ = count_own_fds();
    profile_ = default_profile();
  }

  void TearDown() override {
    // Jobs must not leave fds in jailpool, neither while the executor lives nor after.
    EXPECT_EQ(count_own_fds(), fds_with_executor_) << "fds leaked by the jobs";
    executor_.reset();
    EXPECT_EQ(count_own_fds(), fds_before_) << "fds leaked by the executor";
    auto dirs = poll_until_empty(testing_env::job_cgroups_left, 1000ms);
    EXPECT_TRUE(dirs.empty()) << "job cgroups left behind:\n" << join(dirs);
    auto procs = poll_until_empty(leftover_processes, 1000ms);
    EXPECT_TRUE(procs.empty()) << "processes left behind:\n" << join(procs);
  }

  // A job running argv inside the default profile, with the test programs at /progs.
  JobSpec job(std::vector<std::string> argv) const {
    JobSpec spec;
    spec.set_id("executor-test");
    for (const auto& a : argv) spec.add_argv(a);
    Bind* bind = spec.add_bind();
    bind->set_src(JAILPOOL_TEST_PROGS);
    bind->set_dst(kProgsInJail);
    spec.add_env(job_marker());
    return spec;
  }

  JobResult run(const JobSpec& spec) { return executor_->run_one(spec, profile_); }

  std::unique_ptr<Executor> executor_;
  Profile profile_;
  int fds_before_ = 0;
  int fds_with_executor_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Exit statuses.

TEST_F(ExecutorTest, ExitZeroIsOk) {
  JobResult r = run(job({in_jail("exit_code"), "0"}));
  EXPECT_EQ(r.status(), OK) << describe(r);
  EXPECT_EQ(r.exit_code(), 0);
  EXPECT_EQ(r.signal(), 0);
  EXPECT_EQ(r.id(), "executor-test");
}

// The event loop may run as SCHED_FIFO (ExecutorOptions::realtime_loop); what it clones never
// does: field 41 of /proc/self/stat is the policy (0: SCHED_OTHER), here of the job's `cut`.
TEST_F(ExecutorTest, JobsRunAsSchedOtherWhateverTheLoop) {
  JobResult r = run(job({"/bin/sh", "-c", "cut -d' ' -f41 /proc/self/stat"}));
  ASSERT_EQ(r.status(), OK) << describe(r);
  EXPECT_EQ(r.stdout(), "0\n") << describe(r);
  EXPECT_EQ(sched_getscheduler(0) & ~SCHED_RESET_ON_FORK, SCHED_OTHER) << "not restored";
}

TEST_F(ExecutorTest, NonzeroExitCode) {
  JobResult r = run(job({in_jail("exit_code"), "3"}));
  EXPECT_EQ(r.status(), NONZERO_EXIT) << describe(r);
  EXPECT_EQ(r.exit_code(), 3);
  EXPECT_EQ(r.signal(), 0);
}

TEST_F(ExecutorTest, RaisedSignal) {
  JobResult r = run(job({in_jail("raise_signal"), "11"}));
  EXPECT_EQ(r.status(), SIGNALED) << describe(r);
  EXPECT_EQ(r.signal(), SIGSEGV);
}

TEST_F(ExecutorTest, AbortIsSigabrt) {
  JobResult r = run(job({in_jail("self_abort")}));
  EXPECT_EQ(r.status(), SIGNALED) << describe(r);
  EXPECT_EQ(r.signal(), SIGABRT);
}

TEST_F(ExecutorTest, ShellKillingItself) {
  JobResult r = run(job({"/bin/sh", "-c", "kill -SEGV $$"}));
  EXPECT_EQ(r.status(), SIGNALED) << describe(r);
  EXPECT_EQ(r.signal(), SIGSEGV);
}

// ---------------------------------------------------------------------------------------------
// Limits.

TEST_F(ExecutorTest, CpuTimeLimit) {
  JobSpec spec = job({in_jail("burn_cpu"), "forever"});
  spec.mutable_limits()->set_cpu_time_ms(200);
  JobResult r = run(spec);
  EXPECT_EQ(r.status(), TIME_LIMIT_EXCEEDED) << describe(r);
  EXPECT_GE(r.cpu_time_us(), 200000u) << describe(r);
  EXPECT_LT(r.cpu_time_us(), 200000u + 50000u) << describe(r);
}

TEST_F(ExecutorTest, CpuTimeLimitMultiThreaded) {
  // Four burning threads on however many CPUs: the limit is on the sum.
  JobSpec spec = job({in_jail("burn_cpu"), "forever", "4"});
  spec.mutable_limits()->set_cpu_time_ms(200);
  auto t0 = Clock::now();
  JobResult r = run(spec);
  EXPECT_EQ(r.status(), TIME_LIMIT_EXCEEDED) << describe(r);
  EXPECT_GE(r.cpu_time_us(), 200000u) << describe(r);
  EXPECT_LT(r.cpu_time_us(), 200000u + 150000u) << describe(r);
  EXPECT_LT(Clock::now() - t0, 5s);
}

TEST_F(ExecutorTest, WallTimeLimit) {
  JobSpec spec = job({in_jail("sleeper")});
  spec.mutable_limits()->set_wall_time_ms(200);
  JobResult r = run(spec);
  EXPECT_EQ(r.status(), WALL_TIME_LIMIT_EXCEEDED) << describe(r);
  EXPECT_GE(r.wall_time_us(), 200000u) << describe(r);
  EXPECT_LT(r.wall_time_us(), 200000u + 100000u) << describe(r);
  EXPECT_LT(r.cpu_time_us(), 100000u) << describe(r);
}

// A job that stopped itself is still ended at its wall limit, and its reported wall time ends
// at the kill, not when the jail's teardown finished.
TEST_F(ExecutorTest, StoppedJobIsKilledAtItsWallLimit) {
  JobSpec spec = job({"/bin/sh", "-c", "kill -STOP $$"});
  spec.mutable_limits()->set_wall_time_ms(200);
  JobResult r = run(spec);
  EXPECT_EQ(r.status(), WALL_TIME_LIMIT_EXCEEDED) << describe(r);
  EXPECT_GE(r.wall_time_us(), 200000u) << describe(r);
  EXPECT_LT(r.wall_time_us(), 200000u + 50000u) << describe(r);
}

TEST_F(ExecutorTest, MemoryLimit) {
  JobSpec spec = job({in_jail("touch_memory"), "128"});
  spec.mutable_limits()->set_memory_bytes(64 * kMiB);
  JobResult r = run(spec);
  EXPECT_EQ(r.status(), MEMORY_LIMIT_EXCEEDED) << describe(r);
  EXPECT_EQ(r.stdout().find("done"), std::string::npos) << describe(r);
}

TEST_F(ExecutorTest, MemoryLimitOnAChildIsStillMle) {
  // The OOM killer takes the child; the parent notices and exits 0. Still an MLE.
  JobSpec spec = job({in_jail("child_oom"), "128"});
  spec.mutable_limits()->set_memory_bytes(64 * kMiB);
  JobResult r = run(spec);
  EXPECT_EQ(r.status(), MEMORY_LIMIT_EXCEEDED) << describe(r);
  EXPECT_NE(r.stdout().find("child killed by signal 9"), std::string::npos) << describe(r);
}

TEST_F(ExecutorTest, OutputLimitOnCapturedStdout) {
  JobSpec spec = job({in_jail("flood_output")});
  spec.mutable_limits()->set_output_bytes(1 * kMiB);
  auto t0 = Clock::now();
  JobResult r = run(spec);
  EXPECT_EQ(r.status(), OUTPUT_LIMIT_EXCEEDED) << describe(r);
  EXPECT_LE(r.stdout().size(), 1 * kMiB);
  EXPECT_TRUE(r.stdout_truncated()) << describe(r);
  EXPECT_LT(Clock::now() - t0, 10s);
}

TEST_F(ExecutorTest, OutputLimitOnStdoutFile) {
  TempDir dir("jailpool-executor-test");
  ASSERT_FALSE(dir.path().empty());
  const std::string out = dir.path() + "/out";
  JobSpec spec = job({in_jail("flood_output")});
  spec.mutable_stdout()->set_path(out);
  spec.mutable_limits()->set_output_bytes(1 * kMiB);
  JobResult r = run(spec);
  EXPECT_EQ(r.status(), OUTPUT_LIMIT_EXCEEDED) << describe(r);
  EXPECT_EQ(r.signal(), SIGXFSZ) << describe(r);
  std::error_code ec;
  EXPECT_EQ(fs::file_size(out, ec), 1 * kMiB) << ec.message();
}

TEST_F(ExecutorTest, SeccompViolation) {
  const bool named = isolate::seccomp_notify_available();
  for (const char* call : {"bpf", "keyctl", "ptrace", "unshare", "mount"}) {
    SCOPED_TRACE(call);
    JobResult r = run(job({in_jail("forbidden_syscall"), call}));
    EXPECT_EQ(r.status(), SECCOMP_VIOLATION) << describe(r);
    EXPECT_EQ(r.stdout(), "") << describe(r);  // the call never returned
    if (named) {
      // The listener named the call and jailpool killed the job.
      EXPECT_EQ(r.seccomp_syscall(), call) << describe(r);
      EXPECT_NE(r.message().find(std::string("forbidden system call ") + call), std::string::npos)
          << describe(r);
    } else {
      EXPECT_EQ(r.signal(), SIGSYS) << describe(r);
    }
  }
}

// seccomp_unnamed_kill: the kernel kills (SIGSYS), nothing is handed to jailpool, no name.
TEST_F(ExecutorTest, SeccompUnnamedKill) {
  Profile fast = profile_;
  fast.set_seccomp_unnamed_kill(true);
  JobResult r = executor_->run_one(job({in_jail("forbidden_syscall"), "ptrace"}), fast);
  EXPECT_EQ(r.status(), SECCOMP_VIOLATION) << describe(r);
  EXPECT_EQ(r.signal(), SIGSYS) << describe(r);
  EXPECT_EQ(r.seccomp_syscall(), "") << describe(r);
  EXPECT_EQ(r.stdout(), "") << describe(r);
}

// A child's denied call ends the whole job, and is named too.
TEST_F(ExecutorTest, SeccompViolationInAChildEndsTheJob) {
  JobSpec spec = job({in_jail("forbidden_syscall"), "child"});
  spec.mutable_limits()->set_wall_time_ms(10000);
  JobResult r = run(spec);
  EXPECT_EQ(r.status(), SECCOMP_VIOLATION) << describe(r);
  EXPECT_EQ(r.stdout(), "") << "the parent went on after its child's violation: " << describe(r);
  if (isolate::seccomp_notify_available()) {
    EXPECT_EQ(r.seccomp_syscall(), "bpf") << describe(r);
  }
}

#if defined(__x86_64__)
// A foreign ABI is killed outright by the filter (SIGSYS); the kernel does not say which call.
TEST_F(ExecutorTest, ForeignAbiIsKilledUnnamed) {
  Profile unfiltered = profile_;
  unfiltered.set_seccomp(SECCOMP_NONE);
  JobResult bare = executor_->run_one(job({in_jail("forbidden_syscall"), "i386"}), unfiltered);
  if (bare.status() != OK) GTEST_SKIP() << "no i386 emulation in this kernel: " << describe(bare);
  JobResult r = run(job({in_jail("forbidden_syscall"), "i386"}));
  EXPECT_EQ(r.status(), SECCOMP_VIOLATION) << describe(r);
  EXPECT_EQ(r.signal(), SIGSYS) << describe(r);
  EXPECT_EQ(r.seccomp_syscall(), "") << describe(r);
  EXPECT_EQ(r.stdout(), "") << describe(r);
}
#endif

// Learning mode lists the calls a run made; an allow-list made of exactly them runs the job,
// and taking one away makes that call the named violation.
TEST_F(ExecutorTest, SeccompLogGivesAWorkingAllowList) {
  if (!isolate::seccomp_notify_available()) GTEST_SKIP() << "no seccomp user notification";
  JobSpec spec = job({in_jail("exit_code"), "0"});
  spec.set_seccomp_log(true);
  JobResult learned = run(spec);
  ASSERT_EQ(learned.status(), OK) << describe(learned);
  std::set<std::string> used(learned.syscalls_used().begin(), learned.syscalls_used().end());
  for (const char* call : {"execve", "exit_group"}) {
    EXPECT_TRUE(used.count(call)) << call << " missing from " << describe(learned);
  }
  EXPECT_FALSE(used.count("bpf"));

  // The learned calls as an allow-list, all of them or all but `left_out`.
  auto learned_list = [&](const std::string& left_out) {
    Profile allow = profile_;
    allow.set_seccomp(SECCOMP_ALLOW_LIST);
    for (const auto& name : used) {
      if (name != left_out) allow.add_seccomp_allow(name);
    }
    return allow;
  };
  // Distinct live objects: the executor caches compiled filters by profile address.
  const Profile all = learned_list("");
  const Profile without_brk = learned_list("brk");
  const Profile without_exit = learned_list("exit_group");
  spec.set_seccomp_log(false);
  JobResult ok = executor_->run_one(spec, all);
  EXPECT_EQ(ok.status(), OK) << describe(ok);

  // A learned call left out is named when the program makes it (brk: glibc's start-up).
  ASSERT_TRUE(used.count("brk")) << describe(learned);
  JobResult denied = executor_->run_one(spec, without_brk);
  EXPECT_EQ(denied.status(), SECCOMP_VIOLATION) << describe(denied);
  EXPECT_EQ(denied.seccomp_syscall(), "brk") << describe(denied);

  // exit_group never notifies (init waits for the exec meanwhile): left out, it kills, unnamed.
  JobResult unnamed = executor_->run_one(spec, without_exit);
  EXPECT_EQ(unnamed.status(), SECCOMP_VIOLATION) << describe(unnamed);
  EXPECT_EQ(unnamed.signal(), SIGSYS) << describe(unnamed);
}

TEST_F(ExecutorTest, AllowListWithoutExecveIsAViolationNotAHang) {
  Profile no_execve = profile_;
  no_execve.set_seccomp(SECCOMP_ALLOW_LIST);
  for (const char* name : {"exit_group", "brk", "write"}) no_execve.add_seccomp_allow(name);
  JobSpec spec = job({in_jail("exit_code"), "0"});
  spec.mutable_limits()->set_wall_time_ms(20000);  // backstop; must not be reached
  JobResult r = executor_->run_one(spec, no_execve);
  EXPECT_EQ(r.status(), SECCOMP_VIOLATION) << describe(r);
}

TEST_F(ExecutorTest, PidsLimitStopsAForkBomb) {
  JobSpec spec = job({in_jail("fork_bomb")});
  spec.mutable_limits()->set_pids(16);
  spec.mutable_limits()->set_wall_time_ms(20000);  // backstop; must not be reached
  auto t0 = Clock::now();
  JobResult r = run(spec);
  EXPECT_LT(Clock::now() - t0, 15s);
  EXPECT_EQ(r.status(), OK) << "fork did not fail with EAGAIN: " << describe(r);
  int forks = std::atoi(r.stdout().c_str());
  EXPECT_GE(forks, 1) << describe(r);
  EXPECT_LT(forks, 16) << describe(r);
}

// ---------------------------------------------------------------------------------------------
// Setup errors.

TEST_F(ExecutorTest, MissingProgramIsSetupError) {
  JobResult r = run(job({"/nonexistent/prog"}));
  EXPECT_EQ(r.status(), SETUP_ERROR) << describe(r);
  EXPECT_NE(r.message().find("/nonexistent/prog"), std::string::npos) << describe(r);
  EXPECT_EQ(r.message().find('\n'), std::string::npos) << describe(r);
}

TEST_F(ExecutorTest, NonExecutableProgramIsSetupError) {
  TempDir dir("jailpool-executor-test");
  ASSERT_FALSE(dir.path().empty());
  ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);
  {
    std::ofstream script(dir.path() + "/script");
    script << "#!/bin/sh\necho should not run\n";
  }
  ASSERT_EQ(::chmod((dir.path() + "/script").c_str(), 0644), 0);
  JobSpec spec = job({"/data/script"});
  Bind* bind = spec.add_bind();
  bind->set_src(dir.path());
  bind->set_dst("/data");
  JobResult r = run(spec);
  EXPECT_EQ(r.status(), SETUP_ERROR) << describe(r);
  EXPECT_NE(r.message().find("/data/script"), std::string::npos) << describe(r);
  EXPECT_EQ(r.stdout(), "");
}

// ---------------------------------------------------------------------------------------------
// Accounting against what the programs measure themselves.

TEST_F(ExecutorTest, CpuTimeMatchesTheProgramsOwnClock) {
  for (const std::vector<std::string>& argv :
       {std::vector<std::string>{in_jail("burn_cpu"), "200"},
        std::vector<std::string>{in_jail("cpu_time_self")}}) {
    SCOPED_TRACE(argv[0]);
    JobResult r = run(job(argv));
    ASSERT_EQ(r.status(), OK) << describe(r);
    double measured = std::strtod(r.stdout().c_str(), nullptr);
    ASSERT_GE(measured, 200000.0) << describe(r);
    EXPECT_GE(static_cast<double>(r.cpu_time_us()), measured * 0.95) << describe(r);
    EXPECT_LE(static_cast<double>(r.cpu_time_us()), measured * 1.05) << describe(r);
  }
}

TEST_F(ExecutorTest, MemoryPeakMatchesWhatTheProgramTouched) {
  JobResult r = run(job({in_jail("touch_memory"), "40"}));
  ASSERT_EQ(r.status(), OK) << describe(r);
  EXPECT_EQ(r.stdout(), "done\n");
  EXPECT_GE(r.memory_peak_bytes(), 40 * kMiB) << describe(r);
  EXPECT_LE(r.memory_peak_bytes(), 48 * kMiB) << describe(r);
  EXPECT_NE(r.memory_peak_source(), MEMORY_SOURCE_UNSPECIFIED) << describe(r);
}

// ---------------------------------------------------------------------------------------------
// Isolation, as a program inside sees it.

TEST_F(ExecutorTest, IsolationAsSeenFromInside) {
  // A listener on the host's loopback: reachable from here, not from the jail.
  UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(listener.get() >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener.get(), 4), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const std::string port = std::to_string(ntohs(addr.sin_port));
  {
    UniqueFd probe(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    ASSERT_EQ(::connect(probe.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0)
        << "the listener is not reachable even from the host";
    UniqueFd accepted(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  }

  JobResult r = run(job({in_jail("isolation_probe"), port}));
  ASSERT_EQ(r.status(), OK) << describe(r);
  auto facts = parse_facts(r.stdout());
  SCOPED_TRACE(r.stdout());
  EXPECT_NE(facts["uid"], "0");
  EXPECT_NE(facts["euid"], "0");
  EXPECT_NE(facts["gid"], "0");
  EXPECT_EQ(facts["uid"], "65534");
  EXPECT_EQ(facts["hostname"], "jailpool");
  EXPECT_EQ(facts["capeff"], "0000000000000000");
  EXPECT_EQ(facts["nonewprivs"], "1");
  ASSERT_FALSE(facts["pids"].empty());
  EXPECT_GE(std::stoi(facts["pids"]), 1);
  EXPECT_LE(std::stoi(facts["pids"]), 3);
  EXPECT_EQ(facts["write_root"], "0");
  EXPECT_EQ(facts["write_usr"], "0");
  EXPECT_EQ(facts["connect"], "0");
  EXPECT_EQ(facts["fds"], "0,1,2");
  EXPECT_EQ(facts["shadow"], "0");
  EXPECT_EQ(facts["shadow_exists"], "0");
}

TEST_F(ExecutorTest, DaemonDiesWithTheJob) {
  auto t0 = Clock::now();
  JobResult r = run(job({in_jail("daemonize")}));
  EXPECT_LT(Clock::now() - t0, 10s) << "the job waited for its daemon";
  EXPECT_EQ(r.status(), OK) << describe(r);
  auto dirs = poll_until_empty(testing_env::job_cgroups_left, 1000ms);
  EXPECT_TRUE(dirs.empty()) << "job cgroups (and so the daemon) left behind:\n" << join(dirs);
  auto procs = poll_until_empty(leftover_processes, 1000ms);
  EXPECT_TRUE(procs.empty()) << "the daemon survived:\n" << join(procs);
}

// The children of this process (of any of its threads), from /proc/self/task/*/children.
std::vector<std::string> own_children() {
  std::vector<std::string> out;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream in(task.path() / "children");
    std::string pid;
    while (in >> pid) out.push_back(pid);
  }
  return out;
}

// A job's result is read as soon as its init has reaped every process of the jail and closed
// the last write ends of the job's pipes, before init's own exit (the namespaces' teardown) is
// over. The job's daemon, which holds stdout, must be dead by then; init itself is reaped
// before run() returns.
TEST_F(ExecutorTest, ResultIsReadWhenInitHasEmptiedTheJail) {
  constexpr int kJobs = 8;
  int issued = 0;
  std::vector<JobResult> results;
  std::vector<std::string> alive_at_result;
  executor_->run(
      [&]() -> std::optional<JobRequest> {
        if (issued == kJobs) return std::nullopt;
        JobSpec spec = job({in_jail("daemonize")});
        spec.set_id(std::to_string(issued++));
        return JobRequest{spec, &profile_};
      },
      [&](JobResult&& r) {
        for (const auto& p : leftover_processes()) alive_at_result.push_back(r.id() + ": " + p);
        results.push_back(std::move(r));
      });
  ASSERT_EQ(results.size(), static_cast<size_t>(kJobs));
  for (const JobResult& r : results) EXPECT_EQ(r.status(), OK) << describe(r);
  EXPECT_TRUE(alive_at_result.empty()) << "job processes alive when the result was read:\n"
                                       << join(alive_at_result);
  EXPECT_EQ(executor_->finished_at_init_done(), static_cast<uint64_t>(kJobs));
  auto children = own_children();
  EXPECT_TRUE(children.empty()) << "unreaped jail inits (or other children): " << join(children);
}

// A jail jailpool kills (here at its wall limit) never says it is done: its result waits for
// its init's reaping, after the kernel killed the whole pid namespace.
TEST_F(ExecutorTest, KilledJailIsFinishedAtItsInitsReaping) {
  JobSpec spec = job({in_jail("sleeper"), "10000"});
  spec.mutable_limits()->set_wall_time_ms(100);
  JobResult r = run(spec);
  EXPECT_EQ(r.status(), WALL_TIME_LIMIT_EXCEEDED) << describe(r);
  EXPECT_EQ(executor_->finished_at_init_done(), 0u);
}

}  // namespace
}  // namespace jailpool::sched
