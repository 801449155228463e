// Slots (isolate/slot.h): long-lived jails reset between jobs. Cross-job leaks in one slot
// (sequentially) and in two slots (concurrently), and slots broken on purpose (init killed,
// /tmp filled to the brim, a reset that cannot finish, stopped processes left behind) that must
// never run another job.
#include "isolate/slot.h"

#include <grp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "config/profile.h"
#include "isolate/cgroup.h"
#include "isolate/seccomp.h"
#include "pool/slot_pool.h"
#include "pool/template_pool.h"
#include "sched/executor.h"
#include "test_support.h"

namespace jailpool {
namespace {

using namespace testing_env;
using namespace std::chrono_literals;

class SlotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    profile_ = default_profile();
    Bind* bind = profile_.add_bind();
    bind->set_src(JAILPOOL_TEST_PROGS);
    bind->set_dst(kProgsInJail);
  }

  void TearDown() override {
    executor_.reset();
    expect_nothing_left(1000ms);
  }

  void make_executor(unsigned parallelism, unsigned spares = 0) {
    sched::ExecutorOptions options;
    options.cgroup_parent = cgroup_parent();
    options.use_pool = true;
    options.parallelism = parallelism;
    // No spare: each job after the first runs in a slot some job before it ran in, and the
    // counts of slots built below are exact.
    options.slot_spares = spares;
    executor_ = std::make_unique<sched::Executor>(options);
  }

  // Whether a slot can keep its cgroup here: v1 memory resets its peak by a write, v2's
  // memory.peak only since 6.12 (made writable then); before, every job gets a fresh cgroup.
  bool cgroups_reusable() const {
    const isolate::CgroupInfo& info = executor_->cgroups().info();
    if (info.memory_source != "v2 memory") return true;
    struct stat st {};
    std::string peak = executor_->cgroups().parent_dirs().front() + "/memory.peak";
    return stat(peak.c_str(), &st) == 0 && (st.st_mode & S_IWUSR) != 0;
  }

  JobSpec job(const std::string& id, std::vector<std::string> argv) const {
    JobSpec spec;
    spec.set_id(id);
    for (const auto& a : argv) spec.add_argv(a);
    spec.add_env(job_marker());
    spec.mutable_limits()->set_wall_time_ms(20000);
    return spec;
  }

  JobResult run(const JobSpec& spec) { return executor_->run_one(spec, profile_); }

  // Runs the jobs at once (parallelism permitting), results by id.
  std::map<std::string, JobResult> run_all(const std::vector<JobSpec>& specs) {
    size_t next = 0;
    std::map<std::string, JobResult> out;
    executor_->run(
        [&]() -> std::optional<sched::JobRequest> {
          if (next == specs.size()) return std::nullopt;
          return sched::JobRequest{specs[next++], &profile_};
        },
        [&](JobResult&& r) { out[r.id()] = std::move(r); });
    return out;
  }

  pool::SlotPoolStats stats() { return executor_->slots()->stats(); }

  // What "leave" left (it must have left everything, or its absence proves nothing) and what
  // "find" found (nothing).
  static void expect_clean(const JobResult& leave, const JobResult& find) {
    SCOPED_TRACE("leave: " + describe(leave));
    SCOPED_TRACE("find: " + describe(find));
    EXPECT_EQ(leave.status(), OK);
    auto left = parse_facts(leave.stdout());
    for (const char* item : {"tmp", "box", "devshm", "sysv_shm", "sysv_msg", "sysv_sem", "mqueue",
                             "abstract", "leak-daemon", "leak-sleeper"}) {
      EXPECT_NE(("," + left["left"] + ",").find(std::string(",") + item + ","), std::string::npos)
          << "could not leave " << item << "; failed=" << left["failed"];
    }
    EXPECT_EQ(left["sethostname"], "EPERM");
    EXPECT_EQ(find.status(), OK);
    auto found = parse_facts(find.stdout());
    ASSERT_TRUE(found.count("found")) << "no report from the finding job";
    EXPECT_EQ(found["found"], "") << "state leaked from the previous job of the slot";
    EXPECT_EQ(found["hostname"], "jailpool");
  }

  Profile profile_;
  std::unique_ptr<sched::Executor> executor_;
};

TEST_F(SlotTest, NothingCrossesJobsInOneSlot) {
  make_executor(1);
  JobResult leave = run(job("leave", {in_jail("leak_state"), "leave"}));
  JobResult find = run(job("find", {in_jail("leak_state"), "find"}));
  expect_clean(leave, find);
  // One slot ran both (its net and mount namespaces stay; its ipc namespace is replaced by the
  // reset): the reset, not a new jail, cleaned up.
  auto left = parse_facts(leave.stdout()), found = parse_facts(find.stdout());
  EXPECT_EQ(left["netns"], found["netns"]);
  EXPECT_EQ(left["mntns"], found["mntns"]);
  // (After it, the slot may be replaced: the finding job's connect to the daemon's port moved
  // lo's counters.)
  EXPECT_EQ(stats().created, 1u);
}

