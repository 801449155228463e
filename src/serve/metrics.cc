#include "serve/metrics.h"

#include <arpa/inet.h>
#include <fmt/core.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/error.h"

namespace jailpool::serve {

void Histogram::observe(double seconds) {
  std::lock_guard lock(mu_);
  size_t i = 0;
  while (i < kBounds.size() && seconds > kBounds[i]) ++i;
  ++counts_[i];
  sum_ += seconds;
  ++count_;
}

void Histogram::print(std::string& out, const std::string& name, const std::string& help) const {
  std::lock_guard lock(mu_);
  out += fmt::format("# HELP {} {}\n# TYPE {} histogram\n", name, help, name);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < kBounds.size(); ++i) {
    cumulative += counts_[i];
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, kBounds[i], cumulative);
  }
  out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {}\n{}_count {}\n", name, count_, name,
                     sum_, name, count_);
}

void Metrics::count_job(const JobResult& r) {
  {
    std::lock_guard lock(mu);
    ++jobs_by_status[Status_Name(r.status())];
  }
  setup_time.observe(r.setup_us() / 1e6);
  run_time.observe(r.run_us() / 1e6);
  teardown_time.observe(r.teardown_us() / 1e6);
}

namespace {

// utime+stime (seconds) and RSS (bytes) of this process.
void own_usage(double* cpu_seconds, uint64_t* rss_bytes) {
  *cpu_seconds = 0;
  *rss_bytes = 0;
  std::ifstream stat("/proc/self/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), {});
  size_t paren = text.rfind(')');
  if (paren != std::string::npos) {
    std::istringstream fields(text.substr(paren + 2));
    std::string f;
    uint64_t utime = 0, stime = 0;
    for (int i = 3; i <= 15 && fields >> f; ++i) {  // field 3 is the state
      if (i == 14) utime = std::stoull(f);
      if (i == 15) stime = std::stoull(f);
    }
    *cpu_seconds = static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
  }
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) *rss_bytes = std::stoull(line.substr(6)) * 1024;
  }
}

}  // namespace

std::string Metrics::render(const std::function<void(std::string&)>& more) const {
  std::string out;
  out += "# HELP jailpool_jobs_total Jobs ended, by status.\n# TYPE jailpool_jobs_total counter\n";
  {
    std::lock_guard lock(const_cast<std::mutex&>(mu));
    for (const auto& [status, n] : jobs_by_status)
      out += fmt::format("jailpool_jobs_total{{status=\"{}\"}} {}\n", status, n);
  }
  out += fmt::format(
      "# HELP jailpool_requests_total Exec requests received.\n# TYPE jailpool_requests_total "
      "counter\njailpool_requests_total {}\n"
      "# HELP jailpool_requests_refused_total Requests refused, by reason.\n"
      "# TYPE jailpool_requests_refused_total counter\n"
      "jailpool_requests_refused_total{{reason=\"queue_full\"}} {}\n"
      "jailpool_requests_refused_total{{reason=\"invalid\"}} {}\n"
      "jailpool_requests_refused_total{{reason=\"unauthenticated\"}} {}\n",
      requests.load(), requests_refused_full.load(), requests_invalid.load(),
      requests_unauthenticated.load());
  int64_t in_flight = jobs_in_flight.load();
  int64_t busy = std::min<int64_t>(in_flight, parallelism);
  out += fmt::format(
      "# HELP jailpool_queue_depth Jobs accepted and waiting for a place to run.\n"
      "# TYPE jailpool_queue_depth gauge\njailpool_queue_depth {}\n"
      "# HELP jailpool_jobs_running Jobs running.\n# TYPE jailpool_jobs_running gauge\n"
      "jailpool_jobs_running {}\n"
      "# HELP jailpool_pool_idle Idle pooled jails, by kind.\n# TYPE jailpool_pool_idle gauge\n"
      "jailpool_pool_idle{{kind=\"template\"}} {}\njailpool_pool_idle{{kind=\"slot\"}} {}\n"
      "# HELP jailpool_pool_busy Pooled or fresh jails running a job.\n"
      "# TYPE jailpool_pool_busy gauge\njailpool_pool_busy {}\n",
      std::max<int64_t>(0, in_flight - busy), busy, templates_idle.load(), slots_idle.load(), busy);
  queue_time.print(out, "jailpool_queue_seconds", "From the request to the job's start.");
  setup_time.print(out, "jailpool_setup_seconds", "From the job's start to its exec.");
  run_time.print(out, "jailpool_run_seconds", "From the exec to the exit.");
  teardown_time.print(out, "jailpool_teardown_seconds", "From the exit to the result.");
  if (more) more(out);
  double cpu = 0;
  uint64_t rss = 0;
  own_usage(&cpu, &rss);
  out += fmt::format(
      "# HELP process_cpu_seconds_total jailpool's own CPU time (user+system).\n"
      "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {}\n"
      "# HELP process_resident_memory_bytes jailpool's own resident memory.\n"
      "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {}\n",
      cpu, rss);
  return out;
}

