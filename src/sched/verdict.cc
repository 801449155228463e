// The status a job's facts give, and the text hygiene of its captured output.
#include <signal.h>

#include <string>
#include <string_view>

#include "sched/executor.h"

namespace jailpool::sched {

Status decide_status(const VerdictFacts& f) {
  using Kill = VerdictFacts::Kill;
  if (f.setup_failed) return SETUP_ERROR;
  switch (f.killed_for) {
    case Kill::kCpuTime:
      return TIME_LIMIT_EXCEEDED;
    case Kill::kWallTime:
      return WALL_TIME_LIMIT_EXCEEDED;
    case Kill::kOutput:
      return OUTPUT_LIMIT_EXCEEDED;
    case Kill::kInterrupted:
      return INTERNAL_ERROR;
    case Kill::kSeccomp:
      return SECCOMP_VIOLATION;
    case Kill::kGroup:
      // Killed because another job of its group failed, unless it had ended by itself first.
      if (!f.exited || f.signal != 0) return SIGNALED;
      break;
    case Kill::kNone:
      break;
  }
  // The OOM killer may pick a child, not the main process: any OOM kill is an MLE.
  if (f.oom_kills > 0) return MEMORY_LIMIT_EXCEEDED;
  bool over_cpu = f.cpu_limit_us && f.cpu_time_us > *f.cpu_limit_us;
  if (f.exited && f.signal != 0) {
    if (f.signal == SIGSYS && f.seccomp_enabled) return SECCOMP_VIOLATION;
    if (f.signal == SIGXFSZ) return OUTPUT_LIMIT_EXCEEDED;
    if (f.signal == SIGXCPU || (f.signal == SIGKILL && over_cpu)) return TIME_LIMIT_EXCEEDED;
  }
  if (over_cpu) return TIME_LIMIT_EXCEEDED;
  // With extra time a job may end by itself past its wall limit: still over it.
  if (f.wall_limit_us && f.wall_time_us > *f.wall_limit_us) return WALL_TIME_LIMIT_EXCEEDED;
  if (!f.exited) return INTERNAL_ERROR;
  if (f.signal != 0) return SIGNALED;
  return f.exit_code == 0 ? OK : NONZERO_EXIT;
}

std::string sanitize_utf8(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  size_t i = 0;
  while (i < in.size()) {
    unsigned char c = static_cast<unsigned char>(in[i]);
    size_t len = c < 0x80           ? 1
                 : (c >> 5) == 0x6  ? 2
                 : (c >> 4) == 0xe  ? 3
                 : (c >> 3) == 0x1e ? 4
                                    : 0;
    bool ok = len > 0 && i + len <= in.size();
    for (size_t k = 1; ok && k < len; ++k) {
      ok = (static_cast<unsigned char>(in[i + k]) & 0xc0) == 0x80;
    }
    if (ok && len > 1) {
      uint32_t cp = c & (0xff >> (len + 1));
      for (size_t k = 1; k < len; ++k)
        cp = cp << 6 | (static_cast<unsigned char>(in[i + k]) & 0x3f);
      static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
      ok = cp >= kMin[len] && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff);
    }
    if (ok) {
      out.append(in.substr(i, len));
      i += len;
    } else {
      out.append("\xef\xbf\xbd");
      ++i;
    }
  }
  return out;
}

}  // namespace jailpool::sched
