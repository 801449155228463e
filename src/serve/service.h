// The gRPC service (proto/service.proto) over one executor: requests are checked and resolved
// (requests.h) on gRPC's threads, run by the executor's loop, and answered from a worker thread
// (cache writes included), never from the loop.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "sched/executor.h"
#include "sched/submission_queue.h"
#include "serve/file_cache.h"
#include "serve/metrics.h"
#include "serve/requests.h"
#include "serve/work_queue.h"
#include "service.grpc.pb.h"

namespace jailpool::serve {

struct ServiceConfig {
  const Profiles* profiles = nullptr;
  FileCache* cache = nullptr;
  Metrics* metrics = nullptr;
  sched::SubmissionQueue* queue = nullptr;
  sched::Executor* executor = nullptr;
  WorkQueue* work = nullptr;
  std::string token;  // "": no authentication (a unix socket)
  bool allow_host_paths = false;
  unsigned parallelism = 1;
  unsigned queue_capacity = 1;
  std::string cgroup_parent;
};

class StreamReactor;

class Service final : public jailpool::Executor::CallbackService {
 public:
  explicit Service(ServiceConfig config);
  ~Service() override;

  // The executor's OnResult: unused (each job has its on_done).
  void on_result(JobResult&& result);
  // The executor has returned: what is still queued is answered as interrupted, and nothing
  // more is accepted.
  void executor_stopped();
  // SIGTERM: no new request; streams end once their requests are answered.
  void begin_drain();
  // No ExecStream call is left (each is unregistered once gRPC is done with it).
  bool streams_done();

  grpc::ServerUnaryReactor* Exec(grpc::CallbackServerContext* context, const ExecRequest* request,
                                 ExecResponse* response) override;
  grpc::ServerBidiReactor<ExecRequest, ExecResponse>* ExecStream(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* PutFile(grpc::CallbackServerContext* context,
                                    const PutFileRequest* request, FileRef* response) override;
  grpc::ServerUnaryReactor* DeleteFile(grpc::CallbackServerContext* context, const FileRef* request,
                                       DeleteFileResponse* response) override;
  grpc::ServerUnaryReactor* ListFiles(grpc::CallbackServerContext* context,
                                      const ListFilesRequest* request,
                                      ListFilesResponse* response) override;
  grpc::ServerUnaryReactor* Check(grpc::CallbackServerContext* context, const CheckRequest* request,
                                  CheckResponse* response) override;

 private:
  friend class StreamReactor;
  struct Group;
  // Checks, resolves and submits `request`. OK: `reply` is called once, on a worker thread,
  // with the response. Else the request was refused and nothing started.
  grpc::Status start(const ExecRequest& request, std::function<void(ExecResponse&&)> reply);
  // A job's result, on the loop thread.
  void job_done(const std::shared_ptr<Group>& group, size_t index, JobResult&& result);
  void finish_group(const std::shared_ptr<Group>& group);
  grpc::Status authorize(grpc::CallbackServerContext* context);
  bool draining() const { return draining_.load(); }
  void register_stream(StreamReactor* stream);
  void unregister_stream(StreamReactor* stream);

  ServiceConfig config_;
  std::atomic<bool> draining_{false};
  std::mutex mu_;  // submissions
  bool stopped_ = false;
  std::recursive_mutex streams_mu_;
  std::set<StreamReactor*> streams_;
};

}  // namespace jailpool::serve