void split_host_port(const std::string& value, const std::string& field, std::string* host,
                     int* port) {
  size_t colon = value.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    throw ConfigError(field, fmt::format("\"{}\" is not HOST:PORT", value));
  }
  std::string h = value.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  std::string p = value.substr(colon + 1);
  int n = -1;
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), n);
  if (ec != std::errc() || end != p.data() + p.size() || n < 0 || n > 65535) {
    throw ConfigError(field, fmt::format("\"{}\": bad port \"{}\"", value, p));
  }
  *host = h;
  *port = n;
}

MetricsEndpoint::MetricsEndpoint(const std::string& listen, std::function<std::string()> render)
    : render_(std::move(render)) {
  std::string host;
  split_host_port(listen, "--metrics", &host, &port_);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port = std::to_string(port_);
  if (host == "localhost") host = "127.0.0.1";
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0 || !res) {
    throw ConfigError("--metrics", fmt::format("\"{}\": not a numeric address", listen));
  }
  listen_fd_.reset(::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int one = 1;
  setsockopt(listen_fd_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  int rc = listen_fd_ ? ::bind(listen_fd_.get(), res->ai_addr, res->ai_addrlen) : -1;
  freeaddrinfo(res);
  if (rc < 0 || ::listen(listen_fd_.get(), 16) < 0) {
    throw ConfigError("--metrics", fmt::format("{}: {}", listen, std::strerror(errno)));
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  getsockname(listen_fd_.get(), reinterpret_cast<sockaddr*>(&bound), &len);
  port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  stop_fd_.reset(::eventfd(0, EFD_CLOEXEC));
  thread_ = std::thread([this] { serve(); });
}

MetricsEndpoint::~MetricsEndpoint() {
  uint64_t one = 1;
  (void)::write(stop_fd_.get(), &one, sizeof one);
  thread_.join();
}

void MetricsEndpoint::serve() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_.get(), POLLIN, 0}, {stop_fd_.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents) return;
    UniqueFd conn(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn) continue;
    timeval timeout{1, 0};
    setsockopt(conn.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt(conn.get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    // The request itself does not matter (one endpoint): read its head, answer, close.
    char buf[4096];
    std::string head;
    while (head.find("\r\n\r\n") == std::string::npos && head.size() < 16384) {
      ssize_t n = ::read(conn.get(), buf, sizeof buf);
      if (n <= 0) break;
      head.append(buf, static_cast<size_t>(n));
    }
    std::string body = render_();
    std::string reply = fmt::format(
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: "
        "{}\r\nConnection: close\r\n\r\n{}",
        body.size(), body);
    size_t done = 0;
    while (done < reply.size()) {
      ssize_t n = ::send(conn.get(), reply.data() + done, reply.size() - done, MSG_NOSIGNAL);
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
  }
}

}  // namespace jailpool::serve
