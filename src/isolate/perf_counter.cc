#include "isolate/perf_counter.h"

#include <fcntl.h>
#include <fmt/core.h>
#include <linux/perf_event.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/error.h"
#include "isolate/cgroup.h"

namespace jailpool::isolate {
namespace {

perf_event_attr make_attr(uint32_t type, uint64_t config) {
  perf_event_attr attr{};
  attr.size = sizeof attr;
  attr.type = type;
  attr.config = config;
  attr.read_format = PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING;
  return attr;
}

// pid is a cgroup directory fd when flags has PERF_FLAG_PID_CGROUP.
int perf_open(perf_event_attr& attr, int pid, int cpu, unsigned long flags) {
  return static_cast<int>(
      ::syscall(SYS_perf_event_open, &attr, pid, cpu, -1, flags | PERF_FLAG_FD_CLOEXEC));
}

// One counter `what` of the cgroup (a directory fd) on each CPU.
std::vector<UniqueFd> open_per_cpu(int cgroup_fd, const std::vector<int>& cpus,
                                   const perf_event_attr& attr, const char* what) {
  std::vector<UniqueFd> fds;
  for (int cpu : cpus) {
    perf_event_attr copy = attr;
    int fd = perf_open(copy, cgroup_fd, cpu, PERF_FLAG_PID_CGROUP);
    if (fd < 0) {
      throw_errno(fmt::format("perf_event_open({} of the job's cgroup, cpu {})", what, cpu));
    }
    fds.emplace_back(fd);
  }
  return fds;
}

UniqueFd open_dir(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) throw_errno("open " + dir);
  return fd;
}

std::string why_hardware_unavailable(int err) {
  if (err == ENOENT || err == EOPNOTSUPP) {
    return fmt::format("no hardware PMU (perf_event_open: {}; e.g. a VM without PMU passthrough)",
                       std::strerror(err));
  }
  if (err == EACCES || err == EPERM) {
    return fmt::format("perf_event_open refused ({}; kernel.perf_event_paranoid or seccomp)",
                       std::strerror(err));
  }
  return fmt::format("perf_event_open: {}", std::strerror(err));
}

}  // namespace

namespace {

void probe_hardware(const std::string& cgroup_dir, PerfSupport& out) {
  // A counter on this thread says whether there is a PMU at all.
  perf_event_attr hw = make_attr(PERF_TYPE_HARDWARE, PERF_COUNT_HW_INSTRUCTIONS);
  hw.disabled = 1;
  if (UniqueFd fd(perf_open(hw, 0, -1, 0)); !fd) {
    out.hardware_detail = why_hardware_unavailable(errno);
    return;
  }
  if (cgroup_dir.empty()) {
    out.hardware_detail = "no cgroup2 hierarchy (counters of the whole tree need one)";
    return;
  }
  try {
    JobPerfCounters probe(cgroup_dir);
    out.hardware = true;
    out.hardware_detail = "instructions and cycles of the job's cgroup (whole tree)";
  } catch (const Error& e) {
    out.hardware_detail = e.what();
  }
}

}  // namespace

void probe_cpu_clock(const std::string& cgroup_dir, PerfSupport& out) {
  if (cgroup_dir.empty()) {
    out.cpu_clock_detail = "no cgroup2 hierarchy (the task-clock of a cgroup needs one)";
    return;
  }
  if (uint64_t steal = system_steal_ticks(); steal > 0) {
    out.cpu_clock_detail = fmt::format(
        "the kernel accounts steal time ({} ticks since boot), which the task-clock "
        "counts and the cgroup's usage does not",
        steal);
    return;
  }
  try {
    JobCpuClock probe(cgroup_dir);
    probe.read_us();
    out.cpu_clock = true;
    out.cpu_clock_detail = "task-clock of the job's cgroup on every CPU";
  } catch (const Error& e) {
    out.cpu_clock_detail = e.what();
  }
}

PerfSupport probe_perf(const std::string& cgroup_dir, bool with_cpu_clock) {
  PerfSupport out;
  probe_hardware(cgroup_dir, out);
  if (with_cpu_clock) {
    probe_cpu_clock(cgroup_dir, out);
  } else {
    out.cpu_clock_detail = "not probed";
  }
  return out;
}

uint64_t system_steal_ticks() {
  UniqueFd fd(::open("/proc/stat", O_RDONLY | O_CLOEXEC));
  if (!fd) return 0;
  char buf[512];
  ssize_t n = ::read(fd.get(), buf, sizeof buf - 1);
  if (n <= 0) return 0;
  buf[n] = '\0';
  // cpu  user nice system idle iowait irq softirq steal guest guest_nice
  unsigned long long v[8] = {};
  if (std::sscanf(buf, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                  &v[4], &v[5], &v[6], &v[7]) != 8) {
    return 0;
  }
  return v[7];
}

JobCpuClock::JobCpuClock(const std::string& cgroup_dir) {
  perf_event_attr attr = make_attr(PERF_TYPE_SOFTWARE, PERF_COUNT_SW_TASK_CLOCK);
  attr.read_format = 0;  // the value alone (never multiplexed: a software counter)
  fds_ = open_per_cpu(open_dir(cgroup_dir).get(), online_cpus(), attr, "task-clock");
}

uint64_t JobCpuClock::read_us() const {
  uint64_t total_ns = 0;
  for (const UniqueFd& fd : fds_) {
    uint64_t v = 0;
    ssize_t n;
    do {
      n = ::read(fd.get(), &v, sizeof v);
    } while (n < 0 && errno == EINTR);
    if (n != static_cast<ssize_t>(sizeof v)) throw_errno("read of the job's task-clock");
    total_ns += v;
  }
  return total_ns / 1000;
}

JobPerfCounters::JobPerfCounters(const std::string& cgroup_dir) {
  UniqueFd dir = open_dir(cgroup_dir);
  std::vector<int> cpus = online_cpus();
  instructions_ = open_per_cpu(
      dir.get(), cpus, make_attr(PERF_TYPE_HARDWARE, PERF_COUNT_HW_INSTRUCTIONS), "instructions");
  cycles_ = open_per_cpu(dir.get(), cpus, make_attr(PERF_TYPE_HARDWARE, PERF_COUNT_HW_CPU_CYCLES),
                         "cycles");
}

uint64_t JobPerfCounters::sum(const std::vector<UniqueFd>& fds) {
  uint64_t total = 0;
  for (const UniqueFd& fd : fds) {
    uint64_t v[3] = {0, 0, 0};  // value, time enabled, time running
    ssize_t n;
    do {
      n = ::read(fd.get(), v, sizeof v);
    } while (n < 0 && errno == EINTR);
    if (n != static_cast<ssize_t>(sizeof v)) throw_errno("read of a perf counter");
    // Multiplexed (hardware counters shared with other users): scale to the enabled time.
    if (v[2] != 0 && v[2] < v[1]) {
      v[0] = static_cast<uint64_t>(static_cast<double>(v[0]) * v[1] / v[2]);
    }
    total += v[0];
  }
  return total;
}

}  // namespace jailpool::isolate
