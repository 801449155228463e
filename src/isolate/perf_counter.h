// Per-job hardware counters (instructions, cycles) over the job's v2 cgroup:
// perf_event_open(PERF_FLAG_PID_CGROUP), one counter per online CPU, counting every task of
// the cgroup: the whole tree, from the job's birth in it by CLONE_INTO_CGROUP (its descendants
// cannot leave it), and never jailpool's own work (the jail's init is not in it).
//
// Why a cgroup and not a task counter with inherit=1: the job's first process is cloned by the
// jail's init, which jailpool cannot attach to before it clones (a race), and a counter
// inherited from jailpool's own thread would also count every later job started from it. A
// cgroup counter exists before the job does. The v2 perf_event controller is implicit (every
// cgroup2 hierarchy, 4.11+) unless it is bound to a v1 hierarchy.
//
// JobCpuClock is the same kind of counter in software: the cgroup's task-clock, the time its
// tasks spent on each CPU, exact at the moment it is read (a read of a CPU the job runs on
// interrupts that CPU). It is not the clock the result reports (the cgroup's usage, which the
// kernel charges only at ticks and context switches) and drifts from it: it also counts steal
// and irq time that the scheduler's accounting leaves out, and gains or loses a few µs per
// context switch. The CPU limit (sched/cpu_limit.h) uses it only for what it adds between two
// moments, never alone.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/unique_fd.h"

namespace jailpool::isolate {

struct PerfSupport {
  bool hardware = false;        // instructions and cycles of a cgroup can be counted
  std::string hardware_detail;  // how, or why not (one line)
  // The cgroup's task-clock can serve the CPU limit: it opens, and the kernel accounts no steal
  // time (a steal clock makes the task-clock run ahead of the cgroup's usage by whatever the
  // host steals, without bound).
  bool cpu_clock = false;
  std::string cpu_clock_detail;  // how, or why not (one line)
};

// Probes by opening (and closing) a counter on this thread, then on `cgroup_dir` (a v2 cgroup
// directory; "" when there is none).
// with_cpu_clock false: the hardware counters only (an executor probes the task-clock only
// when its CPU limits need it: opening it costs an IPI to each CPU).
PerfSupport probe_perf(const std::string& cgroup_dir, bool with_cpu_clock = true);
// PerfSupport::cpu_clock and its detail alone.
void probe_cpu_clock(const std::string& cgroup_dir, PerfSupport& out);

// The steal time the kernel has accounted since boot, in USER_HZ ticks (the steal column of
// /proc/stat's cpu line; 0 without a paravirt steal clock, or when it cannot be read).
uint64_t system_steal_ticks();

class JobCpuClock {
 public:
  // Opens a software task-clock counter of the cgroup on every online CPU (it counts from now).
  // Throws SysError naming the CPU.
  explicit JobCpuClock(const std::string& cgroup_dir);

  // The total over the CPUs in µs. Throws SysError when a counter cannot be read.
  uint64_t read_us() const;

 private:
  std::vector<UniqueFd> fds_;
};

class JobPerfCounters {
 public:
  // Opens instructions and cycles counters of the cgroup on every online CPU. Throws SysError
  // naming the counter.
  explicit JobPerfCounters(const std::string& cgroup_dir);

  // Totals over the CPUs (scaled when the PMU multiplexed them).
  uint64_t instructions() const { return sum(instructions_); }
  uint64_t cycles() const { return sum(cycles_); }

 private:
  static uint64_t sum(const std::vector<UniqueFd>& fds);
  std::vector<UniqueFd> instructions_, cycles_;
};

}  // namespace jailpool::isolate
