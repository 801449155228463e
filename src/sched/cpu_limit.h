// The CPU limit: when to look at a job's CPU time, and when to kill it.
//
// Two clocks, neither enough alone:
//   U, the cgroup's usage (v2 cpu.stat usage_usec or v1 cpuacct.usage), is what the result
//     reports, so the verdict must agree with it. The kernel charges it only at ticks and context
//     switches (update_curr): while a thread of the job runs on another CPU than jailpool's, U
//     lags the truth by up to one tick (4 ms at HZ=250) per such CPU. U never runs ahead.
//   P, a perf task-clock counter of the job's cgroup (isolate::JobCpuClock), is exact at the
//     moment it is read, but counts a little more or less than the scheduler: steal time and
//     irq time (with IRQ_TIME_ACCOUNTING) that U leaves out, and a few µs per context switch.
//     Measured on this 2-CPU VM: P - truth grows by 0.3% of the CPU for 4 threads on 2 CPUs and
//     falls by 5% for a pipe ping-pong. Killing on P alone has ended a job at 299.0 ms of a
//     300 ms limit.
//
// Combined: at each check U is read first, then P. D = P - U = X + L, where X = P - truth (the
// drift, slow) and L = truth - U >= 0 (the lag). e = the least D over the last two ticks or so is
// at most X at that sample plus that sample's lag, so T = P - e is the truth less that lag plus
// what X gained since: a lower bound of the truth up to the drift over a few ms. The lag is
// nearly 0 on every CPU just after a tick, so while the end is near the tracker takes one sample
// just after each tick (see the grid below), and one when the rate P grows at says T reaches the
// limit (never later than max_late_us past it, should the job speed up to every CPU it may use).
// It kills when U >= limit, or T >= limit + margin: the margin covers what X can gain between
// the sample that gave e and the decision. The overshoot left is mostly the job's own exit
// (~1 ms of CPU for a static burner under PVM), which no kill can avoid.
//
// Surprising kernel behaviour this relies on for tightness (not for safety): the periodic tick of
// every busy CPU fires on one CLOCK_MONOTONIC grid, the multiples of TICK_NSEC (Linux 6.4+,
// commits e9523a0d8189 and 13bb06f8dd42 "Align tick period", also in stable kernels; measured
// here on 6.18 at HZ=250: the tick's charge shows in cpu.stat 0.12-0.2 ms after the grid point,
// timer latency under PVM). On older kernels, or with sched_skew_tick=1, the ticks are offset
// from the grid: e is then looser and kills come up to a tick later, never earlier.
//
// Far from the end the tracker reads U only (a read of P interrupts the CPUs the job runs on:
// ~20 µs of the job's time each, and ~50 µs of jailpool's, on this VM) and sleeps until the
// earliest moment the job, burning on every CPU it may use, could come within a tick of the
// limit, U's lag included. That leaves ~5 reads of P per job. Without P (no perf, or a steal
// clock), it falls back to U alone as before: a check at the earliest moment the rest of the
// budget could be spent, a kill when U >= limit (overshoot up to a tick per CPU).
//
// The kick method (preferred where it runs; `jailpool check` says which method runs and why):
// near the end, the tracker asks for an exact U instead of P. isolate::CpuKicker wakes a
// SCHED_FIFO thread pinned on each CPU the job may run on; each preempts the job's thread there,
// which charges it up to now, and U read after the kick is the truth up to the µs since. The
// decisions are then the U-alone ones made exact: far from the end as with P (a stale U plus
// its lag), near it a check when U should reach the limit (and kExactAimUs) at the rate U grew
// between the last two exact samples, never later than max_late_us past it had the job burnt
// on every CPU it may use, and a kill when U >= limit. No other clock, so no margin, no drift
// and no steal: U is the reported clock and the scheduler's charges leave steal out.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace jailpool::isolate {
class CpuKicker;
class JobCgroup;
class JobCpuClock;
struct PerfSupport;
}  // namespace jailpool::isolate

