#include "isolate/features.h"

#include <fmt/core.h>
#include <liburing.h>
#include <linux/io_uring.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "isolate/cgroup.h"
#include "isolate/clone.h"
#include "isolate/overlay.h"
#include "isolate/perf_counter.h"
#include "isolate/seccomp.h"

namespace jailpool::isolate {
namespace {

// Not in Debian 12's headers (linux-libc-dev 6.1); upstream value (6.7+).
constexpr int kIoringOpWaitid = 50;

bool syscall_exists(long nr, long a = -1, long b = 0) {
  long rc = syscall(nr, a, b, 0, 0, 0);
  return !(rc < 0 && errno == ENOSYS);
}

}  // namespace

std::vector<Feature> probe_features(const CgroupSystem* cgroups) {
  std::vector<Feature> out;
  auto add = [&](std::string name, bool required, bool present, std::string detail) {
    out.push_back({std::move(name), required, present, std::move(detail)});
  };
  bool clone3 = clone3_available();
  add("clone3", false, clone3,
      clone3 ? "jobs start with clone3(CLONE_VM|CLONE_VFORK)" : "fallback: clone(2)");
  const CgroupInfo* info = cgroups ? &cgroups->info() : nullptr;
  bool v2 = info && !info->v2_mount.empty();
  add("CLONE_INTO_CGROUP", false, clone3 && v2,
      clone3 && v2 ? "jobs are born in their v2 cgroup"
                   : "fallback: the job writes its pid to cgroup.procs");
  add("pidfd", true, syscall_exists(SYS_pidfd_open, getpid(), 0), "job exit notification (5.3+)");
  add("close_range", true, syscall_exists(SYS_close_range, ~0U, ~0U),
      "only fds 0-2 reach the job (5.9+)");
  add("seccomp filter", true, prctl(PR_GET_SECCOMP) >= 0, "default deny-list");
  bool overlay = overlay_supported();
  add("overlayfs", false, overlay,
      overlay ? "file locks: each jail reads the host's files through overlays of its own"
              : "file locks are refused (ENOLCK): jobs would share them on the host's files");
  add("seccomp user notification", false, seccomp_notify_available(),
      "names the denied call in SECCOMP_VIOLATION; --seccomp-log");
  add("cgroup.kill", false, info && info->has_cgroup_kill,
      "fallback: SIGKILL to the jail's pid-namespace init");
  add("memory.peak", false, info && info->has_memory_peak,
      info && info->memory_source.rfind("v1", 0) == 0 ? "v1 memory.max_usage_in_bytes used instead"
                                                      : "fallback: ru_maxrss");
  add("pids.peak", false, info && info->has_pids_peak, "reported as pids_peak when present");
  bool cpuset = info && info->cpuset_source != "none";
  add("cpuset", false, cpuset,
      cpuset ? fmt::format("limits.cpus pins jobs ({})", info->cpuset_source)
             : "fallback: limits.cpus pins with sched_setaffinity (a job may undo it)");
  bool bandwidth = info && info->cpu_bandwidth_source != "none";
  add("cpu bandwidth", false, bandwidth,
      bandwidth ? fmt::format("limits.cpu_quota_percent ({})", info->cpu_bandwidth_source)
                : "limits.cpu_quota_percent is refused (no cpu controller)");
  std::string v2_parent;
  if (cgroups && info && !info->v2_mount.empty()) v2_parent = cgroups->parent_dirs().front();
  PerfSupport perf = probe_perf(v2_parent);
  add("perf hardware", false, perf.hardware,
      perf.hardware ? perf.hardware_detail
                    : "instructions/cycles unavailable: " + perf.hardware_detail);
  add("cpu-limit task-clock", false, perf.cpu_clock,
      perf.cpu_clock
          ? "CPU limits kill within ~1-2 ms: " + perf.cpu_clock_detail
          : "fallback: CPU limits kill up to a tick per CPU late: " + perf.cpu_clock_detail);

  io_uring_probe* probe = io_uring_get_probe();
  bool uring = probe != nullptr;
  add("io_uring", false, uring, uring ? "event loop and async teardown" : "fallback: poll(2) loop");
  auto op = [&](const char* name, int opcode, const char* detail) {
    bool ok =
        probe != nullptr && opcode <= probe->last_op && io_uring_opcode_supported(probe, opcode);
    add(fmt::format("io_uring {}", name), false, ok, detail);
  };
  op("POLL_ADD", IORING_OP_POLL_ADD, "pidfd and pipe readiness");
  op("TIMEOUT", IORING_OP_TIMEOUT, "limit timers");
  op("UNLINKAT", IORING_OP_UNLINKAT, "asynchronous cgroup removal (5.11+)");
  op("WAITID", kIoringOpWaitid, "6.7+; not needed: exits come as POLL_ADD on the pidfd");
  if (probe) io_uring_free_probe(probe);
  return out;
}

}  // namespace jailpool::isolate
