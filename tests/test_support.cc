#include "test_support.h"

#include <dirent.h>
#include <fcntl.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/unique_fd.h"

extern char** environ;

namespace jailpool::testing_env {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string printable_cmdline(std::string cmdline) {
  for (char& c : cmdline) {
    if (c == '\0') c = ' ';
  }
  return cmdline;
}

// This process's environment with JAILPOOL_CGROUP_PARENT set to the test's parent.
std::vector<std::string> cli_env() {
  std::vector<std::string> env{"JAILPOOL_CGROUP_PARENT=" + cgroup_parent()};
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "JAILPOOL_CGROUP_PARENT=", 23) != 0) env.emplace_back(*e);
  }
  return env;
}

}  // namespace

std::string in_jail(const std::string& name) {
  return std::string(kProgsInJail) + "/" + name;
}

std::string job_marker() {
  return "JAILPOOL_TEST_JOB=" + cgroup_parent();
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string join(const std::vector<std::string>& v, size_t max) {
  std::string out;
  for (size_t i = 0; i < v.size() && i < max; ++i) out += v[i] + "\n";
  if (v.size() > max) out += "... (" + std::to_string(v.size() - max) + " more)\n";
  return out;
}

JobSpec make_job(const std::string& id, std::vector<std::string> argv) {
  JobSpec spec;
  spec.set_id(id);
  for (const auto& a : argv) spec.add_argv(a);
  spec.add_env(job_marker());
  return spec;
}

std::string spec_json(const JobSpec& spec) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  auto status = google::protobuf::util::MessageToJsonString(spec, &json, options);
  EXPECT_TRUE(status.ok()) << status.ToString();
  return json;
}

std::string to_json_line(const JobSpec& spec) {
  return spec_json(spec) + "\n";
}

std::map<std::string, std::string> parse_facts(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    auto eq = line.find('=');
    if (eq != std::string::npos) out[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return out;
}

std::string describe(const JobResult& r) {
  JobResult copy = r;
  if (copy.stdout().size() > 300) copy.set_stdout(copy.stdout().substr(0, 300) + "...");
  if (copy.stderr().size() > 300) copy.set_stderr(copy.stderr().substr(0, 300) + "...");
  return copy.ShortDebugString();
}

int count_own_fds() {
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  int n = 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  return n - 1;  // the directory's own fd
}

std::vector<std::string> proc_pids() {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    const std::string pid = entry.path().filename().string();
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    if (std::stoi(pid) == ::getpid()) continue;
    out.push_back(pid);
  }
  return out;
}

void expect_nothing_left(std::chrono::milliseconds wait) {
  auto dirs = poll_until_empty(testing_env::job_cgroups_left, wait);
  EXPECT_TRUE(dirs.empty()) << "job cgroups left behind:\n" << join(dirs);
  auto procs = poll_until_empty(leftover_processes, wait);
  EXPECT_TRUE(procs.empty()) << "processes left behind:\n" << join(procs);
}

std::vector<std::string> leftover_processes() {
  std::vector<std::string> out;
  std::string needle = job_marker();
  needle.push_back('\0');
  const std::string host_progs = JAILPOOL_TEST_PROGS;
  for (const std::string& pid : proc_pids()) {
    std::string cmdline = read_file("/proc/" + pid + "/cmdline");
    bool runs_prog = cmdline.rfind(std::string(kProgsInJail) + "/", 0) == 0 ||
                     cmdline.find(host_progs) != std::string::npos;
    if (!runs_prog) continue;
    std::string env = std::string(1, '\0') + read_file("/proc/" + pid + "/environ");
    if (env.find(std::string(1, '\0') + needle) == std::string::npos) continue;
    out.push_back(pid + ": " + printable_cmdline(cmdline));
  }
  return out;
}

std::vector<std::string> processes_mentioning(const std::string& text) {
  std::vector<std::string> out;
  for (const std::string& pid : proc_pids()) {
    std::string cmdline = read_file("/proc/" + pid + "/cmdline");
    if (cmdline.find(text) == std::string::npos) continue;
    out.push_back(pid + ": " + printable_cmdline(cmdline));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

TempDir::TempDir(const std::string& prefix) {
  std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
  if (::mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  if (!path_.empty()) fs::remove_all(path_, ec);
}

std::string TempDir::write(const std::string& name, const std::string& content) const {
  std::string p = file(name);
  std::ofstream(p, std::ios::binary) << content;
  return p;
}

// ---------------------------------------------------------------------------------------------

std::string CliOutcome::describe() const {
  std::string s = "exit " + std::to_string(exit_code) + (timed_out ? " (timed out)" : "");
  s += "\n--- stdout ---\n" + out.substr(0, 2000) + "\n--- stderr ---\n" + err.substr(0, 4000);
  return s;
}

pid_t spawn_cli(const std::vector<std::string>& args, int out_fd, int err_fd,
                const std::string& stdin_path) {
  std::vector<std::string> argv_s{JAILPOOL_BINARY};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s = cli_env();
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, stdin_path.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_fd, 1);
  posix_spawn_file_actions_adddup2(&actions, err_fd, 2);
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    ADD_FAILURE() << "posix_spawn " << argv[0] << ": " << std::strerror(rc);
    return -1;
  }
  return pid;
}

CliOutcome run_cli(const std::vector<std::string>& args, const std::string& stdin_path,
                   std::chrono::seconds timeout) {
  CliOutcome result;
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2: " << std::strerror(errno);
    return result;
  }
  UniqueFd out_r(out_pipe[0]), out_w(out_pipe[1]), err_r(err_pipe[0]), err_w(err_pipe[1]);
  auto t0 = Clock::now();
  pid_t pid = spawn_cli(args, out_w.get(), err_w.get(), stdin_path);
  out_w.reset();
  err_w.reset();
  if (pid < 0) return result;

  auto deadline = t0 + timeout;
  pollfd fds[2] = {{out_r.get(), POLLIN, 0}, {err_r.get(), POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  while (fds[0].fd >= 0 || fds[1].fd >= 0) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
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
  result.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  if (WIFEXITED(status)) {
    result.exited = true;
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.exit_code = 128 + WTERMSIG(status);
  }
  return result;
}

}  // namespace jailpool::testing_env
