// Helpers shared by the test files: reading files, temporary directories, the jobs' marker and
// the scan for processes they left, running the jailpool CLI as a child process, and
// formatting results for failure messages.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "jailpool.pb.h"
#include "test_env.h"

namespace jailpool::testing_env {

constexpr uint64_t kMiB = 1024 * 1024;

// Where the jobs see the test programs (tests/progs), bound there by the tests.
constexpr const char* kProgsInJail = "/progs";

// The path of a test program inside the jail: /progs/NAME.
std::string in_jail(const std::string& name);

// Every job carries this in its environment, so the leftover scan finds our processes only
// (other test processes may run the same programs at the same time).
std::string job_marker();

// The whole content of a file ("" when it cannot be read).
std::string read_file(const std::string& path);

// One line each; after `max` lines, a count of the rest.
std::string join(const std::vector<std::string>& v,
                 size_t max = std::numeric_limits<size_t>::max());

// A job running argv, with job_marker() in its env (leftover_processes finds its processes).
JobSpec make_job(const std::string& id, std::vector<std::string> argv);
// The spec as batch's input takes it: one line of JSON (proto field names), with and without
// its newline.
std::string spec_json(const JobSpec& spec);
std::string to_json_line(const JobSpec& spec);

// "key=value" lines.
std::map<std::string, std::string> parse_facts(const std::string& text);

// The result for failure messages, with long outputs cut.
std::string describe(const JobResult& r);

// The number of fds this process has open.
int count_own_fds();

// ---------------------------------------------------------------------------------------------
// Processes.

// The pids in /proc other than this process's.
std::vector<std::string> proc_pids();

// Processes (other than this one) that run one of the test programs for this test process:
// the command line names a program of the progs directory (inside the jail or on the host)
// and the environment carries job_marker().
std::vector<std::string> leftover_processes();

// Processes whose command line contains `text`.
std::vector<std::string> processes_mentioning(const std::string& text);

// Calls f() until it returns an empty container or `budget` has passed; returns the last.
template <typename F>
auto poll_until_empty(F&& f, std::chrono::milliseconds budget) {
  auto deadline = std::chrono::steady_clock::now() + budget;
  auto left = f();
  while (!left.empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    left = f();
  }
  return left;
}

// A test's end: no job cgroup of this test run and no process of its jobs is left once `wait`
// has passed (non-fatal failures naming what is left).
void expect_nothing_left(std::chrono::milliseconds wait);

// ---------------------------------------------------------------------------------------------
// A temporary host directory (/tmp/<prefix>-XXXXXX), removed with its contents; path() is ""
// when it could not be made.

class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "jailpool-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  // Writes `content` into file(name); returns that path.
  std::string write(const std::string& name, const std::string& content) const;

 private:
  std::string path_;
};

// ---------------------------------------------------------------------------------------------
// Running the jailpool CLI (JAILPOOL_BINARY) with the test's cgroup parent.

struct CliOutcome {
  bool exited = false;  // exited normally (else: signaled or timed out)
  int exit_code = -1;   // 128 + signal when killed
  bool timed_out = false;
  double seconds = 0;
  std::string out;
  std::string err;

  std::string describe() const;
};

// Starts `jailpool ARGS...` with stdin from `stdin_path` and stdout/stderr into the given fds,
// JAILPOOL_CGROUP_PARENT set to the test's parent. Returns the pid, or -1.
pid_t spawn_cli(const std::vector<std::string>& args, int out_fd, int err_fd,
                const std::string& stdin_path = "/dev/null");

// Runs `jailpool ARGS...` to the end (SIGKILL to it after `timeout`), capturing its output.
CliOutcome run_cli(const std::vector<std::string>& args,
                   const std::string& stdin_path = "/dev/null",
                   std::chrono::seconds timeout = std::chrono::seconds(120));

}  // namespace jailpool::testing_env
