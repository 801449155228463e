// The jailpool command line, run as a separate process (JAILPOOL_BINARY) with its cgroup parent
// set to the test's (JAILPOOL_CGROUP_PARENT): exit statuses, JSON output, one-line errors for
// bad input (with nothing started), stdin/env plumbing, `check`, and the sample profiles
// (configs/*.textproto) running real toolchains when the host has them.
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "common/unique_fd.h"
#include "isolate/cgroup.h"
#include "test_env.h"

extern char** environ;

namespace jailpool {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct CliOutcome {
  bool exited = false;  // exited normally (else: signaled or timed out)
  int exit_code = -1;
  bool timed_out = false;
  std::string out;
  std::string err;

  std::string describe() const {
    std::string s = "exit " + std::to_string(exit_code) + (timed_out ? " (timed out)" : "");
    s += "\n--- stdout ---\n" + out.substr(0, 2000) + "\n--- stderr ---\n" + err.substr(0, 2000);
    return s;
  }
};

// Runs `jailpool ARGS...` with stdin from `stdin_path`, capturing stdout and stderr, and
// waits for it (SIGKILL to it after `timeout`).
CliOutcome run_cli(const std::vector<std::string>& args, const std::string& stdin_path = "/dev/null",
                   std::chrono::seconds timeout = 120s) {
  CliOutcome result;
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2: " << std::strerror(errno);
    return result;
  }
  UniqueFd out_r(out_pipe[0]), out_w(out_pipe[1]), err_r(err_pipe[0]), err_w(err_pipe[1]);

  std::vector<std::string> argv_s{JAILPOOL_BINARY};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);

  const std::string parent_var = "JAILPOOL_CGROUP_PARENT=" + testing_env::cgroup_parent();
  std::vector<std::string> env_s{parent_var};
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "JAILPOOL_CGROUP_PARENT=", 23) != 0) env_s.emplace_back(*e);
  }
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, stdin_path.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_w.get(), 1);
  posix_spawn_file_actions_adddup2(&actions, err_w.get(), 2);
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  out_w.reset();
  err_w.reset();
  if (rc != 0) {
    ADD_FAILURE() << "posix_spawn " << argv[0] << ": " << std::strerror(rc);
    return result;
  }

  auto deadline = Clock::now() + timeout;
  pollfd fds[2] = {{out_r.get(), POLLIN, 0}, {err_r.get(), POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  while (fds[0].fd >= 0 || fds[1].fd >= 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      result.timed_out = true;
      ::kill(pid, SIGKILL);  // our own child
      break;
    }
    int n = ::poll(fds, 2, static_cast<int>(left));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buf[65536];
      ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
      if (got > 0) {
        sinks[i]->append(buf, static_cast<size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        fds[i].fd = -1;
      }
    }
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) {
    result.exited = true;
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.exit_code = 128 + WTERMSIG(status);
  }
  return result;
}

int count_own_fds() {
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  int n = 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  return n - 1;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += s + "\n";
  return out;
}

std::vector<std::string> poll_job_cgroups_gone() {
  auto deadline = Clock::now() + 1000ms;
  auto left = testing_env::job_cgroups_left();
  while (!left.empty() && Clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
    left = testing_env::job_cgroups_left();
  }
  return left;
}

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

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/jailpool-cli-test-XXXXXX";
    if (::mkdtemp(tmpl) != nullptr) path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string write(const std::string& name, const std::string& content) const {
    std::string p = path_ + "/" + name;
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }

 private:
  std::string path_;
};

std::string progs_bind() { return std::string(JAILPOOL_TEST_PROGS) + ":/progs"; }

std::string config(const std::string& name) { return std::string(JAILPOOL_SOURCE_DIR) + "/configs/" + name; }

bool host_has(const std::string& path) { return ::access(path.c_str(), X_OK) == 0; }

