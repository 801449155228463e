// `jailpool serve`: the file cache (PutFile, DeleteFile, ListFiles, CopyIn.file_id,
// Stream.file_id, CopyOut.cache), through a real server.
#include <gtest/gtest.h>

#include <thread>

#include "serve_support.h"

namespace jailpool {
namespace {

using namespace std::chrono_literals;
using namespace testing_env;

class ServeFilesTest : public ::testing::Test {
 protected:
  void start(std::vector<std::string> extra = {}) {
    server_ = std::make_unique<ServeProcess>(dir_, extra);
    ASSERT_TRUE(server_->ready()) << server_->err();
    stub_ = server_->stub();
  }
  void TearDown() override {
    stub_.reset();
    server_.reset();
    auto procs = poll_until_empty(leftover_processes, 2000ms);
    EXPECT_TRUE(procs.empty()) << "processes left behind:\n" << join(procs);
  }
  std::string put(const std::string& content) {
    grpc::ClientContext context;
    PutFileRequest request;
    request.set_content(content);
    FileRef ref;
    grpc::Status status = stub_->PutFile(&context, request, &ref);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return ref.file_id();
  }
  ListFilesResponse list() {
    grpc::ClientContext context;
    ListFilesResponse response;
    EXPECT_TRUE(stub_->ListFiles(&context, ListFilesRequest(), &response).ok());
    return response;
  }
  grpc::Status exec(const JobSpec& job, ExecResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + 120s);
    return stub_->Exec(&context, one_job_request("r", job), response);
  }

  TempDir dir_{"jailpool-serve-files-test"};
  std::unique_ptr<ServeProcess> server_;
  std::unique_ptr<Executor::Stub> stub_;
};

TEST_F(ServeFilesTest, APutFileIsCopiedInAndReadAsStdinByItsId) {
  start();
  std::string id = put("hello\n");
  EXPECT_EQ(id, "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03");  // SHA-256
  // A program sent once, run from the cache: the test's own cat_stdin.
  std::string program = put(read_file(prog("cat_stdin")));
  JobSpec job;
  job.add_argv("/box/cat");
  job.add_env(job_marker());
  CopyIn* in = job.add_copy_in();
  in->set_file_id(program);
  in->set_dst("cat");
  job.mutable_stdin()->set_file_id(id);
  ExecResponse response;
  grpc::Status status = exec(job, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.results_size(), 1);
  EXPECT_EQ(response.results(0).status(), OK) << describe(response.results(0));
  EXPECT_EQ(response.results(0).stdout(), "hello\n");
  ListFilesResponse files = list();
  EXPECT_EQ(files.files_size(), 2);
  for (const CachedFile& f : files.files()) EXPECT_EQ(f.in_use(), 0u) << f.file_id();
}

TEST_F(ServeFilesTest, ACopyOutWithCacheGivesAFileIdTheNextJobUses) {
  start();
  JobSpec job = prog_job("make", "exit_code");
  CopyIn* in = job.add_copy_in();
  in->set_content("made by the first job\n");
  in->set_dst("out.txt");
  CopyOut* out = job.add_copy_out();
  out->set_path("out.txt");
  out->set_cache(true);
  ExecResponse response;
  ASSERT_TRUE(exec(job, &response).ok());
  ASSERT_EQ(response.results(0).files_size(), 1) << describe(response.results(0));
  const FileResult& f = response.results(0).files(0);
  EXPECT_EQ(f.error(), "");
  EXPECT_EQ(f.content(), "") << "the content stays in the cache";
  ASSERT_EQ(f.file_id().size(), 64u);
  JobSpec next = prog_job("use", "cat_stdin");
  next.mutable_stdin()->set_file_id(f.file_id());
  ASSERT_TRUE(exec(next, &response).ok());
  EXPECT_EQ(response.results(0).stdout(), "made by the first job\n")
      << describe(response.results(0));
}

TEST_F(ServeFilesTest, AFileIdThatDoesNotExistIsNotFound) {
  start();
  const std::string missing(64, 'a');
  JobSpec job = prog_job("j", "exit_code");
  CopyIn* in = job.add_copy_in();
  in->set_file_id(missing);
  in->set_dst("x");
  ExecResponse response;
  grpc::Status status = exec(job, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << status.error_message();
  EXPECT_EQ(status.error_message().rfind("jobs[0].copy_in[0].file_id:", 0), 0u)
      << status.error_message();
  job = prog_job("j", "exit_code");
  job.mutable_stdin()->set_file_id(missing);
  status = exec(job, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << status.error_message();
  EXPECT_EQ(status.error_message().rfind("jobs[0].stdin.file_id:", 0), 0u)
      << status.error_message();
  // Deleted, then gone.
  std::string id = put("soon gone");
  grpc::ClientContext c1, c2;
  FileRef ref;
  ref.set_file_id(id);
  DeleteFileResponse deleted;
  ASSERT_TRUE(stub_->DeleteFile(&c1, ref, &deleted).ok());
  EXPECT_TRUE(deleted.deleted());
  ASSERT_TRUE(stub_->DeleteFile(&c2, ref, &deleted).ok());
  EXPECT_FALSE(deleted.deleted());
  job = prog_job("j", "exit_code");
  job.mutable_stdin()->set_file_id(id);
  EXPECT_EQ(exec(job, &response).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ServeFilesTest, TheLeastRecentlyUsedFilesAreEvictedUnderTheCap) {
  start({"--cache-size", "1M"});
  std::string a = put(std::string(400 << 10, 'a'));
  std::string b = put(std::string(400 << 10, 'b'));
  // a is used, so b is now the least recently used.
  JobSpec job = prog_job("j", "exit_code");
  job.mutable_stdin()->set_file_id(a);
  ExecResponse response;
  ASSERT_TRUE(exec(job, &response).ok());
  std::string c = put(std::string(400 << 10, 'c'));
  ListFilesResponse files = list();
  std::set<std::string> ids;
  for (const auto& f : files.files()) ids.insert(f.file_id());
  EXPECT_EQ(ids, (std::set<std::string>{a, c}));
  EXPECT_LE(files.total_bytes(), files.capacity_bytes());
  EXPECT_EQ(files.capacity_bytes(), 1u << 20);
  // Larger than the whole cache: refused.
  grpc::ClientContext context;
  PutFileRequest big;
  big.set_content(std::string((1 << 20) + 1, 'x'));
  FileRef ref;
  EXPECT_EQ(stub_->PutFile(&context, big, &ref).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST_F(ServeFilesTest, ConcurrentPutsOfTheSameBytesMakeOneFile) {
  start();
  const std::string content(1 << 20, 'z');
  std::vector<std::string> ids(16);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < ids.size(); ++i) {
    threads.emplace_back([&, i] {
      auto stub = server_->stub();
      grpc::ClientContext context;
      PutFileRequest request;
      request.set_content(content);
      FileRef ref;
      if (stub->PutFile(&context, request, &ref).ok()) ids[i] = ref.file_id();
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& id : ids) EXPECT_EQ(id, ids[0]);
  ListFilesResponse files = list();
  ASSERT_EQ(files.files_size(), 1);
  EXPECT_EQ(files.files(0).size(), content.size());
  EXPECT_EQ(files.total_bytes(), content.size());
  // Nothing else in the cache's directory (no temporary file left).
  EXPECT_EQ(read_file(dir_.file("state/cache/") + ids[0]).size(), content.size());
}

}  // namespace
}  // namespace jailpool
