// `jailpool worker`, `submit` and `collect`: jobs through Redis Streams, many machines. Another
// thin front end over the executor (sched/), beside cli/; the CLI registers the subcommands.
//
//   submit --> STREAM (jailpool:jobs) --> workers (consumer group) --> RESULTS --> collect
//
// An entry of STREAM: `spec` (a JobSpec as JSON, as a line of `batch`) and `id`. A worker
// reads entries with XREADGROUP (never more than it can run: -j running plus -j prefetched),
// runs them through the executor, XADDs each result to RESULTS (fields id, result, worker,
// attempt) and then XACKs: a job may run twice after a crash, never zero times.
#pragma once

#include <string>

namespace jailpool::worker {

struct RedisOptions {
  std::string url;        // --redis
  std::string auth_file;  // --auth-file: the password (first line)
  std::string stream = "jailpool:jobs";
  std::string results = "jailpool:results";
};

struct WorkerOptions {
  RedisOptions redis;
  std::string group = "jailpool";
  std::string consumer;  // default: HOSTNAME-PID
  std::string dead;      // default: STREAM:dead
  unsigned jobs = 2;
  std::string profile_path;
  std::string claim_after;  // "": per entry, 2 x (its wall limit + extra time) + 5 s
  unsigned max_deliveries = 5;
  bool use_pool = true;
  bool use_slots = true;
  std::string cgroup_parent = "jailpool";
};
int cmd_worker(const WorkerOptions& options);

struct SubmitOptions {
  RedisOptions redis;
  std::string group = "jailpool";
  std::string input = "-";
};
int cmd_submit(const SubmitOptions& options);

struct CollectOptions {
  RedisOptions redis;
  std::string output = "-";
  std::string ids_path;
  bool wait = false;
};
int cmd_collect(const CollectOptions& options);

// Async-signal-safe: 1 = stop reading, finish and publish the running jobs; 2 = also kill the
// running ones (their entries stay pending, for another worker to claim).
void request_stop(int level);

}  // namespace jailpool::worker
