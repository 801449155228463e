// What `jailpool check` reports (and `jailpool serve`'s Check): the cgroup mode, the kernel
// features jailpool needs or uses, and the CPU-limit method the executor would choose.
#pragma once

#include <string>

namespace jailpool::sched {

struct CheckReport {
  bool ok = false;   // jailpool can run here
  std::string text;  // lines, as `jailpool check` prints them
};
CheckReport check_system(const std::string& cgroup_parent);

}  // namespace jailpool::sched