TEST_F(SlotTest, NothingCrossesJobsInTwoSlotsAtOnce) {
  make_executor(2);
  // Two leaving jobs at once, in two slots (the same SysV key, abstract names and port: each
  // slot has its own ipc and net namespaces), then a finding job in each slot.
  auto first = run_all({job("leave-a", {in_jail("leak_state"), "leave"}),
                        job("leave-b", {in_jail("leak_state"), "leave"})});
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(stats().created, 2u) << "the two jobs did not run in two slots";
  auto second = run_all({job("find-a", {in_jail("leak_state"), "find"}),
                         job("find-b", {in_jail("leak_state"), "find"})});
  ASSERT_EQ(second.size(), 2u);
  EXPECT_EQ(stats().created, 2u) << "the finding jobs did not reuse the slots";
  expect_clean(first["leave-a"], second["find-a"]);
  expect_clean(first["leave-b"], second["find-b"]);
  auto a = parse_facts(first["leave-a"].stdout()), b = parse_facts(first["leave-b"].stdout());
  EXPECT_NE(a["netns"], b["netns"]) << "two concurrent jobs shared a slot";
}

// Counters that nothing removes with the objects: the pid namespace hands out pids in a cycle,
// and an ipc namespace's ids carry a sequence number. A job that forked and made SysV objects
// would tell the next job of its slot how many, through the next job's pid and ids. The reset
// sets the last pid back and replaces the ipc namespace: every job starts as the first did.
TEST_F(SlotTest, PidAndIpcIdCountersDoNotCrossJobs) {
  make_executor(1);
  JobResult first = run(job("first", {in_jail("slot_counters"), "ids", "11"}));
  JobResult second = run(job("second", {in_jail("slot_counters"), "ids"}));
  ASSERT_EQ(first.status(), OK) << describe(first);
  ASSERT_EQ(second.status(), OK) << describe(second);
  EXPECT_EQ(first.stdout(), "pid=2 shm=0 msg=0\n");
  EXPECT_EQ(second.stdout(), first.stdout()) << "the second job of the slot saw the first's counts";
  EXPECT_EQ(stats().created, 1u) << "not one slot";
}

TEST_F(SlotTest, FullTmpIsWipedBeforeTheNextJob) {
  make_executor(1);
  JobResult fill = run(job("fill", {"/bin/sh", "-c", "cat /dev/zero > /tmp/fill"}));
  EXPECT_EQ(fill.status(), NONZERO_EXIT) << describe(fill);  // ENOSPC: full to the brim
  // The next job of the slot finds /tmp empty and its space free again (64 MiB by default).
  JobResult next = run(job("next", {"/bin/sh", "-c",
                                    "[ -z \"$(ls -A /tmp)\" ] && "
                                    "head -c 60000000 /dev/zero > /tmp/again"}));
  EXPECT_EQ(next.status(), OK) << describe(next);
  EXPECT_EQ(stats().created, 1u) << "the slot was not reused after a complete reset";
}

// A job that leaves 10,000 files: its slot's reset takes tens of milliseconds (the replaced
// tmpfs is torn down when S closes its old root: 27 ms under strace here), and the next job
// is handed out long before it ends. With a spare (the default) the next job starts in a second
// slot and never waits; with none it waits for the reset. Either way it finds /tmp empty, and
// no more than parallelism + spares slots are ever built.
TEST_F(SlotTest, SpareSlotServesTheNextJobWhileTheLastOneResets) {
  for (unsigned spares : {1u, 0u}) {
    SCOPED_TRACE(spares == 1 ? "one spare" : "no spare");
    make_executor(1, spares);
    const std::string many = "cd /tmp && seq 1 10000 | xargs touch && ls | wc -l";
    JobResult first = run(job("many", {"/bin/sh", "-c", many}));
    ASSERT_EQ(first.status(), OK) << describe(first);
    EXPECT_EQ(first.stdout(), "10000\n");
    JobResult next = run(job("next", {"/bin/sh", "-c", "[ -z \"$(ls -A /tmp)\" ]"}));
    EXPECT_EQ(next.status(), OK) << describe(next) << ": /tmp not empty";
    if (spares == 1) {
      EXPECT_EQ(stats().created, 2u) << "the next job did not get the spare";
      EXPECT_EQ(stats().waited, 0u);
    } else {
      EXPECT_EQ(stats().created, 1u);
      EXPECT_EQ(stats().waited, 1u) << "the next job did not wait for the reset";
    }
    for (int i = 0; i < 4; ++i) {
      JobResult more = run(job("more" + std::to_string(i), {"/bin/sh", "-c", many}));
      EXPECT_EQ(more.status(), OK) << describe(more);
      EXPECT_EQ(more.stdout(), "10000\n") << "a job found files of another";
    }
    EXPECT_LE(stats().created, 1u + spares);
    executor_.reset();
    expect_nothing_left(1000ms);
  }
}

