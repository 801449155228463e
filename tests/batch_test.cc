// `jailpool batch` end to end, run as a separate process (JAILPOOL_BINARY) with the test's
// cgroup parent: 10,000 mixed jobs through the template pool with the right verdict for every
// id; state one job leaves in a pooled template that the next job must not find; kill -9 in the
// middle of a batch and --resume; the pool and fresh jails giving the same verdicts and CPU
// accounting; bad input lines becoming SETUP_ERROR results. After every test: no job cgroup,
// no process of ours and no mount of jailpool's left behind.
//
// The programs are bound at /progs by the PROFILE (a copy of configs/default.textproto plus
// that bind): jobs with binds of their own do not use the pool.
#include <fcntl.h>
#include <google/protobuf/util/json_util.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.h"
#include "jailpool.pb.h"
#include "test_support.h"

namespace jailpool {
namespace {

namespace pbu = google::protobuf::util;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

using testing_env::CliOutcome;
using testing_env::describe;
using testing_env::in_jail;
using testing_env::job_marker;
using testing_env::kMiB;
using testing_env::kProgsInJail;
using testing_env::leftover_processes;
using testing_env::make_job;
using testing_env::parse_facts;
using testing_env::poll_until_empty;
using testing_env::processes_mentioning;
using testing_env::read_file;
using testing_env::run_cli;
using testing_env::spawn_cli;
using testing_env::TempDir;
using testing_env::to_json_line;

// Long lists are cut after `max` lines in failure messages.
std::string join(const std::vector<std::string>& v, size_t max = 50) {
  return testing_env::join(v, max);
}

// Mounts in this process's namespace that mention jailpool or the test's cgroup parent.
std::set<std::string> jailpool_mounts() {
  std::set<std::string> out;
  std::istringstream in(read_file("/proc/self/mountinfo"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.find("jailpool") != std::string::npos ||
        line.find(testing_env::cgroup_parent()) != std::string::npos) {
      out.insert(line);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Jobs and results as JSON Lines.

std::string to_json_lines(const std::vector<JobSpec>& jobs) {
  std::string out;
  for (const auto& j : jobs) out += to_json_line(j);
  return out;
}

struct Results {
  std::map<std::string, std::vector<JobResult>> by_id;
  std::vector<std::string> unparsed;  // lines that are not a JobResult
  size_t lines = 0;

  const JobResult* one(const std::string& id) const {
    auto it = by_id.find(id);
    return it == by_id.end() || it->second.empty() ? nullptr : &it->second.front();
  }
  // Ids that appear more than once.
  std::vector<std::string> duplicates() const {
    std::vector<std::string> out;
    for (const auto& [id, v] : by_id) {
      if (v.size() > 1) out.push_back(id + " x" + std::to_string(v.size()));
    }
    return out;
  }
};

Results parse_results(const std::string& text) {
  Results res;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    ++res.lines;
    JobResult r;
    pbu::JsonParseOptions options;
    options.ignore_unknown_fields = false;
    if (!pbu::JsonStringToMessage(line, &r, options).ok() || r.id().empty()) {
      res.unparsed.push_back(line.substr(0, 200));
      continue;
    }
    res.by_id[r.id()].push_back(std::move(r));
  }
  return res;
}

std::set<std::string> split_commas(const std::string& s) {
  std::set<std::string> out;
  std::istringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) out.insert(item);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

class BatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    mounts_before_ = jailpool_mounts();
    // The default profile plus the test programs at /progs: bound by the profile, so that
    // the jobs (which have no binds of their own) run from pooled templates.
    std::string profile =
        read_file(std::string(JAILPOOL_SOURCE_DIR) + "/configs/default.textproto");
    ASSERT_FALSE(profile.empty()) << "configs/default.textproto is missing";
    profile += "\nbind { src: \"" + std::string(JAILPOOL_TEST_PROGS) + "\" dst: \"" + kProgsInJail +
               "\" }\n";
    profile_ = dir_.write("profile.textproto", profile);
  }

  void TearDown() override {
    auto dirs = poll_until_empty(testing_env::job_cgroups_left, 2000ms);
    EXPECT_TRUE(dirs.empty()) << "job cgroups left behind:\n" << join(dirs);
    auto procs = poll_until_empty(leftover_processes, 2000ms);
    EXPECT_TRUE(procs.empty()) << "processes left behind:\n" << join(procs);
    std::vector<std::string> new_mounts;
    for (const auto& m : jailpool_mounts()) {
      if (!mounts_before_.count(m)) new_mounts.push_back(m);
    }
    EXPECT_TRUE(new_mounts.empty()) << "mounts left in the host's namespace:\n" << join(new_mounts);
  }

  // Writes `jobs` as the input file and runs `jailpool batch EXTRA... --profile P --input F
  // --output R`; returns the outcome with the results file's content in `results`.
  CliOutcome run_batch(const std::string& name, const std::string& input_text,
                       std::vector<std::string> extra, Results* results,
                       std::chrono::seconds timeout = 120s) {
    std::string input = dir_.write(name + ".jsonl", input_text);
    std::string output = dir_.file(name + ".results.jsonl");
    std::vector<std::string> args{"batch"};
    args.insert(args.end(), extra.begin(), extra.end());
    args.insert(args.end(), {"--profile", profile_, "--input", input, "--output", output});
    CliOutcome r = run_cli(args, "/dev/null", timeout);
    *results = parse_results(read_file(output));
    return r;
  }

  TempDir dir_{"jailpool-batch-test"};
  std::string profile_;
  std::set<std::string> mounts_before_;
};

// ---------------------------------------------------------------------------------------------
// 1. 10,000 mixed jobs through the pool, 4 at once.

enum class Kind { kOk, kNonzero, kTle, kMle, kCrash, kForkBomb, kFlood };

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::kOk:
      return "ok";
    case Kind::kNonzero:
      return "nonzero";
    case Kind::kTle:
      return "tle";
    case Kind::kMle:
      return "mle";
    case Kind::kCrash:
      return "crash";
    case Kind::kForkBomb:
      return "forkbomb";
    case Kind::kFlood:
      return "flood";
  }
  return "?";
}