size_t count_lines(const std::string& s) { return static_cast<size_t>(std::count(s.begin(), s.end(), '\n')); }

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override { fds_before_ = count_own_fds(); }
  void TearDown() override {
    auto dirs = poll_job_cgroups_gone();
    EXPECT_TRUE(dirs.empty()) << "job cgroups left behind:\n" << join(dirs);
    EXPECT_EQ(count_own_fds(), fds_before_) << "fds leaked by the test helpers";
  }

  // Runs jailpool with arguments it must reject: exit 125, exactly one line on stderr naming
  // every one of `mentions`, nothing on stdout, and no job cgroup ever created.
  void expect_rejected(const std::vector<std::string>& args, const std::vector<std::string>& mentions) {
    SCOPED_TRACE(join(args));
    JobCgroupWatch watch;
    CliOutcome r = run_cli(args);
    EXPECT_EQ(r.exit_code, 125) << r.describe();
    EXPECT_EQ(count_lines(r.err), 1u) << r.describe();
    EXPECT_TRUE(!r.err.empty() && r.err.back() == '\n') << r.describe();
    for (const auto& m : mentions) EXPECT_NE(r.err.find(m), std::string::npos) << "no mention of " << m << "\n" << r.describe();
    EXPECT_EQ(r.out, "") << r.describe();
    auto created = watch.created();
    EXPECT_TRUE(created.empty()) << "a job was started for bad input; created below the parent:\n" << join(created);
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
  CliOutcome r = run_cli({"run", "--cpu-time", "100ms", "--bind", progs_bind(), "--", "/progs/burn_cpu", "forever"});
  EXPECT_EQ(r.exit_code, 124) << r.describe();
  EXPECT_NE(r.err.find("TIME_LIMIT_EXCEEDED"), std::string::npos) << r.describe();
}

TEST_F(CliTest, StdinFromFile) {
  TempDir dir;
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

// ---------------------------------------------------------------------------------------------
// Bad input: 125, one line naming the culprit, nothing started.

TEST_F(CliTest, BadMemorySize) { expect_rejected({"run", "--memory", "12Q", "--", "/bin/true"}, {"--memory"}); }

TEST_F(CliTest, BadCpuTime) { expect_rejected({"run", "--cpu-time", "abc", "--", "/bin/true"}, {"--cpu-time"}); }

TEST_F(CliTest, ProfileWithAnUnknownField) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  std::string profile = dir.write("bad.textproto", "name: \"bad\"\nno_such_field: 1\n");
  expect_rejected({"run", "--profile", profile, "--", "/bin/true"}, {profile + ":2", "no_such_field"});
}

TEST_F(CliTest, BindOfAMissingPath) {
  expect_rejected({"run", "--bind", "/nonexistent:/x", "--", "/bin/true"}, {"/nonexistent"});
}

TEST_F(CliTest, MissingProgram) { expect_rejected({"run", "--", "/nonexistent/prog"}, {"/nonexistent/prog"}); }

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
  CliOutcome r = run_cli({"run", "--profile", profile, "--", "/bin/sh", "-c", script}, "/dev/null", 300s);
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "hello from java\n") << r.describe();
}

TEST_F(CliProfileTest, CiStepBuildsInABoundCheckout) {
  std::string profile = profile_or_skip("ci.textproto");
  if (profile.empty()) GTEST_SKIP() << "configs/ci.textproto is absent";
  if (!host_has("/usr/bin/make")) GTEST_SKIP() << "make is not installed on this host";
  TempDir repo;
  ASSERT_FALSE(repo.path().empty());
  ASSERT_EQ(::chmod(repo.path().c_str(), 0777), 0);  // the job's uid writes into the checkout
  repo.write("Makefile", "all:\n\techo built > out.txt\n\tcat out.txt\n");
  CliOutcome r = run_cli({"run", "--profile", profile, "--bind", repo.path() + ":/workspace/repo:rw", "--", "make",
                          "-s", "-C", "/workspace/repo"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("built\n"), std::string::npos) << r.describe();
  std::ifstream out(repo.path() + "/out.txt");
  std::string line;
  std::getline(out, line);
  EXPECT_EQ(line, "built") << "the build's output did not reach the host checkout";
}

}  // namespace
}  // namespace jailpool