// A slot's stdout and stderr pipes serve all its jobs: what a job wrote, however much and by
// however many processes (one killed while writing), is its own, and none of it reaches the
// next job of the slot.
TEST_F(SlotTest, OutputOfAJobNeverReachesTheNextJobOfItsSlot) {
  make_executor(1);
  // 1 MB on stdout (16 pipe buffers: read while the job runs), then writers on both streams
  // left running when the first process exits (killed by S mid-write).
  JobResult loud = run(job("loud", {"/bin/sh", "-c",
                                    "head -c 1048576 /dev/zero | tr '\\0' a; "
                                    "yes out & yes err >&2 & sleep 0.2; exit 3"}));
  EXPECT_EQ(loud.status(), NONZERO_EXIT) << describe(loud);
  EXPECT_GT(loud.stdout().size(), 1048576u);
  EXPECT_EQ(loud.stdout().substr(0, 4), "aaaa");
  EXPECT_EQ(loud.stderr().substr(0, 4), "err\n");
  for (int i = 0; i < 3; ++i) {
    JobResult quiet = run(job("quiet", {"/bin/sh", "-c", "echo mine; echo also >&2"}));
    EXPECT_EQ(quiet.status(), OK) << describe(quiet);
    EXPECT_EQ(quiet.stdout(), "mine\n");
    EXPECT_EQ(quiet.stderr(), "also\n");
  }
  // Over its output limit: killed, and the rest it wrote goes with it.
  JobSpec over = job("over", {"/bin/sh", "-c", "yes over; exit 0"});
  over.mutable_limits()->set_output_bytes(100000);
  JobResult killed = run(over);
  EXPECT_EQ(killed.status(), OUTPUT_LIMIT_EXCEEDED) << describe(killed);
  JobResult after = run(job("after", {"/bin/sh", "-c", "echo clean"}));
  EXPECT_EQ(after.stdout(), "clean\n");
  EXPECT_EQ(stats().created, 1u) << "one slot ran them all";
}

// check_program's answer for a program found is kept a second (Executor::programs_found_);
// the exec stays the authority: a program removed since fails the job, in a slot and in a fresh
// jail, never runs something else.
TEST_F(SlotTest, ProgramRemovedAfterItsCheckFailsTheJob) {
  for (bool slots : {true, false}) {
    SCOPED_TRACE(slots ? "slot" : "fresh jail");
    TempDir dir;
    ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);
    std::string host = dir.path() + "/prog";
    ASSERT_EQ(
        std::system(("cp " + std::string(JAILPOOL_TEST_PROGS) + "/exit_code " + host).c_str()), 0);
    Bind* bind = profile_.add_bind();
    bind->set_src(dir.path());
    bind->set_dst("/own");
    sched::ExecutorOptions options;
    options.cgroup_parent = cgroup_parent();
    options.use_pool = slots;  // else a fresh jail per job (not a template's)
    options.use_slots = slots;
    options.parallelism = 1;
    executor_ = std::make_unique<sched::Executor>(options);
    JobResult first = run(job("first", {"/own/prog", "0"}));
    EXPECT_EQ(first.status(), OK) << describe(first);
    ASSERT_EQ(::unlink(host.c_str()), 0);
    JobResult second = run(job("second", {"/own/prog", "0"}));
    EXPECT_EQ(second.status(), SETUP_ERROR) << describe(second);
    EXPECT_NE(second.message().find("/own/prog"), std::string::npos) << second.message();
    executor_.reset();
    profile_.mutable_bind()->RemoveLast();
  }
}

// A slot or template shows the host's files through overlays built with it, and overlayfs
// keeps the names it looked up: without the host watch (isolate/host_watch.h), every job below
// ran "v1" (6.18). A name replaced, rewritten in place, removed or created under a bind is seen
// by the next job; a change elsewhere on the same filesystem replaces nothing.
TEST_F(SlotTest, HostFilesReplacedUnderABindAreSeenByTheNextJob) {
  for (bool slots : {true, false}) {
    SCOPED_TRACE(slots ? "slots" : "templates");
    TempDir dir, elsewhere;
    ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);
    auto put = [&](const std::string& name, const std::string& version) {
      std::string tmp = dir.write(name + ".new", "#!/bin/sh\necho " + version + "\n");
      ASSERT_EQ(::chmod(tmp.c_str(), 0755), 0);
      ASSERT_EQ(::rename(tmp.c_str(), dir.file(name).c_str()), 0);
    };
    put("prog", "v1");
    Bind* bind = profile_.add_bind();
    bind->set_src(dir.path());
    bind->set_dst("/own");
    sched::ExecutorOptions options;
    options.cgroup_parent = cgroup_parent();
    options.use_pool = true;
    options.use_slots = slots;
    options.parallelism = 1;
    options.slot_spares = 0;
    executor_ = std::make_unique<sched::Executor>(options);
    auto outdated = [&]() {
      return slots ? executor_->slots()->stats().outdated
                   : executor_->templates()->stats().outdated;
    };
    auto version = [&](const std::string& id) {
      JobResult r = run(job(id, {"/bin/sh", "-c", "/own/prog 2>&1 || echo none"}));
      EXPECT_EQ(r.status(), OK) << describe(r);
      return r.stdout();
    };
    EXPECT_EQ(version("first"), "v1\n");
    put("prog", "v2");  // a new file moved over the old one
    EXPECT_EQ(version("moved"), "v2\n");
    size_t after_move = outdated();
    EXPECT_GE(after_move, 1u);
    {  // rewritten in place: the same inode, seen without a replacement
      std::ofstream(dir.file("prog"), std::ios::trunc) << "#!/bin/sh\necho v3\n";
    }
    EXPECT_EQ(version("rewritten"), "v3\n");
    elsewhere.write("unrelated", "x");  // the same filesystem, outside every bind
    EXPECT_EQ(version("unrelated"), "v3\n");
    EXPECT_EQ(outdated(), after_move) << "a change outside the binds replaced a jail";
    ASSERT_EQ(::unlink(dir.file("prog").c_str()), 0);
    EXPECT_NE(version("removed"), "v3\n");
    put("prog", "v4");  // created again (a jail that looked it up found no such name)
    EXPECT_EQ(version("created"), "v4\n");
    executor_.reset();
    profile_.mutable_bind()->RemoveLast();
  }
}

