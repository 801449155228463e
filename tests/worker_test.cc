// `jailpool worker`, `submit` and `collect` end to end, against a real redis-server (Debian's)
// that each test starts on a unix socket in its own directory and stops at the end: 3 workers
// and 3,000 mixed jobs with one worker kill -9'd (its pending entries claimed by the others);
// Redis restarted mid-run (append-only file kept); poison entries (SETUP_ERROR, acked, the
// worker lives on); the dead-letter stream; AUTH from a file; bad flags (exit 2). After every
// test: no job cgroup, no process of ours, no redis-server.
#include <fcntl.h>
#include <google/protobuf/util/json_util.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
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
#include "worker/redis_client.h"

extern char** environ;

namespace jailpool {
namespace {

namespace pbu = google::protobuf::util;
using testing_env::make_job;
using testing_env::spec_json;
using testing_env::to_json_line;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using testing_env::CliOutcome;
using testing_env::in_jail;
using testing_env::job_marker;
using testing_env::kMiB;
using testing_env::leftover_processes;
using testing_env::poll_until_empty;
using testing_env::read_file;
using testing_env::run_cli;
using testing_env::spawn_cli;
using testing_env::TempDir;
using worker::RedisClient;
using worker::Reply;

constexpr const char* kRedisServer = "/usr/bin/redis-server";

std::string join(const std::vector<std::string>& v, size_t max = 30) {
  return testing_env::join(v, max);
}

// Waits for a child of ours; SIGKILL after `budget`. Returns the wait status (-1: none).
int wait_child(pid_t pid, std::chrono::milliseconds budget) {
  auto deadline = Clock::now() + budget;
  int status = 0;
  for (;;) {
    pid_t got = ::waitpid(pid, &status, WNOHANG);
    if (got == pid) return status;
    if (got < 0 && errno != EINTR) return -1;
    if (Clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      ADD_FAILURE() << "pid " << pid << " did not end within " << budget.count() << " ms";
      return status;
    }
    std::this_thread::sleep_for(10ms);
  }
}

// A redis-server of the test's own: unix socket in `dir`, no TCP port, append-only file on.
class RedisServer {
 public:
  RedisServer(std::string dir, std::vector<std::string> extra = {})
      : dir_(std::move(dir)), extra_(std::move(extra)) {
    start();
  }
  ~RedisServer() { stop(); }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  std::string socket() const { return dir_ + "/redis.sock"; }
  std::string url() const { return "unix://" + socket(); }
  bool running() const { return pid_ > 0; }

  void start() {
    ASSERT_EQ(::access(kRedisServer, X_OK), 0)
        << kRedisServer << " is missing: scripts/install-deps.sh installs redis-server";
    std::vector<std::string> args{kRedisServer,   "--port",    "0",
                                  "--unixsocket", socket(),    "--unixsocketperm",
                                  "700",          "--dir",     dir_,
                                  "--save",       "",          "--appendonly",
                                  "yes",          "--logfile", dir_ + "/redis.log",
                                  "--daemonize",  "no"};
    args.insert(args.end(), extra_.begin(), extra_.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int rc = ::posix_spawn(&pid_, kRedisServer, nullptr, nullptr, argv.data(), environ);
    ASSERT_EQ(rc, 0) << "posix_spawn redis-server: " << std::strerror(rc);
    // Ready when it answers (and has read its append-only file: no LOADING).
    auto deadline = Clock::now() + 20s;
    std::string last;
    while (Clock::now() < deadline) {
      try {
        worker::RedisUrl url = worker::parse_redis_url(this->url());
        url.password = password_;
        RedisClient c(url);
        c.command({"PING"});
        return;
      } catch (const ConfigError&) {
        return;  // NOAUTH: a password is required, and the server is up
      } catch (const std::exception& e) {
        last = e.what();  // not listening yet, or LOADING
      }
      std::this_thread::sleep_for(20ms);
    }
    FAIL() << "redis-server did not answer within 20 s: " << last << "\n"
           << read_file(dir_ + "/redis.log");
  }

  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);  // our redis-server: a clean shutdown writes the append-only file
    int status = wait_child(pid_, 20s);
    EXPECT_TRUE(WIFEXITED(status)) << "redis-server status " << status;
    pid_ = -1;
  }

