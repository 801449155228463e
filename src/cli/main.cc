// jailpool: the command-line front end. Thin: parses arguments (CLI11), builds a JobSpec and
// hands it to the library.
#include <fmt/core.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "common/error.h"
#include "common/units.h"
#include "config/profile.h"
#include "isolate/cgroup.h"
#include "isolate/features.h"
#include "isolate/perf_counter.h"
#include "isolate/seccomp_cache.h"
#include "sched/check.h"
#include "sched/executor.h"
#include "serve/client.h"
#include "serve/serve.h"
#include "worker/worker.h"

namespace {

using namespace jailpool;

constexpr int kExitJailpoolFailed = 125;
constexpr int kExitTimeLimit = 124;
constexpr int kExitUsage = 2;

sched::Executor* g_executor = nullptr;

volatile sig_atomic_t g_signals = 0;
void on_signal(int) {
  // run: kill the job. batch/bench: the first signal stops taking jobs, the second kills.
  g_signals = g_signals + 1;
  if (g_executor) g_executor->stop(true);
  cli::request_stop(g_signals);
  worker::request_stop(g_signals);
}

std::string default_cgroup_parent() {
  const char* env = std::getenv("JAILPOOL_CGROUP_PARENT");
  return env && *env ? env : "jailpool";
}

std::string human_bytes(uint64_t b) {
  if (b >= (1ull << 30)) return fmt::format("{:.1f} GiB", b / double(1ull << 30));
  if (b >= (1ull << 20)) return fmt::format("{:.1f} MiB", b / double(1ull << 20));
  if (b >= (1ull << 10)) return fmt::format("{:.1f} KiB", b / double(1ull << 10));
  return fmt::format("{} B", b);
}

int exit_status_for(const JobResult& r) {
  switch (r.status()) {
    case OK:
      return 0;
    case NONZERO_EXIT:
      return r.exit_code();
    case TIME_LIMIT_EXCEEDED:
    case WALL_TIME_LIMIT_EXCEEDED:
      return kExitTimeLimit;
    case SETUP_ERROR:
    case INTERNAL_ERROR:
    case STATUS_UNSPECIFIED:
      return kExitJailpoolFailed;
    case SECCOMP_VIOLATION:
      return 128 + SIGSYS;  // also when jailpool, told by the seccomp listener, did the kill
    default:
      return r.signal() != 0 ? 128 + r.signal() : 128 + SIGKILL;
  }
}

struct RunOptions {
  std::string profile_path;
  std::string cpu_time, wall_time, extra_time, memory, output_limit;
  std::optional<uint32_t> pids;
  std::string cpus, cpu_quota;
  std::string stdin_path, stdout_path, stderr_path;
  std::vector<std::string> binds, env;
  std::vector<std::string> copy_in, copy_out;
  std::string cwd;
  bool json = false;
  bool seccomp_log = false;
  std::string cgroup_parent = default_cgroup_parent();
  std::string server, token_file;  // --server: a running `jailpool serve` runs the job
  std::vector<std::string> command;
};

int cmd_run(const RunOptions& o) {
  // With --server, the server's profile of that file's name.
  Profile profile = o.profile_path.empty() || !o.server.empty() ? default_profile()
                                                                : load_profile_file(o.profile_path);
  JobSpec spec;
  spec.set_id("run");
  for (const auto& a : o.command) spec.add_argv(a);
  for (const auto& e : o.env) spec.add_env(e);
  spec.set_cwd(o.cwd);
  for (const auto& b : o.binds) *spec.add_bind() = parse_bind_flag(b);
  for (const auto& c : o.copy_in) *spec.add_copy_in() = parse_copy_in_flag(c);
  for (const auto& c : o.copy_out) {
    CopyOut* out = spec.add_copy_out();
    *out = parse_copy_out_flag(c);
    if (out->dst().empty() && !o.json) {
      throw ConfigError("--copy-out", fmt::format("\"{}\" has no HOSTDST: its content goes into "
                                                  "the result, which only --json prints",
                                                  c));
    }
  }
  Limits* limits = spec.mutable_limits();
  if (!o.cpu_time.empty())
    limits->set_cpu_time_ms((parse_duration_us(o.cpu_time, "--cpu-time") + 999) / 1000);
  if (!o.wall_time.empty())
    limits->set_wall_time_ms((parse_duration_us(o.wall_time, "--wall-time") + 999) / 1000);
  if (!o.extra_time.empty()) {
    limits->set_extra_time_ms((parse_duration_us(o.extra_time, "--extra-time") + 999) / 1000);
  }
  if (!o.memory.empty()) limits->set_memory_bytes(parse_size_bytes(o.memory, "--memory"));
  if (!o.output_limit.empty())
    limits->set_output_bytes(parse_size_bytes(o.output_limit, "--output-limit"));
  if (o.pids) limits->set_pids(*o.pids);
  if (!o.cpus.empty()) limits->set_cpus(o.cpus);
  if (!o.cpu_quota.empty()) {
    std::string_view v = o.cpu_quota;
    if (v.back() == '%') v.remove_suffix(1);
    uint32_t percent = 0;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), percent);
    if (v.empty() || ec != std::errc() || end != v.data() + v.size()) {
      throw ConfigError("--cpu-quota",
                        fmt::format("\"{}\" is not a percentage (e.g. 50 or 150%)", o.cpu_quota));
    }
    limits->set_cpu_quota_percent(percent);
  }
  if (!o.stdin_path.empty()) {
    spec.mutable_stdin()->set_path(o.stdin_path);
  } else {
    spec.mutable_stdin()->set_inherit(true);
  }
  auto set_out = [&](Stream* s, const std::string& path) {
    if (!path.empty()) {
      s->set_path(path);
    } else if (o.json) {
      s->set_capture(true);
    } else {
      s->set_inherit(true);
    }
  };
  set_out(spec.mutable_stdout(), o.stdout_path);
  set_out(spec.mutable_stderr(), o.stderr_path);
  spec.set_seccomp_log(o.seccomp_log);
  validate_job(spec);

  JobResult r;
  if (!o.server.empty()) {
    serve::RemoteOptions remote;
    remote.server = o.server;
    remote.token_file = o.token_file;
    if (!o.profile_path.empty()) spec.set_profile(o.profile_path);  // the server's, by name
#ifdef JAILPOOL_WITH_GRPC
    r = serve::run_remote(remote, spec);
#endif
  } else {
    sched::ExecutorOptions options;
    options.cgroup_parent = o.cgroup_parent;
    // A one-off run would otherwise start libseccomp for the same program every time.
    options.seccomp_cache_dir = isolate::kDefaultSeccompCacheDir;
    sched::Executor executor(options);
    g_executor = &executor;
    r = executor.run_one(spec, profile);
    g_executor = nullptr;
  }
  if (o.json) {
    std::cout << result_to_json(r) << std::endl;
  } else {
    std::string summary = fmt::format("jailpool: {}", Status_Name(r.status()));
    if (r.status() == NONZERO_EXIT) summary += fmt::format(" (exit {})", r.exit_code());
    if (!r.message().empty() && r.status() != NONZERO_EXIT) summary += ": " + r.message();
    if (r.status() != SETUP_ERROR) {
      summary +=
          fmt::format(" | cpu {:.1f} ms, wall {:.1f} ms, memory {}", r.cpu_time_us() / 1000.0,
                      r.wall_time_us() / 1000.0, human_bytes(r.memory_peak_bytes()));
    }
    fmt::print(stderr, "{}\n", summary);
    if (o.seccomp_log && r.status() != SETUP_ERROR) {
      // Ready to paste into a profile (execve, which starts the program, is listed too).
      std::string names;
      for (const auto& name : r.syscalls_used())
        names += fmt::format("{}\"{}\"", names.empty() ? "" : ", ", name);
      fmt::print(
          stderr,
          "jailpool: the job used {} syscalls:\nseccomp: SECCOMP_ALLOW_LIST\nseccomp_allow: [{}]\n",
          r.syscalls_used_size(), names);
    }
    for (const FileResult& f : r.files()) {
      if (!f.error().empty())
        fmt::print(stderr, "jailpool: copy-out {}: {}\n", f.path(), f.error());
    }
  }
  return exit_status_for(r);
}