namespace jailpool::sched {

// Kill only when the estimate T is this far past the limit: covers the drift of P over the few
// ms between the sample that gave e and the decision. Measured with jobs that keep U fresh
// themselves (U <= truth <= U read again after P, so the error T - truth is in [T - U2, T - U]),
// margin 0, 1-4 threads burning, sleeping or ping-ponging, ~1270 samples near the end: T - U
// <= 0.17 ms whenever P's read took < 0.15 ms (that includes the job's CPU during the read),
// T - U2 <= 0.07 ms always. Hence 0.25 ms; no early kill in the precision tests and benches.
constexpr uint64_t kCpuLimitMarginUs = 250;

// The shortest wait between two checks without the task-clock (U alone).
constexpr uint64_t kFallbackStepNs = 200000;

// With an exact U, the next check aims at U this far past the limit: one check after the limit
// is reached when the rate holds (aiming at the limit itself finds U a few µs short).
constexpr uint64_t kExactAimUs = 50;

// How long a kick may wait for the kickers (a CPU held by another RT thread): then U alone.
constexpr uint64_t kKickTimeoutNs = 2000000;

// How the CPU limit reads the job's CPU near the end (cpu_limit.h's top comment).
enum class CpuLimitMethod {
  kAuto,       // the best that runs here: kick, else task-clock, else usage
  kKick,       // an exact U after kicking the job's CPUs (isolate::CpuKicker)
  kTaskClock,  // U and the cgroup's perf task-clock P
  kUsage,      // U alone (stale by up to a tick per CPU)
};
const char* to_string(CpuLimitMethod method);
// "auto", "kick", "task-clock" or "usage"; nullopt otherwise.
std::optional<CpuLimitMethod> parse_cpu_limit_method(const std::string& name);

struct CpuLimitParams {
  uint64_t limit_us = 0;       // the CPU limit (plus extra time), µs
  unsigned parallelism = 1;    // how many CPUs the job can burn at once (>= 1)
  uint64_t tick_ns = 4000000;  // the kernel's tick: U's staleness per CPU, and the grid
  bool has_clock = false;      // P is available for this job
  bool exact_usage = false;    // U can be made exact near the end (the kick method)
  uint64_t aim_us = kExactAimUs;
  uint64_t margin_us = kCpuLimitMarginUs;
  uint64_t post_tick_ns = 250000;  // when a tick's charge is in U, after the grid point
  uint64_t min_step_ns = 100000;   // the shortest wait between two checks
  // Near the end, the next check comes when T should reach the limit and the margin at the rate
  // the job burns, but never later than this far past it had the job burnt on every CPU it may
  // use (its share of the CPUs changes with the other load).
  uint64_t max_late_us = 1000;
  // The same bound with an exact U: a kick is cheap enough for checks this close (the job's
  // share of the CPUs changes within a few ms on a loaded host).
  uint64_t exact_max_late_us = 300;
};

struct CpuSample {
  uint64_t now_ns = 0;               // CLOCK_MONOTONIC just before U was read
  uint64_t usage_us = 0;             // U
  std::optional<uint64_t> clock_us;  // P, read after U (when the tracker asked for it)
  bool exact = false;                // U was read after a kick (when the tracker asked for it)
};

struct CpuCheck {
  bool kill = false;
  uint64_t next_ns = 0;  // when !kill: the next check (CLOCK_MONOTONIC)
};

// The decisions, from the samples alone (no kernel access: unit-tested).
class CpuLimitTracker {
 public:
  explicit CpuLimitTracker(const CpuLimitParams& params);

  // The first check of a job started at start_ns (call once, before observe()).
  uint64_t first_check_ns(uint64_t start_ns);

  // Whether the next sample should carry P (the end is near).
  bool wants_clock() const { return params_.has_clock && near_; }

  // Whether the next sample should be an exact U (the end is near).
  bool wants_exact() const { return params_.exact_usage && near_; }

  // P could not be read: U alone from now on.
  void lose_clock();

  CpuCheck observe(const CpuSample& sample);

  // The lower estimate of the job's CPU at the last sample (T, or U without P), µs.
  uint64_t estimate_us() const { return estimate_us_; }
  // How many samples carried P.
  unsigned clock_reads() const { return clock_reads_; }
  // How many samples had an exact U.
  unsigned exact_reads() const { return exact_reads_; }

 private:
  struct Point {
    uint64_t t_ns;
    int64_t d_us;  // P - U
  };
  uint64_t grid_after(uint64_t t_ns) const;  // the next post-tick moment at or after t_ns
  uint64_t far_next_ns(uint64_t now_ns, uint64_t usage_us) const;  // 0: the end is near
  CpuCheck observe_exact(const CpuSample& sample);                 // the kick method

