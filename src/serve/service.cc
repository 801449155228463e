#include "serve/service.h"

#include <fmt/core.h>
#include <openssl/crypto.h>

#include <deque>

#include "common/error.h"
#include "isolate/jail.h"
#include "isolate/slot.h"
#include "pool/slot_pool.h"
#include "pool/template_pool.h"
#include "sched/check.h"

namespace jailpool::serve {

using isolate::monotonic_now_ns;

struct Service::Group {
  std::string id;
  PreparedGroup prepared;  // its pins and cache_outs (the jobs went to the executor)
  std::vector<JobResult> results;
  size_t remaining = 0;  // on the loop thread only
  std::function<void(ExecResponse&&)> reply;
  uint64_t submit_ns = 0;
};

Service::Service(ServiceConfig config) : config_(std::move(config)) {}
Service::~Service() = default;

grpc::Status Service::authorize(grpc::CallbackServerContext* context) {
  if (config_.token.empty()) return grpc::Status::OK;
  const std::string expected = "Bearer " + config_.token;
  const auto& metadata = context->client_metadata();
  auto it = metadata.find("authorization");
  if (it != metadata.end() && it->second.size() == expected.size() &&
      CRYPTO_memcmp(it->second.data(), expected.data(), expected.size()) == 0) {
    return grpc::Status::OK;
  }
  config_.metrics->requests_unauthenticated++;
  return grpc::Status(
      grpc::StatusCode::UNAUTHENTICATED,
      it == metadata.end() ? "no bearer token (authorization metadata)" : "wrong bearer token");
}

grpc::Status Service::start(const ExecRequest& request, std::function<void(ExecResponse&&)> reply) {
  config_.metrics->requests++;
  if (draining()) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is draining (SIGTERM)");
  }
  auto group = std::make_shared<Group>();
  try {
    group->prepared = prepare_group(
        request, PrepareContext{config_.profiles, config_.cache, config_.allow_host_paths});
  } catch (const RequestError& e) {
    config_.metrics->requests_invalid++;
    return grpc::Status(e.code == RequestError::kNotFound ? grpc::StatusCode::NOT_FOUND
                                                          : grpc::StatusCode::INVALID_ARGUMENT,
                        e.message);
  } catch (const Error& e) {
    return grpc::Status(grpc::StatusCode::INTERNAL, e.what());
  }
  group->id = request.id();
  group->reply = std::move(reply);
  group->results.resize(request.jobs_size());
  group->remaining = request.jobs_size();
  group->submit_ns = monotonic_now_ns();
  std::vector<sched::JobRequest>& jobs = group->prepared.jobs;
  const size_t count = jobs.size();
  for (size_t i = 0; i < count; ++i) {
    // On the loop thread; the group's answer goes to a worker.
    jobs[i].on_done = [this, group, i](JobResult&& r) { job_done(group, i, std::move(r)); };
  }
  // The group is one entry of the queue: its jobs start together.
  sched::JobRequest first = std::move(jobs.front());
  for (size_t i = 1; i < count; ++i) first.group_rest.push_back(std::move(jobs[i]));
  first.keep_going = request.keep_going();
  jobs.clear();
  std::lock_guard lock(mu_);
  if (stopped_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is stopping");
  if (!config_.queue->try_submit(first)) {
    config_.metrics->requests_refused_full++;
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        fmt::format("the queue is full ({} requests waiting for {} places to run)",
                                    config_.queue_capacity, config_.parallelism));
  }
  config_.metrics->jobs_in_flight += static_cast<int64_t>(count);
  return grpc::Status::OK;
}

void Service::job_done(const std::shared_ptr<Group>& group, size_t index, JobResult&& result) {
  config_.metrics->jobs_in_flight--;
  config_.metrics->count_job(result);
  uint64_t elapsed_us = (monotonic_now_ns() - group->submit_ns) / 1000;
  uint64_t inside = result.setup_us() + result.run_us() + result.teardown_us();
  config_.metrics->queue_time.observe(elapsed_us > inside ? (elapsed_us - inside) / 1e6 : 0.0);
  if (config_.executor) {  // sampled here, on the loop thread that owns the pools
    if (auto* t = config_.executor->templates()) config_.metrics->templates_idle = t->stats().idle;
    if (auto* s = config_.executor->slots()) config_.metrics->slots_idle = s->idle();
  }
  group->results[index] = std::move(result);
  if (--group->remaining == 0) config_.work->post([this, group] { finish_group(group); });
}