int cmd_check(const std::string& cgroup_parent) {
  sched::CheckReport report = sched::check_system(cgroup_parent);
  fmt::print("{}", report.text);
  return report.ok ? 0 : 1;
}

#ifndef JAILPOOL_WITH_GRPC
// `serve` and `--server` are jailpool-serve's, beside this binary: the same CLI with the gRPC
// front end linked in. Kept out of this one, whose every `run` would otherwise pay for gRPC's
// static initializers and larger data (measured: 13.4 -> 15.8 ms of CPU per `jailpool run` of
// /bin/true, mostly page faults).
int exec_grpc_binary(char** argv) {
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  std::string path;
  if (n > 0) {
    self[n] = '\0';
    path = self;
    path = path.substr(0, path.rfind('/') + 1) + "jailpool-serve";
    execv(path.c_str(), argv);
  }
  fmt::print(stderr, "jailpool: serve and --server are jailpool-serve's: {}: {}\n", path,
             std::strerror(errno));
  return kExitJailpoolFailed;
}
#endif

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"jailpool: a batch sandbox executor"};
  app.require_subcommand(1);
  RunOptions run;
  auto* run_cmd =
      app.add_subcommand("run", "run one program in a fresh jail with limits and accounting");
  run_cmd->add_option("--profile", run.profile_path,
                      "sandbox profile (protobuf text); default: built in");
  run_cmd->add_option("--cpu-time", run.cpu_time,
                      "CPU time limit of the whole tree, e.g. 250ms, 1.5s");
  run_cmd->add_option("--wall-time", run.wall_time, "wall time limit, e.g. 2s");
  run_cmd->add_option("--extra-time", run.extra_time,
                      "let the job run this long past its CPU and wall limits (the verdict is "
                      "still a time limit; the result says how long it needed)");
  run_cmd->add_option("--memory", run.memory, "memory limit, e.g. 64M, 64MiB, 1G");
  run_cmd->add_option("--pids", run.pids, "process/thread limit");
  run_cmd->add_option("--cpus", run.cpus, "pin the job to these CPUs, e.g. 1, 0-1, 0,2-3");
  run_cmd->add_option("--cpu-quota", run.cpu_quota,
                      "cap CPU bandwidth at this percent of one CPU, e.g. 50 or 150%");
  run_cmd->add_option("--output-limit", run.output_limit, "limit of each output stream and file");
  run_cmd->add_option("--stdin", run.stdin_path,
                      "host file for the job's stdin (default: jailpool's stdin)");
  run_cmd->add_option("--stdout", run.stdout_path, "host file for the job's stdout");
  run_cmd->add_option("--stderr", run.stderr_path, "host file for the job's stderr");
  run_cmd->add_option("--bind", run.binds, "extra bind SRC[:DST[:rw]] (read-only unless :rw)")
      ->allow_extra_args(false);
  run_cmd->add_option("--env", run.env, "extra environment K=V")->allow_extra_args(false);
  run_cmd
      ->add_option("--copy-in", run.copy_in,
                   "copy host file SRC into the working directory as DST (default: SRC's name), "
                   "read-only")
      ->allow_extra_args(false);
  run_cmd
      ->add_option("--copy-out", run.copy_out,
                   "after the job, collect PATH (relative to the working directory) into host "
                   "file HOSTDST, or into the --json result; only a regular file, never a link")
      ->allow_extra_args(false);
  run_cmd->add_option("--cwd", run.cwd, "working directory inside the jail");
  run_cmd->add_flag("--json", run.json,
                    "print one JSON result on stdout (the job's output is captured)");
  run_cmd->add_flag("--seccomp-log", run.seccomp_log,
                    "list the syscalls the job used, as a profile's allow-list (slow: each call "
                    "is a round trip to jailpool)");
  run_cmd->add_option("--cgroup-parent", run.cgroup_parent,
                      "parent cgroup name (env JAILPOOL_CGROUP_PARENT)");
  run_cmd->add_option("--server", run.server,
                      "hand the job to a running `jailpool serve` (unix:PATH or HOST:PORT); "
                      "--profile names its profile of that file's name");
  run_cmd->add_option("--token-file", run.token_file,
                      "with --server: its bearer token (default: $JAILPOOL_TOKEN)");
  run_cmd->add_option("command", run.command, "PROGRAM [ARG...]")->required();
  run_cmd->prefix_command(false);

  cli::BatchOptions batch;
  batch.cgroup_parent = default_cgroup_parent();
  auto* batch_cmd = app.add_subcommand("batch", "run JSON Lines of jobs through the template pool");
  batch_cmd->add_option("-j,--jobs", batch.jobs, "jobs at once (default 2)");
  batch_cmd->add_option("--profile", batch.profile_path, "profile for jobs that name none");
  batch_cmd->add_option("--input", batch.input, "JSON Lines of JobSpec, or - (default)");
  batch_cmd->add_option("--output", batch.output, "JSON Lines of JobResult, or - (default)");
  batch_cmd->add_option("--resume", batch.resume_path,
                        "skip ids already in this results file (appends when it is --output)");
  batch_cmd->add_flag("!--no-pool", batch.use_pool,
                      "a fresh jail per job instead of pooled templates");
  batch_cmd->add_flag("!--no-slots", batch.use_slots,
                      "pooled templates instead of slots (long-lived jails reset between jobs)");
  batch_cmd
      ->add_option("--slot-spares", batch.slot_spares,
                   "slots beyond -j, so that a job never waits for the reset of the slot that "
                   "just ended (default 1; 0: -j slots, each job after the first in a reset one)")
      ->check(CLI::Range(0u, 64u));
  batch_cmd->add_option("--cgroup-parent", batch.cgroup_parent, "parent cgroup name");
  batch_cmd->add_option("--server", batch.server,
                        "hand the jobs to a running `jailpool serve` (unix:PATH or HOST:PORT), "
                        "-j x 4 in flight; a job's profile names the server's of that name");
  batch_cmd->add_option("--token-file", batch.token_file,
                        "with --server: its bearer token (default: $JAILPOOL_TOKEN)");

  cli::BenchOptions bench;
  bench.cgroup_parent = default_cgroup_parent();
  auto* bench_cmd =
      app.add_subcommand("bench", "jobs/s and latency: pool vs bare fork/exec vs fresh jails");
  bench_cmd->add_option("-n", bench.count, "runs per mode (default 1000)");
  bench_cmd->add_option("-j", bench.jobs, "jobs at once (default 1)");
  bench_cmd->add_option("--rounds", bench.rounds,
                        "bare, pool and fresh in turn, this many times, summed (default 1)");
  bench_cmd->add_option("--profile", bench.profile_path, "profile (default: built in)");
  bench_cmd->add_flag("--json", bench.json, "machine-readable output");
  bench_cmd->add_option("--cgroup-parent", bench.cgroup_parent, "parent cgroup name");
  bench_cmd->add_flag("!--no-slots", bench.use_slots,
                      "the pool row uses pooled templates only, not slots");
  bench_cmd
      ->add_option("--slot-spares", bench.slot_spares,
                   "slots beyond -j for the pool row (default 1; see batch --slot-spares)")
      ->check(CLI::Range(0u, 64u));
  bench_cmd->add_flag("--precision", bench.precision,
                      "measure the limits' and the accounting's precision instead (-n: runs per "
                      "cell, default 10)");
  bench_cmd->add_option("--cpu-limit-method", bench.cpu_limit_methods,
                        "with --precision: the CPU limit's method(s), auto|kick|task-clock|usage, "
                        "comma-separated to compare them in interleaved runs (default auto)");
  bench_cmd->add_flag("--slots", bench.precision_slots,
                      "with --precision: run the jobs in slots (the pool) instead of fresh jails");
  bench_cmd->add_option("command", bench.command, "PROGRAM [ARG...] (not with --precision)");

  serve::ServeOptions serve_opts;
  serve_opts.cgroup_parent = default_cgroup_parent();
  std::string socket_mode = "0660";
  std::string cache_size = "1G";
  auto* serve_cmd =
      app.add_subcommand("serve", "run as a gRPC service (proto/service.proto) over one warm pool");
  serve_cmd->add_option("--listen", serve_opts.listen,
                        "unix:PATH (default unix:/run/jailpool/serve.sock) or HOST:PORT (needs "
                        "--token-file; port 0: any, printed)");
  serve_cmd->add_option("-j,--jobs", serve_opts.jobs, "jobs at once (default 2)");
  serve_cmd->add_option("--queue", serve_opts.queue,
                        "requests waiting for a place; more get RESOURCE_EXHAUSTED (default 256)");
  serve_cmd->add_option("--profile-dir", serve_opts.profile_dir,
                        "NAME.textproto files: the profiles a job may name (loaded at start)");
  serve_cmd->add_option("--token-file", serve_opts.token_file,
                        "bearer token clients must send (authorization: Bearer TOKEN)");
  serve_cmd->add_option("--tls-cert", serve_opts.tls_cert, "PEM certificate chain: TLS");
  serve_cmd->add_option("--tls-key", serve_opts.tls_key, "PEM private key of --tls-cert");
  serve_cmd->add_option("--metrics", serve_opts.metrics,
                        "HOST:PORT for Prometheus metrics over HTTP (port 0: any, printed)");
  serve_cmd->add_option("--state-dir", serve_opts.state_dir,
                        "the server's own directory (file cache, lock); default "
                        "/run/jailpool/serve-HASH");
  serve_cmd->add_option("--cache-size", cache_size, "file cache cap, e.g. 512M (default 1G)");
  serve_cmd->add_option("--socket-owner", serve_opts.socket_owner, "unix socket's owner");
  serve_cmd->add_option("--socket-group", serve_opts.socket_group, "unix socket's group");
  serve_cmd->add_option("--socket-mode", socket_mode, "unix socket's mode (default 0660)");
  serve_cmd->add_option("--drain-timeout", serve_opts.drain_timeout_s,
                        "seconds a SIGTERM waits for running jobs before killing them (300)");
  serve_cmd->add_flag("--allow-host-paths", serve_opts.allow_host_paths,
                      "let jobs name host paths (binds, copy-in src, stream paths, copy-out dst)");
  serve_cmd->add_flag("!--no-slots", serve_opts.use_slots, "pooled templates only, no slots");
  serve_cmd->add_option("--cgroup-parent", serve_opts.cgroup_parent, "parent cgroup name");
  // Jobs through Redis Streams (src/worker/): submit -> jobs stream -> workers -> results stream
  // -> collect.
  auto add_redis = [](CLI::App* cmd, worker::RedisOptions& r) {
    cmd->add_option("--redis", r.url, "redis://HOST[:PORT][/DB] or unix://PATH[?db=N]")->required();
    cmd->add_option("--auth-file", r.auth_file, "file whose first line is Redis's password");
    cmd->add_option("--stream", r.stream, "the jobs stream (default jailpool:jobs)");
    cmd->add_option("--results", r.results, "the results stream (default jailpool:results)");
  };
  worker::WorkerOptions work;
  work.cgroup_parent = default_cgroup_parent();
  auto* worker_cmd =
      app.add_subcommand("worker", "run the jobs of a Redis stream (many workers, many machines)");
  add_redis(worker_cmd, work.redis);
  worker_cmd->add_option("--group", work.group, "consumer group (default jailpool)");
  worker_cmd->add_option("--consumer", work.consumer, "this worker's name (default HOST-PID)");
  worker_cmd->add_option("-j,--jobs", work.jobs, "jobs at once (default 2)");
  worker_cmd->add_option("--profile", work.profile_path, "profile for jobs that name none");
  worker_cmd->add_option("--claim-after", work.claim_after,
                         "take over another worker's entry pending this long, e.g. 30s "
                         "(default: 2 x (the entry's wall limit + extra time) + 5 s)");
  worker_cmd->add_option("--max-deliveries", work.max_deliveries,
                         "an entry delivered this many times without a result goes to the "
                         "dead-letter stream (default 5)");
  worker_cmd->add_option("--dead-letter", work.dead, "dead-letter stream (default STREAM:dead)");
  worker_cmd->add_flag("!--no-pool", work.use_pool,
                       "a fresh jail per job instead of pooled templates");
  worker_cmd->add_flag("!--no-slots", work.use_slots, "pooled templates instead of slots");
  worker_cmd->add_option("--cgroup-parent", work.cgroup_parent, "parent cgroup name");

  worker::SubmitOptions submit;
  auto* submit_cmd = app.add_subcommand(
      "submit", "add JSON Lines of jobs to a Redis stream; prints their ids, one a line");
  add_redis(submit_cmd, submit.redis);
  submit_cmd->add_option("--group", submit.group, "consumer group (default jailpool)");
  submit_cmd->add_option("--input", submit.input, "JSON Lines of JobSpec, or - (default)");

  worker::CollectOptions collect;
  auto* collect_cmd = app.add_subcommand(
      "collect", "write one result per id (the latest attempt) from the results stream");
  add_redis(collect_cmd, collect.redis);
  collect_cmd->add_option("--output", collect.output, "JSON Lines of JobResult, or - (default)");
  collect_cmd->add_option("--ids", collect.ids_path, "only these ids (a file, one a line)");
  collect_cmd->add_flag("--wait", collect.wait, "wait until every id of --ids has a result");

  std::string check_parent = default_cgroup_parent();
  auto* check_cmd =
      app.add_subcommand("check", "report the cgroup mode and kernel features found here");
  check_cmd->add_option("--cgroup-parent", check_parent, "parent cgroup name");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : kExitJailpoolFailed;
  }
