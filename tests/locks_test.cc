// File locks inside jobs: they work on the job's own files in the default profile, fresh and
// pooled (sqlite through python3 when the host has it, flock, POSIX and OFD locks). That locks
// on the shared read-only files stay private to each job is the adversarial suite's
// (FileLocks_*, AdversarialBatchTest.ConcurrentJobsShareNothing).
#include <gtest/gtest.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "config/profile.h"
#include "sched/executor.h"
#include "test_env.h"
#include "test_support.h"

namespace jailpool {
namespace {

using testing_env::describe;
using testing_env::in_jail;
using testing_env::job_marker;
using testing_env::kProgsInJail;
using testing_env::parse_facts;

class LocksTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    profile_ = default_profile();
    Bind* bind = profile_.add_bind();  // in the profile, so that pooled jobs can have it
    bind->set_src(JAILPOOL_TEST_PROGS);
    bind->set_dst(kProgsInJail);
    sched::ExecutorOptions options;
    options.cgroup_parent = testing_env::cgroup_parent();
    options.use_pool = GetParam();
    executor_ = std::make_unique<sched::Executor>(options);
  }

  JobResult run(const std::vector<std::string>& argv) {
    JobSpec spec;
    spec.set_id("locks-test");
    for (const auto& a : argv) spec.add_argv(a);
    spec.add_env(job_marker());
    return executor_->run_one(spec, profile_);
  }

  Profile profile_;
  std::unique_ptr<sched::Executor> executor_;
};

TEST_P(LocksTest, FlockPosixAndOfdLocksWorkOnTheJobsFiles) {
  for (const char* dir : {"/tmp", "/box", "/dev/shm"}) {
    SCOPED_TRACE(dir);
    JobResult r = run({in_jail("file_locks"), dir});
    ASSERT_EQ(r.status(), OK) << describe(r);
    auto facts = parse_facts(r.stdout());
    EXPECT_EQ(facts["flock"], "0") << describe(r);
    EXPECT_EQ(facts["setlk"], "0") << describe(r);
    EXPECT_EQ(facts["ofd"], "0") << describe(r);
    EXPECT_EQ(facts["conflicts"], "3") << "a lock taken was not in force: " << describe(r);
  }
}

TEST_P(LocksTest, SqliteWritesADatabaseInTmp) {
  if (::access("/usr/bin/python3", X_OK) != 0) GTEST_SKIP() << "no /usr/bin/python3";
  JobResult probe = run({"/usr/bin/python3", "-c", "import sqlite3"});
  if (probe.status() != OK) GTEST_SKIP() << "python3 has no sqlite3: " << describe(probe);
  JobResult r = run({"/usr/bin/python3", "-c",
                     "import sqlite3\n"
                     "c = sqlite3.connect('/tmp/x.db', timeout=1)\n"
                     "c.execute('create table t(a)')\n"
                     "c.execute('insert into t values (42)')\n"
                     "c.commit()\n"
                     "print(c.execute('select a from t').fetchone()[0])\n"});
  EXPECT_EQ(r.status(), OK) << describe(r);
  EXPECT_EQ(r.stdout(), "42\n") << describe(r);
}

INSTANTIATE_TEST_SUITE_P(Jails, LocksTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Pooled" : "Fresh"; });

}  // namespace
}  // namespace jailpool
