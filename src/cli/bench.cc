// `jailpool bench`: the same program N times through the template pool, through a bare
// launcher (vfork+exec+wait, no isolation) and through fresh-per-job jails, in one run, with
// jobs/s, latency percentiles, per-phase times and the ratios.
#include <fmt/core.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <map>

#include "cli/commands.h"
#include "common/error.h"
#include "config/profile.h"
#include "isolate/jail.h"
#include "pool/template_pool.h"
#include "sched/executor.h"

extern char** environ;

namespace jailpool::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct Series {
  std::string name;
  double seconds = 0;
  unsigned count = 0;
  unsigned failed = 0;
  std::vector<double> latency_us;
  std::map<std::string, std::vector<double>> phases_us;
  double self_cpu_us_per_job = 0;
  // The CPU of jailpool's other processes per job: the jails' inits (a fresh jail's, a slot's),
  // the template holders, and each job's first process before it joined the job's cgroup. It
  // is the children's CPU (getrusage RUSAGE_CHILDREN: every one is reaped by the end of the
  // run) less the jobs' own (their cgroups'). Not for the bare launcher (no cgroup per job).
  double jail_cpu_us_per_job = -1;

  double rate() const { return seconds > 0 ? count / seconds : 0; }
  // Adds another round of the same mode.
  void add(const Series& o) {
    name = o.name;
    const unsigned before = count + failed;
    const unsigned after = before + o.count + o.failed;
    auto weighted = [&](double mine, double theirs) {
      return (mine * before + theirs * (o.count + o.failed)) / std::max(1u, after);
    };
    self_cpu_us_per_job = weighted(self_cpu_us_per_job, o.self_cpu_us_per_job);
    jail_cpu_us_per_job = o.jail_cpu_us_per_job < 0
                              ? -1
                              : weighted(before ? jail_cpu_us_per_job : 0, o.jail_cpu_us_per_job);
    seconds += o.seconds;
    count += o.count;
    failed += o.failed;
    latency_us.insert(latency_us.end(), o.latency_us.begin(), o.latency_us.end());
    for (const auto& [phase, v] : o.phases_us) {
      phases_us[phase].insert(phases_us[phase].end(), v.begin(), v.end());
    }
  }
  static double pct(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    size_t i = std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * (v.size() - 1) + 0.5));
    return v[i];
  }
};

double load_now() {
  double load[1];
  return getloadavg(load, 1) == 1 ? load[0] : -1;
}

double cpu_us(int who) {
  rusage u{};
  getrusage(who, &u);
  return u.ru_utime.tv_sec * 1e6 + u.ru_utime.tv_usec + u.ru_stime.tv_sec * 1e6 +
         u.ru_stime.tv_usec;
}

// The bare launcher runs as SCHED_OTHER: as SCHED_FIFO (as jailpool's loop runs) it was 5-18 %
// slower here (its wake at each child's exec preempts the child), a weaker baseline.
Series run_bare(const std::vector<std::string>& argv, unsigned n, unsigned j) {
  Series s;
  s.name = "bare";
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::map<pid_t, Clock::time_point> started;
  unsigned launched = 0;
  double cpu0 = cpu_us(RUSAGE_SELF);
  auto t0 = Clock::now();
  while (s.count + s.failed < n) {
    while (launched < n && started.size() < j) {
      pid_t pid;
      auto t = Clock::now();
      // glibc's posix_spawn is clone(CLONE_VM|CLONE_VFORK) + exec.
      int rc = posix_spawn(&pid, args[0], nullptr, nullptr, args.data(), environ);
      ++launched;
      if (rc != 0) {
        ++s.failed;
        continue;
      }
      started[pid] = t;
    }
    if (started.empty()) continue;
    int status;
    pid_t pid = waitpid(-1, &status, 0);
    if (pid < 0) break;
    auto it = started.find(pid);
    if (it == started.end()) continue;
    s.latency_us.push_back(
        std::chrono::duration<double, std::micro>(Clock::now() - it->second).count());
    started.erase(it);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      ++s.count;
    } else {
      ++s.failed;
    }
  }
  s.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  s.self_cpu_us_per_job = (cpu_us(RUSAGE_SELF) - cpu0) / std::max(1u, n);
  return s;
}

