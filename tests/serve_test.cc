// `jailpool serve`: a real server process, a real gRPC client (the generated C++ stub).
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "serve_support.h"

namespace jailpool {
namespace {

using namespace std::chrono_literals;
using namespace testing_env;

class ServeTest : public ::testing::Test {
 protected:
  void TearDown() override { expect_nothing_left(2000ms); }

  static grpc::Status exec(Executor::Stub& stub, const ExecRequest& request,
                           ExecResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + 120s);
    return stub.Exec(&context, request, response);
  }

  TempDir dir_{"jailpool-serve-test"};
};

TEST_F(ServeTest, ExecRunsOneJobAndAnswersWithItsResult) {
  ServeProcess server(dir_);
  ASSERT_TRUE(server.ready()) << server.err();
  auto stub = server.stub();
  ExecResponse response;
  grpc::Status status =
      exec(*stub, one_job_request("r1", prog_job("j1", "exit_code", {"3"})), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.id(), "r1");
  ASSERT_EQ(response.results_size(), 1);
  EXPECT_EQ(response.results(0).id(), "j1");
  EXPECT_EQ(response.results(0).status(), NONZERO_EXIT) << describe(response.results(0));
  EXPECT_EQ(response.results(0).exit_code(), 3);
}

TEST_F(ServeTest, StdinBytesReachTheJob) {
  ServeProcess server(dir_);
  ASSERT_TRUE(server.ready()) << server.err();
  auto stub = server.stub();
  JobSpec job = prog_job("cat", "cat_stdin");
  std::string input(200000, 'a');
  input += "end\n";
  job.mutable_stdin()->set_content(input);
  ExecResponse response;
  grpc::Status status = exec(*stub, one_job_request("r", job), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.results_size(), 1);
  EXPECT_EQ(response.results(0).status(), OK) << describe(response.results(0));
  EXPECT_EQ(response.results(0).stdout().size(), input.size());
  EXPECT_TRUE(response.results(0).stdout() == input) << "not the bytes sent";
}

TEST_F(ServeTest, ExecStreamAnswersEveryRequestOnceMatchedById) {
  ServeProcess server(dir_, {"-j", "2"});
  ASSERT_TRUE(server.ready()) << server.err();
  auto stub = server.stub();
  grpc::ClientContext context;
  auto stream = stub->ExecStream(&context);
  constexpr int kRequests = 40;
  // Different lengths, so that they end out of order.
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_TRUE(stream->Write(one_job_request(
        "req-" + std::to_string(i),
        prog_job("job-" + std::to_string(i), "exit_code", {std::to_string(i % 7)}))));
  }
  stream->WritesDone();
  std::map<std::string, int> seen;
  ExecResponse response;
  while (stream->Read(&response)) {
    ++seen[response.id()];
    ASSERT_TRUE(response.error().empty()) << response.error();
    ASSERT_EQ(response.results_size(), 1);
    int i = std::stoi(response.id().substr(4));
    EXPECT_EQ(response.results(0).id(), "job-" + std::to_string(i));
    EXPECT_EQ(response.results(0).exit_code(), i % 7) << describe(response.results(0));
  }
  grpc::Status status = stream->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(seen.size(), static_cast<size_t>(kRequests));
  for (const auto& [id, n] : seen) EXPECT_EQ(n, 1) << id;
}

