// `jailpool bench --precision`: how exact the limits and the accounting are, against the truth
// the programs measure themselves, in one table:
//   - CPU-limit overshoot (reported CPU minus the limit) of burners that never stop, 1 and 4
//     threads, limits 50 ms .. 5 s, and how many were killed before the limit (must be none);
//   - what the CPU limit's task-clock costs a job (open and close, on every CPU);
//   - reported CPU against the program's own CLOCK_PROCESS_CPUTIME_ID (200 ms, 1 and 4 threads);
//   - memory peak against a known amount touched (64 MiB), and the baseline of an empty touch;
//   - the coefficient of variation of the reported CPU of a fixed ~100 ms workload, pinned to
//     one CPU (limits.cpus) and not;
//   - a CPU quota's effect (wall/CPU of a burner under limits.cpu_quota_percent = 50).
// The programs are static builds in <build>/bench/precision, next to the jailpool binary.
#include <fmt/core.h>
#include <fmt/format.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <numeric>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "common/error.h"
#include "config/profile.h"
#include "isolate/cgroup.h"
#include "isolate/cpu_kick.h"
#include "isolate/jail.h"
#include "isolate/perf_counter.h"
#include "sched/executor.h"

namespace jailpool::cli {
namespace {

constexpr const char* kInJail = "/precision";

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * (v.size() - 1) + 0.5));
  return v[i];
}

double mean(const std::vector<double>& v) {
  return v.empty() ? 0 : std::accumulate(v.begin(), v.end(), 0.0) / v.size();
}

double stdev(const std::vector<double>& v) {
  if (v.size() < 2) return 0;
  double m = mean(v), sq = 0;
  for (double x : v) sq += (x - m) * (x - m);
  return std::sqrt(sq / (v.size() - 1));
}

std::string programs_dir() {
  char exe[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n < 0) throw_errno("readlink /proc/self/exe");
  std::string path(exe, static_cast<size_t>(n));
  std::string dir = path.substr(0, path.rfind('/')) + "/bench/precision";
  for (const char* name : {"burn_cpu", "touch_memory", "fixed_work"}) {
    if (::access((dir + "/" + name).c_str(), X_OK) != 0) {
      throw Error(
          fmt::format("{}/{} not found: the precision programs are built with the jailpool "
                      "target, next to its binary",
                      dir, name));
    }
  }
  return dir;
}

class Runner {
 public:
  Runner(const std::string& cgroup_parent, const std::string& dir,
         sched::CpuLimitMethod method = sched::CpuLimitMethod::kAuto, bool slots = false)
      : executor_(options(cgroup_parent, method, slots)) {
    profile_ = default_profile();
    Bind* b = profile_.add_bind();
    b->set_src(dir);
    b->set_dst(kInJail);
    validate_profile(profile_);
  }

  // Runs /precision/PROGRAM ARGS...; a failure other than the expected status ends the bench.
  JobResult run(const std::vector<std::string>& argv, const Limits& limits, Status expected) {
    JobSpec spec;
    spec.set_id("precision");
    spec.add_argv(std::string(kInJail) + "/" + argv[0]);
    for (size_t i = 1; i < argv.size(); ++i) spec.add_argv(argv[i]);
    *spec.mutable_limits() = limits;
    JobResult r = executor_.run_one(spec, profile_);
    if (r.status() != expected) {
      throw Error(fmt::format("{} {}: {} ({}), expected {}", argv[0],
                              fmt::join(argv.begin() + 1, argv.end(), " "), Status_Name(r.status()),
                              r.message(), Status_Name(expected)));
    }
    return r;
  }

  const isolate::CgroupSystem& cgroups() const { return executor_.cgroups(); }
  const sched::Executor& executor() const { return executor_; }

 private:
  static sched::ExecutorOptions options(const std::string& cgroup_parent,
                                        sched::CpuLimitMethod method, bool slots) {
    sched::ExecutorOptions o;
    o.use_pool = slots;  // slots serve every job here (use_slots is on by default)
    if (!cgroup_parent.empty()) o.cgroup_parent = cgroup_parent;
    o.cpu_limit_method = method;
    return o;
  }
  sched::Executor executor_;
  Profile profile_;
};