JobSpec job_of_kind(Kind kind, const std::string& id) {
  switch (kind) {
    case Kind::kOk:
      return make_job(id, {in_jail("exit_code"), "0"});
    case Kind::kNonzero:
      return make_job(id, {in_jail("exit_code"), "3"});
    case Kind::kTle: {
      JobSpec j = make_job(id, {in_jail("burn_cpu"), "forever"});
      j.mutable_limits()->set_cpu_time_ms(20);
      return j;
    }
    case Kind::kMle: {
      JobSpec j = make_job(id, {in_jail("touch_memory"), "64"});
      j.mutable_limits()->set_memory_bytes(32 * kMiB);
      return j;
    }
    case Kind::kCrash:
      return make_job(id, {in_jail("raise_signal"), "11"});
    case Kind::kForkBomb: {
      JobSpec j = make_job(id, {in_jail("fork_bomb")});
      j.mutable_limits()->set_pids(16);
      j.mutable_limits()->set_wall_time_ms(20000);  // backstop; must not be reached
      return j;
    }
    case Kind::kFlood: {
      JobSpec j = make_job(id, {in_jail("flood_output")});
      j.mutable_limits()->set_output_bytes(64 * 1024);
      j.mutable_limits()->set_wall_time_ms(20000);  // backstop
      return j;
    }
  }
  return {};
}

// "" when the result is what a job of that kind must give, else what is wrong.
std::string check_kind(Kind kind, const JobResult& r) {
  auto want = [&](Status s) -> std::string {
    return r.status() == s ? "" : std::string("expected ") + Status_Name(s);
  };
  switch (kind) {
    case Kind::kOk:
      return want(OK);
    case Kind::kNonzero:
      if (r.status() != NONZERO_EXIT || r.exit_code() != 3) return "expected NONZERO_EXIT 3";
      return "";
    case Kind::kTle:
      return want(TIME_LIMIT_EXCEEDED);
    case Kind::kMle:
      return want(MEMORY_LIMIT_EXCEEDED);
    case Kind::kCrash:
      if (r.status() != SIGNALED || r.signal() != SIGSEGV) return "expected SIGNALED 11";
      return "";
    case Kind::kForkBomb: {
      if (r.status() != OK) return "expected OK (fork failing with EAGAIN)";
      int forks = std::atoi(r.stdout().c_str());
      if (forks < 1 || forks >= 16) return "expected 1..15 forks";
      return "";
    }
    case Kind::kFlood:
      if (r.status() != OUTPUT_LIMIT_EXCEEDED) return "expected OUTPUT_LIMIT_EXCEEDED";
      if (r.stdout().size() > 64 * 1024) return "captured more than the limit";
      return "";
  }
  return "?";
}

