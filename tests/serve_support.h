// A real `jailpool serve` process for the serve tests: started in a temporary directory it
// owns (unix socket, state directory, profiles), with a gRPC client, stopped at the end.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "service.grpc.pb.h"
#include "test_support.h"

namespace jailpool::testing_env {

// The default profile plus the test programs at /progs.
inline std::string test_profile_text() {
  std::string profile = read_file(std::string(JAILPOOL_SOURCE_DIR) + "/configs/default.textproto");
  profile += "\nbind { src: \"" + std::string(JAILPOOL_TEST_PROGS) + "\" dst: \"" + kProgsInJail +
             "\" }\n";
  return profile;
}

class ServeProcess {
 public:
  // Starts `jailpool serve --listen unix:DIR/sock --state-dir DIR/state --profile-dir
  // DIR/profiles EXTRA...` (unless `extra` has its own --listen) and waits for it to listen.
  explicit ServeProcess(const TempDir& dir, std::vector<std::string> extra = {},
                        bool wait_ready = true)
      : dir_(dir) {
    ::mkdir(dir.file("profiles").c_str(), 0755);
    dir.write("profiles/default.textproto", test_profile_text());
    socket_ = dir.file("sock");
    std::vector<std::string> args{"serve", "--state-dir", dir.file("state"), "--profile-dir",
                                  dir.file("profiles")};
    bool own_listen = false;
    for (const auto& a : extra) {
      own_listen |= a == "--listen";
      metrics_wanted_ |= a == "--metrics";
    }
    if (!own_listen) args.insert(args.end(), {"--listen", "unix:" + socket_});
    args.insert(args.end(), extra.begin(), extra.end());
    out_path_ = dir.file("serve.out." + std::to_string(++starts_));
    err_path_ = dir.file("serve.err." + std::to_string(starts_));
    UniqueFdHolder out(::open(out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    UniqueFdHolder err(::open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    pid_ = spawn_cli(args, out.fd, err.fd);
    if (wait_ready) ready_ = wait_listening();
  }
  ~ServeProcess() { stop(); }

  bool ready() const { return ready_; }
  pid_t pid() const { return pid_; }
  const std::string& socket() const { return socket_; }
  std::string out() const { return read_file(out_path_); }
  std::string err() const { return read_file(err_path_); }
  int metrics_port() const { return metrics_port_; }
  int tcp_port() const { return tcp_port_; }

  // Waits until the server printed its address (false: it exited, or 60 s passed).
  bool wait_listening() {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      std::string text = out();
      // (No std::regex: GCC 12 under ASan warns maybe-uninitialized inside it.)
      if (size_t at = text.find("listening on "); at != std::string::npos) {
        size_t end = text.find('\n', at);
        if (end != std::string::npos && text.find("unix:") == std::string::npos) {
          size_t colon = text.rfind(':', end);
          if (colon != std::string::npos && colon > at) {
            tcp_port_ = std::atoi(text.substr(colon + 1, end - colon - 1).c_str());
          }
        }
        bool want_metrics = metrics_wanted_;
        if (size_t m = text.find("metrics on port "); m != std::string::npos) {
          metrics_port_ = std::atoi(text.c_str() + m + std::strlen("metrics on port "));
        }
        if (!want_metrics || metrics_port_ > 0) return true;
      }
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        exit_status_ = status;
        pid_ = -1;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  // SIGTERM, then waits for the exit (SIGKILL after `timeout`); the wait status.
  int stop(int sig = SIGTERM, std::chrono::seconds timeout = std::chrono::seconds(60)) {
    if (pid_ <= 0) return exit_status_;
    ::kill(pid_, sig);
    auto deadline = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    for (;;) {
      pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) break;
      if (std::chrono::steady_clock::now() > deadline) {
        ADD_FAILURE() << "jailpool serve did not exit after signal " << sig;
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    pid_ = -1;
    exit_status_ = status;
    return status;
  }

  std::shared_ptr<grpc::Channel> channel() const {
    return grpc::CreateChannel("unix:" + socket_, grpc::InsecureChannelCredentials());
  }
  std::unique_ptr<Executor::Stub> stub() const { return Executor::NewStub(channel()); }

 private:
  struct UniqueFdHolder {
    explicit UniqueFdHolder(int f) : fd(f) {}
    ~UniqueFdHolder() {
      if (fd >= 0) ::close(fd);
    }
    int fd;
  };
  const TempDir& dir_;
  std::string socket_, out_path_, err_path_;
  pid_t pid_ = -1;
  int exit_status_ = -1;
  bool ready_ = false;
  bool metrics_wanted_ = false;
  int metrics_port_ = 0, tcp_port_ = 0;
  static inline int starts_ = 0;
};

// A job running test program NAME with ARGS, carrying the test's marker.
inline JobSpec prog_job(const std::string& id, const std::string& name,
                        std::vector<std::string> args = {}) {
  JobSpec job;
  job.set_id(id);
  job.add_argv(in_jail(name));
  for (auto& a : args) job.add_argv(a);
  job.add_env(job_marker());
  job.mutable_limits()->set_wall_time_ms(30000);
  return job;
}

inline ExecRequest one_job_request(const std::string& id, const JobSpec& job) {
  ExecRequest r;
  r.set_id(id);
  *r.add_jobs() = job;
  return r;
}

// GET http://127.0.0.1:PORT/metrics, the body ("" on failure).
inline std::string http_get_metrics(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string reply;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    const char request[] = "GET /metrics HTTP/1.0\r\n\r\n";
    (void)::write(fd, request, sizeof request - 1);
    char buf[65536];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) reply.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  size_t body = reply.find("\r\n\r\n");
  return body == std::string::npos ? "" : reply.substr(body + 4);
}

// The sum of the samples whose line starts with `prefix` (e.g. "jailpool_jobs_total{").
inline double metric_sum(const std::string& text, const std::string& prefix) {
  double sum = 0;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) != 0) continue;
    sum += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return sum;
}

}  // namespace jailpool::testing_env