// One malformed request per field: INVALID_ARGUMENT naming it, and no job starts.
TEST_F(ServeTest, MalformedRequestsAreRefusedNamingTheField) {
  ServeProcess server(dir_, {"--metrics", "127.0.0.1:0"});
  ASSERT_TRUE(server.ready()) << server.err();
  auto stub = server.stub();
  JobSpec good = prog_job("j", "exit_code");
  struct Case {
    std::string field;
    std::function<void(ExecRequest&)> spoil;
  };
  std::vector<Case> cases = {
      {"jobs", [](ExecRequest& r) { r.clear_jobs(); }},
      {"jobs[0].argv", [](ExecRequest& r) { r.mutable_jobs(0)->clear_argv(); }},
      {"jobs[0].argv[0]", [](ExecRequest& r) { r.mutable_jobs(0)->set_argv(0, ""); }},
      {"jobs[0].env[1]", [](ExecRequest& r) { r.mutable_jobs(0)->add_env("NOEQUALS"); }},
      {"jobs[0].cwd", [](ExecRequest& r) { r.mutable_jobs(0)->set_cwd("relative"); }},
      {"jobs[0].profile", [](ExecRequest& r) { r.mutable_jobs(0)->set_profile("nonesuch"); }},
      {"jobs[0].bind[0]", [](ExecRequest& r) { r.mutable_jobs(0)->add_bind()->set_src("/etc"); }},
      {"jobs[0].limits.wall_time_ms",
       [](ExecRequest& r) { r.mutable_jobs(0)->mutable_limits()->set_wall_time_ms(0); }},
      {"jobs[0].stdin.path",
       [](ExecRequest& r) { r.mutable_jobs(0)->mutable_stdin()->set_path("/etc/passwd"); }},
      {"jobs[0].stdin.inherit",
       [](ExecRequest& r) { r.mutable_jobs(0)->mutable_stdin()->set_inherit(true); }},
      {"jobs[0].stdin.file_id",
       [](ExecRequest& r) { r.mutable_jobs(0)->mutable_stdin()->set_file_id("xyz"); }},
      {"jobs[0].stdout.path",
       [](ExecRequest& r) { r.mutable_jobs(0)->mutable_stdout()->set_path("/tmp/x"); }},
      {"jobs[0].stdout.content",
       [](ExecRequest& r) { r.mutable_jobs(0)->mutable_stdout()->set_content("x"); }},
      {"jobs[0].stderr.inherit",
       [](ExecRequest& r) { r.mutable_jobs(0)->mutable_stderr()->set_inherit(true); }},
      {"jobs[0].copy_in[0].src",
       [](ExecRequest& r) {
         CopyIn* c = r.mutable_jobs(0)->add_copy_in();
         c->set_src("/etc/passwd");
         c->set_dst("p");
       }},
      {"jobs[0].copy_in[0].dst",
       [](ExecRequest& r) {
         CopyIn* c = r.mutable_jobs(0)->add_copy_in();
         c->set_content("x");
         c->set_dst("../x");
       }},
      {"jobs[0].copy_in[0].mode",
       [](ExecRequest& r) {
         CopyIn* c = r.mutable_jobs(0)->add_copy_in();
         c->set_content("x");
         c->set_dst("x");
         c->set_mode(0777);
       }},
      {"jobs[0].copy_in[0].file_id",
       [](ExecRequest& r) {
         CopyIn* c = r.mutable_jobs(0)->add_copy_in();
         c->set_file_id("not-hex");
         c->set_dst("x");
       }},
      {"jobs[0].copy_out[0].path",
       [](ExecRequest& r) { r.mutable_jobs(0)->add_copy_out()->set_path("/abs"); }},
      {"jobs[0].copy_out[0].dst",
       [](ExecRequest& r) {
         CopyOut* c = r.mutable_jobs(0)->add_copy_out();
         c->set_path("out");
         c->set_dst("/tmp/out");
       }},
  };
  for (const Case& c : cases) {
    ExecRequest request = one_job_request("bad", good);
    c.spoil(request);
    ExecResponse response;
    grpc::Status status = exec(*stub, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << c.field << ": " << status.error_message();
    EXPECT_EQ(status.error_message().rfind(c.field + ":", 0), 0u)
        << "expected the message to start with \"" << c.field << ":\": " << status.error_message();
  }
  // The same through a stream: an answer with the error, matched by id.
  {
    grpc::ClientContext context;
    auto stream = stub->ExecStream(&context);
    ExecRequest request = one_job_request("bad-in-stream", good);
    request.mutable_jobs(0)->clear_argv();
    ASSERT_TRUE(stream->Write(request));
    stream->WritesDone();
    ExecResponse response;
    ASSERT_TRUE(stream->Read(&response));
    EXPECT_EQ(response.id(), "bad-in-stream");
    EXPECT_EQ(response.error().rfind("INVALID_ARGUMENT: jobs[0].argv:", 0), 0u) << response.error();
    EXPECT_TRUE(stream->Finish().ok());
  }
  std::string metrics = http_get_metrics(server.metrics_port());
  ASSERT_NE(metrics.find("jailpool_requests_total"), std::string::npos) << metrics;
  EXPECT_EQ(metric_sum(metrics, "jailpool_jobs_total{"), 0) << "a malformed request started:\n"
                                                            << metrics;
  EXPECT_EQ(metric_sum(metrics, "jailpool_requests_refused_total{reason=\"invalid\"}"),
            static_cast<double>(cases.size() + 1));
}

TEST_F(ServeTest, AFullQueueIsResourceExhaustedAndEveryRequestIsAnsweredOnce) {
  ServeProcess server(dir_, {"-j", "1", "--queue", "1"});
  ASSERT_TRUE(server.ready()) << server.err();
  auto stub = server.stub();
  grpc::ClientContext context;
  auto stream = stub->ExecStream(&context);
  constexpr int kRequests = 6;
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_TRUE(stream->Write(
        one_job_request("r" + std::to_string(i), prog_job("s", "sleeper", {"1000"}))));
  }
  stream->WritesDone();
  std::map<std::string, int> seen;
  int exhausted = 0, ran = 0;
  ExecResponse response;
  while (stream->Read(&response)) {
    ++seen[response.id()];
    if (response.error().rfind("RESOURCE_EXHAUSTED", 0) == 0) {
      ++exhausted;
      EXPECT_EQ(response.results_size(), 0);
    } else {
      ASSERT_EQ(response.results_size(), 1) << response.error();
      EXPECT_EQ(response.results(0).status(), OK) << describe(response.results(0));
      ++ran;
    }
  }
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(seen.size(), static_cast<size_t>(kRequests));
  for (const auto& [id, n] : seen) EXPECT_EQ(n, 1) << id;
  // One runs, one waits; of six sent at once, at least three are refused.
  EXPECT_GE(exhausted, 3);
  EXPECT_GE(ran, 1);
}