void Service::finish_group(const std::shared_ptr<Group>& group) {
  // Off the loop: the cache's writes (a compiled binary, up to the output limit).
  for (const auto& [job, file] : group->prepared.cache_outs) {
    JobResult& r = group->results[job];
    if (file >= r.files_size()) continue;  // SETUP_ERROR: no files
    FileResult* f = r.mutable_files(file);
    if (!f->error().empty()) continue;
    try {
      f->set_file_id(config_.cache->put(f->content()));
      f->clear_content();
    } catch (const Error& e) {
      f->set_error(fmt::format("cache: {}", e.what()));
    }
  }
  group->prepared.pins.clear();
  ExecResponse response;
  response.set_id(group->id);
  for (JobResult& r : group->results) *response.add_results() = std::move(r);
  auto reply = std::move(group->reply);
  reply(std::move(response));
}

void Service::executor_stopped() {
  std::vector<sched::JobRequest> left;
  {
    std::lock_guard lock(mu_);
    stopped_ = true;
    while (auto job = config_.queue->try_pop()) left.push_back(std::move(*job));
  }
  for (sched::JobRequest& first : left) {
    std::vector<sched::JobRequest*> group{&first};
    for (auto& rest : first.group_rest) group.push_back(&rest);
    for (sched::JobRequest* job : group) {
      JobResult r;
      r.set_id(job->spec.id());
      r.set_status(INTERNAL_ERROR);
      r.set_message("interrupted: the server stopped before the job started");
      if (job->on_done) job->on_done(std::move(r));
    }
  }
}

void Service::on_result(JobResult&&) {}  // every job has its on_done

// --- Exec ---------------------------------------------------------------------------------------

grpc::ServerUnaryReactor* Service::Exec(grpc::CallbackServerContext* context,
                                        const ExecRequest* request, ExecResponse* response) {
  auto* reactor = context->DefaultReactor();
  grpc::Status status = authorize(context);
  if (status.ok()) {
    status = start(*request, [reactor, response](ExecResponse&& r) {
      *response = std::move(r);
      reactor->Finish(grpc::Status::OK);
    });
  }
  if (!status.ok()) reactor->Finish(status);
  return reactor;
}

// --- ExecStream ---------------------------------------------------------------------------------

// Reads requests as they come and writes each response as its group ends, one write at a time.
// It finishes when the client has closed its side (or the server drains) and every request it
// accepted is answered; it is deleted in OnDone, which gRPC calls after that.
class StreamReactor final : public grpc::ServerBidiReactor<ExecRequest, ExecResponse> {
 public:
  StreamReactor(Service* service, grpc::CallbackServerContext* context) : service_(service) {
    grpc::Status status = service_->authorize(context);
    if (!status.ok()) {
      finished_ = true;
      Finish(status);
      return;
    }
    service_->register_stream(this);
    registered_ = true;
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    std::lock_guard lock(mu_);
    if (!ok || finished_) {
      reads_done_ = true;
      maybe_finish();
      return;
    }
    ExecRequest request = std::move(request_);
    request_.Clear();
    ++in_flight_;
    grpc::Status status =
        service_->start(request, [this](ExecResponse&& r) { respond(std::move(r)); });
    if (!status.ok()) {
      ExecResponse r;
      r.set_id(request.id());
      r.set_error(fmt::format("{}: {}", code_name(status.error_code()), status.error_message()));
      respond(std::move(r));
    }
    if (draining_) {
      reads_done_ = true;  // nothing more is read; what is in flight is answered
      maybe_finish();
    } else {
      StartRead(&request_);
    }
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard lock(mu_);
    pending_.pop_front();
    if (!ok) {
      broken_ = true;  // the client is gone: the rest is dropped
      pending_.clear();
    }
    if (!pending_.empty()) {
      StartWrite(&pending_.front());
    } else {
      writing_ = false;
      maybe_finish();
    }
  }

  void OnDone() override {
    { std::lock_guard lock(mu_); }
    if (registered_) service_->unregister_stream(this);
    delete this;
  }

  void drain() {
    std::lock_guard lock(mu_);
    draining_ = true;
    maybe_finish();
  }

 private:
  static const char* code_name(grpc::StatusCode code) {
    switch (code) {
      case grpc::StatusCode::INVALID_ARGUMENT:
        return "INVALID_ARGUMENT";
      case grpc::StatusCode::NOT_FOUND:
        return "NOT_FOUND";
      case grpc::StatusCode::RESOURCE_EXHAUSTED:
        return "RESOURCE_EXHAUSTED";
      case grpc::StatusCode::UNAVAILABLE:
        return "UNAVAILABLE";
      default:
        return "INTERNAL";
    }
  }

  // A response for one accepted request (any thread).
  void respond(ExecResponse&& response) {
    std::lock_guard lock(mu_);
    --in_flight_;
    if (!broken_ && !finished_) {
      pending_.push_back(std::move(response));
      if (!writing_) {
        writing_ = true;
        StartWrite(&pending_.front());
        return;
      }
    }
    maybe_finish();
  }

