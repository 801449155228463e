// A load generator for `jailpool serve` (bench/serve.sh drives it): no-op jobs through
//   stream N INFLIGHT      one ExecStream, INFLIGHT requests in flight: jobs/s
//   latency N              N Exec calls one after the other: p50, p90, p99 of the round trip
//   clients C R            C clients (own connections) x R Exec calls each, concurrently:
//                          every request answered exactly once?
// Usage: serve_bench ADDRESS PROGRAM MODE ARGS...
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "service.grpc.pb.h"

using namespace jailpool;
using Clock = std::chrono::steady_clock;

static ExecRequest noop(const std::string& program, const std::string& id) {
  ExecRequest r;
  r.set_id(id);
  JobSpec* job = r.add_jobs();
  job->set_id(id);
  job->add_argv(program);
  return r;
}

static std::shared_ptr<grpc::Channel> channel(const std::string& address, int n = 0) {
  grpc::ChannelArguments args;
  args.SetInt("grpc.use_local_subchannel_pool", 1);  // a connection of its own
  args.SetInt("jailpool.bench_client", n);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s ADDRESS PROGRAM stream N INFLIGHT | latency N | clients C R\n",
                 argv[0]);
    return 2;
  }
  const std::string address = argv[1], program = argv[2], mode = argv[3];
  if (mode == "stream" && argc == 6) {
    const int n = std::atoi(argv[4]), in_flight = std::atoi(argv[5]);
    auto stub = Executor::NewStub(channel(address));
    grpc::ClientContext context;
    auto stream = stub->ExecStream(&context);
    std::mutex mu;
    std::condition_variable cv;
    int sent = 0, answered = 0, failed = 0;
    auto t0 = Clock::now();
    std::thread writer([&] {
      for (int i = 0; i < n; ++i) {
        {
          std::unique_lock lock(mu);
          cv.wait(lock, [&] { return sent - answered < in_flight; });
          ++sent;
        }
        if (!stream->Write(noop(program, std::to_string(i)))) break;
      }
      stream->WritesDone();
    });
    ExecResponse response;
    while (stream->Read(&response)) {
      std::lock_guard lock(mu);
      ++answered;
      if (!response.error().empty() || response.results(0).status() != OK) ++failed;
      cv.notify_one();
    }
    writer.join();
    double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    grpc::Status status = stream->Finish();
    std::printf("stream: %d jobs in %.3f s = %.1f jobs/s (%d failed, status %d)\n", answered, secs,
                answered / secs, failed, status.error_code());
    return failed || answered != n ? 1 : 0;
  }
  if (mode == "latency" && argc == 5) {
    const int n = std::atoi(argv[4]);
    auto stub = Executor::NewStub(channel(address));
    std::vector<double> us;
    std::vector<double> inside;  // setup + run + teardown, as the result reports them
    for (int i = 0; i < n; ++i) {
      grpc::ClientContext context;
      ExecResponse response;
      auto t0 = Clock::now();
      grpc::Status status = stub->Exec(&context, noop(program, std::to_string(i)), &response);
      double t = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
      if (!status.ok() || response.results(0).status() != OK) return 1;
      if (i >= n / 10) {  // the first tenth warms the pool
        us.push_back(t);
        const JobResult& r = response.results(0);
        inside.push_back(static_cast<double>(r.setup_us() + r.run_us() + r.teardown_us()));
      }
    }
    std::sort(us.begin(), us.end());
    std::sort(inside.begin(), inside.end());
    auto pct = [](const std::vector<double>& v, double p) {
      return v[std::min(v.size() - 1, size_t(p * v.size()))];
    };
    std::printf(
        "latency: p50 %.0f us, p90 %.0f us, p99 %.0f us (job's own setup+run+teardown p50 %.0f "
        "us)\n",
        pct(us, 0.5), pct(us, 0.9), pct(us, 0.99), pct(inside, 0.5));
    return 0;
  }
  if (mode == "clients" && argc == 6) {
    const int clients = std::atoi(argv[4]), per_client = std::atoi(argv[5]);
    std::atomic<int> ok{0}, refused{0}, wrong{0};
    std::vector<std::thread> threads;
    auto t0 = Clock::now();
    for (int c = 0; c < clients; ++c) {
      threads.emplace_back([&, c] {
        auto stub = Executor::NewStub(channel(address, c));
        for (int i = 0; i < per_client; ++i) {
          std::string id = std::to_string(c) + "-" + std::to_string(i);
          grpc::ClientContext context;
          context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(300));
          ExecResponse response;
          grpc::Status status = stub->Exec(&context, noop(program, id), &response);
          if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
            ++refused;
          } else if (status.ok() && response.id() == id && response.results_size() == 1 &&
                     response.results(0).id() == id && response.results(0).status() == OK) {
            ++ok;
          } else {
            ++wrong;
          }
        }
      });
    }
    for (auto& t : threads) t.join();
    double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    std::printf(
        "clients: %d x %d requests in %.2f s: %d answered OK, %d RESOURCE_EXHAUSTED, %d wrong\n",
        clients, per_client, secs, ok.load(), refused.load(), wrong.load());
    return wrong.load() ? 1 : 0;
  }
  std::fprintf(stderr, "bad mode\n");
  return 2;
}