TEST_F(BatchTest, TenThousandMixedJobs) {
  constexpr size_t kTotal = 10000;
  constexpr size_t kEachSlowKind = 50;
  const std::vector<Kind> slow = {Kind::kNonzero, Kind::kTle,      Kind::kMle,
                                  Kind::kCrash,   Kind::kForkBomb, Kind::kFlood};
  std::vector<Kind> kinds;
  for (Kind k : slow) kinds.insert(kinds.end(), kEachSlowKind, k);
  kinds.insert(kinds.end(), kTotal - kinds.size(), Kind::kOk);
  // A deterministic shuffle (Fisher-Yates with a fixed seed; not std::shuffle, whose
  // algorithm is the library's).
  std::mt19937_64 rng(20240611);
  for (size_t i = kinds.size() - 1; i > 0; --i) std::swap(kinds[i], kinds[rng() % (i + 1)]);

  std::map<std::string, Kind> expected;
  std::string input;
  for (size_t i = 0; i < kinds.size(); ++i) {
    std::string id = std::string(kind_name(kinds[i])) + "-" + std::to_string(i);
    expected[id] = kinds[i];
    input += to_json_line(job_of_kind(kinds[i], id));
  }
  ASSERT_EQ(expected.size(), kTotal);

  auto procs_before = leftover_processes();
  EXPECT_TRUE(procs_before.empty()) << join(procs_before);
  EXPECT_TRUE(testing_env::job_cgroups_left().empty()) << join(testing_env::job_cgroups_left());

  Results res;
  CliOutcome r = run_batch("mixed", input, {"-j", "4"}, &res, 290s);
  std::cout << "[ timing   ] " << kTotal << " jobs in " << r.seconds << " s: " << kTotal / r.seconds
            << " jobs/s (-j 4, pool)" << std::endl;
  RecordProperty("wall_seconds", std::to_string(r.seconds));
  RecordProperty("jobs_per_second", std::to_string(kTotal / r.seconds));
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_FALSE(r.timed_out) << r.describe();
  EXPECT_EQ(r.out, "") << r.describe();

  EXPECT_TRUE(res.unparsed.empty()) << join(res.unparsed);
  EXPECT_EQ(res.lines, kTotal);
  auto dups = res.duplicates();
  EXPECT_TRUE(dups.empty()) << "ids reported more than once:\n" << join(dups);
  std::vector<std::string> missing, wrong, unknown;
  std::map<std::string, size_t> by_status;
  for (const auto& [id, kind] : expected) {
    const JobResult* got = res.one(id);
    if (got == nullptr) {
      missing.push_back(id);
      continue;
    }
    ++by_status[Status_Name(got->status())];
    std::string problem = check_kind(kind, *got);
    if (!problem.empty()) wrong.push_back(id + ": " + problem + ": " + describe(*got));
  }
  for (const auto& [id, v] : res.by_id) {
    if (!expected.count(id)) unknown.push_back(id);
  }
  EXPECT_TRUE(missing.empty()) << missing.size() << " ids without a result:\n" << join(missing, 20);
  EXPECT_TRUE(wrong.empty()) << wrong.size() << " wrong verdicts:\n" << join(wrong, 20);
  EXPECT_TRUE(unknown.empty()) << "results for ids not in the input:\n" << join(unknown, 20);
  std::string summary;
  for (const auto& [status, n] : by_status) summary += status + " " + std::to_string(n) + "  ";
  std::cout << "[ verdicts ] " << summary << std::endl;
  EXPECT_LT(r.seconds, 240.0) << "far slower than expected for 10,000 jobs";
  // TearDown: no cgroup, process or mount left.
}

// ---------------------------------------------------------------------------------------------
// 2. State left by one job, looked for by the next job of the same template.