// The slot's init is pid 1 for every job of the slot: its /proc entry would show each job the
// CPU time of the jobs it reaped before (cutime, cstime), its own CPU and its context switches.
// It is hidden from jobs (hidepid=2); a job still sees its own processes.
TEST_F(SlotTest, SlotInitIsHiddenFromJobs) {
  make_executor(1);
  JobResult burn = run(job("burn", {in_jail("burn_cpu"), "100"}));
  ASSERT_EQ(burn.status(), OK) << describe(burn);
  JobResult look =
      run(job("look", {"/bin/sh", "-c",
                       "if [ -e /proc/1 ]; then echo visible; cut -d' ' -f14-17 /proc/1/stat; "
                       "else echo hidden; fi; [ -e /proc/$$/stat ] && echo own"}));
  ASSERT_EQ(look.status(), OK) << describe(look);
  EXPECT_EQ(look.stdout(), "hidden\nown\n");
  EXPECT_EQ(stats().created, 1u) << "not one slot";
}

// A tree of any depth goes with its filesystem: the reset replaces a touched tmpfs whole, and
// the slot runs the next job.
TEST_F(SlotTest, DeepTreeGoesWithItsFilesystem) {
  make_executor(1);
  JobResult deep = run(job("deep", {"/bin/sh", "-c",
                                    "cd /tmp && i=0 && while [ $i -lt 80 ]; do mkdir d && cd d "
                                    "&& i=$((i+1)); done && touch leftover"}));
  EXPECT_EQ(deep.status(), OK) << describe(deep);
  JobResult next = run(job("next", {"/bin/sh", "-c", "[ -z \"$(ls -A /tmp)\" ]"}));
  EXPECT_EQ(next.status(), OK) << describe(next) << ": the tree was left";
  EXPECT_EQ(stats().created, 1u);
  EXPECT_EQ(stats().replaced, 0u);
}

// What emptying a tmpfs would not undo: its inode counter (a job's first file is numbered after
// the last file the jobs before it made) and its root's times (when a job last wrote there, to
// the nanosecond, as the job chose). The next job of the slot sees neither: its files are
// numbered as in a fresh jail, and no time on the roots of /tmp, the working directory or
// /dev/shm is later than the first job's start.
TEST_F(SlotTest, TmpfsInodeNumbersAndTimesDoNotCrossJobs) {
  make_executor(1);
  const std::string times = "stat -c %X.%Y.%Z /tmp /box /dev/shm | tr '\\n' ' '";
  JobResult first = run(job(
      "first", {"/bin/sh", "-c",
                "date +%s.%N; touch /tmp/a /tmp/b /tmp/c /box/a /dev/shm/a; ls /tmp >/dev/null; "
                "rm /tmp/a; stat -c %i /tmp/c"}));
  JobResult second =
      run(job("second", {"/bin/sh", "-c", times + "; echo; touch /tmp/x; stat -c %i /tmp/x"}));
  ASSERT_EQ(first.status(), OK) << describe(first);
  ASSERT_EQ(second.status(), OK) << describe(second);
  EXPECT_EQ(stats().created, 1u) << "not one slot";
  std::istringstream a(first.stdout()), b(second.stdout());
  double start = 0;
  std::string first_ino, line, second_ino;
  a >> start >> first_ino;
  std::getline(b, line);
  b >> second_ino;
  // A fresh tmpfs's root is inode 1, its first file 2: the first job's third file is 4.
  EXPECT_EQ(first_ino, "4") << first.stdout();
  EXPECT_EQ(second_ino, "2") << "the second job's first file was numbered after the first's";
  std::istringstream stamps(line);
  std::string triple;
  int roots = 0;
  while (stamps >> triple) {
    ++roots;
    for (size_t at = 0; at < triple.size();) {
      size_t dot = triple.find('.', at);
      long long t = std::stoll(triple.substr(at, dot - at));
      EXPECT_LE(t, static_cast<long long>(start))
          << "a root's time after the first job began: " << line << " (start " << start << ")";
      at = dot == std::string::npos ? triple.size() : dot + 1;
    }
  }
  EXPECT_EQ(roots, 3) << line;
}

