// `jailpool run --server` and `jailpool batch --server`: the CLI hands its jobs to a running
// `jailpool serve`; host paths are read and written on the client's side.
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include "serve_support.h"

namespace jailpool {
namespace {

using namespace std::chrono_literals;
using namespace testing_env;

class ServeCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServeProcess>(dir_);
    ASSERT_TRUE(server_->ready()) << server_->err();
  }
  void TearDown() override {
    server_.reset();
    auto procs = poll_until_empty(leftover_processes, 2000ms);
    EXPECT_TRUE(procs.empty()) << "processes left behind:\n" << join(procs);
  }
  std::string address() const { return "unix:" + server_->socket(); }
  TempDir dir_{"jailpool-serve-cli-test"};
  std::unique_ptr<ServeProcess> server_;
};

TEST_F(ServeCliTest, RunHandsItsJobToTheServer) {
  std::string input = dir_.write("in.txt", "from the client's host\n");
  CliOutcome r = run_cli({"run", "--server", address(), "--stdin", input, "--env", job_marker(),
                          "--", in_jail("cat_stdin")});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "from the client's host\n");
  r = run_cli(
      {"run", "--server", address(), "--env", job_marker(), "--", in_jail("exit_code"), "7"});
  EXPECT_EQ(r.exit_code, 7) << r.describe();
  // A copy-in from this host and a copy-out to it.
  std::string out = dir_.file("copied-out.txt");
  r = run_cli({"run", "--server", address(), "--copy-in", input + ":in.txt", "--copy-out",
               "in.txt:" + out, "--env", job_marker(), "--", in_jail("exit_code")});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(read_file(out), "from the client's host\n");
  // The server refuses what it cannot do: a bind of a host directory.
  r = run_cli({"run", "--server", address(), "--bind", "/etc", "--", in_jail("exit_code")});
  EXPECT_EQ(r.exit_code, 125) << r.describe();
  EXPECT_NE(r.err.find("bind[0]"), std::string::npos) << r.err;
}

TEST_F(ServeCliTest, BatchHandsItsJobsToTheServer) {
  std::string input = dir_.write("in.txt", "abc\n");
  std::string jobs;
  for (int i = 0; i < 20; ++i) {
    jobs += R"({"id":"j)" + std::to_string(i) + R"(","argv":[")" + in_jail("exit_code") + R"(",")" +
            std::to_string(i % 3) + R"("],"env":[")" + job_marker() + R"("]})" + "\n";
  }
  jobs += R"({"id":"cat","argv":[")" + in_jail("cat_stdin") + R"("],"stdin":{"path":")" + input +
          R"("},"env":[")" + job_marker() + R"("]})" + "\n";
  jobs += R"({"id":"bad","argv":[]})"
          "\n";
  std::string jobs_file = dir_.write("jobs.jsonl", jobs);
  std::string results_file = dir_.file("results.jsonl");
  CliOutcome r =
      run_cli({"batch", "--server", address(), "--input", jobs_file, "--output", results_file});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  std::map<std::string, JobResult> results;
  std::istringstream lines(read_file(results_file));
  std::string line;
  while (std::getline(lines, line)) {
    JobResult res;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(line, &res).ok()) << line;
    EXPECT_TRUE(results.emplace(res.id(), res).second) << res.id() << " twice";
  }
  ASSERT_EQ(results.size(), 22u);
  for (int i = 0; i < 20; ++i) {
    const JobResult& res = results["j" + std::to_string(i)];
    EXPECT_EQ(res.exit_code(), i % 3) << describe(res);
  }
  EXPECT_EQ(results["cat"].stdout(), "abc\n") << describe(results["cat"]);
  EXPECT_EQ(results["line-22"].status(), SETUP_ERROR);
}

}  // namespace
}  // namespace jailpool