  CpuLimitParams params_;
  std::deque<Point> window_;
  bool near_ = false;
  uint64_t estimate_us_ = 0;
  std::optional<uint64_t> last_t_ns_, last_clock_us_;  // the previous sample with P
  double rate_ = 0;  // CPUs the job burns: P's growth between two samples (0: not known)
  unsigned clock_reads_ = 0;
  std::deque<std::pair<uint64_t, uint64_t>> exact_window_;  // exact samples: (t_ns, U)
  unsigned exact_reads_ = 0;
};

// The kernel's tick: clock_getres(CLOCK_MONOTONIC_COARSE) is TICK_NSEC. 10 ms if unknown.
uint64_t kernel_tick_ns();

// One job's CPU limit: the tracker, with its clocks (the cgroup's usage, and the task-clock
// when the job has one). The task-clock is opened only when the tracker first wants it, near
// the end: most jobs end well under their limit, and opening and closing the counters costs
// jailpool an IPI to each CPU (tens to hundreds of µs under PVM). It counts from its opening,
// which changes nothing: the tracker uses P only in differences with U (P - e).
class CpuLimitMethods;

class CpuLimitWatch {
 public:
  // Will open the task-clock of `cgroup_dir` when it is not "" (a failure only leaves it out).
  // With `kicks` (which must outlive the watch), kicks `cpus` (all when empty) for an exact U
  // near the end instead: the kickers are asked for at the first check (see CpuLimitMethods).
  CpuLimitWatch(CpuLimitParams params, const std::string& cgroup_dir,
                CpuLimitMethods* kicks = nullptr, std::vector<int> cpus = {});
  ~CpuLimitWatch();
  CpuLimitWatch(const CpuLimitWatch&) = delete;
  CpuLimitWatch& operator=(const CpuLimitWatch&) = delete;

  uint64_t first_check_ns(uint64_t start_ns) { return tracker_.first_check_ns(start_ns); }
  // Reads the clocks and decides. Throws Error when the cgroup's usage cannot be read.
  CpuCheck check(const isolate::JobCgroup& cgroup);
  bool has_clock() const { return clock_ != nullptr; }
  const CpuLimitTracker& tracker() const { return tracker_; }

 private:
  std::string clock_dir_;  // "" once opened or when there is none
  std::unique_ptr<isolate::JobCpuClock> clock_;
  CpuLimitMethods* kicks_;
  isolate::CpuKicker* kicker_ = nullptr;  // from kicks_, at the first check
  std::vector<int> cpus_;
  CpuLimitTracker tracker_;
};

// The method an executor's CPU limits use, chosen once by trying (kick: the kickers start as
// SCHED_FIFO and a kick completes; task-clock: isolate::probe_cpu_clock, or forced), with why.
// The kickers start, and are tried, when a job first nears its limit (its first check, a tick
// or more before the end): most runs (a `jailpool run` of a short job) never need them, and
// starting them costs threads and a test kick. Should they fail then, the method falls back
// for the jobs that follow (and that job's end is read from U alone, as after a failed kick).
class CpuLimitMethods {
 public:
  // `cgroup_dir`: a v2 cgroup where the task-clock is probed if it is needed ("" when none).
  // kAuto: the best that runs here. eager: try the kickers now (`jailpool check`).
  CpuLimitMethods(CpuLimitMethod wanted, std::string cgroup_dir, bool eager = false);
  ~CpuLimitMethods();
  CpuLimitMethods(const CpuLimitMethods&) = delete;
  CpuLimitMethods& operator=(const CpuLimitMethods&) = delete;

  CpuLimitMethod method() const { return method_; }
  const std::string& detail() const { return detail_; }  // one line: how, or why not better

  // A job's watch: `cgroup_dir` is its v2 cgroup ("" when none), `cpus` the CPUs it may run on
  // (empty: any).
  std::unique_ptr<CpuLimitWatch> watch(const CpuLimitParams& params, const std::string& cgroup_dir,
                                       std::vector<int> cpus);

  // The kickers, started (and tried) at the first call; null when they failed (the method has
  // then fallen back) or the method is not kick.
  isolate::CpuKicker* kicker();

 private:
  void start_kickers();
  void fall_back(const std::string& kick_why_not);

  CpuLimitMethod wanted_;
  std::string cgroup_dir_;
  CpuLimitMethod method_ = CpuLimitMethod::kUsage;
  std::string detail_;
  bool kick_pending_ = false;  // kick chosen, kickers not started yet
  std::unique_ptr<isolate::CpuKicker> kicker_;
};

}  // namespace jailpool::sched