Series run_jailed(const Profile& profile, const std::vector<std::string>& argv, unsigned n,
                  unsigned j, bool pool, bool slots, unsigned spares,
                  const std::string& cgroup_parent) {
  Series s;
  s.name = pool ? "pool" : "fresh";
  const double children0 = cpu_us(RUSAGE_CHILDREN);
  double jobs_cpu_us = 0;
  double cpu0 = 0;
  std::string first_error;
  {  // the executor's scope: its slots and templates are reaped when it ends
    sched::ExecutorOptions options;
    options.parallelism = j;
    options.use_pool = pool;
    options.use_slots = slots;
    options.slot_spares = spares;
    if (!cgroup_parent.empty()) options.cgroup_parent = cgroup_parent;
    sched::Executor executor(options);
    if (pool) executor.templates()->prefill(profile, j);  // the pool is built before timing
    unsigned issued = 0;
    std::map<std::string, Clock::time_point> issued_at;
    cpu0 = cpu_us(RUSAGE_SELF);
    auto t0 = Clock::now();
    executor.run(
        [&]() -> std::optional<sched::JobRequest> {
          if (issued == n) return std::nullopt;
          JobSpec spec;
          spec.set_id(std::to_string(issued++));
          for (const auto& a : argv) spec.add_argv(a);
          issued_at[spec.id()] = Clock::now();
          return sched::JobRequest{std::move(spec), &profile};
        },
        [&](JobResult&& r) {
          auto now = Clock::now();
          s.latency_us.push_back(
              std::chrono::duration<double, std::micro>(now - issued_at[r.id()]).count());
          s.phases_us["setup"].push_back(r.setup_us());
          s.phases_us["run"].push_back(r.run_us());
          // run = the job (exec to its end, as its init saw it) + the result's way back (its
          // init's kill and reaping of the rest, the wake-up of the loop).
          s.phases_us["job"].push_back(r.wall_time_us());
          s.phases_us["result"].push_back(
              r.run_us() > r.wall_time_us() ? double(r.run_us() - r.wall_time_us()) : 0.0);
          s.phases_us["teardown"].push_back(r.teardown_us());
          jobs_cpu_us += static_cast<double>(r.cpu_time_us());
          if (r.status() == OK) {
            ++s.count;
          } else {
            ++s.failed;
            if (first_error.empty())
              first_error = fmt::format("{}: {}", Status_Name(r.status()), r.message());
          }
        });
    s.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  }
  s.self_cpu_us_per_job = (cpu_us(RUSAGE_SELF) - cpu0) / std::max(1u, n);
  s.jail_cpu_us_per_job =
      std::max(0.0, cpu_us(RUSAGE_CHILDREN) - children0 - jobs_cpu_us) / std::max(1u, n);
  if (!first_error.empty())
    fmt::print(stderr, "jailpool bench: {} job failed: {}\n", s.name, first_error);
  return s;
}

}  // namespace

