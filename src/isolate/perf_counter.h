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
// Not for the CPU limit: a software task-clock on the cgroup counts time while scheduled,
// including steal and irq time that the scheduler's accounting (cpu.stat, the reported CPU)
// leaves out, so it runs ahead of the reported CPU (measured: >1 ms per 300 ms under load here).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/unique_fd.h"

namespace jailpool::isolate {

struct PerfSupport {
  bool hardware = false;        // instructions and cycles of a cgroup can be counted
  std::string hardware_detail;  // how, or why not (one line)
};

// Probes by opening (and closing) a counter on this thread, then on `cgroup_dir` (a v2 cgroup
// directory; "" when there is none).
PerfSupport probe_perf(const std::string& cgroup_dir);

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