uint64_t own_clock_us(const JobResult& r) {
  return std::strtoull(r.stdout().c_str(), nullptr, 10);
}

// The online CPU that has taken the fewest device interrupts (/proc/interrupts, numbered IRQ
// lines only): with tick-based CPU accounting (no IRQ_TIME_ACCOUNTING), time spent in an
// interrupt is charged to the task it interrupted, so a job pinned where the disk's interrupts
// land is charged for other processes' I/O (on this VM all virtio-blk interrupts go to CPU 1).
int quietest_cpu(const std::vector<int>& online) {
  std::ifstream in("/proc/interrupts");
  std::string header;
  std::getline(in, header);
  std::vector<int> columns;  // CPU number of each count column
  std::istringstream hs(header);
  for (std::string cpu; hs >> cpu;) columns.push_back(std::atoi(cpu.c_str() + 3));  // "CPUn"
  std::vector<uint64_t> irqs(columns.size(), 0);
  for (std::string line; std::getline(in, line);) {
    std::istringstream ls(line);
    std::string name;
    ls >> name;
    if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0]))) continue;
    for (size_t i = 0; i < columns.size(); ++i) {
      uint64_t n = 0;
      if (!(ls >> n)) break;
      irqs[i] += n;
    }
  }
  int best = online.empty() ? 0 : online.back();
  uint64_t best_irqs = UINT64_MAX;
  for (size_t i = 0; i < columns.size(); ++i) {
    if (std::find(online.begin(), online.end(), columns[i]) == online.end()) continue;
    if (irqs[i] < best_irqs) best = columns[i], best_irqs = irqs[i];
  }
  return best;
}

struct Row {
  std::string what;
  size_t n = 0;
  std::string median, p99, max, target;
};

// A per-CPU cost row from its samples (µs); unchanged when there are none.
Row with_cost_stats(Row row, std::vector<double>& us) {
  if (us.empty()) return row;
  row.n = us.size();
  row.median = fmt::format("{:.1f} us", percentile(us, 50));
  row.p99 = fmt::format("{:.1f} us", percentile(us, 99));
  row.max = fmt::format("{:.1f} us", percentile(us, 100));
  row.target = fmt::format("{} CPUs", isolate::online_cpus().size());
  return row;
}

Row task_clock_cost(const isolate::CgroupSystem& cgroups, unsigned n) {
  Row row{"CPU-limit task-clock: open + close per job", 0, "-", "-", "-", "-"};
  const std::string& mount = cgroups.info().v2_mount;
  std::string dir;
  for (const std::string& parent : cgroups.parent_dirs()) {
    if (!mount.empty() && parent.rfind(mount, 0) == 0)
      dir = parent + fmt::format("/clock-{}", getpid());
  }
  if (dir.empty() || ::mkdir(dir.c_str(), 0755) < 0) {
    row.median = "no cgroup2";
    return row;
  }
  std::vector<double> us;
  try {
    for (unsigned i = 0; i < n; ++i) {
      uint64_t t0 = isolate::monotonic_now_ns();
      { isolate::JobCpuClock clock(dir); }
      us.push_back((isolate::monotonic_now_ns() - t0) / 1000.0);
    }
  } catch (const Error&) {
    row.median = "unavailable";
  }
  ::rmdir(dir.c_str());
  return with_cost_stats(row, us);
}

// What a kick of every other CPU costs the kicking thread (isolate::CpuKicker), idle CPUs.
Row kick_cost(unsigned n) {
  Row row{"CPU-limit kick of the other CPUs (idle)", 0, "-", "-", "-", "-"};
  std::string why;
  std::unique_ptr<isolate::CpuKicker> kicker =
      isolate::CpuKicker::start(isolate::online_cpus(), &why);
  if (!kicker) {
    row.median = "unavailable";
    return row;
  }
  std::vector<double> us;
  for (unsigned i = 0; i < n; ++i) {
    uint64_t t0 = isolate::monotonic_now_ns();
    if (!kicker->kick({}, sched::kKickTimeoutNs)) continue;
    us.push_back((isolate::monotonic_now_ns() - t0) / 1000.0);
    ::usleep(200);
  }
  return with_cost_stats(row, us);
}

