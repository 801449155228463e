// The server's metrics, in the Prometheus text format (exposition format 0.0.4), served over
// plain HTTP on --metrics HOST:PORT. Thread-safe.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "common/unique_fd.h"
#include "jailpool.pb.h"

namespace jailpool::serve {

class Histogram {
 public:
  static constexpr std::array<double, 14> kBounds = {
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5};
  void observe(double seconds);
  void print(std::string& out, const std::string& name, const std::string& help) const;

 private:
  mutable std::mutex mu_;
  std::array<uint64_t, kBounds.size() + 1> counts_{};
  double sum_ = 0;
  uint64_t count_ = 0;
};

struct Metrics {
  std::mutex mu;
  std::map<std::string, uint64_t> jobs_by_status;  // under mu
  std::atomic<uint64_t> requests{0}, requests_refused_full{0}, requests_invalid{0};
  std::atomic<uint64_t> requests_unauthenticated{0};
  std::atomic<int64_t> jobs_in_flight{0};                  // accepted, result not yet read
  std::atomic<uint64_t> templates_idle{0}, slots_idle{0};  // sampled on the loop thread
  unsigned parallelism = 1;
  Histogram queue_time, setup_time, run_time, teardown_time;

  void count_job(const JobResult& r);
  // Everything, with the cache's figures and jailpool's own CPU and RSS (from /proc/self).
  std::string render(const std::function<void(std::string&)>& more) const;
};

// A minimal HTTP/1.0 server: every request gets the metrics. Its own thread.
class MetricsEndpoint {
 public:
  // host:port (port 0: any; port() tells).
  MetricsEndpoint(const std::string& listen, std::function<std::string()> render);
  ~MetricsEndpoint();
  int port() const { return port_; }

 private:
  void serve();
  UniqueFd listen_fd_, stop_fd_;
  int port_ = 0;
  std::function<std::string()> render_;
  std::thread thread_;
};

// HOST:PORT (HOST may be [v6]) into its parts; throws ConfigError naming `field`.
void split_host_port(const std::string& value, const std::string& field, std::string* host,
                     int* port);

}  // namespace jailpool::serve
