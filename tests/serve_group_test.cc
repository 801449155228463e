// `jailpool serve`: groups of jobs joined by pipes (interactive problems), through a real server.
#include <gtest/gtest.h>

#include "serve_support.h"

namespace jailpool {
namespace {

using namespace std::chrono_literals;
using namespace testing_env;

constexpr int kInteractor = 0, kSolution = 1;

// An interactor (job 0) and a solution (job 1), each one's stdout the other's stdin.
ExecRequest interactive(const std::string& interactor_mode, const std::string& solution_mode,
                        uint64_t interactor_wall_ms = 20000, uint64_t solution_wall_ms = 20000) {
  ExecRequest r;
  r.set_id("interactive");
  JobSpec interactor =
      prog_job("interactor", "guess_interactor", {"737", "1000", "10", interactor_mode});
  interactor.mutable_limits()->set_wall_time_ms(interactor_wall_ms);
  JobSpec solution = prog_job("solution", "guess_solution", {solution_mode});
  solution.mutable_limits()->set_wall_time_ms(solution_wall_ms);
  solution.mutable_limits()->set_cpu_time_ms(std::min<uint64_t>(solution_wall_ms, 5000));
  *r.add_jobs() = interactor;
  *r.add_jobs() = solution;
  for (auto [from, to] : {std::pair{kInteractor, kSolution}, std::pair{kSolution, kInteractor}}) {
    Pipe* p = r.add_pipes();
    p->mutable_from()->set_job(from);
    p->mutable_from()->set_fd(1);
    p->mutable_to()->set_job(to);
    p->mutable_to()->set_fd(0);
  }
  return r;
}

class ServeGroupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // One job at a time: a group starts whole all the same (its jobs wait on each other).
    server_ = std::make_unique<ServeProcess>(dir_, std::vector<std::string>{"-j", "1"});
    ASSERT_TRUE(server_->ready()) << server_->err();
    stub_ = server_->stub();
  }
  void TearDown() override {
    stub_.reset();
    server_.reset();
    expect_nothing_left(2000ms);
  }

  ExecResponse run(const ExecRequest& request) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + 120s);
    ExecResponse response;
    grpc::Status status = stub_->Exec(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.results_size(), request.jobs_size());
    if (response.results_size() != request.jobs_size()) response.mutable_results()->Clear();
    while (response.results_size() < request.jobs_size()) response.add_results();
    return response;
  }

  TempDir dir_{"jailpool-serve-group-test"};
  std::unique_ptr<ServeProcess> server_;
  std::unique_ptr<Executor::Stub> stub_;
};

TEST_F(ServeGroupTest, ACorrectSolutionIsAccepted) {
  ExecResponse r = run(interactive("normal", "binary"));
  const JobResult& interactor = r.results(kInteractor);
  const JobResult& solution = r.results(kSolution);
  EXPECT_EQ(interactor.id(), "interactor");
  EXPECT_EQ(solution.id(), "solution");
  EXPECT_EQ(interactor.status(), OK) << describe(interactor);
  EXPECT_NE(interactor.stderr().find("ok: "), std::string::npos) << interactor.stderr();
  EXPECT_EQ(solution.status(), OK) << describe(solution);
  // The pipes' bytes are the jobs', not captured.
  EXPECT_EQ(interactor.stdout(), "");
  EXPECT_EQ(solution.stdout(), "");
}

TEST_F(ServeGroupTest, AWrongSolutionIsAWrongAnswer) {
  ExecResponse r = run(interactive("normal", "wrong"));
  const JobResult& interactor = r.results(kInteractor);
  EXPECT_EQ(interactor.status(), NONZERO_EXIT) << describe(interactor);
  EXPECT_EQ(interactor.exit_code(), 1);
  EXPECT_NE(interactor.stderr().find("wrong answer"), std::string::npos) << interactor.stderr();
}

TEST_F(ServeGroupTest, ASolutionBlockedOnAReadReachesItsTimeLimitAndTheInteractorIsKilled) {
  ExecResponse r = run(interactive("stall", "binary", 20000, 500));
  const JobResult& interactor = r.results(kInteractor);
  const JobResult& solution = r.results(kSolution);
  EXPECT_EQ(solution.status(), WALL_TIME_LIMIT_EXCEEDED) << describe(solution);
  EXPECT_LT(solution.cpu_time_us(), 100000u) << "it was blocked, not burning";
  EXPECT_EQ(interactor.status(), SIGNALED) << describe(interactor);
  EXPECT_NE(interactor.message().find("job 1 of its group"), std::string::npos)
      << interactor.message();
}