// An unnamed file takes an inode of the tmpfs and changes nothing the reset reads: in a slot it
// fails as on a filesystem without O_TMPFILE, and glibc's tmpfile() falls back.
TEST_F(SlotTest, UnnamedFilesAreRefused) {
  make_executor(1);
  JobResult r = run(job("tmpfile", {in_jail("slot_counters"), "tmpfile"}));
  ASSERT_EQ(r.status(), OK) << describe(r);
  EXPECT_EQ(r.stdout(), "EOPNOTSUPP\nfallback\n");
}

TEST_F(SlotTest, StoppedProcessesDoNotOutliveTheJob) {
  make_executor(1);
  JobResult stopped = run(job("stopped", {in_jail("daemon_stopped")}));
  EXPECT_NE(stopped.status(), SETUP_ERROR) << describe(stopped);
  // Only this shell is in the pid namespace besides the slot's init, which jobs do not see
  // (hidepid): a process left by the job before, with the same uid, would be seen.
  JobResult count = run(job("count", {"/bin/sh", "-c", "set -- /proc/[0-9]*; echo $#"}));
  EXPECT_EQ(count.status(), OK) << describe(count);
  EXPECT_EQ(count.stdout(), "1\n") << describe(count);
  EXPECT_EQ(stats().created, 1u);
}

// A zombie whose parent never waits (the inner sh execs sleep, which never reaps the true it
// forked) is reparented to the slot's init when its parent is killed, and reaped there: nothing
// of the job is left, and the slot serves the next job.
TEST_F(SlotTest, ZombiesDoNotOutliveTheJob) {
  make_executor(1);
  // Waits (up to 5 s) until the zombie is there, then counts the zombies.
  JobResult zombie = run(
      job("zombie", {"/bin/sh", "-c",
                     "sh -c '/bin/true & exec sleep 100' & i=0; "
                     "zombies() { grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null | wc -l; }; "
                     "while [ $(zombies) -lt 1 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; "
                     "zombies"}));
  EXPECT_EQ(zombie.status(), OK) << describe(zombie);
  EXPECT_NE(zombie.stdout(), "0\n") << "no zombie was left to clean up: " << describe(zombie);
  JobResult count = run(job("count", {"/bin/sh", "-c", "set -- /proc/[0-9]*; echo $#"}));
  EXPECT_EQ(count.status(), OK) << describe(count);
  EXPECT_EQ(count.stdout(), "1\n") << describe(count);  // the init is hidden
  EXPECT_EQ(stats().created, 1u);
}

// A TCP socket in TIME_WAIT outlives its job by 60 s in the slot's net namespace, holding its
// port (EADDRINUSE for a bind without SO_REUSEADDR): the reset counts the namespace's inet
// sockets and replaces the slot (without that, the next job's bind fails).
TEST_F(SlotTest, TimeWaitSocketDoesNotCrossJobs) {
  make_executor(1);
  JobResult leave = run(job("leave", {in_jail("tcp_time_wait"), "leave"}));
  ASSERT_EQ(leave.status(), OK) << describe(leave);
  auto left = parse_facts(leave.stdout());
  ASSERT_GE(std::stol(left["tw"]), 1) << "no TIME_WAIT socket was left: " << describe(leave);
  JobResult bind = run(job("bind", {in_jail("tcp_time_wait"), "bind"}));
  EXPECT_EQ(bind.status(), OK) << describe(bind);
  auto bound = parse_facts(bind.stdout());
  EXPECT_EQ(bound["bind"], "0") << describe(bind);
  EXPECT_NE(left["netns"], bound["netns"]) << "the slot with a TIME_WAIT socket ran a job";
  EXPECT_EQ(stats().replaced, 1u);
  // A job that leaves no socket (its listener closed, never connected) keeps its slot.
  JobResult quiet = run(job("quiet", {in_jail("tcp_time_wait"), "bind"}));
  EXPECT_EQ(parse_facts(quiet.stdout())["netns"], bound["netns"]) << describe(quiet);
  EXPECT_EQ(stats().created, 2u);
}