int cmd_bench(const BenchOptions& o) {
  Profile profile = o.profile_path.empty() ? default_profile() : load_profile_file(o.profile_path);
  // The program must exist on the host for the bare launcher; inside the jails its directory
  // is bound read-only at /bench (in the profile, so that the pool serves it).
  char real[PATH_MAX];
  if (realpath(o.command[0].c_str(), real) == nullptr) {
    throw ConfigError("PROGRAM", fmt::format("{}: {}", o.command[0], std::strerror(errno)));
  }
  std::string host_path = real;
  std::string dir = host_path.substr(0, host_path.rfind('/'));
  std::string name = host_path.substr(host_path.rfind('/') + 1);
  std::vector<std::string> bare_argv = o.command;
  bare_argv[0] = host_path;
  std::vector<std::string> jail_argv = o.command;
  bool under_usr = host_path.rfind("/usr/", 0) == 0;
  if (!under_usr) {
    Bind* b = profile.add_bind();
    b->set_src(dir);
    b->set_dst("/bench");
    jail_argv[0] = "/bench/" + name;
  } else {
    jail_argv[0] = host_path;
  }
  validate_profile(profile);

  // Rounds of the three modes in turn (each -n runs), summed: on a machine others load, each
  // mode sees the same spread of conditions.
  std::vector<Series> all(3);
  const unsigned rounds = std::max(1u, o.rounds);
  for (unsigned round = 0; round < rounds; ++round) {
    all[0].add(run_bare(bare_argv, o.count, o.jobs));
    all[1].add(run_jailed(profile, jail_argv, o.count, o.jobs, true, o.use_slots, o.slot_spares,
                          o.cgroup_parent));
    all[2].add(run_jailed(profile, jail_argv, o.count, o.jobs, false, false, 0, o.cgroup_parent));
  }
  const Series& bare = all[0];
  const Series& pool = all[1];
  const Series& fresh = all[2];
  double pool_vs_bare = bare.rate() > 0 ? pool.rate() / bare.rate() : 0;
  double pool_vs_fresh = fresh.rate() > 0 ? pool.rate() / fresh.rate() : 0;
  double added_latency = Series::pct(pool.latency_us, 50) - Series::pct(bare.latency_us, 50);
  // pool/fresh cannot pass bare/fresh unless a jailed job costs less than a bare one.
  double bare_vs_fresh = fresh.rate() > 0 ? bare.rate() / fresh.rate() : 0;

  if (o.json) {
    std::string out = "{";
    for (const auto& s : all) {
      out += fmt::format(
          "\"{}\":{{\"jobs\":{},\"failed\":{},\"seconds\":{:.4f},\"jobs_per_s\":{:.1f},"
          "\"p50_us\":{:.0f},\"p95_us\":{:.0f},\"p99_us\":{:.0f},\"self_cpu_us_per_job\":{:.1f}",
          s.name, s.count, s.failed, s.seconds, s.rate(), Series::pct(s.latency_us, 50),
          Series::pct(s.latency_us, 95), Series::pct(s.latency_us, 99), s.self_cpu_us_per_job);
      if (s.jail_cpu_us_per_job >= 0)
        out += fmt::format(",\"jail_cpu_us_per_job\":{:.1f}", s.jail_cpu_us_per_job);
      for (const auto& [phase, v] : s.phases_us)
        out += fmt::format(",\"{}_p50_us\":{:.0f}", phase, Series::pct(v, 50));
      out += "},";
    }
    out += fmt::format(
        "\"pool_vs_bare\":{:.3f},\"pool_vs_fresh\":{:.3f},\"bare_vs_fresh\":{:.3f},"
        "\"added_latency_p50_us\":{:.0f},\"rounds\":{},\"load_average\":{:.2f}}}",
        pool_vs_bare, pool_vs_fresh, bare_vs_fresh, added_latency, rounds, load_now());
    fmt::print("{}\n", out);
  } else {
    fmt::print("jailpool bench: {} x {} at -j {}, {} round(s), load average {:.2f}\n", o.count,
               host_path, o.jobs, rounds, load_now());
    fmt::print("{:<6} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>12} {:>12}\n",
               "mode", "jobs/s", "failed", "p50 ms", "p95 ms", "p99 ms", "setup", "run", "(job",
               "result)", "teardown", "self cpu/job", "jails cpu/job");
    for (const auto& s : all) {
      auto phase = [&](const char* p) {
        auto it = s.phases_us.find(p);
        return it == s.phases_us.end() ? std::string("-")
                                       : fmt::format("{:.3f}", Series::pct(it->second, 50) / 1000);
      };
      std::string jails = s.jail_cpu_us_per_job < 0
                              ? std::string("-")
                              : fmt::format("{:.0f} us", s.jail_cpu_us_per_job);
      fmt::print(
          "{:<6} {:>9.1f} {:>7} {:>9.3f} {:>9.3f} {:>9.3f} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9.0f} "
          "us {:>12}\n",
          s.name, s.rate(), s.failed, Series::pct(s.latency_us, 50) / 1000,
          Series::pct(s.latency_us, 95) / 1000, Series::pct(s.latency_us, 99) / 1000,
          phase("setup"), phase("run"), phase("job"), phase("result"), phase("teardown"),
          s.self_cpu_us_per_job, jails);
    }
    fmt::print(
        "pool/bare {:.2f}x   pool/fresh {:.2f}x (bare/fresh {:.2f}x)   added latency p50 {:.3f} "
        "ms\n",
        pool_vs_bare, pool_vs_fresh, bare_vs_fresh, added_latency / 1000);
    fmt::print(
        "self cpu: jailpool's own threads; jails cpu: its other processes (the jails' inits, "
        "template holders, each job's first process until it joined its cgroup)\n");
  }
  return (pool.failed || fresh.failed || bare.failed) ? 1 : 0;
}

}  // namespace jailpool::cli