TEST_F(ServeTest, CheckReportsWhatJailpoolCheckPrints) {
  ServeProcess server(dir_, {"-j", "3", "--queue", "7"});
  ASSERT_TRUE(server.ready()) << server.err();
  auto stub = server.stub();
  grpc::ClientContext context;
  CheckResponse response;
  grpc::Status status = stub->Check(&context, CheckRequest(), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(response.ok()) << response.report();
  EXPECT_NE(response.report().find("cgroup mode:"), std::string::npos) << response.report();
  EXPECT_NE(response.report().find("jailpool can run here"), std::string::npos);
  EXPECT_EQ(response.parallelism(), 3u);
  EXPECT_EQ(response.queue_capacity(), 7u);
  EXPECT_EQ(std::vector<std::string>(response.profiles().begin(), response.profiles().end()),
            std::vector<std::string>{"default"});
}

TEST_F(ServeTest, MetricsInThePrometheusTextFormat) {
  ServeProcess server(dir_, {"--metrics", "127.0.0.1:0"});
  ASSERT_TRUE(server.ready()) << server.err();
  auto stub = server.stub();
  for (const char* code : {"0", "0", "1"}) {
    ExecResponse response;
    ASSERT_TRUE(
        exec(*stub, one_job_request("r", prog_job("j", "exit_code", {code})), &response).ok());
  }
  {
    grpc::ClientContext context;
    PutFileRequest put;
    put.set_content("data");
    FileRef ref;
    ASSERT_TRUE(stub->PutFile(&context, put, &ref).ok());
    JobSpec hit = prog_job("hit", "exit_code");
    hit.mutable_stdin()->set_file_id(ref.file_id());
    ExecResponse response;
    ASSERT_TRUE(exec(*stub, one_job_request("r", hit), &response).ok());
    JobSpec miss = prog_job("miss", "exit_code");
    miss.mutable_stdin()->set_file_id(std::string(64, '0'));
    EXPECT_EQ(exec(*stub, one_job_request("r", miss), &response).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  std::string m = http_get_metrics(server.metrics_port());
  EXPECT_EQ(metric_sum(m, "jailpool_jobs_total{status=\"OK\"}"), 3) << m;
  EXPECT_EQ(metric_sum(m, "jailpool_jobs_total{status=\"NONZERO_EXIT\"}"), 1) << m;
  for (const char* h : {"jailpool_queue_seconds", "jailpool_setup_seconds", "jailpool_run_seconds",
                        "jailpool_teardown_seconds"}) {
    EXPECT_EQ(metric_sum(m, std::string(h) + "_count "), 4) << h << "\n" << m;
    EXPECT_EQ(metric_sum(m, std::string(h) + "_bucket{le=\"+Inf\"}"), 4) << h;
    EXPECT_NE(m.find("# TYPE " + std::string(h) + " histogram"), std::string::npos) << h;
  }
  EXPECT_EQ(metric_sum(m, "jailpool_queue_depth "), 0);
  EXPECT_EQ(metric_sum(m, "jailpool_jobs_running "), 0);
  EXPECT_NE(m.find("jailpool_pool_idle{kind=\"slot\"}"), std::string::npos);
  EXPECT_NE(m.find("jailpool_pool_busy "), std::string::npos);
  EXPECT_EQ(metric_sum(m, "jailpool_file_cache_bytes "), 4);
  EXPECT_EQ(metric_sum(m, "jailpool_file_cache_lookups_total{outcome=\"hit\"}"), 1);
  EXPECT_EQ(metric_sum(m, "jailpool_file_cache_lookups_total{outcome=\"miss\"}"), 1);
  EXPECT_EQ(metric_sum(m, "jailpool_file_cache_hit_ratio "), 0.5);
  EXPECT_GT(metric_sum(m, "process_resident_memory_bytes "), 1e6);
  EXPECT_GT(metric_sum(m, "process_cpu_seconds_total "), 0);
}

// Generic gRPC clients: the standard health service and server reflection, called by their
// method names with hand-encoded messages (no stubs of theirs here).
TEST_F(ServeTest, HealthCheckingAndReflectionWork) {
  ServeProcess server(dir_);
  ASSERT_TRUE(server.ready()) << server.err();
  grpc::GenericStub generic(server.channel());
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + 30s);
    grpc::ByteBuffer request, response;  // HealthCheckRequest{service: ""}: no bytes
    grpc::Slice empty("");
    request = grpc::ByteBuffer(&empty, 1);
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    grpc::Status status;
    generic.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request,
                      &response, [&](grpc::Status s) {
                        std::lock_guard lock(mu);
                        status = s;
                        done = true;
                        cv.notify_one();
                      });
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return done; });
    ASSERT_TRUE(status.ok()) << status.error_message();
    std::vector<grpc::Slice> slices;
    ASSERT_TRUE(response.Dump(&slices).ok());
    std::string bytes;
    for (auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    EXPECT_EQ(bytes, std::string("\x08\x01", 2)) << "not SERVING";  // status: SERVING (1)
  }
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + 30s);
    grpc::CompletionQueue cq;
    auto call = generic.PrepareCall(
        &context, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
    void* tag;
    bool ok;
    call->StartCall(reinterpret_cast<void*>(1));
    ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
    // ServerReflectionRequest{list_services: ""} (field 7, a string).
    grpc::Slice req(std::string("\x3a\x00", 2));
    grpc::ByteBuffer request(&req, 1);
    call->Write(request, reinterpret_cast<void*>(2));
    ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
    grpc::ByteBuffer response;
    call->Read(&response, reinterpret_cast<void*>(3));
    ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
    std::vector<grpc::Slice> slices;
    ASSERT_TRUE(response.Dump(&slices).ok());
    std::string bytes;
    for (auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    EXPECT_NE(bytes.find("jailpool.Executor"), std::string::npos) << "services listed: " << bytes;
    call->WritesDone(reinterpret_cast<void*>(4));
    ASSERT_TRUE(cq.Next(&tag, &ok));
    grpc::Status status;
    call->Finish(&status, reinterpret_cast<void*>(5));
    ASSERT_TRUE(cq.Next(&tag, &ok));
    cq.Shutdown();
    while (cq.Next(&tag, &ok)) {
    }
  }
}

}  // namespace
}  // namespace jailpool