// The net namespace's counters are cumulative and nothing resets them: lo's packet counts and
// the IP MIB (Ip OutNoRoutes moves on a send that fails with no packet at all). A job that
// moved one is the slot's last: the next job finds them at zero; a job with no traffic keeps
// its slot.
TEST_F(SlotTest, NetCountersDoNotCrossJobs) {
  make_executor(1);
  JobResult first = run(job("first", {in_jail("net_counters"), "read"}));
  ASSERT_EQ(first.status(), OK) << describe(first);
  auto zero = parse_facts(first.stdout());
  ASSERT_EQ(zero["lo_packets"], "0") << describe(first);
  ASSERT_EQ(zero["outnoroutes"], "0") << describe(first);
  JobResult quiet = run(job("quiet", {in_jail("net_counters"), "read"}));
  EXPECT_EQ(parse_facts(quiet.stdout())["netns"], zero["netns"])
      << "a job with no traffic lost its slot";
  std::string netns = zero["netns"];
  for (const char* how : {"send", "noroute"}) {
    JobResult moved = run(job(how, {in_jail("net_counters"), how}));
    ASSERT_EQ(moved.status(), OK) << describe(moved);
    EXPECT_EQ(parse_facts(moved.stdout())["netns"], netns) << how;
    JobResult next = run(job("next", {in_jail("net_counters"), "read"}));
    auto after = parse_facts(next.stdout());
    EXPECT_EQ(after["lo_packets"], "0") << how << ": " << describe(next);
    EXPECT_EQ(after["outnoroutes"], "0") << how << ": " << describe(next);
    EXPECT_NE(after["netns"], netns) << how << ": the slot whose counters moved ran a job";
    netns = after["netns"];
  }
  EXPECT_EQ(stats().replaced, 2u);
}

TEST_F(SlotTest, JobIsNeverPidOneAndRaiseEndsIt) {
  make_executor(1);
  JobResult r = run(job("raise", {in_jail("raise_signal")}));
  EXPECT_EQ(r.status(), SIGNALED) << describe(r);
}

// What a slot's S does once for every job (no supplementary groups, an empty inheritable set,
// default actions for what jailpool ignores, a session) leaves the job as a fresh jail's: the
// same ids, groups, capability sets, signal masks and dispositions, and a process group of its
// own, while jailpool holds a supplementary group. Then jailpool ignores SIGPIPE while a slot is
// made: its S must not pass that on. (Not compared with a fresh jail: those reset the signals
// jailpool ignored at its start, read once, and this test changes them later.)
TEST_F(SlotTest, JobCredentialsAndSignalsAreAFreshJails) {
  std::vector<gid_t> groups(static_cast<size_t>(::getgroups(0, nullptr)));
  ASSERT_EQ(::getgroups(static_cast<int>(groups.size()), groups.data()),
            static_cast<int>(groups.size()));
  const gid_t extra = 4242;
  ASSERT_EQ(::setgroups(1, &extra), 0);
  const std::string cmd =
      "grep -E '^(Uid|Gid|Groups|Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp|SigBlk|SigIgn):' "
      "/proc/self/status; set -- $(cut -d' ' -f1,5 /proc/$$/stat); "
      "[ \"$1\" = \"$2\" ] && echo own-process-group";
  auto run_in = [&](bool slots) {
    sched::ExecutorOptions options;
    options.cgroup_parent = cgroup_parent();
    options.use_pool = slots;
    options.use_slots = slots;
    executor_ = std::make_unique<sched::Executor>(options);
    JobResult r = run(job(slots ? "slot" : "fresh", {"/bin/sh", "-c", cmd}));
    if (slots) {
      EXPECT_EQ(stats().created, 1u) << "not run in a slot";
    }
    executor_.reset();
    return r;
  };
  JobResult slot = run_in(true), fresh = run_in(false);
  struct sigaction ignore {
  }, old{};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(::sigaction(SIGPIPE, &ignore, &old), 0);
  JobResult slot_ignoring = run_in(true);
  ::sigaction(SIGPIPE, &old, nullptr);
  ASSERT_EQ(::setgroups(groups.size(), groups.data()), 0);
  ASSERT_EQ(slot.status(), OK) << describe(slot);
  ASSERT_EQ(fresh.status(), OK) << describe(fresh);
  EXPECT_EQ(slot.stdout(), fresh.stdout());
  auto has = [&](const char* line) { return slot.stdout().find(line) != std::string::npos; };
  EXPECT_TRUE(has("CapInh:\t0000000000000000\n")) << slot.stdout();
  EXPECT_TRUE(has("CapEff:\t0000000000000000\n")) << slot.stdout();
  EXPECT_TRUE(has("Groups:\t\n") || has("Groups:\t \n")) << slot.stdout();
  EXPECT_TRUE(has("own-process-group\n")) << slot.stdout();
  ASSERT_EQ(slot_ignoring.status(), OK) << describe(slot_ignoring);
  EXPECT_NE(slot_ignoring.stdout().find("SigIgn:\t0000000000000000\n"), std::string::npos)
      << slot_ignoring.stdout();
}

// An extended attribute a job set on a root it owns (the working directory) is never seen by
// the next job: it moves the root's ctime, so the reset replaces that filesystem.
TEST_F(SlotTest, RootXattrsDoNotCrossJobs) {
  make_executor(1);
  const std::string set =
      "import os\nfor n in range(1, 40):\n  os.setxattr('/box', 'user.k%d' % n, b'v' * n)\n"
      "print('set')";
  JobResult first = run(job("set", {"/usr/bin/python3", "-c", set}));
  if (first.stdout() != "set\n")
    GTEST_SKIP() << "no user xattrs on tmpfs here: " << describe(first);
  JobResult second =
      run(job("get", {"/usr/bin/python3", "-c", "import os; print(os.listxattr('/box'))"}));
  EXPECT_EQ(second.status(), OK) << describe(second);
  EXPECT_EQ(second.stdout(), "[]\n") << describe(second);
}

