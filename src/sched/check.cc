#include "sched/check.h"

#include <fmt/core.h>
#include <fmt/format.h>
#include <sys/utsname.h>

#include <memory>

#include "common/error.h"
#include "isolate/cgroup.h"
#include "isolate/features.h"
#include "isolate/perf_counter.h"
#include "sched/cpu_limit.h"

namespace jailpool::sched {

CheckReport check_system(const std::string& cgroup_parent) {
  CheckReport report;
  auto print = [&](fmt::string_view format, const auto&... args) {
    report.text += fmt::vformat(format, fmt::make_format_args(args...));
  };
  utsname u{};
  uname(&u);
  print("kernel: {} {}\n", u.release, u.machine);
  std::unique_ptr<isolate::CgroupSystem> cgroups;
  bool ok = true;
  try {
    cgroups = isolate::CgroupSystem::detect(cgroup_parent);
    const auto& info = cgroups->info();
    print("cgroup mode: {}\n", isolate::to_string(info.mode));
    if (!info.v2_mount.empty()) {
      print("cgroup v2: {} (controllers for jailpool: {})\n", info.v2_mount,
            info.v2_controllers.empty() ? std::string("none")
                                        : fmt::format("{}", fmt::join(info.v2_controllers, " ")));
    }
    for (const auto& [controller, mount] : info.v1_mounts)
      print("cgroup v1: {} at {}\n", controller, mount);
    print("cpu accounting: {}\nmemory: {}\npids: {}\n", info.cpu_source, info.memory_source,
          info.pids_source);
    if (!info.delegated_subtree.empty()) {
      print("delegated subtree: {} (jailpool runs in {}, jobs below the parent)\n",
            info.delegated_subtree, info.supervisor_leaf);
    }
    for (const auto& dir : cgroups->parent_dirs()) print("jailpool parent cgroup: {}\n", dir);
    if (info.memory_source == "none") {
      ok = false;
      print("MISSING (required): a memory controller (v1 or v2)\n");
    }
  } catch (const Error& e) {
    ok = false;
    print("cgroups: MISSING (required): {}\n", e.what());
  }
  for (const auto& f : isolate::probe_features(cgroups.get())) {
    print("{:<22} {:<8} {:<9} {}\n", f.name, f.present ? "yes" : "no",
          f.required ? "required" : "optional", f.detail);
    if (f.required && !f.present) ok = false;
  }
  {
    // The method the executor would choose (kicks, else the task-clock, else the usage alone).
    std::string v2_parent;
    if (cgroups && !cgroups->info().v2_mount.empty()) v2_parent = cgroups->parent_dirs().front();
    sched::CpuLimitMethods cpu(sched::CpuLimitMethod::kAuto, v2_parent, /*eager=*/true);
    print("{:<22} {:<8} {:<9} {}\n", "cpu-limit method", to_string(cpu.method()), "in use",
          cpu.detail());
  }
  if (cgroups) cgroups->remove_parent_if_empty();
  print("{}\n", ok ? "jailpool can run here" : "jailpool cannot run here");
  report.ok = ok;
  return report;
}
}  // namespace jailpool::sched