#ifndef JAILPOOL_WITH_GRPC
  if (*serve_cmd || (*run_cmd && !run.server.empty()) || (*batch_cmd && !batch.server.empty())) {
    return exec_grpc_binary(argv);
  }
#endif
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  try {
    if (*run_cmd) return cmd_run(run);
    if (*check_cmd) return cmd_check(check_parent);
    if (*serve_cmd) {
      serve_opts.cache_bytes = parse_size_bytes(cache_size, "--cache-size");
      uint32_t mode = 0;
      auto [end, ec] =
          std::from_chars(socket_mode.data(), socket_mode.data() + socket_mode.size(), mode, 8);
      if (socket_mode.empty() || ec != std::errc() ||
          end != socket_mode.data() + socket_mode.size()) {
        throw ConfigError("--socket-mode", fmt::format("\"{}\" is not an octal mode", socket_mode));
      }
      serve_opts.socket_mode = mode;
#ifdef JAILPOOL_WITH_GRPC
      return serve::cmd_serve(serve_opts);
#endif
    }
    if (*batch_cmd) return cli::cmd_batch(batch);
    if (*bench_cmd && bench.precision) {
      if (bench_cmd->count("-n") == 0) bench.count = 10;
      return cli::cmd_precision(bench);
    }
    if (*bench_cmd && bench.command.empty()) {
      throw ConfigError("PROGRAM", "bench needs a program to run (or --precision)");
    }
    if (*bench_cmd) return cli::cmd_bench(bench);
    try {
      if (*worker_cmd) return worker::cmd_worker(work);
      if (*submit_cmd) return worker::cmd_submit(submit);
      if (*collect_cmd) return worker::cmd_collect(collect);
    } catch (const ConfigError& e) {
      // A bad flag, file or server of the Redis front ends: a usage error, as CLI11's own.
      fmt::print(stderr, "jailpool: {}\n", e.what());
      return kExitUsage;
    }
  } catch (const Error& e) {
    fmt::print(stderr, "jailpool: {}\n", e.what());
    return kExitJailpoolFailed;
  } catch (const std::exception& e) {
    fmt::print(stderr, "jailpool: internal error: {}\n", e.what());
    return kExitJailpoolFailed;
  }
  return kExitJailpoolFailed;
}
