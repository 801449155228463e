// Makes a cgroup's CPU usage exact on demand, without perf: one "kicker" thread per CPU, pinned
// there, SCHED_FIFO, asleep on a futex. kick() wakes the kickers of the CPUs a job may be running
// on and waits until each has run. A woken FIFO thread preempts whatever CFS task runs on its
// CPU at once (a resched IPI), and switching a task out charges it up to now (put_prev_task ->
// update_curr): its thread's sum_exec_runtime and its cgroup's usage (cpu.stat usage_usec,
// cpuacct.usage). After kick() returns true, the usage of every task of the job is therefore
// exact as of the kick, less the µs since, instead of stale by up to a tick per CPU where one
// of its threads runs.
//
// Kernel facts this relies on (measured on 6.18 at HZ=250 with a paravirt steal clock):
//   - the scheduler's charges use rq->clock_task, which leaves out steal (with
//     PARAVIRT_TIME_ACCOUNTING) and irq time (IRQ_TIME_ACCOUNTING): the usage stays the clock
//     the result reports, unlike a perf task-clock, which counts steal;
//   - there is no cheaper way to have another process's running thread charged: the CPU clock
//     of another process (clock_getcpuclockid) and /proc/<tid>/schedstat advance in tick steps
//     while it runs on another CPU, and posix-cpu-timers refuse a thread clock of another
//     process's thread.
// The kicker does not kick the CPU its caller runs on: nothing of the job runs there then (the
// caller does, and its wake-up switched the job out).
//
// Costs: a kick is two wake-ups across CPUs per kicked CPU (tens of µs of the caller's time
// under a VM) and a few µs of the job's time on each. Idle kickers cost nothing.
// Fails (start() returns nullptr with the reason) without CAP_SYS_NICE, or in a v1 cpu cgroup
// with no RT runtime (cpu.rt_runtime_us 0, CONFIG_RT_GROUP_SCHED).
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace jailpool::isolate {

class CpuKicker {
 public:
  // One kicker on each of `cpus` (e.g. online_cpus()). nullptr and `why_not` set when one
  // cannot be pinned or made SCHED_FIFO (the threads started are stopped and joined).
  static std::unique_ptr<CpuKicker> start(const std::vector<int>& cpus, std::string* why_not);

  ~CpuKicker();  // stops and joins every kicker
  CpuKicker(const CpuKicker&) = delete;
  CpuKicker& operator=(const CpuKicker&) = delete;

  // Kicks each of `cpus` that has a kicker (all of them when empty), except the caller's, and
  // waits up to `timeout_ns` for every kicker to have run. False on a timeout (a kicker kept
  // off its CPU by a higher-priority RT thread: the usage may then be stale there).
  bool kick(const std::vector<int>& cpus, uint64_t timeout_ns);

  const std::vector<int>& cpus() const { return cpus_; }

 private:
  struct Slot {
    int cpu = -1;
    std::atomic<uint32_t> seq{0};    // futex: bumped by kick()
    std::atomic<uint32_t> acked{0};  // the last seq this kicker ran for
    std::atomic<int> state{0};       // 0 starting, 1 running, -1 failed (errno in error)
    int error = 0;
    CpuKicker* owner = nullptr;
    pthread_t thread{};
    bool joinable = false;
  };
  static void* trampoline(void* slot);
  CpuKicker() = default;
  void body(Slot& slot);
  void stop();

  struct Wanted {
    Slot* slot;
    uint32_t seq;
  };
  std::vector<int> cpus_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<Wanted> wanted_;     // kick()'s, kept to spare an allocation per kick
  std::atomic<uint32_t> acks_{0};  // futex: bumped by each ack
  std::atomic<bool> stop_{false};
};

}  // namespace jailpool::isolate
