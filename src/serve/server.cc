// cmd_serve: the server's life. Start: profiles, cache, executor, socket, then READY=1.
// SIGTERM or SIGINT: drain (no new request, every accepted one answered), then exit; a second
// signal, or --drain-timeout, kills the running jobs (answered as interrupted).
#include <fcntl.h>
#include <fmt/core.h>
#include <grp.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <pwd.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/error.h"
#include "isolate/seccomp_cache.h"
#include "serve/file_cache.h"
#include "serve/metrics.h"
#include "serve/notify.h"
#include "serve/requests.h"
#include "serve/serve.h"
#include "serve/service.h"

namespace jailpool::serve {

namespace {

std::string read_secret(const std::string& path, const char* field) {
  std::ifstream in(path);
  if (!in) throw ConfigError(field, fmt::format("{}: {}", path, std::strerror(errno)));
  std::stringstream s;
  s << in.rdbuf();
  std::string text = s.str();
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
    text.pop_back();
  }
  return text;
}

std::string read_token(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) < 0) {
    throw ConfigError("--token-file", fmt::format("{}: {}", path, std::strerror(errno)));
  }
  if (st.st_mode & 0077) {
    throw ConfigError("--token-file", fmt::format("{}: mode 0{:o}: readable by others than its "
                                                  "owner (chmod 600)",
                                                  path, st.st_mode & 07777));
  }
  std::string token = read_secret(path, "--token-file");
  if (token.size() < 16) {
    throw ConfigError("--token-file", fmt::format("{}: the token has {} characters (at least 16)",
                                                  path, token.size()));
  }
  for (char c : token) {
    if (c < 0x21 || c > 0x7e) {
      throw ConfigError("--token-file", fmt::format("{}: the token must be printable ASCII "
                                                    "without spaces",
                                                    path));
    }
  }
  return token;
}

// The unix socket's path: a socket a dead server left is removed; a live one is refused.
void clear_stale_socket(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) < 0) return;
  if (!S_ISSOCK(st.st_mode)) {
    throw ConfigError("--listen", fmt::format("{}: exists and is not a socket", path));
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    throw ConfigError("--listen", fmt::format("{}: another server is listening there", path));
  }
  if (::unlink(path.c_str()) < 0 && errno != ENOENT) throw_errno("unlink " + path);
}

uid_t lookup_user(const std::string& name) {
  uid_t id = 0;
  auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), id);
  if (ec == std::errc() && end == name.data() + name.size()) return id;
  passwd* pw = ::getpwnam(name.c_str());
  if (!pw) throw ConfigError("--socket-owner", fmt::format("no user \"{}\"", name));
  return pw->pw_uid;
}

gid_t lookup_group(const std::string& name) {
  gid_t id = 0;
  auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), id);
  if (ec == std::errc() && end == name.data() + name.size()) return id;
  group* gr = ::getgrnam(name.c_str());
  if (!gr) throw ConfigError("--socket-group", fmt::format("no group \"{}\"", name));
  return gr->gr_gid;
}

void make_dirs(const std::string& path, mode_t mode) {
  std::string partial;
  std::stringstream parts(path);
  std::string part;
  while (std::getline(parts, part, '/')) {
    if (part.empty()) continue;
    partial += "/" + part;
    if (::mkdir(partial.c_str(), mode) < 0 && errno != EEXIST) throw_errno("mkdir " + partial);
  }
}

}  // namespace