class BatchLeakTest : public BatchTest {
 protected:
  // pool: slots (or, with !slots, pooled templates: --no-slots); else fresh jails.
  void run_pair(bool pool, bool slots = true) {
    SCOPED_TRACE(!pool ? "fresh jails (--no-pool)" : slots ? "slots" : "templates (--no-slots)");
    std::vector<JobSpec> jobs{make_job("leave", {in_jail("leak_state"), "leave"}),
                              make_job("find", {in_jail("leak_state"), "find"})};
    std::vector<std::string> extra{"-j", "1"};
    if (!pool) extra.push_back("--no-pool");
    if (pool && !slots) extra.push_back("--no-slots");
    // One slot for both (a spare would run the finding job in another, proving nothing).
    if (pool && slots) extra.insert(extra.end(), {"--slot-spares", "0"});
    Results res;
    CliOutcome r = run_batch(!pool   ? "leak-fresh"
                             : slots ? "leak-slot"
                                     : "leak-template",
                             to_json_lines(jobs), extra, &res);
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_TRUE(res.unparsed.empty()) << join(res.unparsed);
    const JobResult* a = res.one("leave");
    const JobResult* b = res.one("find");
    ASSERT_NE(a, nullptr) << r.describe();
    ASSERT_NE(b, nullptr) << r.describe();
    SCOPED_TRACE("leave: " + describe(*a));
    SCOPED_TRACE("find: " + describe(*b));

    // A left everything it could, its last step locks on a shared read-only file (the jail's
    // own inode of it) included.
    auto left = parse_facts(a->stdout());
    EXPECT_EQ(a->status(), OK);
    EXPECT_EQ(left["flock"], "0") << "no flock on the jail's files";
    EXPECT_EQ(left["posix_lock"], "0") << "no POSIX lock on the jail's files";
    std::set<std::string> left_items = split_commas(left["left"]);
    for (const char* item : {"tmp", "box", "devshm", "sysv_shm", "sysv_msg", "sysv_sem", "mqueue",
                             "abstract", "leak-daemon", "leak-sleeper"}) {
      EXPECT_TRUE(left_items.count(item))
          << "the leaving job could not leave " << item
          << " (so its absence proves nothing); failed=" << left["failed"];
    }
    EXPECT_EQ(left["sethostname"], "EPERM") << "the job could change the hostname";

    // B: nothing found, not blocked.
    EXPECT_EQ(b->status(), OK);
    auto found = parse_facts(b->stdout());
    ASSERT_TRUE(found.count("found")) << "no report from the finding job";
    EXPECT_EQ(found["found"], "") << "state leaked from the previous job";
    EXPECT_EQ(found["hostname"], "jailpool");
    EXPECT_LT(b->wall_time_us(), 5'000'000u) << "the finding job was held up";

    // Pooled with -j 1: the same slot or template, so the same net and uts namespaces (the
    // slot's init or the template's holder keeps them). (Differences prove nothing the other way:
    // the ids of namespaces freed with the first job are reused.)
    if (pool) {
      ASSERT_FALSE(left["netns"].empty());
      EXPECT_EQ(left["netns"], found["netns"])
          << "the two jobs did not use the same slot or template";
      EXPECT_EQ(left["utsns"], found["utsns"])
          << "the two jobs did not use the same slot or template";
    }
  }
};

TEST_F(BatchLeakTest, NothingCrossesJobsInOneSlot) {
  run_pair(true);
}

TEST_F(BatchLeakTest, NothingCrossesJobsInOneTemplate) {
  run_pair(true, false);
}

TEST_F(BatchLeakTest, NothingCrossesFreshJails) {
  run_pair(false);
}

// ---------------------------------------------------------------------------------------------
// 3. kill -9 of jailpool in the middle of a batch, then --resume.

