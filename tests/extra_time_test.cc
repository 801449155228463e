// isolate-style extra time: a job over its limit runs on for the extra time, so the result says
// how much it needed; the verdict is still the time limit.
#include <gtest/gtest.h>

#include "config/profile.h"
#include "sched/executor.h"
#include "test_env.h"

namespace jailpool {
namespace {

JobResult run_prog(const std::vector<std::string>& argv, const Limits& limits) {
  sched::ExecutorOptions options;
  options.cgroup_parent = testing_env::cgroup_parent();
  sched::Executor executor(options);
  Profile profile = default_profile();
  JobSpec spec;
  for (const auto& a : argv) spec.add_argv(a);
  Bind* progs = spec.add_bind();
  progs->set_src(JAILPOOL_TEST_PROGS);
  progs->set_dst("/progs");
  *spec.mutable_limits() = limits;
  return executor.run_one(spec, profile);
}

TEST(ExtraTime, CpuBurnerRunsToItsNeedAndIsStillTle) {
  Limits limits;
  limits.set_cpu_time_ms(100);
  limits.set_extra_time_ms(1000);
  JobResult r = run_prog({"/progs/burn_cpu", "200"}, limits);
  EXPECT_EQ(r.status(), TIME_LIMIT_EXCEEDED) << r.ShortDebugString();
  EXPECT_EQ(r.signal(), 0) << "killed, although the extra time covered its need";
  EXPECT_GE(r.cpu_time_us(), 190000u) << r.ShortDebugString();
}

TEST(ExtraTime, WithinTheLimitIsOk) {
  Limits limits;
  limits.set_cpu_time_ms(300);
  limits.set_extra_time_ms(1000);
  JobResult r = run_prog({"/progs/burn_cpu", "50"}, limits);
  EXPECT_EQ(r.status(), OK) << r.ShortDebugString();
}

TEST(ExtraTime, SleeperPastItsWallLimitIsWallTle) {
  Limits limits;
  limits.set_wall_time_ms(100);
  limits.set_extra_time_ms(2000);
  JobResult r = run_prog({"/progs/sleeper", "300"}, limits);
  EXPECT_EQ(r.status(), WALL_TIME_LIMIT_EXCEEDED) << r.ShortDebugString();
  EXPECT_EQ(r.signal(), 0) << r.ShortDebugString();
  EXPECT_GE(r.wall_time_us(), 290000u) << r.ShortDebugString();
}

}  // namespace
}  // namespace jailpool
