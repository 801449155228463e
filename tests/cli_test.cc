// The jailpool command line, run as a separate process (JAILPOOL_BINARY) with its cgroup parent
// set to the test's (JAILPOOL_CGROUP_PARENT): exit statuses, JSON output, one-line errors for
// bad input (with nothing started), stdin/env plumbing, `check`, and the sample profiles
// (configs/*.textproto) running real toolchains when the host has them.
#include <signal.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/unique_fd.h"
#include "isolate/cgroup.h"
#include "test_support.h"

namespace jailpool {
namespace {

using namespace std::chrono_literals;

using testing_env::CliOutcome;
using testing_env::count_own_fds;
using testing_env::join;
using testing_env::poll_until_empty;
using testing_env::run_cli;
using testing_env::TempDir;

// Watches the test parent in every hierarchy for job cgroups being created: the parent is
// made to exist (as jailpool itself makes it) and inotify reports every mkdir in it.
class JobCgroupWatch {
 public:
  JobCgroupWatch() {
    cgroups_ = isolate::CgroupSystem::detect(testing_env::cgroup_parent());
    fd_.reset(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
    if (!fd_) {
      ADD_FAILURE() << "inotify_init1: " << std::strerror(errno);
      return;
    }
    for (const std::string& dir : cgroups_->parent_dirs()) {
      if (::inotify_add_watch(fd_.get(), dir.c_str(), IN_CREATE) < 0) {
        ADD_FAILURE() << "inotify_add_watch " << dir << ": " << std::strerror(errno);
      }
    }
  }
  ~JobCgroupWatch() {
    try {
      cgroups_->remove_parent_if_empty();
    } catch (const Error&) {
      // The CLI may have removed the parent already.
    }
  }

  // The directories created since the watch started.
  std::vector<std::string> created() {
    std::vector<std::string> names;
    alignas(inotify_event) char buf[8192];
    for (;;) {
      ssize_t n = ::read(fd_.get(), buf, sizeof buf);
      if (n <= 0) break;
      for (ssize_t off = 0; off < n;) {
        auto* ev = reinterpret_cast<inotify_event*>(buf + off);
        if ((ev->mask & IN_Q_OVERFLOW) != 0) names.emplace_back("(inotify queue overflow)");
        if ((ev->mask & IN_CREATE) != 0 && ev->len > 0) names.emplace_back(ev->name);
        off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
      }
    }
    return names;
  }

 private:
  std::unique_ptr<isolate::CgroupSystem> cgroups_;
  UniqueFd fd_;
};

std::string progs_bind() {
  return std::string(JAILPOOL_TEST_PROGS) + ":/progs";
}

std::string config(const std::string& name) {
  return std::string(JAILPOOL_SOURCE_DIR) + "/configs/" + name;
}

bool host_has(const std::string& path) {
  return ::access(path.c_str(), X_OK) == 0;
}

size_t count_lines(const std::string& s) {
  return static_cast<size_t>(std::count(s.begin(), s.end(), '\n'));
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override { fds_before_ = count_own_fds(); }
  void TearDown() override {
    auto dirs = poll_until_empty(testing_env::job_cgroups_left, 1000ms);
    EXPECT_TRUE(dirs.empty()) << "job cgroups left behind:\n" << join(dirs);
    EXPECT_EQ(count_own_fds(), fds_before_) << "fds leaked by the test helpers";
  }

  // Runs jailpool with arguments it must reject: exit 125, exactly one line on stderr naming
  // every one of `mentions`, nothing on stdout, and no job cgroup ever created.
  void expect_rejected(const std::vector<std::string>& args,
                       const std::vector<std::string>& mentions) {
    SCOPED_TRACE(join(args));
    JobCgroupWatch watch;
    CliOutcome r = run_cli(args);
    EXPECT_EQ(r.exit_code, 125) << r.describe();
    EXPECT_EQ(count_lines(r.err), 1u) << r.describe();
    EXPECT_TRUE(!r.err.empty() && r.err.back() == '\n') << r.describe();
    for (const auto& m : mentions)
      EXPECT_NE(r.err.find(m), std::string::npos) << "no mention of " << m << "\n" << r.describe();
    EXPECT_EQ(r.out, "") << r.describe();
    auto created = watch.created();
    EXPECT_TRUE(created.empty()) << "a job was started for bad input; created below the parent:\n"
                                 << join(created);
  }

  int fds_before_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Running and exit statuses.

TEST_F(CliTest, EchoPassesOutputThrough) {
  CliOutcome r = run_cli({"run", "--", "/bin/echo", "hi"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "hi\n") << r.describe();
}

TEST_F(CliTest, ExitCodeIsTheJobs) {
  CliOutcome r = run_cli({"run", "--", "/bin/sh", "-c", "exit 7"});
  EXPECT_EQ(r.exit_code, 7) << r.describe();
}

TEST_F(CliTest, JsonIsOneLine) {
  CliOutcome r = run_cli({"run", "--json", "--", "/bin/echo", "hi"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(count_lines(r.out), 1u) << r.describe();
  ASSERT_FALSE(r.out.empty());
  EXPECT_EQ(r.out.back(), '\n');
  EXPECT_EQ(r.out.front(), '{') << r.describe();
  EXPECT_NE(r.out.find(R"("status":"OK")"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find(R"("stdout":"hi\n")"), std::string::npos) << r.describe();
}

TEST_F(CliTest, SignalIs128PlusSignal) {
  CliOutcome r = run_cli({"run", "--", "/bin/sh", "-c", "kill -SEGV $$"});
  EXPECT_EQ(r.exit_code, 128 + SIGSEGV) << r.describe();
}

TEST_F(CliTest, CpuTimeLimitIs124) {
  CliOutcome r = run_cli(
      {"run", "--cpu-time", "100ms", "--bind", progs_bind(), "--", "/progs/burn_cpu", "forever"});
  EXPECT_EQ(r.exit_code, 124) << r.describe();
  EXPECT_NE(r.err.find("TIME_LIMIT_EXCEEDED"), std::string::npos) << r.describe();
}

TEST_F(CliTest, StdinFromFile) {
  TempDir dir("jailpool-cli-test");
  ASSERT_FALSE(dir.path().empty());
  const std::string content = "line one\nline two\n";
  std::string input = dir.write("input.txt", content);
  CliOutcome r = run_cli({"run", "--stdin", input, "--", "/bin/cat"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, content) << r.describe();
}

TEST_F(CliTest, EnvReachesTheJob) {
  CliOutcome r = run_cli({"run", "--env", "FOO=bar", "--", "/bin/sh", "-c", "echo $FOO"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "bar\n") << r.describe();
}

// jailpool ignores SIGPIPE itself; the job must not inherit that (exec keeps SIG_IGN), or a
// writer into a closed pipe would see EPIPE instead of dying as it would bare.
TEST_F(CliTest, JobDoesNotInheritIgnoredSignals) {
  CliOutcome r = run_cli({"run", "--", "/bin/sh", "-c", "grep SigIgn /proc/self/status"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "SigIgn:\t0000000000000000\n") << r.describe();
}

TEST_F(CliTest, CheckReportsTheCgroupMode) {
  CliOutcome r = run_cli({"check"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("cgroup mode"), std::string::npos) << r.describe();
}

// `check` says which CPU-limit method runs (kick, task-clock or usage) and why.
TEST_F(CliTest, CheckNamesTheCpuLimitMethod) {
  CliOutcome r = run_cli({"check"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  size_t at = r.out.find("cpu-limit method");
  ASSERT_NE(at, std::string::npos) << r.describe();
  std::string line = r.out.substr(at, r.out.find('\n', at) - at);
  EXPECT_TRUE(line.find(" kick ") != std::string::npos ||
              line.find(" task-clock ") != std::string::npos ||
              line.find(" usage ") != std::string::npos)
      << line;
}

// ---------------------------------------------------------------------------------------------
// Bad input: 125, one line naming the culprit, nothing started.

TEST_F(CliTest, BadMemorySize) {
  expect_rejected({"run", "--memory", "12Q", "--", "/bin/true"}, {"--memory"});
}

TEST_F(CliTest, BadCpuTime) {
  expect_rejected({"run", "--cpu-time", "abc", "--", "/bin/true"}, {"--cpu-time"});
}

TEST_F(CliTest, ProfileWithAnUnknownField) {
  TempDir dir("jailpool-cli-test");
  ASSERT_FALSE(dir.path().empty());
  std::string profile = dir.write("bad.textproto", "name: \"bad\"\nno_such_field: 1\n");
  expect_rejected({"run", "--profile", profile, "--", "/bin/true"},
                  {profile + ":2", "no_such_field"});
}

TEST_F(CliTest, BindOfAMissingPath) {
  expect_rejected({"run", "--bind", "/nonexistent:/x", "--", "/bin/true"}, {"/nonexistent"});
}

TEST_F(CliTest, MissingProgram) {
  expect_rejected({"run", "--", "/nonexistent/prog"}, {"/nonexistent/prog"});
}

// ---------------------------------------------------------------------------------------------
// The sample profiles with real toolchains.

class CliProfileTest : public CliTest {
 protected:
  // The profile's path, or "" (and the test skipped) when the file is not there.
  std::string profile_or_skip(const std::string& name) {
    std::string path = config(name);
    if (::access(path.c_str(), R_OK) != 0) return "";
    return path;
  }
};

TEST_F(CliProfileTest, DefaultProfileFile) {
  std::string profile = profile_or_skip("default.textproto");
  if (profile.empty()) GTEST_SKIP() << "configs/default.textproto is absent";
  CliOutcome r = run_cli({"run", "--profile", profile, "--", "/bin/echo", "hi"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "hi\n") << r.describe();
}

TEST_F(CliProfileTest, CppCompilesAndRuns) {
  std::string profile = profile_or_skip("cpp.textproto");
  if (profile.empty()) GTEST_SKIP() << "configs/cpp.textproto is absent";
  if (!host_has("/usr/bin/g++")) GTEST_SKIP() << "g++ is not installed on this host";
  const std::string script =
      "echo '#include <iostream>' > hello.cc && "
      "echo 'int main() { std::cout << \"hello from g++\" << std::endl; }' >> hello.cc && "
      "g++ -O1 -o hello hello.cc && ./hello";
  CliOutcome r = run_cli({"run", "--profile", profile, "--", "/bin/sh", "-c", script});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "hello from g++\n") << r.describe();
}

TEST_F(CliProfileTest, Python3Runs) {
  std::string profile = profile_or_skip("python3.textproto");
  if (profile.empty()) GTEST_SKIP() << "configs/python3.textproto is absent";
  if (!host_has("/usr/bin/python3") && !host_has("/usr/local/bin/python3")) {
    GTEST_SKIP() << "python3 is not installed under /usr on this host";
  }
  CliOutcome r = run_cli({"run", "--profile", profile, "--", "python3", "-c", "print(2+2)"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "4\n") << r.describe();
}

TEST_F(CliProfileTest, JavaCompilesAndRuns) {
  std::string profile = profile_or_skip("java.textproto");
  if (profile.empty()) GTEST_SKIP() << "configs/java.textproto is absent";
  if (!host_has("/usr/bin/javac") || !host_has("/usr/bin/java")) {
    GTEST_SKIP() << "javac/java are not installed on this host";
  }
  // The profile's own limits (memory, pids) are what the JVM needs.
  const std::string script =
      "echo 'public class Hello { public static void main(String[] a) { "
      "System.out.println(\"hello from java\"); } }' > Hello.java && "
      "javac Hello.java && java Hello";
  CliOutcome r =
      run_cli({"run", "--profile", profile, "--", "/bin/sh", "-c", script}, "/dev/null", 300s);
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "hello from java\n") << r.describe();
}

TEST_F(CliProfileTest, CiStepBuildsInABoundCheckout) {
  std::string profile = profile_or_skip("ci.textproto");
  if (profile.empty()) GTEST_SKIP() << "configs/ci.textproto is absent";
  if (!host_has("/usr/bin/make")) GTEST_SKIP() << "make is not installed on this host";
  TempDir repo("jailpool-cli-test");
  ASSERT_FALSE(repo.path().empty());
  ASSERT_EQ(::chmod(repo.path().c_str(), 0777), 0);  // the job's uid writes into the checkout
  repo.write("Makefile", "all:\n\techo built > out.txt\n\tcat out.txt\n");
  CliOutcome r =
      run_cli({"run", "--profile", profile, "--bind", repo.path() + ":/workspace/repo:rw", "--",
               "make", "-s", "-C", "/workspace/repo"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("built\n"), std::string::npos) << r.describe();
  std::ifstream out(repo.path() + "/out.txt");
  std::string line;
  std::getline(out, line);
  EXPECT_EQ(line, "built") << "the build's output did not reach the host checkout";
}

}  // namespace
}  // namespace jailpool