// A slot keeps its last job's cgroup for the next one (JobCgroup::reuse): each job's CPU time,
// memory peak and OOM kills are its own, never its predecessors' (without the baselines the
// last job would report the burner's CPU, the toucher's peak and the OOM kill).
TEST_F(SlotTest, ReusedCgroupCountsOnlyItsOwnJob) {
  make_executor(1);
  auto limited = [&](const std::string& id, std::vector<std::string> argv) {
    JobSpec spec = job(id, std::move(argv));
    spec.mutable_limits()->set_memory_bytes(96ull << 20);
    return spec;
  };
  JobResult burn = run(limited("burn", {in_jail("burn_cpu"), "300"}));
  EXPECT_EQ(burn.status(), OK) << describe(burn);
  EXPECT_GE(burn.cpu_time_us(), 300000u) << describe(burn);
  JobResult touch = run(limited("touch", {in_jail("touch_memory"), "48"}));
  EXPECT_EQ(touch.status(), OK) << describe(touch);
  // Less a charge batch per CPU at most (64 pages each, MEMCG_CHARGE_BATCH): the previous job
  // may leave one precharged, counted in the usage at the reset and used without a new charge.
  EXPECT_GE(touch.memory_peak_bytes() + (1ull << 20), 48ull << 20) << describe(touch);
  JobResult oom = run(limited("oom", {in_jail("touch_memory"), "400"}));
  EXPECT_EQ(oom.status(), MEMORY_LIMIT_EXCEEDED) << describe(oom);
  JobResult quiet = run(limited("quiet", {in_jail("exit_code")}));
  EXPECT_EQ(quiet.status(), OK) << describe(quiet);
  EXPECT_LT(quiet.cpu_time_us(), 100000u) << describe(quiet);
  EXPECT_LT(quiet.memory_peak_bytes(), 8ull << 20) << describe(quiet);
  EXPECT_EQ(quiet.pids_peak(), 1u) << describe(quiet);
  EXPECT_EQ(stats().created, 1u);
  if (!cgroups_reusable()) GTEST_SKIP() << "memory.peak cannot be reset here (6.12+)";
  EXPECT_EQ(executor_->cgroups_reused(), 3u) << "the jobs did not share the slot's cgroup";
}

// A cgroup jailpool killed (cgroup.kill, at the CPU limit) serves the next job: its processes
// join by writing cgroup.procs, which the 6.18 kill_seq bug of CLONE_INTO_CGROUP (kernel.md
// trap 1) does not touch, and its fork()s from inside are unaffected too.
TEST_F(SlotTest, CgroupKilledAtTheCpuLimitServesTheNextJob) {
  make_executor(1);
  JobSpec burn = job("burn", {in_jail("burn_cpu"), "forever"});
  burn.mutable_limits()->set_cpu_time_ms(100);
  JobResult tle = run(burn);
  EXPECT_EQ(tle.status(), TIME_LIMIT_EXCEEDED) << describe(tle);
  JobResult next = run(job("next", {"/bin/sh", "-c", "/bin/true && echo ok"}));
  EXPECT_EQ(next.status(), OK) << describe(next);
  EXPECT_EQ(next.stdout(), "ok\n") << describe(next);
  if (!cgroups_reusable()) GTEST_SKIP() << "memory.peak cannot be reset here (6.12+)";
  EXPECT_EQ(executor_->cgroups_reused(), 1u);
  // The reused cgroup counts only the next job's CPU, not the burn's 100 ms (only meaningful
  // when it was reused: in a VM under emulation a fresh cgroup's `sh -c` alone was charged
  // 163 ms while the host was busy).
  EXPECT_LT(next.cpu_time_us(), 100000u) << describe(next);
}

// pids.peak cannot be reset: after a job with several processes the slot's cgroup is replaced,
// so that the next job's peak is its own (without that, 3 or more here).
TEST_F(SlotTest, CgroupIsReplacedAfterAJobWithSeveralProcesses) {
  make_executor(1);
  JobResult many = run(job("many", {"/bin/sh", "-c", "sleep 0 & sleep 0 & wait"}));
  EXPECT_EQ(many.status(), OK) << describe(many);
  JobResult one = run(job("one", {in_jail("exit_code")}));
  EXPECT_EQ(one.status(), OK) << describe(one);
  if (many.pids_peak() == 0) GTEST_SKIP() << "no pids.peak here (6.1+)";
  EXPECT_GE(many.pids_peak(), 3u) << describe(many);
  EXPECT_EQ(one.pids_peak(), 1u) << describe(one);
  EXPECT_EQ(executor_->cgroups_reused(), 0u);
  JobResult again = run(job("again", {in_jail("exit_code")}));
  EXPECT_EQ(again.pids_peak(), 1u) << describe(again);
  if (!cgroups_reusable()) GTEST_SKIP() << "memory.peak cannot be reset here (6.12+)";
  EXPECT_EQ(executor_->cgroups_reused(), 1u) << "a single-process job's cgroup was not reused";
}

