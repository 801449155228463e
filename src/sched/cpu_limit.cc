#include "sched/cpu_limit.h"

#include <fmt/core.h>
#include <fmt/format.h>
#include <time.h>

#include <algorithm>

#include "common/error.h"
#include "isolate/cgroup.h"
#include "isolate/cpu_kick.h"
#include "isolate/jail.h"
#include "isolate/perf_counter.h"

namespace jailpool::sched {

CpuLimitTracker::CpuLimitTracker(const CpuLimitParams& params) : params_(params) {
  params_.parallelism = std::max(1u, params_.parallelism);
  if (params_.tick_ns == 0) params_.tick_ns = 10000000;
  params_.min_step_ns = std::max<uint64_t>(params_.min_step_ns, 1);
}

uint64_t CpuLimitTracker::grid_after(uint64_t t_ns) const {
  uint64_t at = t_ns / params_.tick_ns * params_.tick_ns + params_.post_tick_ns;
  while (at < t_ns) at += params_.tick_ns;
  return at;
}

uint64_t CpuLimitTracker::far_next_ns(uint64_t now_ns, uint64_t usage_us) const {
  // The truth is at most U plus a tick (and its latency) per CPU the job may run on, and it
  // grows at most `parallelism` µs per µs.
  const uint64_t lag_us = params_.parallelism * (params_.tick_ns + params_.post_tick_ns) / 1000;
  if (usage_us + lag_us >= params_.limit_us) return 0;
  uint64_t earliest_ns =
      now_ns + (params_.limit_us - usage_us - lag_us) * 1000 / params_.parallelism;
  // Near from a tick (and its latency) before that: one sample just after a tick comes first.
  uint64_t lead_ns = params_.tick_ns + params_.post_tick_ns + params_.min_step_ns;
  if (earliest_ns < now_ns + lead_ns + params_.min_step_ns) return 0;
  return earliest_ns - lead_ns;
}

uint64_t CpuLimitTracker::first_check_ns(uint64_t start_ns) {
  if (params_.exact_usage) {
    uint64_t far = far_next_ns(start_ns, 0);
    near_ = far == 0;
    return near_ ? start_ns + params_.min_step_ns : far;
  }
  if (!params_.has_clock) {
    // U alone: the earliest moment the budget could be spent, as before the task-clock.
    uint64_t first = params_.limit_us * 1000 / params_.parallelism;
    return start_ns + std::max<uint64_t>(first, 1000000);
  }
  uint64_t far = far_next_ns(start_ns, 0);
  near_ = far == 0;
  return near_ ? grid_after(start_ns + params_.min_step_ns) : far;
}

void CpuLimitTracker::lose_clock() {
  params_.has_clock = false;
  near_ = false;
  window_.clear();
  last_t_ns_.reset();
  last_clock_us_.reset();
  rate_ = 0;
}

CpuCheck CpuLimitTracker::observe(const CpuSample& s) {
  const uint64_t t = s.now_ns;
  const uint64_t u = s.usage_us;
  const uint64_t limit = params_.limit_us;
  CpuCheck out;
  estimate_us_ = u;
  // U never runs ahead of the truth.
  if (u >= limit) {
    out.kill = true;
    return out;
  }

  if (params_.exact_usage) return observe_exact(s);

  const bool with_clock = params_.has_clock && s.clock_us.has_value();
  if (with_clock) {
    ++clock_reads_;
    const auto p = static_cast<int64_t>(*s.clock_us);
    const int64_t d = p - static_cast<int64_t>(u);
    const uint64_t window_ns = 2 * params_.tick_ns + params_.post_tick_ns + params_.min_step_ns;
    while (!window_.empty() && window_.front().t_ns + window_ns < t) window_.pop_front();
    window_.push_back({t, d});
    int64_t e = d;
    for (const Point& pt : window_) e = std::min(e, pt.d_us);
    // e <= d, so P - e >= U.
    estimate_us_ = static_cast<uint64_t>(std::max<int64_t>(p - e, static_cast<int64_t>(u)));
    if (estimate_us_ >= limit + params_.margin_us) {
      out.kill = true;
      return out;
    }
    // P is continuous (T is not: it jumps when a sample after a tick lowers e).
    if (!last_t_ns_ || t >= *last_t_ns_ + params_.min_step_ns) {
      if (last_t_ns_ && *s.clock_us >= *last_clock_us_) {
        rate_ = static_cast<double>(*s.clock_us - *last_clock_us_) * 1000.0 /
                static_cast<double>(t - *last_t_ns_);
      }
      last_t_ns_ = t;
      last_clock_us_ = *s.clock_us;
    }
  }

  const uint64_t min_next = t + params_.min_step_ns;
  if (!params_.has_clock) {
    // U alone (jailpool's method before the task-clock): the earliest moment the rest of the
    // budget could be spent. Short last steps catch the tick that brings U past the limit.
    uint64_t wait_ns = (limit - u) * 1000 / params_.parallelism;
    out.next_ns = t + std::max(wait_ns, kFallbackStepNs);
    return out;
  }
  if (uint64_t far = far_next_ns(t, u); far != 0) {
    near_ = false;
    out.next_ns = std::max(far, min_next);
    return out;
  }
  near_ = true;
  // A sample just after every tick keeps e tight and recent.
  uint64_t next = grid_after(min_next);
  const uint64_t target = limit + params_.margin_us;
  if (with_clock) {
    // When T reaches the limit and the margin at the rate the job burns (a tenth more, so the
    // check comes a little early rather than late; every CPU it may use before the rate is
    // known). The rate may change (other load on the CPUs, threads that start): never later
    // than max_late_us past the target had the job burnt on every CPU it may use since.
    double rate = static_cast<double>(params_.parallelism);
    if (rate_ > 0) rate = std::clamp(rate_ * 1.1, 0.05, rate);
    const uint64_t left_us = target - estimate_us_;
    auto wait_ns = static_cast<uint64_t>(static_cast<double>(left_us) * 1000.0 / rate);
    wait_ns = std::min(wait_ns, (left_us + params_.max_late_us) * 1000 / params_.parallelism);
    next = std::min(next, t + wait_ns);
  } else {
    // U alone at this sample: not later than today's method would look.
    next = std::min(next, t + (target - u) * 1000 / params_.parallelism);
  }
  out.next_ns = std::max(next, min_next);
  return out;
}

CpuCheck CpuLimitTracker::observe_exact(const CpuSample& s) {
  // U < limit here (observe() kills otherwise).
  const uint64_t t = s.now_ns;
  const uint64_t u = s.usage_us;
  const uint64_t limit = params_.limit_us;
  const uint64_t min_next = t + params_.min_step_ns;
  CpuCheck out;
  if (!s.exact) {
    const bool asked = near_;
    if (uint64_t far = far_next_ns(t, u); far != 0) {
      near_ = false;
      out.next_ns = std::max(far, min_next);
      return out;
    }
    near_ = true;
    // The end is near now: a kick at once. Near already, the kick failed: U alone for this
    // step (up to a tick per CPU late, as without kicks), then a kick again.
    out.next_ns =
        asked ? t + std::max((limit - u) * 1000 / params_.parallelism, kFallbackStepNs) : min_next;
    return out;
  }
  ++exact_reads_;
  near_ = true;
  // The rate U grows at: from the oldest exact sample of the last two ticks or so (a kick takes
  // ~0.1 ms under a VM and the job shares its CPUs: a rate over one short step is noise, and
  // an early check is only another kick, a late one an overshoot).
  const uint64_t window_ns = 2 * params_.tick_ns;
  while (exact_window_.size() > 1 && exact_window_[1].first + window_ns <= t) {
    exact_window_.pop_front();
  }
  // The larger of that and the rate over the last step, when it can be measured: the job's
  // share of its CPUs changes quickly under other load, and a rate that rose shows first there.
  auto rate_since = [&](const std::pair<uint64_t, uint64_t>& from) {
    if (t < from.first + params_.min_step_ns || u < from.second) return 0.0;
    return static_cast<double>(u - from.second) * 1000.0 / static_cast<double>(t - from.first);
  };
  if (!exact_window_.empty()) {
    rate_ = std::max(rate_since(exact_window_.front()), rate_since(exact_window_.back()));
  }
  exact_window_.emplace_back(t, u);
  // When U reaches the limit and the aim at that rate (every CPU it may use before it is
  // known), never later than max_late_us past the limit had it burnt on every CPU since.
  double rate = static_cast<double>(params_.parallelism);
  if (rate_ > 0) rate = std::clamp(rate_, 0.05, rate);
  const uint64_t left_us = limit - u;
  auto wait_ns =
      static_cast<uint64_t>(static_cast<double>(left_us + params_.aim_us) * 1000.0 / rate);
  wait_ns = std::min(wait_ns, (left_us + params_.exact_max_late_us) * 1000 / params_.parallelism);
  out.next_ns = std::max(t + wait_ns, min_next);
  return out;
}

const char* to_string(CpuLimitMethod method) {
  switch (method) {
    case CpuLimitMethod::kAuto:
      return "auto";
    case CpuLimitMethod::kKick:
      return "kick";
    case CpuLimitMethod::kTaskClock:
      return "task-clock";
    case CpuLimitMethod::kUsage:
      return "usage";
  }
  return "?";
}

std::optional<CpuLimitMethod> parse_cpu_limit_method(const std::string& name) {
  for (CpuLimitMethod m : {CpuLimitMethod::kAuto, CpuLimitMethod::kKick, CpuLimitMethod::kTaskClock,
                           CpuLimitMethod::kUsage}) {
    if (name == to_string(m)) return m;
  }
  return std::nullopt;
}

uint64_t kernel_tick_ns() {
  static const uint64_t tick = [] {
    timespec res{};
    if (clock_getres(CLOCK_MONOTONIC_COARSE, &res) == 0 && res.tv_sec == 0 && res.tv_nsec > 0) {
      return static_cast<uint64_t>(res.tv_nsec);
    }
    return uint64_t{10000000};
  }();
  return tick;
}

namespace {

std::unique_ptr<isolate::JobCpuClock> open_clock(const std::string& cgroup_dir) {
  try {
    return std::make_unique<isolate::JobCpuClock>(cgroup_dir);
  } catch (const Error&) {
    return nullptr;  // U alone
  }
}

CpuLimitParams with_methods(CpuLimitParams params, bool has_clock, bool exact_usage) {
  params.has_clock = has_clock && !exact_usage;
  params.exact_usage = exact_usage;
  return params;
}

}  // namespace

CpuLimitWatch::CpuLimitWatch(CpuLimitParams params, const std::string& cgroup_dir,
                             CpuLimitMethods* kicks, std::vector<int> cpus)
    : clock_dir_(kicks ? std::string() : cgroup_dir),
      kicks_(kicks),
      cpus_(std::move(cpus)),
      tracker_(with_methods(params, !cgroup_dir.empty(), kicks != nullptr)) {}

CpuLimitWatch::~CpuLimitWatch() = default;

CpuCheck CpuLimitWatch::check(const isolate::JobCgroup& cgroup) {
  CpuSample s;
  s.now_ns = isolate::monotonic_now_ns();
  // The first check comes a tick or more before the end could: the kickers start here, once
  // per executor, off the kill's path.
  if (kicks_ && !kicker_) {
    kicker_ = kicks_->kicker();
    if (!kicker_) kicks_ = nullptr;  // they failed: U alone for this job, as after a failed kick
    s.now_ns = isolate::monotonic_now_ns();
  }
  // The kick comes before U's read: U is then exact as of the kick.
  if (kicker_ && tracker_.wants_exact()) s.exact = kicker_->kick(cpus_, kKickTimeoutNs);
  s.usage_us = cgroup.read_cpu_usec();
  if (!clock_ && !clock_dir_.empty() && tracker_.wants_clock()) {
    clock_ = open_clock(clock_dir_);
    clock_dir_.clear();
    if (!clock_) tracker_.lose_clock();
  }
  if (clock_ && tracker_.wants_clock()) {
    // After U: the read order makes P - e a lower bound (cpu_limit.h).
    try {
      s.clock_us = clock_->read_us();
    } catch (const Error&) {
      clock_.reset();
      tracker_.lose_clock();
    }
  }
  return tracker_.observe(s);
}

CpuLimitMethods::CpuLimitMethods(CpuLimitMethod wanted, std::string cgroup_dir, bool eager)
    : wanted_(wanted), cgroup_dir_(std::move(cgroup_dir)) {
  if (wanted == CpuLimitMethod::kAuto || wanted == CpuLimitMethod::kKick) {
    method_ = CpuLimitMethod::kKick;
    kick_pending_ = true;
    detail_ =
        "exact cgroup usage near the end: a SCHED_FIFO kicker on each CPU preempts the job's "
        "threads, which charges them (no perf, steal left out); started when a job first nears "
        "its limit";
    if (eager) start_kickers();
    return;
  }
  fall_back("");
}

void CpuLimitMethods::start_kickers() {
  kick_pending_ = false;
  std::string why_not;
  kicker_ = isolate::CpuKicker::start(isolate::online_cpus(), &why_not);
  if (kicker_ && !kicker_->kick({}, kKickTimeoutNs)) {
    kicker_.reset();
    why_not = "a test kick timed out";
  }
  if (!kicker_) {
    fall_back("no kick (" + why_not + ")");
    return;
  }
  detail_ = fmt::format(
      "exact cgroup usage near the end: a SCHED_FIFO kicker on each of {} CPUs preempts the "
      "job's threads, which charges them (no perf, steal left out)",
      kicker_->cpus().size());
}

isolate::CpuKicker* CpuLimitMethods::kicker() {
  if (kick_pending_) start_kickers();
  return kicker_.get();
}

void CpuLimitMethods::fall_back(const std::string& kick_why_not) {
  const bool forced = wanted_ == CpuLimitMethod::kTaskClock;
  if (wanted_ == CpuLimitMethod::kAuto || forced) {
    // Probed only now: opening a cgroup's task-clock costs an IPI to each CPU.
    isolate::PerfSupport perf;
    isolate::probe_cpu_clock(cgroup_dir_, perf);
    if (perf.cpu_clock || forced) {
      method_ = CpuLimitMethod::kTaskClock;
      detail_ = fmt::format("{}cgroup usage and perf task-clock: {}", forced ? "forced: " : "",
                            perf.cpu_clock_detail);
      if (!kick_why_not.empty()) detail_ += "; " + kick_why_not;
      return;
    }
    method_ = CpuLimitMethod::kUsage;
    std::vector<std::string> why;
    if (!kick_why_not.empty()) why.push_back(kick_why_not);
    if (!forced) why.push_back("no task-clock (" + perf.cpu_clock_detail + ")");
    detail_ =
        fmt::format("cgroup usage alone, up to a tick per CPU late: {}", fmt::join(why, "; "));
    return;
  }
  method_ = CpuLimitMethod::kUsage;
  std::vector<std::string> why;
  if (!kick_why_not.empty()) why.push_back(kick_why_not);
  why.push_back("forced");
  detail_ = fmt::format("cgroup usage alone, up to a tick per CPU late: {}", fmt::join(why, "; "));
}

CpuLimitMethods::~CpuLimitMethods() = default;

std::unique_ptr<CpuLimitWatch> CpuLimitMethods::watch(const CpuLimitParams& params,
                                                      const std::string& cgroup_dir,
                                                      std::vector<int> cpus) {
  switch (method_) {
    case CpuLimitMethod::kKick:
      return std::make_unique<CpuLimitWatch>(params, std::string(), this, std::move(cpus));
    case CpuLimitMethod::kTaskClock:
      return std::make_unique<CpuLimitWatch>(params, cgroup_dir);
    default:
      return std::make_unique<CpuLimitWatch>(params, std::string());
  }
}

}  // namespace jailpool::sched