std::vector<sched::CpuLimitMethod> parse_methods(const std::string& text) {
  std::vector<sched::CpuLimitMethod> out;
  std::istringstream in(text);
  for (std::string name; std::getline(in, name, ',');) {
    std::optional<sched::CpuLimitMethod> m = sched::parse_cpu_limit_method(name);
    if (!m) {
      throw ConfigError("--cpu-limit-method",
                        fmt::format("unknown method '{}' (auto, kick, task-clock, usage)", name));
    }
    out.push_back(*m);
  }
  if (out.empty()) throw ConfigError("--cpu-limit-method", "no method named");
  return out;
}

double load_average() {
  double load[1] = {0};
  return getloadavg(load, 1) == 1 ? load[0] : -1;
}

}  // namespace

int cmd_precision(const BenchOptions& o) {
  const unsigned runs = std::max(1u, o.count);
  const std::string dir = programs_dir();
  const std::vector<sched::CpuLimitMethod> methods = parse_methods(o.cpu_limit_methods);
  std::vector<std::unique_ptr<Runner>> runners;
  for (sched::CpuLimitMethod m : methods)
    runners.push_back(std::make_unique<Runner>(o.cgroup_parent, dir, m, o.precision_slots));
  Runner& runner = *runners.front();
  std::vector<Row> rows;
  double load_start = load_average();

  // 1. Overshoot of the CPU limit, with each method asked for (one executor each), interleaved
  // run by run.
  const uint64_t kLimitsMs[] = {50, 100, 200, 500, 1000, 2000, 5000};
  const size_t nm = methods.size();
  std::vector<std::vector<double>> all(nm);
  std::vector<size_t> early(nm, 0);  // killed with a reported CPU under the limit: wrong verdicts
  for (int threads : {1, 4}) {
    std::vector<std::vector<double>> over_ms(nm);
    for (uint64_t limit : kLimitsMs) {
      for (unsigned i = 0; i < runs; ++i) {
        for (size_t m = 0; m < nm; ++m) {
          Limits limits;
          limits.set_cpu_time_ms(limit);
          JobResult r = runners[m]->run({"burn_cpu", "forever", std::to_string(threads)}, limits,
                                        TIME_LIMIT_EXCEEDED);
          over_ms[m].push_back(r.cpu_time_us() / 1000.0 - static_cast<double>(limit));
          if (r.cpu_time_us() < limit * 1000) ++early[m];
        }
      }
    }
    for (size_t m = 0; m < nm; ++m) {
      all[m].insert(all[m].end(), over_ms[m].begin(), over_ms[m].end());
      rows.push_back({fmt::format("CPU-limit overshoot{}, {} thread{}, 50 ms..5 s",
                                  nm > 1 ? fmt::format(" [{}]", to_string(methods[m])) : "",
                                  threads, threads > 1 ? "s" : ""),
                      over_ms[m].size(), fmt::format("{:.2f} ms", percentile(over_ms[m], 50)),
                      fmt::format("{:.2f} ms", percentile(over_ms[m], 99)),
                      fmt::format("{:.2f} ms", percentile(over_ms[m], 100)),
                      "median <= 2, p99 <= 5"});
    }
  }
  for (size_t m = 0; m < nm; ++m) {
    std::string tag = nm > 1 ? fmt::format(" [{}]", to_string(methods[m])) : "";
    rows.push_back({fmt::format("CPU-limit overshoot{}, all", tag), all[m].size(),
                    fmt::format("{:.2f} ms", percentile(all[m], 50)),
                    fmt::format("{:.2f} ms", percentile(all[m], 99)),
                    fmt::format("{:.2f} ms", percentile(all[m], 100)), "median <= 2, p99 <= 5"});
    rows.push_back({fmt::format("CPU-limit kills before the limit{}", tag), all[m].size(),
                    fmt::format("{}", early[m]), "-", "-", "0"});
  }

  // 1b. Overshoot of the wall-time limit (reported wall time minus the limit) of a burner,
  // which keeps the CPUs busy while jailpool's timer must fire.
  {
    std::vector<double> over_ms;
    for (uint64_t limit : {50, 100, 200, 500, 1000}) {
      for (unsigned i = 0; i < runs; ++i) {
        Limits limits;
        limits.set_wall_time_ms(limit);
        JobResult r = runner.run({"burn_cpu", "forever", "2"}, limits, WALL_TIME_LIMIT_EXCEEDED);
        over_ms.push_back(r.wall_time_us() / 1000.0 - static_cast<double>(limit));
      }
    }
    rows.push_back({"wall-limit overshoot, 2 threads, 50 ms..1 s", over_ms.size(),
                    fmt::format("{:.2f} ms", percentile(over_ms, 50)),
                    fmt::format("{:.2f} ms", percentile(over_ms, 99)),
                    fmt::format("{:.2f} ms", percentile(over_ms, 100)), "p99 <= 5"});
  }

  // The task-clock a CPU-limited job gets (sched/cpu_limit.h): opening it on every CPU and
  // closing it, on an empty cgroup next to the jobs'.
  rows.push_back(task_clock_cost(runner.cgroups(), std::max(runs, 10u) * 10));
  // What the kick method costs jailpool per check near the end, instead.
  rows.push_back(kick_cost(std::max(runs, 10u) * 10));

  // 2. Reported CPU against the program's own clock.
  for (int threads : {1, 4}) {
    std::vector<double> diff_ms, rel_pct;
    for (unsigned i = 0; i < runs; ++i) {
      JobResult r = runner.run({"burn_cpu", "200", std::to_string(threads)}, Limits(), OK);
      double own = static_cast<double>(own_clock_us(r));
      double reported = static_cast<double>(r.cpu_time_us());
      diff_ms.push_back((reported - own) / 1000.0);
      rel_pct.push_back(own > 0 ? 100.0 * (reported - own) / own : 0);
    }
    rows.push_back(
        {fmt::format("CPU reported - own clock, 200 ms, {} thread{}", threads,
                     threads > 1 ? "s" : ""),
         diff_ms.size(),
         fmt::format("{:+.2f} ms ({:+.2f}%)", percentile(diff_ms, 50), percentile(rel_pct, 50)),
         fmt::format("{:+.2f} ms", percentile(diff_ms, 99)),
         fmt::format("{:+.2f} ms ({:+.2f}%)", percentile(diff_ms, 100), percentile(rel_pct, 100)),
         "+-1% or +-0.5 ms"});
  }

  // 3. Memory peak against the amount touched.
  constexpr uint64_t kTouchMiB = 64;
  std::vector<double> base_kib, err_kib;
  for (unsigned i = 0; i < runs; ++i) {
    JobResult empty = runner.run({"touch_memory", "0"}, Limits(), OK);
    base_kib.push_back(empty.memory_peak_bytes() / 1024.0);
    JobResult r = runner.run({"touch_memory", std::to_string(kTouchMiB)}, Limits(), OK);
    err_kib.push_back((static_cast<double>(r.memory_peak_bytes()) - (kTouchMiB << 20)) / 1024.0);
  }
  double err_pct = 100.0 * percentile(err_kib, 50) * 1024 / (kTouchMiB << 20);
  rows.push_back({fmt::format("memory peak - {} MiB touched", kTouchMiB), err_kib.size(),
                  fmt::format("{:+.0f} KiB ({:+.2f}%)", percentile(err_kib, 50), err_pct),
                  fmt::format("{:+.0f} KiB", percentile(err_kib, 99)),
                  fmt::format("{:+.0f} KiB", percentile(err_kib, 100)), "within 1%"});
  rows.push_back({"memory peak of an empty toucher (baseline)", base_kib.size(),
                  fmt::format("{:.0f} KiB", percentile(base_kib, 50)),
                  fmt::format("{:.0f} KiB", percentile(base_kib, 99)),
                  fmt::format("{:.0f} KiB", percentile(base_kib, 100)), "-"});

  // 4. CV of a fixed workload, calibrated to ~100 ms of CPU here.
  JobResult calibration = runner.run({"fixed_work", "20"}, Limits(), OK);
  uint64_t millions =
      std::max<uint64_t>(1, 20 * 100000 / std::max<uint64_t>(1, calibration.cpu_time_us()));
  const std::string pin = std::to_string(quietest_cpu(isolate::online_cpus()));
  constexpr unsigned kCvRuns = 30;
  for (bool pinned : {true, false}) {
    std::vector<double> cpu_ms;
    Limits limits;
    if (pinned) limits.set_cpus(pin);
    for (unsigned i = 0; i < kCvRuns; ++i) {
      JobResult r = runner.run({"fixed_work", std::to_string(millions)}, limits, OK);
      cpu_ms.push_back(r.cpu_time_us() / 1000.0);
    }
    double cv = mean(cpu_ms) > 0 ? 100.0 * stdev(cpu_ms) / mean(cpu_ms) : 0;
    rows.push_back(
        {pinned
             ? fmt::format("CV of CPU, fixed work ({:.0f} ms), pinned to CPU {}", mean(cpu_ms), pin)
             : fmt::format("CV of CPU, fixed work ({:.0f} ms), not pinned", mean(cpu_ms)),
         cpu_ms.size(), fmt::format("CV {:.2f}%", cv),
         fmt::format("{:.2f} ms", percentile(cpu_ms, 99)),
         fmt::format("{:.2f} ms", percentile(cpu_ms, 100)), pinned ? "CV < 1%" : "-"});
  }

  // 5. A CPU quota of 50%: the burner's wall time is about twice its CPU.
  std::vector<double> ratio;
  for (unsigned i = 0; i < std::min(runs, 5u); ++i) {
    Limits limits;
    limits.set_cpu_quota_percent(50);
    JobResult r = runner.run({"burn_cpu", "200", "1"}, limits, OK);
    ratio.push_back(r.cpu_time_us() ? static_cast<double>(r.wall_time_us()) / r.cpu_time_us() : 0);
  }
  rows.push_back({"cpu_quota_percent 50: wall / CPU of a 200 ms burner", ratio.size(),
                  fmt::format("{:.2f}", percentile(ratio, 50)),
                  fmt::format("{:.2f}", percentile(ratio, 99)),
                  fmt::format("{:.2f}", percentile(ratio, 100)), "~2"});

  double load_end = load_average();
  if (o.json) {
    std::string out =
        fmt::format("{{\"load_start\":{:.2f},\"load_end\":{:.2f},\"rows\":[", load_start, load_end);
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row& r = rows[i];
      out += fmt::format(
          "{}{{\"what\":\"{}\",\"n\":{},\"median\":\"{}\",\"p99\":\"{}\",\"max\":\"{}\"}}",
          i ? "," : "", r.what, r.n, r.median, r.p99, r.max);
    }
    fmt::print("{}]}}\n", out);
    return 0;
  }
  fmt::print("jailpool bench --precision: {} runs per cell in {}, load average {:.2f} -> {:.2f}\n",
             runs, o.precision_slots ? "slots" : "fresh jails", load_start, load_end);
  for (size_t m = 0; m < nm; ++m) {
    const sched::CpuLimitMethods* used = runners[m]->executor().cpu_limit_methods();
    fmt::print("CPU-limit method {}: {}: {}\n", to_string(methods[m]),
               used ? to_string(used->method()) : "-", used ? used->detail() : "not chosen");
  }
  fmt::print("| {:<52} | {:>3} | {:>20} | {:>10} | {:>20} | {:<21} |\n", "measurement", "n",
             "median", "p99", "max", "target");
  fmt::print("| {:-<52} | {:->3} | {:->20} | {:->10} | {:->20} | {:-<21} |\n", "", "", "", "", "",
             "");
  for (const Row& r : rows) {
    fmt::print("| {:<52} | {:>3} | {:>20} | {:>10} | {:>20} | {:<21} |\n", r.what, r.n, r.median,
               r.p99, r.max, r.target);
  }
  return 0;
}

}  // namespace jailpool::cli