// Jobs with files run in a slot too: their working directory (a tmpfs jailpool made and filled)
// is put over the slot's own by its init and taken away after the job, so each job finds only
// its own files, and its output files are collected as in a fresh jail.
TEST_F(SlotTest, JobsWithFilesRunInOneSlotAndSeeOnlyTheirOwnFiles) {
  make_executor(1);
  for (int i = 0; i < 3; ++i) {
    const std::string id = "files" + std::to_string(i);
    JobSpec spec = job(id, {"/bin/sh", "-c",
                            "cat in.txt && ls -A && echo made-by-$0 > out.txt && "
                            "echo junk > left.txt",
                            id});
    CopyIn* in = spec.add_copy_in();
    in->set_dst("in.txt");
    in->set_content("input of " + id + "\n");
    spec.add_copy_out()->set_path("out.txt");
    JobResult r = run(spec);
    ASSERT_EQ(r.status(), OK) << describe(r);
    EXPECT_EQ(r.stdout(), "input of " + id + "\nin.txt\n") << describe(r);
    ASSERT_EQ(r.files_size(), 1) << describe(r);
    EXPECT_EQ(r.files(0).error(), "") << describe(r);
    EXPECT_EQ(r.files(0).content(), "made-by-" + id + "\n");
  }
  EXPECT_EQ(stats().created, 1u) << "jobs with files did not run in the slot";
  EXPECT_EQ(stats().reused, 2u);
  // A job with no files finds the slot's own working directory, empty.
  JobResult plain = run(job("plain", {"/bin/sh", "-c", "ls -A; pwd"}));
  EXPECT_EQ(plain.status(), OK) << describe(plain);
  EXPECT_EQ(plain.stdout(), profile_.cwd() + "\n") << describe(plain);
  EXPECT_EQ(stats().created, 1u);
  EXPECT_EQ(stats().replaced, 0u);
}

// The judge's case: the program is one of the files (a compiled solution), run from the
// working directory, again and again in one slot.
TEST_F(SlotTest, CopiedInProgramRunsInASlot) {
  make_executor(1);
  for (int code : {3, 5}) {
    JobSpec spec = job("sol" + std::to_string(code), {"./sol", std::to_string(code)});
    CopyIn* in = spec.add_copy_in();
    in->set_dst("sol");
    in->set_src(std::string(JAILPOOL_TEST_PROGS) + "/exit_code");
    JobResult r = run(spec);
    EXPECT_EQ(r.status(), NONZERO_EXIT) << describe(r);
    EXPECT_EQ(r.exit_code(), code) << describe(r);
  }
  EXPECT_EQ(stats().created, 1u);
}

// Two slots at once, each job running its own copied-in program: a job's first process holds,
// from its clone to its close_range, a copy of every fd jailpool had open then, which may be the
// write fd of the other job's program (ETXTBSY at its exec). Seen in ~1 % of such jobs under
// load before the exec retried a busy text file.
TEST_F(SlotTest, CopiedInProgramsOfConcurrentJobsAreNeverBusy) {
  make_executor(2);
  std::vector<JobSpec> specs;
  for (int i = 0; i < 400; ++i) {
    JobSpec spec = job("busy" + std::to_string(i), {"./sol"});
    CopyIn* in = spec.add_copy_in();
    in->set_dst("sol");
    in->set_src(std::string(JAILPOOL_TEST_PROGS) + "/exit_code");
    specs.push_back(std::move(spec));
  }
  auto results = run_all(specs);
  ASSERT_EQ(results.size(), specs.size());
  for (const auto& [id, r] : results) EXPECT_EQ(r.status(), OK) << id << ": " << describe(r);
}

// The pool directly: a slot whose init was killed is never handed out again.
TEST_F(SlotTest, KilledInitIsNeverHandedOutAgain) {
  isolate::SeccompReporting how;
  how.slot_spawner = true;
  isolate::SeccompProgram program = isolate::compile_seccomp(profile_, how);
  pool::SlotPool pool(2);
  auto slot = pool.acquire(profile_, &program);
  ASSERT_TRUE(slot->ready());
  const pid_t first = slot->pid();
  pool.release(std::move(slot));
  ASSERT_EQ(::kill(first, SIGKILL), 0);
  siginfo_t info{};
  ASSERT_EQ(waitid(P_PID, static_cast<id_t>(first), &info, WEXITED | WNOWAIT), 0);
  auto again = pool.acquire(profile_, &program);
  EXPECT_NE(again->pid(), first) << "the dead slot was handed out";
  EXPECT_TRUE(again->ready());
  EXPECT_EQ(pool.stats().replaced, 1u);
  EXPECT_EQ(pool.stats().created, 2u);
}

}  // namespace
}  // namespace jailpool