TEST_F(ServeGroupTest, KeepGoingLetsTheOtherJobEndByItself) {
  ExecRequest request = interactive("stall", "binary", 1500, 300);
  request.set_keep_going(true);
  ExecResponse r = run(request);
  EXPECT_EQ(r.results(kSolution).status(), WALL_TIME_LIMIT_EXCEEDED) << describe(r.results(1));
  EXPECT_EQ(r.results(kInteractor).status(), WALL_TIME_LIMIT_EXCEEDED) << describe(r.results(0));
}

TEST_F(ServeGroupTest, AnInteractorThatCrashesFailsTheSolutionToo) {
  ExecResponse r = run(interactive("crash", "binary"));
  const JobResult& interactor = r.results(kInteractor);
  const JobResult& solution = r.results(kSolution);
  EXPECT_EQ(interactor.status(), SIGNALED) << describe(interactor);
  EXPECT_EQ(interactor.signal(), SIGABRT);
  // The solution reads EOF (its exit), or is killed by the group: never accepted.
  EXPECT_NE(solution.status(), OK) << describe(solution);
}

TEST_F(ServeGroupTest, BothSidesWaitingOnEachOtherEndInAWallTimeLimit) {
  ExecResponse r = run(interactive("read-first", "binary", 700, 700));
  const JobResult& interactor = r.results(kInteractor);
  const JobResult& solution = r.results(kSolution);
  EXPECT_TRUE(interactor.status() == WALL_TIME_LIMIT_EXCEEDED ||
              solution.status() == WALL_TIME_LIMIT_EXCEEDED)
      << describe(interactor) << "\n"
      << describe(solution);
  EXPECT_NE(interactor.status(), OK);
  EXPECT_NE(solution.status(), OK);
}

// Nobody reads: the writer blocks on the full pipe (nothing buffers it) until its limit.
TEST_F(ServeGroupTest, OutputFloodingIntoAPipeNobodyReadsBlocksTheWriter) {
  ExecResponse r = run(interactive("deaf", "flood", 20000, 700));
  const JobResult& interactor = r.results(kInteractor);
  const JobResult& solution = r.results(kSolution);
  EXPECT_EQ(solution.status(), WALL_TIME_LIMIT_EXCEEDED) << describe(solution);
  EXPECT_EQ(interactor.status(), SIGNALED) << describe(interactor);
}

// A reader that is gone: the writer gets SIGPIPE, as between two bare processes.
TEST_F(ServeGroupTest, APipeWhoseReaderIsGoneIsABrokenPipe) {
  ExecRequest r;
  r.set_id("sigpipe");
  *r.add_jobs() = prog_job("writer", "flood_output");
  *r.add_jobs() = prog_job("reader", "exit_code", {"0"});
  Pipe* p = r.add_pipes();
  p->mutable_from()->set_job(0);
  p->mutable_from()->set_fd(1);
  p->mutable_to()->set_job(1);
  p->mutable_to()->set_fd(0);
  r.set_keep_going(true);
  ExecResponse response = run(r);
  EXPECT_EQ(response.results(1).status(), OK) << describe(response.results(1));
  EXPECT_EQ(response.results(0).status(), SIGNALED) << describe(response.results(0));
  EXPECT_EQ(response.results(0).signal(), SIGPIPE);
}

TEST_F(ServeGroupTest, MalformedPipesAreRefusedNamingTheField) {
  struct Case {
    std::string field;
    std::function<void(ExecRequest&)> spoil;
  };
  std::vector<Case> cases = {
      {"pipes[0].from.job", [](ExecRequest& r) { r.mutable_pipes(0)->mutable_from()->set_job(2); }},
      {"pipes[1].to.job", [](ExecRequest& r) { r.mutable_pipes(1)->mutable_to()->set_job(9); }},
      {"pipes[0].from.fd", [](ExecRequest& r) { r.mutable_pipes(0)->mutable_from()->set_fd(0); }},
      {"pipes[0].to.fd", [](ExecRequest& r) { r.mutable_pipes(0)->mutable_to()->set_fd(1); }},
      {"pipes[0].to", [](ExecRequest& r) { r.mutable_pipes(0)->clear_to(); }},
      {"pipes[2].from", [](ExecRequest& r) { *r.add_pipes() = r.pipes(0); }},
      {"jobs[1].stdin",
       [](ExecRequest& r) { r.mutable_jobs(1)->mutable_stdin()->set_content("x"); }},
  };
  for (const Case& c : cases) {
    ExecRequest request = interactive("normal", "binary");
    c.spoil(request);
    grpc::ClientContext context;
    ExecResponse response;
    grpc::Status status = stub_->Exec(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << c.field << ": " << status.error_message();
    EXPECT_EQ(status.error_message().rfind(c.field + ":", 0), 0u)
        << "expected \"" << c.field << ":\": " << status.error_message();
  }
}

}  // namespace
}  // namespace jailpool
