// Kernel features jailpool uses, probed at start-up (never assumed from a version number).
#pragma once

#include <string>
#include <vector>

namespace jailpool::isolate {

class CgroupSystem;

struct Feature {
  std::string name;
  bool required = false;
  bool present = false;
  std::string detail;  // what it is used for, or the fallback when absent
};

// Probes everything `jailpool check` reports. `cgroups` may be null (cgroup probes are then
// reported as absent).
std::vector<Feature> probe_features(const CgroupSystem* cgroups);

}  // namespace jailpool::isolate
