// The CLI's subcommands beyond `run` and `check`.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace jailpool::cli {

struct BatchOptions {
  unsigned jobs = 2;
  std::string profile_path;
  std::string input = "-";
  std::string output = "-";
  std::string resume_path;
  bool use_pool = true;
  bool use_slots = true;     // --no-slots: pooled templates only (ExecutorOptions::use_slots)
  unsigned slot_spares = 1;  // --slot-spares (ExecutorOptions::slot_spares)
  std::string cgroup_parent;
  std::string server;      // --server: a running `jailpool serve` runs the jobs
  std::string token_file;  // its bearer token (else $JAILPOOL_TOKEN)
};
int cmd_batch(const BatchOptions& options);

struct BenchOptions {
  unsigned count = 1000;
  unsigned jobs = 1;
  std::string profile_path;
  bool json = false;
  std::string cgroup_parent;
  std::vector<std::string> command;
  bool precision = false;  // --precision: cmd_precision instead (count = runs per cell)
  // --cpu-limit-method (with --precision): the CPU-limit overshoot rows for each, interleaved.
  std::string cpu_limit_methods = "auto";
  bool use_slots = true;     // --no-slots: the pool row uses templates only (A/B of the slots)
  unsigned slot_spares = 1;  // --slot-spares (ExecutorOptions::slot_spares)
  // --slots (with --precision): the jobs run in slots (the pool) instead of fresh jails.
  bool precision_slots = false;
  unsigned rounds = 1;  // --rounds: the modes in turn, this many times (each -n runs)
};
int cmd_bench(const BenchOptions& options);
// `bench --precision`: CPU-limit overshoot, CPU and memory accounting error, CV (precision.cc).
int cmd_precision(const BenchOptions& options);

// Set by the signal handlers: 1 = stop taking jobs, 2 = also kill the running ones.
void request_stop(int level);

}  // namespace jailpool::cli