int cmd_serve(const ServeOptions& o) {
  std::string listen = o.listen.empty() ? "unix:/run/jailpool/serve.sock" : o.listen;
  const bool is_unix = listen.rfind("unix:", 0) == 0;
  std::string socket_path;
  std::string token;
  if (is_unix) {
    socket_path = listen.substr(5);
    if (socket_path.empty() || socket_path.front() != '/' ||
        socket_path.size() >= sizeof(sockaddr_un{}.sun_path)) {
      throw ConfigError("--listen", fmt::format("\"{}\": unix:PATH needs an absolute path of at "
                                                "most {} bytes",
                                                listen, sizeof(sockaddr_un{}.sun_path) - 1));
    }
    if (o.socket_mode & ~0777u) {
      throw ConfigError("--socket-mode",
                        fmt::format("0{:o} is not a permission mode", o.socket_mode));
    }
    if ((o.socket_mode & 0007) && o.token_file.empty()) {
      // Whoever can connect runs jobs as root's sandbox: not every local user.
      throw ConfigError("--socket-mode",
                        fmt::format("0{:o} lets every local user connect: give the others no "
                                    "access (e.g. 0660), or a --token-file",
                                    o.socket_mode));
    }
  } else {
    std::string host;
    int port = 0;
    split_host_port(listen, "--listen", &host, &port);
    if (o.token_file.empty()) {
      throw ConfigError("--listen", fmt::format("TCP ({}) needs a --token-file: only a unix "
                                                "socket goes without one",
                                                listen));
    }
  }
  if (!o.token_file.empty()) token = read_token(o.token_file);
  if (o.tls_cert.empty() != o.tls_key.empty()) {
    throw ConfigError("--tls-cert", "--tls-cert and --tls-key go together");
  }
  if (o.jobs == 0) throw ConfigError("-j", "at least 1");
  if (o.queue == 0 || o.queue > 65534) throw ConfigError("--queue", "1..65534");

  // The server's own directory: the cache, and a lock that one server at a time holds.
  std::string state_dir = o.state_dir;
  if (state_dir.empty()) {
    state_dir = fmt::format("/run/jailpool/serve-{}", sha256_hex(listen).substr(0, 12));
  }
  make_dirs(state_dir, 0700);
  UniqueFd lock(::open((state_dir + "/lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!lock) throw_errno("open " + state_dir + "/lock");
  if (::flock(lock.get(), LOCK_EX | LOCK_NB) < 0) {
    throw ConfigError("--state-dir",
                      fmt::format("{}: another jailpool serve uses this directory", state_dir));
  }
  Profiles profiles(o.profile_dir);
  FileCache cache(state_dir + "/cache", o.cache_bytes);

  // Signals go to sigwait below, never to a handler: every thread made from here on has them
  // blocked (the jobs' own mask is reset before their exec).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  sched::ExecutorOptions eopts;
  eopts.cgroup_parent = o.cgroup_parent;
  eopts.parallelism = o.jobs;
  eopts.use_pool = true;
  eopts.use_slots = o.use_slots;
  eopts.seccomp_cache_dir = isolate::kDefaultSeccompCacheDir;
  sched::Executor executor(eopts);  // reclaims what a killed server left in its cgroups
  sched::SubmissionQueue queue(o.queue);
  Metrics metrics;
  metrics.parallelism = o.jobs;
  WorkQueue work(2);
  ServiceConfig config;
  config.profiles = &profiles;
  config.cache = &cache;
  config.metrics = &metrics;
  config.queue = &queue;
  config.executor = &executor;
  config.work = &work;
  config.token = token;
  config.allow_host_paths = o.allow_host_paths;
  config.parallelism = o.jobs;
  config.queue_capacity = o.queue;
  config.cgroup_parent = o.cgroup_parent;
  Service service(config);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (!o.tls_cert.empty()) {
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back(
        {read_secret(o.tls_key, "--tls-key"), read_secret(o.tls_cert, "--tls-cert")});
    credentials = grpc::SslServerCredentials(ssl);
  }
  int selected_port = 0;
  if (is_unix) {
    make_dirs(socket_path.substr(0, socket_path.rfind('/')), 0755);
    clear_stale_socket(socket_path);
    builder.AddListeningPort(listen, credentials);
  } else {
    builder.AddListeningPort(listen, credentials, &selected_port);
  }
  builder.RegisterService(&service);
  builder.SetMaxReceiveMessageSize(static_cast<int>(std::min<uint64_t>(o.cache_bytes, 1u << 30)) +
                                   (1 << 20));
  builder.SetMaxSendMessageSize(1 << 30);
  // The socket is made by BuildAndStart: owner-only until its mode and owner are set.
  mode_t old_umask = ::umask(0177);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ::umask(old_umask);
  if (!server) throw Error(fmt::format("cannot listen on {}", listen));
  if (is_unix) {
    uid_t uid = o.socket_owner.empty() ? static_cast<uid_t>(-1) : lookup_user(o.socket_owner);
    gid_t gid = o.socket_group.empty() ? static_cast<gid_t>(-1) : lookup_group(o.socket_group);
    if (::chown(socket_path.c_str(), uid, gid) < 0) throw_errno("chown " + socket_path);
    if (::chmod(socket_path.c_str(), o.socket_mode) < 0) throw_errno("chmod " + socket_path);
  }
  std::unique_ptr<MetricsEndpoint> metrics_endpoint;
  if (!o.metrics.empty()) {
    metrics_endpoint = std::make_unique<MetricsEndpoint>(o.metrics, [&] {
      return metrics.render([&](std::string& out) {
        FileCache::Stats s = cache.stats();
        double total = static_cast<double>(s.hits + s.misses);
        out += fmt::format(
            "# HELP jailpool_file_cache_bytes Bytes in the file cache.\n"
            "# TYPE jailpool_file_cache_bytes gauge\njailpool_file_cache_bytes {}\n"
            "# HELP jailpool_file_cache_capacity_bytes The file cache's cap.\n"
            "# TYPE jailpool_file_cache_capacity_bytes gauge\n"
            "jailpool_file_cache_capacity_bytes {}\n"
            "# HELP jailpool_file_cache_files Files in the file cache.\n"
            "# TYPE jailpool_file_cache_files gauge\njailpool_file_cache_files {}\n"
            "# HELP jailpool_file_cache_lookups_total Lookups of a file_id, by outcome.\n"
            "# TYPE jailpool_file_cache_lookups_total counter\n"
            "jailpool_file_cache_lookups_total{{outcome=\"hit\"}} {}\n"
            "jailpool_file_cache_lookups_total{{outcome=\"miss\"}} {}\n"
            "# HELP jailpool_file_cache_hit_ratio Hits over lookups.\n"
            "# TYPE jailpool_file_cache_hit_ratio gauge\njailpool_file_cache_hit_ratio {}\n"
            "# HELP jailpool_file_cache_evictions_total Files evicted under the cap.\n"
            "# TYPE jailpool_file_cache_evictions_total counter\n"
            "jailpool_file_cache_evictions_total {}\n",
            s.bytes, s.capacity, s.entries, s.hits, s.misses,
            total > 0 ? static_cast<double>(s.hits) / total : 0.0, s.evictions);
      });
    });
  }

  std::thread executor_thread([&] {
    try {
      executor.run(queue, [&](JobResult&& r) { service.on_result(std::move(r)); });
    } catch (const std::exception& e) {
      fmt::print(stderr, "jailpool serve: executor: {}\n", e.what());
    }
    service.executor_stopped();
  });

  if (is_unix) {
    fmt::print("jailpool serve: listening on unix:{}\n", socket_path);
  } else {
    std::string host = listen.substr(0, listen.rfind(':'));
    fmt::print("jailpool serve: listening on {}:{}\n", host, selected_port);
  }
  if (metrics_endpoint)
    fmt::print("jailpool serve: metrics on port {}\n", metrics_endpoint->port());
  std::fflush(stdout);
  notify_systemd(fmt::format("READY=1\nMAINPID={}\nSTATUS=listening on {}", ::getpid(), listen));

  int sig = 0;
  while (sigwait(&signals, &sig) != 0) {
  }
  fmt::print(stderr, "jailpool serve: {}: draining (a second signal kills the running jobs)\n",
             sigabbrev_np(sig));
  notify_systemd("STOPPING=1");
  service.begin_drain();
  if (auto* health = server->GetHealthCheckService()) health->SetServingStatus(false);
  std::atomic<bool> drained{false};
  std::thread watchdog([&] {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(o.drain_timeout_s);
    while (!drained.load()) {
      timespec tick{0, 100 * 1000 * 1000};
      int s = sigtimedwait(&signals, nullptr, &tick);
      if (s > 0 || std::chrono::steady_clock::now() >= deadline) {
        if (s > 0)
          fmt::print(stderr, "jailpool serve: {}: killing the running jobs\n", sigabbrev_np(s));
        executor.stop(true);
        break;
      }
    }
  });
  // The streams end as their requests are answered. Their clients read the final status, and
  // answer it (an HTTP/2 RST_STREAM for a stream they never half-closed), a moment later: a
  // Shutdown at once closed the connections under that write, failing the call with
  // UNAVAILABLE "Broken pipe" after all its answers (1 drain in 6-20 here). So the connections
  // stay 100 ms past the last stream's end (new requests are refused meanwhile).
  const auto streams_deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(o.drain_timeout_s);
  while (!service.streams_done() && std::chrono::steady_clock::now() < streams_deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  // Waits for every call: each accepted request is answered. Past the deadline (a client that
  // reads nothing), gRPC cancels what is left.
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(o.drain_timeout_s + 10));
  queue.close();
  executor_thread.join();
  drained = true;
  watchdog.join();
  server->Wait();
  if (is_unix) ::unlink(socket_path.c_str());
  fmt::print(stderr, "jailpool serve: stopped\n");
  return 0;
}

}  // namespace jailpool::serve
