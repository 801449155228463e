// /proc inside a jail: the job's own pid namespace, host-revealing files masked, /proc/sys
// read-only.
#include <gtest/gtest.h>

#include "config/profile.h"
#include "sched/executor.h"
#include "test_env.h"

namespace jailpool {
namespace {

JobResult run_shell(const std::string& script, bool pool) {
  sched::ExecutorOptions options;
  options.cgroup_parent = testing_env::cgroup_parent();
  options.use_pool = pool;
  sched::Executor executor(options);
  Profile profile = default_profile();
  JobSpec spec;
  spec.add_argv("/bin/sh");
  spec.add_argv("-c");
  spec.add_argv(script);
  return executor.run_one(spec, profile);
}

class ProcMaskTest : public ::testing::TestWithParam<bool> {};

TEST_P(ProcMaskTest, HostFilesAreMaskedAndSysIsReadOnly) {
  // Each path that exists on this kernel is a mount of /dev/null: empty when read.
  JobResult r = run_shell(
      "for f in /proc/keys /proc/timer_list /proc/kallsyms /proc/sched_debug; do"
      "  [ -e $f ] && echo \"$f $(wc -c < $f)\"; done;"
      "grep ' /proc/sys ' /proc/self/mountinfo | cut -d' ' -f6",
      GetParam());
  ASSERT_EQ(r.status(), OK) << r.ShortDebugString();
  std::istringstream lines(r.stdout());
  std::string line;
  bool saw_sys = false;
  while (std::getline(lines, line)) {
    if (line.rfind("/proc/", 0) == 0) {
      EXPECT_EQ(line.substr(line.find(' ') + 1), "0") << line << " is not masked";
    } else {
      saw_sys = true;
      EXPECT_EQ(line.substr(0, 3), "ro,") << "/proc/sys mounted " << line;
    }
  }
  EXPECT_TRUE(saw_sys) << r.stdout();
}

INSTANTIATE_TEST_SUITE_P(FreshAndPooled, ProcMaskTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Pooled" : "Fresh"; });

}  // namespace
}  // namespace jailpool