TEST_F(BatchTest, KillNineThenResume) {
  // Sleepers long enough that one is nearly always running, also when the jobs' setup is slow
  // (the suite also runs under software emulation, tests/vm/).
  constexpr int kJobs = 60;
  std::vector<JobSpec> jobs;
  std::set<std::string> ids;
  for (int i = 0; i < kJobs; ++i) {
    char id[16];
    std::snprintf(id, sizeof id, "s-%03d", i);
    ids.insert(id);
    jobs.push_back(make_job(id, {in_jail("sleeper"), "300"}));
  }
  const std::string input = dir_.write("sleepers.jsonl", to_json_lines(jobs));
  const std::string output = dir_.file("sleepers.results.jsonl");

  UniqueFd log(
      ::open(dir_.file("first.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  ASSERT_TRUE(log.get() >= 0);
  pid_t pid =
      spawn_cli({"batch", "-j", "2", "--profile", profile_, "--input", input, "--output", output},
                log.get(), log.get());
  ASSERT_GT(pid, 0);
  std::this_thread::sleep_for(1000ms);
  // Make sure it is in the middle: at least one job running (a sleeper of ours exists).
  auto running_deadline = Clock::now() + 10s;
  // (One look decides: a second one could fall in the gap between two jobs.)
  auto running = leftover_processes();
  while (running.empty() && Clock::now() < running_deadline) {
    std::this_thread::sleep_for(5ms);
    running = leftover_processes();
  }
  EXPECT_FALSE(running.empty()) << "no job was running when jailpool was killed";
  ASSERT_EQ(::kill(pid, SIGKILL), 0);  // the jailpool we spawned
  auto killed_at = Clock::now();
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
      << "status " << status << "\n"
      << read_file(dir_.file("first.log"));

  // Within 2 s nothing of that batch survives: no job (marker) and no clone of jailpool
  // (template holders, jails' inits: they share its command line, with the unique input path).
  auto survivors = [&] {
    auto v = leftover_processes();
    auto clones = processes_mentioning(input);
    v.insert(v.end(), clones.begin(), clones.end());
    return v;
  };
  auto left = poll_until_empty(survivors, std::chrono::duration_cast<std::chrono::milliseconds>(
                                              2000ms - (Clock::now() - killed_at)));
  EXPECT_TRUE(left.empty()) << "processes of the killed batch still alive 2 s after the kill:\n"
                            << join(left);

  Results before = parse_results(read_file(output));
  auto cgroups_after_kill = testing_env::job_cgroups_left();
  std::cout << "[ kill -9  ] " << before.by_id.size() << " of " << kJobs << " results written, "
            << before.unparsed.size() << " cut-off line(s), " << cgroups_after_kill.size()
            << " job cgroup dir(s) left by the dead instance" << std::endl;
  EXPECT_LT(before.by_id.size(), static_cast<size_t>(kJobs))
      << "the batch had finished before the kill";
  EXPECT_LE(before.unparsed.size(), 1u) << join(before.unparsed);
  auto dups_before = before.duplicates();
  EXPECT_TRUE(dups_before.empty()) << join(dups_before);

  // Resume into the same file: the rest runs, the dead instance's cgroups are reclaimed.
  CliOutcome r = run_cli(
      {"batch", "--profile", profile_, "--input", input, "--output", output, "--resume", output});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  if (!before.by_id.empty()) {
    EXPECT_NE(r.err.find(std::to_string(before.by_id.size()) + " skipped"), std::string::npos)
        << r.describe();
  }
  Results after = parse_results(read_file(output));
  EXPECT_LE(after.unparsed.size(), 1u) << "more than one line that is not a result:\n"
                                       << join(after.unparsed);
  auto dups = after.duplicates();
  EXPECT_TRUE(dups.empty()) << "ids reported more than once:\n" << join(dups);
  std::vector<std::string> missing, bad;
  for (const auto& id : ids) {
    const JobResult* got = after.one(id);
    if (got == nullptr) {
      missing.push_back(id);
    } else if (got->status() != OK) {
      bad.push_back(describe(*got));
    }
  }
  EXPECT_TRUE(missing.empty()) << "ids without a result after the resume:\n" << join(missing);
  EXPECT_TRUE(bad.empty()) << "jobs not OK:\n" << join(bad);
  EXPECT_EQ(after.by_id.size(), ids.size());

  // The resumed run reclaimed the dead instance's job cgroups (job-<dead pid>-N) at start-up
  // and removed its own.
  auto cgroups_left = testing_env::job_cgroups_left();
  EXPECT_TRUE(cgroups_left.empty())
      << "job cgroups still there after the resumed run (of the killed instance, pid " << pid
      << ", not reclaimed?):\n"
      << join(cgroups_left);
}

// SIGTERM: stop taking jobs, let the running ones finish, report each of them, leave nothing.
TEST_F(BatchTest, SigtermDrainsRunningJobs) {
  constexpr int kJobs = 40;
  std::vector<JobSpec> jobs;
  for (int i = 0; i < kJobs; ++i) {
    jobs.push_back(make_job("t-" + std::to_string(i), {in_jail("sleeper"), "300"}));
  }
  const std::string input = dir_.write("term.jsonl", to_json_lines(jobs));
  const std::string output = dir_.file("term.results.jsonl");
  UniqueFd log(
      ::open(dir_.file("term.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  ASSERT_TRUE(log.get() >= 0);
  pid_t pid =
      spawn_cli({"batch", "-j", "2", "--profile", profile_, "--input", input, "--output", output},
                log.get(), log.get());
  ASSERT_GT(pid, 0);
  auto deadline = Clock::now() + 10s;
  auto running = leftover_processes();  // one look decides (a second could fall between jobs)
  while (running.empty() && Clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
    running = leftover_processes();
  }
  ASSERT_FALSE(running.empty()) << "no job started";
  ASSERT_EQ(::kill(pid, SIGTERM), 0);  // the jailpool we spawned
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status << "\n"
                                                             << read_file(dir_.file("term.log"));
  Results results = parse_results(read_file(output));
  EXPECT_TRUE(results.unparsed.empty()) << join(results.unparsed);
  EXPECT_GE(results.by_id.size(), 1u);
  EXPECT_LT(results.by_id.size(), static_cast<size_t>(kJobs)) << "it did not stop taking jobs";
  std::vector<std::string> bad;
  for (const auto& [id, list] : results.by_id) {
    for (const auto& r : list) {
      if (r.status() != OK) bad.push_back(describe(r));  // drained: finished, not killed
    }
  }
  EXPECT_TRUE(bad.empty()) << join(bad);
}

// ---------------------------------------------------------------------------------------------
// 4. The pool and fresh jails: the same verdicts, the same CPU accounting.

TEST_F(BatchTest, PoolMatchesFreshJails) {
  std::vector<JobSpec> jobs;
  std::set<std::string> burn_ids;
  for (int round = 0; round < 3; ++round) {
    std::string n = std::to_string(round);
    jobs.push_back(make_job("ok-" + n, {in_jail("exit_code"), "0"}));
    jobs.push_back(make_job("nonzero-" + n, {in_jail("exit_code"), "3"}));
    JobSpec tle = make_job("tle-" + n, {in_jail("burn_cpu"), "forever"});
    tle.mutable_limits()->set_cpu_time_ms(100);
    jobs.push_back(tle);
    JobSpec mle = make_job("mle-" + n, {in_jail("touch_memory"), "64"});
    mle.mutable_limits()->set_memory_bytes(32 * kMiB);
    jobs.push_back(mle);
    jobs.push_back(make_job("signal-" + n, {in_jail("raise_signal"), "11"}));
  }
  for (int i = 0; i < 5; ++i) {
    std::string id = "burn-" + std::to_string(i);
    burn_ids.insert(id);
    jobs.push_back(make_job(id, {in_jail("burn_cpu"), "100"}));
  }
  ASSERT_EQ(jobs.size(), 20u);
  const std::string input = to_json_lines(jobs);

  Results fresh, pooled;
  CliOutcome rf = run_batch("fresh", input, {"--no-pool"}, &fresh);
  EXPECT_EQ(rf.exit_code, 0) << rf.describe();
  CliOutcome rp = run_batch("pooled", input, {}, &pooled);
  EXPECT_EQ(rp.exit_code, 0) << rp.describe();

  for (const auto& job : jobs) {
    SCOPED_TRACE(job.id());
    const JobResult* f = fresh.one(job.id());
    const JobResult* p = pooled.one(job.id());
    ASSERT_NE(f, nullptr);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(Status_Name(f->status()), Status_Name(p->status()))
        << "fresh: " << describe(*f) << "\npool: " << describe(*p);
    EXPECT_EQ(f->exit_code(), p->exit_code());
    EXPECT_EQ(f->signal(), p->signal());
    if (burn_ids.count(job.id())) {
      ASSERT_EQ(f->status(), OK) << describe(*f);
      ASSERT_EQ(p->status(), OK) << describe(*p);
      double cf = static_cast<double>(f->cpu_time_us()), cp = static_cast<double>(p->cpu_time_us());
      EXPECT_GE(cp, cf * 0.8) << "fresh: " << describe(*f) << "\npool: " << describe(*p);
      EXPECT_LE(cp, cf * 1.2) << "fresh: " << describe(*f) << "\npool: " << describe(*p);
      // And each within 20 % of what the program measured itself.
      for (const JobResult* r : {f, p}) {
        double self = std::strtod(r->stdout().c_str(), nullptr);
        EXPECT_GE(self, 100000.0) << describe(*r);
        EXPECT_GE(static_cast<double>(r->cpu_time_us()), self * 0.8) << describe(*r);
        EXPECT_LE(static_cast<double>(r->cpu_time_us()), self * 1.2) << describe(*r);
      }
    }
  }
  // The expected verdicts, as a sanity check of the comparison itself.
  for (int round = 0; round < 3; ++round) {
    std::string n = std::to_string(round);
    for (const Results* res : {&fresh, &pooled}) {
      auto expect = [&](const std::string& id, Status want) {
        const JobResult* r = res->one(id);
        if (r != nullptr) {
          EXPECT_EQ(Status_Name(r->status()), Status_Name(want)) << describe(*r);
        }
      };
      expect("ok-" + n, OK);
      expect("nonzero-" + n, NONZERO_EXIT);
      expect("tle-" + n, TIME_LIMIT_EXCEEDED);
      expect("mle-" + n, MEMORY_LIMIT_EXCEEDED);
      expect("signal-" + n, SIGNALED);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// 5. Bad input lines: a SETUP_ERROR result each, and the other jobs still run.

TEST_F(BatchTest, BadLinesBecomeSetupErrors) {
  std::string input;
  input += to_json_line(make_job("first", {in_jail("exit_code"), "0"}));  // line 1
  input += "{\"id\":\"broken\",\"argv\":[\n";                             // line 2: malformed JSON
  input += "{\"id\":\"unknown\",\"argv\":[\"" + in_jail("exit_code") +
           "\",\"0\"],\"no_such_field\":1}\n";                             // line 3: unknown field
  input += to_json_line(make_job("middle", {in_jail("exit_code"), "3"}));  // line 4
  input += to_json_line(make_job("missing", {"/nonexistent/prog"}));       // line 5
  input += "not json at all\n";                                            // line 6
  input += to_json_line(make_job("last", {in_jail("exit_code"), "0"}));    // line 7

  Results res;
  CliOutcome r = run_batch("bad-lines", input, {}, &res);
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(res.unparsed.empty()) << join(res.unparsed);
  EXPECT_EQ(res.lines, 7u);
  EXPECT_TRUE(res.duplicates().empty()) << join(res.duplicates());

  auto expect_setup_error = [&](const std::string& id, const std::vector<std::string>& mentions) {
    SCOPED_TRACE(id);
    const JobResult* got = res.one(id);
    ASSERT_NE(got, nullptr) << "no result with id " << id << "\n" << r.describe();
    EXPECT_EQ(got->status(), SETUP_ERROR) << describe(*got);
    EXPECT_EQ(got->message().find('\n'), std::string::npos) << describe(*got);
    for (const auto& m : mentions) {
      EXPECT_NE(got->message().find(m), std::string::npos)
          << "no mention of " << m << ": " << describe(*got);
    }
  };
  expect_setup_error("line-2", {"line 2"});
  expect_setup_error("line-3", {"line 3", "no_such_field"});
  expect_setup_error("line-6", {"line 6"});
  expect_setup_error("missing", {"/nonexistent/prog"});
  EXPECT_EQ(res.by_id.count("broken"), 0u);
  EXPECT_EQ(res.by_id.count("unknown"), 0u) << "a line with an unknown field ran";

  const JobResult* got;
  ASSERT_NE(got = res.one("first"), nullptr);
  EXPECT_EQ(got->status(), OK) << describe(*got);
  ASSERT_NE(got = res.one("middle"), nullptr);
  EXPECT_EQ(got->status(), NONZERO_EXIT) << describe(*got);
  EXPECT_EQ(got->exit_code(), 3) << describe(*got);
  ASSERT_NE(got = res.one("last"), nullptr);
  EXPECT_EQ(got->status(), OK) << describe(*got);
}

}  // namespace
}  // namespace jailpool