  void maybe_finish() {
    if (!finished_ && (reads_done_ || draining_) && in_flight_ == 0 && !writing_) {
      finished_ = true;
      Finish(grpc::Status::OK);
    }
  }

  Service* service_;
  // gRPC may run a reaction inline, within the Start* or Finish that caused it.
  std::recursive_mutex mu_;
  ExecRequest request_;
  std::deque<ExecResponse> pending_;  // pending_.front() is being written when writing_
  int in_flight_ = 0;
  bool reads_done_ = false, writing_ = false, finished_ = false, broken_ = false;
  bool draining_ = false, registered_ = false;
};

grpc::ServerBidiReactor<ExecRequest, ExecResponse>* Service::ExecStream(
    grpc::CallbackServerContext* context) {
  return new StreamReactor(this, context);
}

void Service::register_stream(StreamReactor* stream) {
  std::lock_guard lock(streams_mu_);
  streams_.insert(stream);
  if (draining()) stream->drain();
}

void Service::unregister_stream(StreamReactor* stream) {
  std::lock_guard lock(streams_mu_);
  streams_.erase(stream);
}

bool Service::streams_done() {
  std::lock_guard lock(streams_mu_);
  return streams_.empty();
}

void Service::begin_drain() {
  draining_ = true;
  std::lock_guard lock(streams_mu_);
  std::vector<StreamReactor*> streams(streams_.begin(), streams_.end());
  for (StreamReactor* s : streams) s->drain();
}

// --- the file cache, Check ----------------------------------------------------------------------

grpc::ServerUnaryReactor* Service::PutFile(grpc::CallbackServerContext* context,
                                           const PutFileRequest* request, FileRef* response) {
  auto* reactor = context->DefaultReactor();
  grpc::Status status = authorize(context);
  if (!status.ok()) {
    reactor->Finish(status);
    return reactor;
  }
  config_.work->post([this, reactor, request, response] {
    try {
      if (request->content().size() > config_.cache->stats().capacity) {
        reactor->Finish(
            grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                         fmt::format("content: {} bytes, larger than the file cache ({} bytes)",
                                     request->content().size(), config_.cache->stats().capacity)));
        return;
      }
      response->set_file_id(config_.cache->put(request->content()));
      reactor->Finish(grpc::Status::OK);
    } catch (const Error& e) {
      reactor->Finish(grpc::Status(grpc::StatusCode::INTERNAL, e.what()));
    }
  });
  return reactor;
}

grpc::ServerUnaryReactor* Service::DeleteFile(grpc::CallbackServerContext* context,
                                              const FileRef* request,
                                              DeleteFileResponse* response) {
  auto* reactor = context->DefaultReactor();
  grpc::Status status = authorize(context);
  if (status.ok() && !valid_file_id(request->file_id())) {
    status = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "file_id: not a file id (64 lowercase hex digits)");
  }
  if (status.ok()) response->set_deleted(config_.cache->remove(request->file_id()));
  reactor->Finish(status);
  return reactor;
}

grpc::ServerUnaryReactor* Service::ListFiles(grpc::CallbackServerContext* context,
                                             const ListFilesRequest*, ListFilesResponse* response) {
  auto* reactor = context->DefaultReactor();
  grpc::Status status = authorize(context);
  if (status.ok()) {
    for (const FileCache::Info& info : config_.cache->list()) {
      CachedFile* f = response->add_files();
      f->set_file_id(info.id);
      f->set_size(info.size);
      f->set_in_use(info.pins);
    }
    FileCache::Stats stats = config_.cache->stats();
    response->set_total_bytes(stats.bytes);
    response->set_capacity_bytes(stats.capacity);
  }
  reactor->Finish(status);
  return reactor;
}

grpc::ServerUnaryReactor* Service::Check(grpc::CallbackServerContext* context, const CheckRequest*,
                                         CheckResponse* response) {
  auto* reactor = context->DefaultReactor();
  grpc::Status status = authorize(context);
  if (!status.ok()) {
    reactor->Finish(status);
    return reactor;
  }
  config_.work->post([this, reactor, response] {
    sched::CheckReport report = sched::check_system(config_.cgroup_parent);
    response->set_ok(report.ok);
    response->set_report(report.text);
    response->set_parallelism(config_.parallelism);
    response->set_queue_capacity(config_.queue_capacity);
    for (const std::string& name : config_.profiles->names()) response->add_profiles(name);
    response->set_version(JAILPOOL_VERSION);
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

}  // namespace jailpool::serve