  void set_password(const std::string& p) { password_ = p; }

  // A client of this server (fails the test when it cannot connect).
  std::unique_ptr<RedisClient> client() const {
    worker::RedisUrl url = worker::parse_redis_url(this->url());
    url.password = password_;
    return std::make_unique<RedisClient>(url);
  }

 private:
  std::string dir_;
  std::vector<std::string> extra_;
  std::string password_;
  pid_t pid_ = -1;
};

std::map<std::string, std::vector<JobResult>> parse_results(const std::string& text,
                                                            std::vector<std::string>* bad) {
  std::map<std::string, std::vector<JobResult>> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    JobResult r;
    if (!pbu::JsonStringToMessage(line, &r).ok() || r.id().empty()) {
      bad->push_back(line.substr(0, 200));
      continue;
    }
    out[r.id()].push_back(std::move(r));
  }
  return out;
}

long long xlen(RedisClient& c, const std::string& stream) {
  return c.command({"XLEN", stream}).integer;
}

// The number of entries pending in the group (all consumers).
long long pending_count(RedisClient& c) {
  Reply r = c.command({"XPENDING", "jailpool:jobs", "jailpool"});
  return r.is_array() && !r.elements.empty() ? r.elements[0].integer : -1;
}

// Entry ids pending for one consumer.
std::vector<std::string> pending_of(RedisClient& c, const std::string& consumer) {
  Reply r = c.command({"XPENDING", "jailpool:jobs", "jailpool", "-", "+", "1000", consumer});
  std::vector<std::string> out;
  for (const Reply& e : r.elements) out.push_back(e.elements[0].str);
  return out;
}

struct ResultEntry {
  std::string id, worker, entry;
  int attempt = 0;
};
// Every entry of the results stream.
std::vector<ResultEntry> result_entries(RedisClient& c) {
  std::vector<ResultEntry> out;
  for (const auto& e : worker::parse_entries(c.command({"XRANGE", "jailpool:results", "-", "+"}))) {
    ResultEntry r;
    if (auto* v = e.field("id")) r.id = *v;
    if (auto* v = e.field("worker")) r.worker = *v;
    if (auto* v = e.field("entry")) r.entry = *v;
    if (auto* v = e.field("attempt")) r.attempt = std::atoi(v->c_str());
    out.push_back(r);
  }
  return out;
}

class WorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    std::string profile =
        read_file(std::string(JAILPOOL_SOURCE_DIR) + "/configs/default.textproto");
    ASSERT_FALSE(profile.empty());
    profile += "\nbind { src: \"" + std::string(JAILPOOL_TEST_PROGS) + "\" dst: \"" +
               testing_env::kProgsInJail + "\" }\n";
    profile_ = dir_.write("profile.textproto", profile);
  }

  void TearDown() override {
    for (auto& [name, pid] : workers_) {
      if (pid > 0) {
        ::kill(pid, SIGKILL);
        wait_child(pid, 10s);
      }
    }
    redis_.reset();
    auto dirs = poll_until_empty(testing_env::job_cgroups_left, 3000ms);
    EXPECT_TRUE(dirs.empty()) << "job cgroups left behind:\n" << join(dirs);
    auto procs = poll_until_empty(leftover_processes, 3000ms);
    EXPECT_TRUE(procs.empty()) << "processes left behind:\n" << join(procs);
    auto servers = poll_until_empty(
        [&] { return testing_env::processes_mentioning(dir_.path() + "/redis.sock"); }, 3000ms);
    EXPECT_TRUE(servers.empty()) << "redis-server left running:\n" << join(servers);
  }

  void start_redis(std::vector<std::string> extra = {}) {
    redis_ = std::make_unique<RedisServer>(dir_.path(), std::move(extra));
  }

  // Starts `jailpool worker` named `name` (its stderr in NAME.log).
  void start_worker(const std::string& name, std::vector<std::string> extra = {}) {
    UniqueFd log(
        ::open(dir_.file(name + ".log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
    ASSERT_GE(log.get(), 0);
    std::vector<std::string> args{"worker", "--redis", redis_->url(), "--consumer", name,
                                  "-j",     "2",       "--profile",   profile_};
    args.insert(args.end(), extra.begin(), extra.end());
    pid_t pid = spawn_cli(args, log.get(), log.get());
    ASSERT_GT(pid, 0);
    workers_[name] = pid;
  }

  // SIGTERM: the worker finishes what it runs and exits 0.
  void stop_worker(const std::string& name) {
    pid_t pid = workers_[name];
    ASSERT_GT(pid, 0);
    ASSERT_EQ(::kill(pid, SIGTERM), 0);
    int status = wait_child(pid, 60s);
    workers_[name] = -1;
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << name << ": status " << status << "\n"
        << read_file(dir_.file(name + ".log"));
  }

  bool alive(const std::string& name) {
    int status;
    return ::waitpid(workers_[name], &status, WNOHANG) == 0;
  }

  // `jailpool submit` of these JSON lines; the ids it printed, in order.
  std::vector<std::string> submit(const std::string& name, const std::string& lines) {
    std::string input = dir_.write(name + ".jsonl", lines);
    CliOutcome r = run_cli({"submit", "--redis", redis_->url(), "--input", input});
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    std::vector<std::string> ids;
    std::istringstream in(r.out);
    std::string id;
    while (std::getline(in, id)) ids.push_back(id);
    dir_.write(name + ".ids", r.out);
    return ids;
  }

  // `jailpool collect --ids NAME.ids --wait`: the results by id.
  std::map<std::string, std::vector<JobResult>> collect(const std::string& name,
                                                        CliOutcome* outcome = nullptr) {
    std::string out = dir_.file(name + ".results.jsonl");
    CliOutcome r = run_cli({"collect", "--redis", redis_->url(), "--ids", dir_.file(name + ".ids"),
                            "--wait", "--output", out},
                           "/dev/null", 120s);
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    if (outcome) *outcome = r;
    std::vector<std::string> bad;
    auto results = parse_results(read_file(out), &bad);
    EXPECT_TRUE(bad.empty()) << join(bad);
    return results;
  }

  // Polls until the group has nothing pending (the last XACKs follow their results).
  void expect_nothing_pending(RedisClient& c) {
    auto deadline = Clock::now() + 10s;
    while (pending_count(c) != 0 && Clock::now() < deadline) std::this_thread::sleep_for(20ms);
    EXPECT_EQ(pending_count(c), 0) << "entries still pending in the group";
  }

  TempDir dir_{"jailpool-worker-test"};
  std::string profile_;
  std::unique_ptr<RedisServer> redis_;
  std::map<std::string, pid_t> workers_;
};

// ---------------------------------------------------------------------------------------------

enum class Kind { kOk, kTle, kMle, kCrash };

JobSpec job_of_kind(Kind kind, const std::string& id) {
  JobSpec j;
  switch (kind) {
    case Kind::kOk:
      j = make_job(id, {in_jail("exit_code"), "0"});
      break;
    case Kind::kTle:
      j = make_job(id, {in_jail("burn_cpu"), "forever"});
      j.mutable_limits()->set_cpu_time_ms(20);
      break;
    case Kind::kMle:
      j = make_job(id, {in_jail("touch_memory"), "64"});
      j.mutable_limits()->set_memory_bytes(32 * kMiB);
      break;
    case Kind::kCrash:
      j = make_job(id, {in_jail("raise_signal"), "11"});
      break;
  }
  // The claim threshold is read from the entry: 2 x (3 s + 0) + 5 s. (An MLE job may need
  // more than a second on a loaded machine: the kernel reclaims before the OOM kill.)
  j.mutable_limits()->set_wall_time_ms(3000);
  return j;
}

Status status_of(Kind kind) {
  switch (kind) {
    case Kind::kOk:
      return OK;
    case Kind::kTle:
      return TIME_LIMIT_EXCEEDED;
    case Kind::kMle:
      return MEMORY_LIMIT_EXCEEDED;
    case Kind::kCrash:
      return SIGNALED;
  }
  return STATUS_UNSPECIFIED;
}

// Mixed jobs, deterministically shuffled; the kinds by id.
std::string mixed_jobs(size_t total, size_t each_slow_kind, std::map<std::string, Kind>* kinds) {
  std::vector<Kind> v;
  for (Kind k : {Kind::kTle, Kind::kMle, Kind::kCrash}) v.insert(v.end(), each_slow_kind, k);
  v.insert(v.end(), total - v.size(), Kind::kOk);
  std::mt19937_64 rng(20261206);
  for (size_t i = v.size() - 1; i > 0; --i) std::swap(v[i], v[rng() % (i + 1)]);
  std::string lines;
  for (size_t i = 0; i < v.size(); ++i) {
    std::string id = "m-" + std::to_string(i);
    (*kinds)[id] = v[i];
    lines += to_json_line(job_of_kind(v[i], id));
  }
  return lines;
}

std::vector<std::string> check_mixed(const std::map<std::string, Kind>& kinds,
                                     const std::map<std::string, std::vector<JobResult>>& got) {
  std::vector<std::string> wrong;
  for (const auto& [id, kind] : kinds) {
    auto it = got.find(id);
    if (it == got.end()) {
      wrong.push_back(id + ": no result");
    } else if (it->second.size() != 1) {
      wrong.push_back(id + ": " + std::to_string(it->second.size()) +
                      " results in collect's output");
    } else if (it->second.front().status() != status_of(kind)) {
      wrong.push_back(testing_env::describe(it->second.front()));
    }
  }
  return wrong;
}

TEST_F(WorkerTest, ThreeWorkersOneKilledNineItsEntriesClaimed) {
  constexpr size_t kTotal = 3000;
  start_redis();
  std::map<std::string, Kind> kinds;
  auto ids = submit("mixed", mixed_jobs(kTotal, 40, &kinds));
  ASSERT_EQ(ids.size(), kTotal);
  auto redis = redis_->client();
  ASSERT_EQ(xlen(*redis, "jailpool:jobs"), static_cast<long long>(kTotal));

  auto t0 = Clock::now();
  for (const char* name : {"w1", "w2", "w3"}) start_worker(name);
  // kill -9 w1 in the middle, while it holds entries (read, not acked).
  std::vector<std::string> orphans;
  auto deadline = Clock::now() + 60s;
  while (Clock::now() < deadline) {
    if (xlen(*redis, "jailpool:results") >= static_cast<long long>(kTotal / 5) &&
        pending_of(*redis, "w1").size() >= 2) {
      ASSERT_EQ(::kill(workers_["w1"], SIGKILL), 0);  // the worker we spawned
      break;
    }
    std::this_thread::sleep_for(5ms);
  }
  int status = wait_child(workers_["w1"], 10s);
  workers_["w1"] = -1;
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
      << "w1 was not killed in the middle: status " << status << "\n"
      << read_file(dir_.file("w1.log"));
  orphans = pending_of(*redis, "w1");
  size_t results_at_kill = static_cast<size_t>(xlen(*redis, "jailpool:results"));
  EXPECT_FALSE(orphans.empty());
  EXPECT_LT(results_at_kill, kTotal) << "the jobs had all run before the kill";
  // systemd would restart it: a new instance reclaims the dead one's job cgroups at start-up.
  start_worker("w4");

  auto results = collect("mixed");
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::cout << "[ workers  ] " << kTotal << " jobs, 3 workers -j 2 (one kill -9'd after "
            << results_at_kill << " results, " << orphans.size() << " entries claimed): " << secs
            << " s" << std::endl;
  auto wrong = check_mixed(kinds, results);
  EXPECT_TRUE(wrong.empty()) << wrong.size() << " ids without the right result:\n" << join(wrong);
  EXPECT_EQ(results.size(), kTotal);

  // The dead worker's entries: each has a result from another worker, a later attempt.
  expect_nothing_pending(*redis);
  std::map<std::string, std::vector<ResultEntry>> by_entry;
  for (auto& r : result_entries(*redis)) by_entry[r.entry].push_back(r);
  std::vector<std::string> unclaimed;
  for (const auto& entry : orphans) {
    bool ok = false;
    for (const auto& r : by_entry[entry]) ok |= r.worker != "w1" && r.attempt >= 2;
    if (!ok) unclaimed.push_back(entry);
  }
  EXPECT_TRUE(unclaimed.empty()) << "entries of w1 without a later attempt by another worker:\n"
                                 << join(unclaimed);
  std::string logs = read_file(dir_.file("w2.log")) + read_file(dir_.file("w3.log")) +
                     read_file(dir_.file("w4.log"));
  EXPECT_NE(logs.find("from w1"), std::string::npos) << logs;

  for (const char* name : {"w2", "w3", "w4"}) stop_worker(name);
}

TEST_F(WorkerTest, RedisRestartedMidRunWorkersReconnect) {
  constexpr size_t kTotal = 600;
  start_redis();
  std::map<std::string, Kind> kinds;
  auto ids = submit("restart", mixed_jobs(kTotal, 10, &kinds));
  ASSERT_EQ(ids.size(), kTotal);
  start_worker("r1");
  start_worker("r2");
  {
    auto redis = redis_->client();
    auto deadline = Clock::now() + 60s;
    while (xlen(*redis, "jailpool:results") < static_cast<long long>(kTotal / 4) &&
           Clock::now() < deadline) {
      std::this_thread::sleep_for(5ms);
    }
    EXPECT_LT(xlen(*redis, "jailpool:results"), static_cast<long long>(kTotal))
        << "the jobs had all run before the restart";
  }
  redis_->stop();
  std::this_thread::sleep_for(1500ms);  // the workers' jobs end meanwhile: results held back
  redis_->start();

  auto results = collect("restart");
  auto wrong = check_mixed(kinds, results);
  EXPECT_TRUE(wrong.empty()) << wrong.size() << " ids without the right result:\n" << join(wrong);
  auto redis = redis_->client();
  expect_nothing_pending(*redis);
  for (const char* name : {"r1", "r2"}) {
    EXPECT_NE(read_file(dir_.file(std::string(name) + ".log")).find("reconnected"),
              std::string::npos)
        << read_file(dir_.file(std::string(name) + ".log"));
    stop_worker(name);
  }
}

TEST_F(WorkerTest, PoisonEntriesAreSetupErrorsAckedOnce) {
  start_redis();
  auto redis = redis_->client();
  worker::ensure_group(*redis, "jailpool:jobs", "jailpool");
  struct Poison {
    std::string id;
    std::vector<std::string> fields;  // after XADD jailpool:jobs *
    std::string field;                // what the message must name
  };
  const std::string ok_spec = spec_json(make_job("good", {in_jail("exit_code"), "0"}));
  std::vector<Poison> poisons = {
      {"p-json", {"id", "p-json", "spec", "{not json"}, "spec"},
      // No id field: the spec's own id, read leniently.
      {"p-unknown",
       {"spec", R"({"id":"p-unknown","argv":["/bin/true"],"no_such_field":1})"},
       "no_such_field"},
      {"p-nospec", {"id", "p-nospec", "other", "x"}, "spec"},
      {"p-deep", {"id", "p-deep", "spec", std::string(200000, '[')}, "spec"},
      {"p-type", {"id", "p-type", "spec", R"({"argv":5})"}, "spec"},
      {"p-utf8", {"id", "p-utf8", "spec", "{\"argv\":[\"\xff\xfe\"]}"}, "spec"},
      {"p-argv", {"id", "p-argv", "spec", R"({"argv":[]})"}, "argv"},
      {"p-profile",
       {"id", "p-profile", "spec", R"({"argv":["/bin/true"],"profile":"/nonexistent.textproto"})"},
       "profile"},
  };
  std::string ids_text;
  for (const auto& p : poisons) {
    worker::Command c{"XADD", "jailpool:jobs", "*"};
    c.insert(c.end(), p.fields.begin(), p.fields.end());
    ASSERT_FALSE(redis->command(c).is_error());
    ids_text += p.id + "\n";
  }
  ASSERT_FALSE(
      redis->command({"XADD", "jailpool:jobs", "*", "id", "good", "spec", ok_spec}).is_error());
  ids_text += "good\n";
  dir_.write("poison.ids", ids_text);

  start_worker("p1", {"--claim-after", "200ms"});
  auto results = collect("poison");
  for (const auto& p : poisons) {
    ASSERT_EQ(results[p.id].size(), 1u) << p.id;
    const JobResult& r = results[p.id].front();
    EXPECT_EQ(r.status(), SETUP_ERROR) << testing_env::describe(r);
    EXPECT_NE(r.message().find(p.field), std::string::npos)
        << p.id << ": the message does not name " << p.field << ": " << r.message();
  }
  ASSERT_EQ(results["good"].size(), 1u);
  EXPECT_EQ(results["good"].front().status(), OK) << testing_env::describe(results["good"][0]);

  // Acked: nothing pending, so nothing to redeliver; after several claim passes (200 ms) each
  // poison still has exactly one result, and the worker is alive.
  expect_nothing_pending(*redis);
  std::this_thread::sleep_for(1000ms);
  std::map<std::string, int> count;
  for (const auto& r : result_entries(*redis)) ++count[r.id];
  for (const auto& p : poisons) EXPECT_EQ(count[p.id], 1) << p.id;
  EXPECT_TRUE(alive("p1")) << read_file(dir_.file("p1.log"));
  stop_worker("p1");
}

TEST_F(WorkerTest, DeadWorkersEntriesClaimedAndDeadLettered) {
  start_redis();
  auto redis = redis_->client();
  worker::ensure_group(*redis, "jailpool:jobs", "jailpool");
  const std::string spec = spec_json(make_job("often", {in_jail("exit_code"), "0"}));
  ASSERT_FALSE(redis
                   ->command({"XADD", "jailpool:jobs", "*", "spec",
                              spec_json(make_job("once", {in_jail("exit_code"), "0"}))})
                   .is_error());
  std::string poison = redis->command({"XADD", "jailpool:jobs", "*", "spec", spec}).str;
  // A "ghost" consumer took both and died; `often` was then delivered twice more (a worker
  // that crashes on it every time).
  Reply read = redis->command(
      {"XREADGROUP", "GROUP", "jailpool", "ghost", "COUNT", "10", "STREAMS", "jailpool:jobs", ">"});
  ASSERT_TRUE(read.is_array()) << read.str;
  for (int i = 0; i < 2; ++i) {
    ASSERT_FALSE(
        redis->command({"XCLAIM", "jailpool:jobs", "jailpool", "ghost", "0", poison}).is_error());
  }
  dir_.write("dead.ids", "once\noften\n");
  start_worker("d1", {"--claim-after", "300ms", "--max-deliveries", "3"});
  auto results = collect("dead");
  ASSERT_EQ(results["once"].size(), 1u);
  EXPECT_EQ(results["once"][0].status(), OK) << testing_env::describe(results["once"][0]);
  ASSERT_EQ(results["often"].size(), 1u);
  EXPECT_EQ(results["often"][0].status(), INTERNAL_ERROR);
  EXPECT_NE(results["often"][0].message().find("dead-lettered"), std::string::npos)
      << results["often"][0].message();

  auto dead = worker::parse_entries(redis->command({"XRANGE", "jailpool:jobs:dead", "-", "+"}));
  ASSERT_EQ(dead.size(), 1u);
  ASSERT_NE(dead[0].field("error"), nullptr);
  EXPECT_NE(dead[0].field("error")->find("delivered 3 times"), std::string::npos)
      << *dead[0].field("error");
  ASSERT_NE(dead[0].field("spec"), nullptr);
  EXPECT_EQ(*dead[0].field("spec"), spec);
  for (const auto& r : result_entries(*redis)) {
    if (r.id == "once") {
      EXPECT_EQ(r.attempt, 2);
    }
  }
  expect_nothing_pending(*redis);
  stop_worker("d1");
}

// SIGTERM: the worker reads nothing more, finishes the jobs it holds (running and prefetched),
// publishes their results and exits 0; what it never read stays in the stream.
TEST_F(WorkerTest, SigtermFinishesAndPublishesWhatItHolds) {
  start_redis();
  std::string lines;
  for (int i = 0; i < 12; ++i) {
    lines += spec_json(make_job("s-" + std::to_string(i), {in_jail("sleeper"), "700"})) + "\n";
  }
  auto ids = submit("term", lines);
  ASSERT_EQ(ids.size(), 12u);
  auto redis = redis_->client();
  start_worker("t1");  // -j 2
  // It holds 4 entries (2 running, 2 prefetched) as soon as it has read them.
  auto deadline = Clock::now() + 30s;
  auto held = pending_of(*redis, "t1");
  while (held.size() < 4 && Clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
    held = pending_of(*redis, "t1");
  }
  ASSERT_EQ(held.size(), 4u) << "backpressure: -j 2 reads 2 to run and 2 ahead, no more";
  stop_worker("t1");
  EXPECT_EQ(pending_count(*redis), 0) << "entries read but not acked at exit";
  // With nothing pending it left the group.
  Reply consumers = redis->command({"XINFO", "CONSUMERS", "jailpool:jobs", "jailpool"});
  ASSERT_TRUE(consumers.is_array()) << consumers.str;
  EXPECT_TRUE(consumers.elements.empty());
  std::set<std::string> published;
  for (const auto& r : result_entries(*redis)) published.insert(r.entry);
  for (const auto& entry : held) EXPECT_TRUE(published.count(entry)) << entry;
  // The rest were never read: another worker runs them.
  EXPECT_LT(published.size(), 12u);
  start_worker("t2");
  auto results = collect("term");
  for (const auto& id : ids) {
    ASSERT_EQ(results[id].size(), 1u) << id;
    EXPECT_EQ(results[id][0].status(), OK) << testing_env::describe(results[id][0]);
  }
  stop_worker("t2");
}

// Redis refuses the results (maxmemory reached, noeviction): the worker keeps them, acks
// nothing, reads no more than it may hold (3 x -j), and publishes them when Redis takes writes
// again.
TEST_F(WorkerTest, RefusedResultsAreKeptNotAcked) {
  start_redis();
  std::string lines;
  for (int i = 0; i < 16; ++i) {
    lines += spec_json(make_job("o-" + std::to_string(i), {in_jail("sleeper"), "200"})) + "\n";
  }
  auto ids = submit("oom", lines);
  ASSERT_EQ(ids.size(), 16u);
  auto redis = redis_->client();
  start_worker("o1");  // -j 2
  auto deadline = Clock::now() + 30s;
  while (pending_of(*redis, "o1").empty() && Clock::now() < deadline) {
    std::this_thread::sleep_for(2ms);
  }
  ASSERT_FALSE(redis->command({"CONFIG", "SET", "maxmemory", "1"}).is_error());
  ASSERT_EQ(xlen(*redis, "jailpool:results"), 0) << "a job ended before maxmemory was set";
  // The jobs it holds end; their results are refused.
  deadline = Clock::now() + 30s;
  while (read_file(dir_.file("o1.log")).find("OOM") == std::string::npos &&
         Clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  std::this_thread::sleep_for(1500ms);
  EXPECT_NE(read_file(dir_.file("o1.log")).find("OOM"), std::string::npos)
      << read_file(dir_.file("o1.log"));
  EXPECT_EQ(xlen(*redis, "jailpool:results"), 0);
  auto held = pending_of(*redis, "o1");
  EXPECT_GE(held.size(), 1u);
  EXPECT_LE(held.size(), 6u) << "read more than 3 x -j while its results were refused";
  ASSERT_FALSE(redis->command({"CONFIG", "SET", "maxmemory", "0"}).is_error());

  auto results = collect("oom");
  for (const auto& id : ids) {
    ASSERT_EQ(results[id].size(), 1u) << id;
    EXPECT_EQ(results[id][0].status(), OK) << testing_env::describe(results[id][0]);
  }
  expect_nothing_pending(*redis);
  stop_worker("o1");
}

TEST_F(WorkerTest, AuthFromFile) {
  start_redis({"--requirepass", "s3cret-pass"});
  redis_->set_password("s3cret-pass");
  std::string auth = dir_.write("auth", "s3cret-pass\n");
  std::string wrong = dir_.write("wrong", "nope\n");
  std::string input = dir_.write("a.jsonl", spec_json(make_job("a1", {in_jail("exit_code"), "0"})));
  CliOutcome no_auth = run_cli({"submit", "--redis", redis_->url(), "--input", input});
  EXPECT_EQ(no_auth.exit_code, 2) << no_auth.describe();  // NOAUTH
  EXPECT_NE(no_auth.err.find("--auth-file"), std::string::npos) << no_auth.describe();
  CliOutcome bad =
      run_cli({"submit", "--redis", redis_->url(), "--auth-file", wrong, "--input", input});
  EXPECT_EQ(bad.exit_code, 2) << bad.describe();
  EXPECT_NE(bad.err.find("--auth-file"), std::string::npos) << bad.describe();
  CliOutcome good =
      run_cli({"submit", "--redis", redis_->url(), "--auth-file", auth, "--input", input});
  ASSERT_EQ(good.exit_code, 0) << good.describe();
  EXPECT_EQ(good.out, "a1\n");
  dir_.write("a.ids", "a1\n");
  start_worker("a", {"--auth-file", auth});
  CliOutcome c = run_cli({"collect", "--redis", redis_->url(), "--auth-file", auth, "--ids",
                          dir_.file("a.ids"), "--wait"},
                         "/dev/null", 60s);
  EXPECT_EQ(c.exit_code, 0) << c.describe();
  EXPECT_NE(c.out.find("\"id\":\"a1\",\"status\":\"OK\""), std::string::npos) << c.describe();
  stop_worker("a");
}

TEST_F(WorkerTest, BadFlagsAreOneLineAndExitTwo) {
  std::string missing_sock = dir_.file("nothing.sock");
  struct Case {
    std::vector<std::string> args;
    std::string names;  // the flag the message must name
    std::string says;   // and a word of the problem
  };
  std::vector<Case> cases = {
      {{"worker", "--redis", "rediss://example.org:6380"}, "--redis", "TLS"},
      {{"worker", "--redis", "http://localhost"}, "--redis", "URL"},
      {{"worker", "--redis", "redis://user:pw@localhost"}, "--redis", "--auth-file"},
      {{"worker", "--redis", "redis://localhost:99999"}, "--redis", "port"},
      {{"worker", "--redis", "unix://" + missing_sock}, "--redis", "No such file"},
      {{"submit", "--redis", "unix://" + missing_sock, "--auth-file", dir_.file("no-auth")},
       "--auth-file",
       "No such file"},
      {{"collect", "--redis", "unix://" + missing_sock, "--wait"}, "--wait", "--ids"},
  };
  for (const auto& c : cases) {
    CliOutcome r = run_cli(c.args);
    EXPECT_EQ(r.exit_code, 2) << r.describe();
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.describe();
    EXPECT_NE(r.err.find(c.names), std::string::npos) << r.describe();
    EXPECT_NE(r.err.find(c.says), std::string::npos) << r.describe();
  }
}

TEST(RedisUrlTest, ParsesTcpAndUnixUrls) {
  auto u = worker::parse_redis_url("redis://queue.example.org:6380/3");
  EXPECT_EQ(u.host, "queue.example.org");
  EXPECT_EQ(u.port, 6380);
  EXPECT_EQ(u.db, 3);
  EXPECT_TRUE(u.unix_path.empty());
  u = worker::parse_redis_url("redis://jobs@[::1]");
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.port, 6379);
  EXPECT_EQ(u.user, "jobs");
  u = worker::parse_redis_url("redis://10.0.0.7/");
  EXPECT_EQ(u.host, "10.0.0.7");
  EXPECT_EQ(u.db, 0);
  u = worker::parse_redis_url("unix:///run/redis/redis.sock?db=2");
  EXPECT_EQ(u.unix_path, "/run/redis/redis.sock");
  EXPECT_EQ(u.db, 2);
  for (const char* bad : {"redis://", "redis://:6379", "redis://h:0", "redis://h/x", "unix://rel",
                          "unix:///s?x=1", "redis://[::1", "rediss://h"}) {
    EXPECT_THROW(worker::parse_redis_url(bad), ConfigError) << bad;
  }
}

}  // namespace
}  // namespace jailpool
