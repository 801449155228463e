// The submission queue: jobs from several threads, bounded with backpressure.
#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "config/profile.h"
#include "sched/executor.h"
#include "sched/submission_queue.h"
#include "test_env.h"

namespace jailpool {
namespace {

sched::JobRequest true_job(const Profile* profile, const std::string& id) {
  sched::JobRequest r;
  r.spec.set_id(id);
  r.spec.add_argv("/bin/true");
  r.profile = profile;
  return r;
}

TEST(SubmissionQueue, FullQueuePushesBack) {
  Profile profile = default_profile();
  sched::SubmissionQueue queue(2);
  auto a = true_job(&profile, "a"), b = true_job(&profile, "b"), c = true_job(&profile, "c");
  EXPECT_TRUE(queue.try_submit(a));
  EXPECT_TRUE(queue.try_submit(b));
  EXPECT_FALSE(queue.try_submit(c));
  EXPECT_EQ(c.spec.id(), "c");  // handed back intact
  EXPECT_EQ(queue.try_pop()->spec.id(), "a");
  EXPECT_TRUE(queue.try_submit(c));
  queue.close();
  auto d = true_job(&profile, "d");
  EXPECT_FALSE(queue.try_submit(d));
}

TEST(SubmissionQueue, JobsFromFourThreadsAllRunOnce) {
  Profile profile = default_profile();
  sched::ExecutorOptions options;
  options.cgroup_parent = testing_env::cgroup_parent();
  options.parallelism = 2;
  options.use_pool = true;
  sched::Executor executor(options);
  sched::SubmissionQueue queue(8);  // small: the submitters meet backpressure
  constexpr int kThreads = 4, kPerThread = 25;
  std::vector<std::thread> submitters;
  for (int t = 0; t < kThreads; ++t) {
    submitters.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto job = true_job(&profile, std::to_string(t) + "-" + std::to_string(i));
        while (!queue.try_submit(job)) std::this_thread::yield();
      }
    });
  }
  std::thread closer([&] {
    for (auto& s : submitters) s.join();
    queue.close();
  });
  std::multiset<std::string> ids;
  size_t ok = 0;
  executor.run(queue, [&](JobResult&& r) {
    ids.insert(r.id());
    if (r.status() == OK) ++ok;
  });
  closer.join();
  EXPECT_EQ(ids.size(), static_cast<size_t>(kThreads * kPerThread));
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), ids.size());
  EXPECT_EQ(ok, ids.size());
}

}  // namespace
}  // namespace jailpool
