// `jailpool serve`: access (token on TCP, the unix socket's mode) and life (SIGTERM drain,
// kill -9 and restart, systemd's readiness protocol), through a real server.
#include <gtest/gtest.h>
#include <sys/un.h>

#include <future>

#include "serve_support.h"

namespace jailpool {
namespace {

using namespace std::chrono_literals;
using namespace testing_env;

class ServeLifeTest : public ::testing::Test {
 protected:
  void TearDown() override { expect_nothing_left(2000ms); }
  std::string token_file(const std::string& token, mode_t mode = 0600) {
    std::string path = dir_.write("token", token + "\n");
    ::chmod(path.c_str(), mode);
    return path;
  }
  TempDir dir_{"jailpool-serve-life-test"};
};

grpc::StatusCode check_code(Executor::Stub& stub, const std::string& token) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + 30s);
  if (!token.empty()) {
    context.AddMetadata("authorization", "Bearer " + token);
  }
  CheckResponse response;
  return stub.Check(&context, CheckRequest(), &response).error_code();
}

TEST_F(ServeLifeTest, TcpNeedsTheBearerToken) {
  const std::string token = "s3cret-token-of-32-characters-00";
  ServeProcess server(dir_, {"--listen", "127.0.0.1:0", "--token-file", token_file(token)});
  ASSERT_TRUE(server.ready()) << server.err();
  ASSERT_GT(server.tcp_port(), 0) << server.out();
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server.tcp_port()),
                                     grpc::InsecureChannelCredentials());
  auto stub = Executor::NewStub(channel);
  EXPECT_EQ(check_code(*stub, ""), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(check_code(*stub, "s3cret-token-of-32-characters-01"),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(check_code(*stub, token), grpc::StatusCode::OK);
  // Exec and ExecStream too, and nothing runs.
  {
    grpc::ClientContext context;
    ExecResponse response;
    EXPECT_EQ(stub->Exec(&context, one_job_request("r", prog_job("j", "exit_code")), &response)
                  .error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  {
    grpc::ClientContext context;
    auto stream = stub->ExecStream(&context);
    stream->Write(one_job_request("r", prog_job("j", "exit_code")));
    stream->WritesDone();
    ExecResponse response;
    EXPECT_FALSE(stream->Read(&response));
    EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  {
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer " + token);
    ExecResponse response;
    grpc::Status status =
        stub->Exec(&context, one_job_request("r", prog_job("j", "exit_code", {"4"})), &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.results(0).exit_code(), 4);
  }
}

TEST_F(ServeLifeTest, UnsafeAccessIsRefusedAtStart) {
  struct Case {
    std::vector<std::string> args;
    std::string field;
  };
  std::string loose_token = token_file("s3cret-token-of-32-characters-00", 0644);
  std::vector<Case> cases = {
      {{"--listen", "127.0.0.1:0"}, "--listen"},     // TCP without a token
      {{"--socket-mode", "0666"}, "--socket-mode"},  // every local user
      {{"--socket-mode", "0602"}, "--socket-mode"},
      {{"--listen", "127.0.0.1:0", "--token-file", loose_token}, "--token-file"},
  };
  for (const Case& c : cases) {
    ServeProcess server(dir_, c.args);
    EXPECT_FALSE(server.ready()) << join(c.args);
    int status = server.stop();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 125) << join(c.args);
    EXPECT_NE(server.err().find("jailpool: " + c.field + ":"), std::string::npos)
        << join(c.args) << ": " << server.err();
  }
  // The default: 0660.
  ServeProcess server(dir_);
  ASSERT_TRUE(server.ready()) << server.err();
  struct stat st {};
  ASSERT_EQ(::stat(server.socket().c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0660u);
}

// SIGTERM: no new request, the accepted ones run to their end (not killed) and are answered,
// then the server exits 0.
TEST_F(ServeLifeTest, SigtermDrainsWhatWasAccepted) {
  ServeProcess server(dir_, {"-j", "1", "--metrics", "127.0.0.1:0"});
  ASSERT_TRUE(server.ready()) << server.err();
  auto stub = server.stub();
  grpc::ClientContext context;
  auto stream = stub->ExecStream(&context);
  constexpr int kRequests = 3;
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_TRUE(
        stream->Write(one_job_request("r" + std::to_string(i), prog_job("s", "sleeper", {"700"}))));
  }
  // Every request accepted before the signal.
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (metric_sum(http_get_metrics(server.metrics_port()), "jailpool_requests_total ") <
             kRequests &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  ::kill(server.pid(), SIGTERM);
  while (server.err().find("draining") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  {
    // A new request while draining is refused (UNAVAILABLE by jailpool, or CANCELLED by gRPC
    // once its shutdown has begun).
    grpc::ClientContext c;
    c.set_deadline(std::chrono::system_clock::now() + 10s);
    ExecResponse r;
    grpc::Status status =
        server.stub()->Exec(&c, one_job_request("late", prog_job("j", "exit_code")), &r);
    EXPECT_TRUE(status.error_code() == grpc::StatusCode::UNAVAILABLE ||
                status.error_code() == grpc::StatusCode::CANCELLED)
        << status.error_code() << ": " << status.error_message();
  }
  std::set<std::string> answered;
  ExecResponse response;
  while (stream->Read(&response)) {
    EXPECT_TRUE(answered.insert(response.id()).second) << response.id() << " twice";
    ASSERT_EQ(response.results_size(), 1) << response.error();
    EXPECT_EQ(response.results(0).status(), OK) << describe(response.results(0));
  }
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(answered.size(), static_cast<size_t>(kRequests));
  int status = server.stop();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << server.err();
  struct stat st {};
  EXPECT_NE(::stat(server.socket().c_str(), &st), 0) << "the socket is removed";
}

// kill -9 with a job running: the next start reclaims the cgroups and the stale socket, and
// keeps the file cache.
TEST_F(ServeLifeTest, KillNineAndRestart) {
  std::string file_id;
  {
    ServeProcess server(dir_, {"--metrics", "127.0.0.1:0"});
    ASSERT_TRUE(server.ready()) << server.err();
    auto stub = server.stub();
    {
      grpc::ClientContext context;
      PutFileRequest put;
      put.set_content("kept across a crash\n");
      FileRef ref;
      ASSERT_TRUE(stub->PutFile(&context, put, &ref).ok());
      file_id = ref.file_id();
    }
    grpc::ClientContext context;
    auto stream = stub->ExecStream(&context);
    ASSERT_TRUE(stream->Write(one_job_request("long", prog_job("s", "sleeper"))));
    auto deadline = std::chrono::steady_clock::now() + 30s;
    while (job_cgroups_left().empty() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(10ms);
    }
    ASSERT_FALSE(job_cgroups_left().empty()) << "the job did not start";
    server.stop(SIGKILL);
    context.TryCancel();
  }
  ServeProcess server(dir_);
  ASSERT_TRUE(server.ready()) << server.err();
  auto stub = server.stub();
  JobSpec job = prog_job("j", "cat_stdin");
  job.mutable_stdin()->set_file_id(file_id);
  grpc::ClientContext context;
  ExecResponse response;
  grpc::Status status = stub->Exec(&context, one_job_request("r", job), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.results(0).stdout(), "kept across a crash\n") << describe(response.results(0));
  EXPECT_EQ(server.stop(), 0) << server.err();
}

// Type=notify: READY=1 once listening, STOPPING=1 at SIGTERM (no-op without NOTIFY_SOCKET).
TEST_F(ServeLifeTest, TellsSystemdWhenReadyAndWhenStopping) {
  std::string path = dir_.file("notify");
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  timeval timeout{30, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  ::setenv("NOTIFY_SOCKET", path.c_str(), 1);
  ServeProcess server(dir_);
  ::unsetenv("NOTIFY_SOCKET");
  ASSERT_TRUE(server.ready()) << server.err();
  char buf[512];
  ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  ASSERT_GT(n, 0);
  std::string ready(buf, static_cast<size_t>(n));
  EXPECT_NE(ready.find("READY=1"), std::string::npos) << ready;
  EXPECT_NE(ready.find("MAINPID=" + std::to_string(server.pid())), std::string::npos) << ready;
  ::kill(server.pid(), SIGTERM);
  n = ::recv(fd, buf, sizeof buf, 0);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buf, static_cast<size_t>(n)), "STOPPING=1");
  EXPECT_EQ(server.stop(), 0);
  ::close(fd);
}

}  // namespace
}  // namespace jailpool
