#include "serve/client.h"

#include <fcntl.h>
#include <fmt/core.h>
#include <grpcpp/grpcpp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include "common/error.h"
#include "common/unique_fd.h"
#include "isolate/files.h"
#include "service.grpc.pb.h"

namespace jailpool::serve {

namespace {

std::string read_host_file(const std::string& path, const std::string& field) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(field, fmt::format("{}: {}", path, std::strerror(errno)));
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string read_all_fd(int fd) {
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

void write_all_fd(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the reader went away
    done += static_cast<size_t>(n);
  }
}

// What to do on this host with a job's result.
struct Local {
  std::string id;
  struct Out {
    std::string path;
    bool append = false;
    int relay_fd = -1;
  } out[2];
  std::map<int, std::string> copy_out_dst;  // copy_out index -> host file
};

// A CLI job into a request the server takes: no host path left in it.
ExecRequest to_remote(JobSpec spec, const RemoteOptions& o, Local* local) {
  local->id = spec.id();
  if (!spec.profile().empty()) {
    // A profile file names the server's profile of that name (its --profile-dir).
    std::string name = spec.profile().substr(spec.profile().rfind('/') + 1);
    if (name.size() > 10 && name.substr(name.size() - 10) == ".textproto") {
      name.resize(name.size() - 10);
    }
    spec.set_profile(name);
  }
  if (spec.stdin().has_path()) {
    spec.mutable_stdin()->set_content(read_host_file(spec.stdin().path(), "stdin"));
  } else if (spec.stdin().has_inherit()) {
    if (isatty(o.inherit_fds[0])) {
      spec.clear_stdin();
    } else {
      spec.mutable_stdin()->set_content(read_all_fd(o.inherit_fds[0]));
    }
  }
  for (int i = 0; i < 2; ++i) {
    Stream* s = i == 0 ? spec.mutable_stdout() : spec.mutable_stderr();
    if (s->has_path()) {
      local->out[i].path = s->path();
      local->out[i].append = s->append();
    } else if (s->has_inherit()) {
      local->out[i].relay_fd = o.inherit_fds[i + 1];
    }
    if (s->has_path() || s->has_inherit()) {
      s->Clear();
      s->set_capture(true);
    }
  }
  for (int k = 0; k < spec.copy_in_size(); ++k) {
    CopyIn* c = spec.mutable_copy_in(k);
    if (!c->has_src()) continue;
    std::string field = fmt::format("copy_in[{}].src", k);
    struct stat st {};
    if (c->mode() == 0 && ::stat(c->src().c_str(), &st) == 0 && (st.st_mode & 0111)) {
      c->set_mode(0555);
    }
    c->set_content(read_host_file(c->src(), field));
  }
  for (int k = 0; k < spec.copy_out_size(); ++k) {
    CopyOut* c = spec.mutable_copy_out(k);
    if (c->dst().empty()) continue;
    local->copy_out_dst[k] = c->dst();
    c->clear_dst();
  }
  ExecRequest request;
  *request.add_jobs() = std::move(spec);
  return request;
}

void apply_local(JobResult& r, const Local& local) {
  for (int i = 0; i < 2; ++i) {
    const Local::Out& out = local.out[i];
    std::string data = i == 0 ? r.stdout() : r.stderr();
    if (!out.path.empty()) {
      int fd = ::open(out.path.c_str(),
                      O_WRONLY | O_CREAT | O_CLOEXEC | (out.append ? O_APPEND : O_TRUNC), 0644);
      if (fd >= 0) {
        write_all_fd(fd, data);
        ::close(fd);
      }
    } else if (out.relay_fd >= 0) {
      write_all_fd(out.relay_fd, data);
    }
    if (!out.path.empty() || out.relay_fd >= 0) {
      i == 0 ? r.clear_stdout() : r.clear_stderr();
    }
  }
  for (const auto& [k, dst] : local.copy_out_dst) {
    if (k >= r.files_size()) continue;
    FileResult* f = r.mutable_files(k);
    if (!f->error().empty()) continue;
    try {
      UniqueFd fd = isolate::create_host_file(dst);
      write_all_fd(fd.get(), f->content());
      f->clear_content();
      f->set_dst(dst);
    } catch (const Error& e) {
      f->set_error(e.what());
    }
  }
}

JobResult refused(const std::string& id, const std::string& why) {
  JobResult r;
  r.set_id(id);
  r.set_status(SETUP_ERROR);
  r.set_message(why);
  return r;
}

std::shared_ptr<grpc::Channel> connect(const RemoteOptions& o, std::string* token) {
  if (!o.token_file.empty()) {
    std::string t = read_host_file(o.token_file, "--token-file");
    while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.pop_back();
    *token = t;
  } else if (const char* env = std::getenv("JAILPOOL_TOKEN")) {
    *token = env;
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(1 << 30);
  args.SetMaxSendMessageSize(1 << 30);
  return grpc::CreateCustomChannel(o.server, grpc::InsecureChannelCredentials(), args);
}

void authorize(grpc::ClientContext& context, const std::string& token) {
  if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
}

}  // namespace

JobResult run_remote(const RemoteOptions& o, const JobSpec& spec) {
  std::string token;
  auto stub = Executor::NewStub(connect(o, &token));
  Local local;
  ExecRequest request = to_remote(spec, o, &local);
  request.set_id(spec.id());
  grpc::ClientContext context;
  authorize(context, token);
  ExecResponse response;
  grpc::Status status = stub->Exec(&context, request, &response);
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE ||
      status.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
    throw Error(fmt::format("--server {}: {}", o.server, status.error_message()));
  }
  if (!status.ok()) return refused(spec.id(), status.error_message());
  if (response.results_size() != 1) throw Error("--server: an answer without a result");
  JobResult r = std::move(*response.mutable_results(0));
  apply_local(r, local);
  return r;
}

void run_remote_batch(const RemoteOptions& o, const std::function<std::optional<JobSpec>()>& next,
                      const std::function<void(JobResult&&)>& on_result, unsigned in_flight) {
  std::string token;
  auto stub = Executor::NewStub(connect(o, &token));
  grpc::ClientContext context;
  authorize(context, token);
  auto stream = stub->ExecStream(&context);
  std::mutex mu;  // the callbacks, `locals`, `sending`
  std::condition_variable cv;
  std::map<std::string, Local> locals;  // by request id
  unsigned sending = 0;
  bool writer_failed = false;
  std::thread writer([&] {
    uint64_t serial = 0;
    for (;;) {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return sending < in_flight; });
      std::optional<JobSpec> spec = next();
      if (!spec) break;
      Local local;
      ExecRequest request;
      try {
        request = to_remote(std::move(*spec), o, &local);
      } catch (const Error& e) {
        on_result(refused(local.id, e.what()));
        continue;
      }
      request.set_id(std::to_string(++serial));
      locals[request.id()] = std::move(local);
      ++sending;
      lock.unlock();
      if (!stream->Write(request)) {
        writer_failed = true;
        break;
      }
    }
    stream->WritesDone();
  });
  ExecResponse response;
  while (stream->Read(&response)) {
    std::lock_guard lock(mu);
    auto it = locals.find(response.id());
    if (it == locals.end()) continue;
    Local local = std::move(it->second);
    locals.erase(it);
    --sending;
    cv.notify_one();
    if (!response.error().empty() || response.results_size() != 1) {
      on_result(refused(local.id, response.error()));
      continue;
    }
    JobResult r = std::move(*response.mutable_results(0));
    apply_local(r, local);
    on_result(std::move(r));
  }
  {
    std::lock_guard lock(mu);
    in_flight = ~0u;  // the writer must not wait for answers that will not come
    cv.notify_one();
  }
  writer.join();
  grpc::Status status = stream->Finish();
  if (!status.ok() || writer_failed) {
    throw Error(fmt::format("--server {}: {}", o.server,
                            status.ok() ? "the stream broke" : status.error_message()));
  }
}

}  // namespace jailpool::serve
