// `jailpool worker`: jobs from a Redis stream through the executor, results into another.
//
// Three threads: the reader (its own connection) reads entries with XREADGROUP and hands them
// to the executor through a SubmissionQueue, never more than -j running plus -j prefetched,
// and never more than 3 x -j unacked (backpressure: an entry read is an entry this worker
// holds); it also claims the entries of dead workers. The executor's loop runs on the calling
// thread. The publisher (a second connection: the reader may sit in a blocking XREADGROUP)
// XADDs the results, then XACKs the entries whose results were added, in pipelines; while
// Redis is away, or refuses them, it keeps the results and tries again (backoff).
//
// Claiming (why XPENDING + XCLAIM rather than XAUTOCLAIM): an entry is overdue when it has been
// pending longer than its own threshold, 2 x (its wall limit + extra time) + 5 s unless
// --claim-after says otherwise: an entry may wait behind one running job (the prefetch) before
// its own run. XAUTOCLAIM takes every entry idle longer than one threshold, which would take
// long jobs from live workers; so the worker lists candidates with XPENDING IDLE <the smallest
// threshold>, reads each one's limits, and XCLAIMs those overdue with the entry's own threshold
// as min-idle-time: XCLAIM is atomic, so of two live workers only one takes an entry. XPENDING
// also gives the delivery count: the attempt number, and what sends an entry to the dead-letter
// stream after --max-deliveries.
#include "worker/worker.h"

#include <fmt/core.h>
#include <google/protobuf/util/json_util.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "common/units.h"
#include "config/profile.h"
#include "sched/executor.h"
#include "sched/result_sink.h"
#include "sched/submission_queue.h"
#include "worker/redis_client.h"
#include "worker/worker_common.h"

namespace jailpool::worker {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr uint64_t kClaimMarginMs = 5000;
constexpr size_t kPublishBatch = 256;

struct InFlight {
  std::string id;  // the job's id (its spec's, or the entry's `id` field)
  unsigned attempt = 1;
};

struct Outgoing {
  std::string entry_id;
  JobResult result;
  unsigned attempt = 1;
  // Dead letter: the entry's fields plus `error`, to the dead-letter stream first.
  bool dead = false;
  std::vector<std::pair<std::string, std::string>> dead_fields;
};

class Worker {
 public:
  Worker(const WorkerOptions& o, std::optional<uint64_t> claim_after_ms,
         const Profile& default_profile, sched::SubmissionQueue& queue)
      : o_(o),
        claim_after_ms_(claim_after_ms),
        default_profile_(default_profile),
        queue_(queue),
        cap_(2 * o.jobs),
        hold_(3 * o.jobs),
        progress_("worker " + o.consumer, 0) {}

  void reader_main(RedisClient& redis);
  void publisher_main(RedisClient& redis);
  void on_result(JobResult&& r);
  void executor_finished() {
    std::lock_guard lock(mu_);
    executor_done_ = true;
    cv_.notify_all();
  }
  bool failed() const { return failed_; }
  void summary() {
    progress_.summary(
        fmt::format(", {} claimed from other workers, {} dead-lettered", claimed_, dead_lettered_));
  }

 private:
  void read_once(RedisClient& redis);
  void claim_pass(RedisClient& redis);
  void take(const StreamEntry& entry, unsigned attempt);
  void publish(Outgoing&& out);
  uint64_t threshold_ms(RedisClient& redis, const std::string& entry_id);
  const Profile* profile_for(const JobSpec& spec);
  void log_down(const std::string& what);
  // The commands in one pipeline, reconnecting with backoff while Redis is away; false when a
  // second signal gave up.
  bool run_retrying(RedisClient& redis, const std::vector<Command>& commands,
                    std::vector<Reply>& replies);
  void log_up();

  const WorkerOptions& o_;
  std::optional<uint64_t> claim_after_ms_;
  const Profile& default_profile_;
  sched::SubmissionQueue& queue_;
  const size_t cap_;   // entries read and not yet finished: -j running, -j prefetched
  const size_t hold_;  // entries read and not yet acked: cap_ and -j results being published
  // How many entries the reader may take now (with mu_ held).
  size_t room_locked() const {
    if (outstanding_ >= cap_ || unacked_.size() >= hold_) return 0;
    return std::min(cap_ - outstanding_, hold_ - unacked_.size());
  }

  std::mutex mu_;
  std::condition_variable cv_;
  size_t outstanding_ = 0;                    // read, no result yet
  std::map<std::string, InFlight> inflight_;  // by entry id, while the job runs
  std::set<std::string> unacked_;             // entries this process holds (until the XACK)
  std::deque<Outgoing> outgoing_;
  bool executor_done_ = false;

  // Reader thread only.
  std::map<std::string, std::unique_ptr<Profile>> profiles_;  // by path; never erased
  std::map<std::string, uint64_t> thresholds_;                // by entry id
  std::atomic<bool> failed_{false};
  std::atomic<bool> down_{false};
  uint64_t claimed_ = 0, dead_lettered_ = 0;

  // Publisher thread only.
  sched::Progress progress_;
};

void Worker::log_down(const std::string& what) {
  if (!down_.exchange(true)) {
    fmt::print(stderr, "jailpool worker {}: redis: {}; reconnecting with backoff\n", o_.consumer,
               what);
  }
}

void Worker::log_up() {
  if (down_.exchange(false)) {
    fmt::print(stderr, "jailpool worker {}: redis: reconnected\n", o_.consumer);
  }
}

const Profile* Worker::profile_for(const JobSpec& spec) {
  if (spec.profile().empty()) return &default_profile_;
  auto& slot = profiles_[spec.profile()];
  if (!slot) {
    try {
      slot = std::make_unique<Profile>(load_profile_file(spec.profile()));
    } catch (const Error& e) {
      profiles_.erase(spec.profile());
      throw ConfigError("profile", e.what());
    }
  }
  return slot.get();
}

void Worker::publish(Outgoing&& out) {
  std::lock_guard lock(mu_);
  outgoing_.push_back(std::move(out));
  cv_.notify_all();
}

void Worker::take(const StreamEntry& entry, unsigned attempt) {
  {
    std::lock_guard lock(mu_);
    ++outstanding_;
    unacked_.insert(entry.id);
  }
  std::string id = entry_job_id(entry);
  JobResult bad;
  try {
    const std::string* json = entry.field("spec");
    if (json == nullptr) {
      throw ConfigError("spec", "the entry has no field \"spec\" (a JobSpec as JSON)");
    }
    JobSpec spec = parse_job_json(*json, "spec");
    if (!spec.id().empty()) id = spec.id();
    const Profile* profile = profile_for(spec);
    {
      std::lock_guard lock(mu_);
      inflight_[entry.id] = InFlight{id, attempt};
    }
    // The executor reports by spec id: the entry's id is unique, the job's need not be.
    spec.set_id(entry.id);
    sched::JobRequest request{std::move(spec), profile};
    if (queue_.try_submit(request)) return;
    throw Error("internal: the submission queue is full");  // cap_ bounds it: never
  } catch (const std::exception& e) {
    // A malformed entry is that job's result, acked: it would fail the same way every time.
    bad.set_status(SETUP_ERROR);
    bad.set_message(e.what());
  }
  bad.set_id(id);
  std::lock_guard lock(mu_);
  inflight_.erase(entry.id);
  --outstanding_;
  outgoing_.push_back(Outgoing{entry.id, std::move(bad), attempt});
  cv_.notify_all();
}

void Worker::on_result(JobResult&& r) {
  std::lock_guard lock(mu_);
  auto it = inflight_.find(r.id());
  if (it == inflight_.end()) {
    fmt::print(stderr, "jailpool worker {}: a result for no entry ({}): dropped\n", o_.consumer,
               r.id());
    return;
  }
  std::string entry_id = it->first;
  InFlight job = std::move(it->second);
  inflight_.erase(it);
  --outstanding_;
  cv_.notify_all();
  if (stop_level() >= 2 && r.status() == INTERNAL_ERROR) {
    // Killed by the second signal: not a verdict. The entry stays pending for another worker.
    return;
  }
  r.set_id(job.id);
  outgoing_.push_back(Outgoing{std::move(entry_id), std::move(r), job.attempt});
}

uint64_t Worker::threshold_ms(RedisClient& redis, const std::string& entry_id) {
  if (claim_after_ms_) return *claim_after_ms_;
  auto it = thresholds_.find(entry_id);
  if (it != thresholds_.end()) return it->second;
  uint64_t t = kClaimMarginMs;
  Reply r = redis.command({"XRANGE", o_.redis.stream, entry_id, entry_id});
  auto entries = parse_entries(r);
  if (!entries.empty()) {
    try {
      const std::string* json = entries.front().field("spec");
      if (json) {
        JobSpec spec = parse_job_json(*json, "spec");
        Limits limits = effective_limits(*profile_for(spec), spec);
        uint64_t wall = limits.has_wall_time_ms()  ? limits.wall_time_ms()
                        : limits.has_cpu_time_ms() ? 2 * limits.cpu_time_ms()
                                                   : 30000;
        t = 2 * (wall + limits.extra_time_ms()) + kClaimMarginMs;
      }
    } catch (const std::exception&) {
      // A malformed entry runs no job: the margin is enough.
    }
  }
  if (thresholds_.size() > 100000) thresholds_.clear();
  thresholds_[entry_id] = t;
  return t;
}

void Worker::claim_pass(RedisClient& redis) {
  const uint64_t floor = claim_after_ms_ ? *claim_after_ms_ : kClaimMarginMs;
  std::string start = "-";
  for (int page = 0; page < 10; ++page) {
    Reply list = redis.command(
        {"XPENDING", o_.redis.stream, o_.group, "IDLE", std::to_string(floor), start, "+", "100"});
    if (list.is_error()) {
      if (list.str.rfind("NOGROUP", 0) == 0) ensure_group(redis, o_.redis.stream, o_.group);
      return;
    }
    for (const Reply& p : list.elements) {
      if (!p.is_array() || p.elements.size() < 4) continue;
      const std::string& entry_id = p.elements[0].str;
      const std::string& owner = p.elements[1].str;
      const auto idle = static_cast<uint64_t>(p.elements[2].integer);
      const auto deliveries = static_cast<unsigned>(p.elements[3].integer);
      start = "(" + entry_id;
      {
        std::lock_guard lock(mu_);
        if (unacked_.count(entry_id)) continue;  // ours, in this process
        if (room_locked() == 0) return;          // backpressure: claim later
      }
      const uint64_t threshold = threshold_ms(redis, entry_id);
      if (idle < threshold) continue;
      // XCLAIM checks the idle time again, atomically: another worker may have just taken it.
      Reply got = redis.command(
          {"XCLAIM", o_.redis.stream, o_.group, o_.consumer, std::to_string(threshold), entry_id});
      auto entries = parse_entries(got);
      if (entries.empty()) continue;  // taken by another worker, or deleted from the stream
      thresholds_.erase(entry_id);
      const StreamEntry& entry = entries.front();
      if (deliveries >= o_.max_deliveries) {
        std::string error = fmt::format(
            "delivered {} times (--max-deliveries {}) without a result: the workers that took "
            "it died or lost Redis (last: consumer {}, idle {} ms)",
            deliveries, o_.max_deliveries, owner, idle);
        Outgoing out;
        out.entry_id = entry.id;
        out.result.set_id(entry_job_id(entry));
        out.result.set_status(INTERNAL_ERROR);
        out.result.set_message("dead-lettered: " + error);
        out.attempt = deliveries + 1;
        out.dead = true;
        out.dead_fields = entry.fields;
        out.dead_fields.emplace_back("entry", entry.id);
        out.dead_fields.emplace_back("error", error);
        {
          std::lock_guard lock(mu_);
          unacked_.insert(entry.id);
        }
        ++dead_lettered_;
        fmt::print(stderr, "jailpool worker {}: entry {} to {}: {}\n", o_.consumer, entry.id,
                   o_.dead, error);
        publish(std::move(out));
        continue;
      }
      ++claimed_;
      fmt::print(stderr,
                 "jailpool worker {}: claimed entry {} from {} (pending {} ms, delivery {})\n",
                 o_.consumer, entry.id, owner, idle, deliveries + 1);
      take(entry, deliveries + 1);
    }
    if (list.elements.size() < 100) return;
  }
}

void Worker::read_once(RedisClient& redis) {
  size_t room;
  {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, 200ms, [&] { return room_locked() > 0 || stop_level() != 0; });
    room = room_locked();
  }
  if (room == 0 || stop_level() != 0) return;
  Reply r = redis.command({"XREADGROUP", "GROUP", o_.group, o_.consumer, "COUNT",
                           std::to_string(room), "BLOCK", "500", "STREAMS", o_.redis.stream, ">"});
  if (r.is_error()) {
    if (r.str.rfind("NOGROUP", 0) == 0) {
      // A server that lost its data (no append-only file) has no group: make it again.
      ensure_group(redis, o_.redis.stream, o_.group);
      return;
    }
    throw Error(fmt::format("XREADGROUP {}: {}", o_.redis.stream, r.str));
  }
  if (!r.is_array()) return;  // nil: nothing within BLOCK
  for (const Reply& stream : r.elements) {
    if (!stream.is_array() || stream.elements.size() < 2) continue;
    for (const StreamEntry& entry : parse_entries(stream.elements[1])) take(entry, 1);
  }
}

void Worker::reader_main(RedisClient& redis) {
  auto give_up = [] { return stop_level() != 0; };
  auto next_claim = Clock::now();
  const auto claim_every = std::chrono::milliseconds(
      std::clamp<uint64_t>(claim_after_ms_.value_or(kClaimMarginMs) / 2, 100, 1000));
  std::string last_refusal;
  try {
    while (stop_level() == 0) {
      try {
        if (!redis.connected()) {
          if (!redis.reconnect_with_backoff(give_up, [&](const std::string& e) { log_down(e); }))
            break;
          ensure_group(redis, o_.redis.stream, o_.group);
          log_up();
        }
        if (Clock::now() >= next_claim) {
          claim_pass(redis);
          next_claim = Clock::now() + claim_every;
        }
        read_once(redis);
      } catch (const RedisDown& e) {
        log_down(e.what());
      } catch (const Error& e) {
        // The server refused a command (OOM, MISCONF, a key of another type...): said once
        // per message, tried again each second.
        if (e.what() != last_refusal) {
          last_refusal = e.what();
          fmt::print(stderr, "jailpool worker {}: {}; trying again\n", o_.consumer, e.what());
        }
        std::this_thread::sleep_for(1s);
      }
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "jailpool worker {}: {}; stopping\n", o_.consumer, e.what());
    failed_ = true;
    request_stop(1);
  }
  // Entries read before this point are in the queue: the executor runs them, then returns.
  queue_.close();
}

bool Worker::run_retrying(RedisClient& redis, const std::vector<Command>& commands,
                          std::vector<Reply>& replies) {
  auto give_up = [] { return stop_level() >= 2; };
  for (;;) {
    try {
      if (!redis.connected() &&
          !redis.reconnect_with_backoff(give_up, [&](const std::string& e) { log_down(e); })) {
        return false;
      }
      replies = redis.pipeline(commands);
      log_up();
      return true;
    } catch (const RedisDown& e) {
      // Done or not, the commands go again: a result twice is harmless (collect keeps one per
      // id), an ack twice too; a result lost is not.
      log_down(e.what());
    }
  }
}

void Worker::publisher_main(RedisClient& redis) {
  std::vector<Outgoing> batch;
  std::vector<Command> adds, acks;
  std::vector<Reply> replies;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return !outgoing_.empty() || executor_done_; });
      if (outgoing_.empty()) return;  // and the executor is done
      while (!outgoing_.empty() && batch.size() < kPublishBatch) {
        batch.push_back(std::move(outgoing_.front()));
        outgoing_.pop_front();
      }
    }
    // The results first, then, in a second round trip, the acks of those that were added: a
    // crash between them runs a job again (a later attempt), never loses it, and a result the
    // server refused (OOM, MISCONF, READONLY) is not acked.
    adds.clear();
    std::vector<size_t> adds_end;  // each result's XADDs end here in `adds`
    for (const Outgoing& out : batch) {
      if (out.dead) {
        Command c{"XADD", o_.dead, "*"};
        for (const auto& [k, v] : out.dead_fields) {
          c.push_back(k);
          c.push_back(v);
        }
        adds.push_back(std::move(c));
      }
      adds.push_back({"XADD", o_.redis.results, "*", "id", out.result.id(), "result",
                      result_to_json(out.result), "worker", o_.consumer, "attempt",
                      std::to_string(out.attempt), "entry", out.entry_id});
      adds_end.push_back(adds.size());
    }
    bool sent = run_retrying(redis, adds, replies);
    std::vector<Outgoing> done, again;
    if (sent) {
      acks.clear();
      for (size_t i = 0, begin = 0; i < batch.size(); begin = adds_end[i], ++i) {
        std::string error;
        for (size_t k = begin; k < adds_end[i]; ++k) {
          if (replies[k].is_error()) error = replies[k].str;
        }
        if (!error.empty()) {
          fmt::print(stderr, "jailpool worker {}: XADD {}: {} (kept, tried again)\n", o_.consumer,
                     o_.redis.results, error);
          again.push_back(std::move(batch[i]));
          continue;
        }
        acks.push_back({"XACK", o_.redis.stream, o_.group, batch[i].entry_id});
        done.push_back(std::move(batch[i]));
      }
      // An ack that does not happen leaves the entry pending: it is claimed and runs again.
      if (!acks.empty() && run_retrying(redis, acks, replies)) {
        for (const Reply& r : replies) {
          if (r.is_error())
            fmt::print(stderr, "jailpool worker {}: XACK: {}\n", o_.consumer, r.str);
        }
      }
    }
    batch.clear();
    if (!sent || (!again.empty() && stop_level() >= 2)) {
      // Second signal while Redis is away or refuses: these entries stay pending for another
      // worker.
      std::lock_guard lock(mu_);
      fmt::print(stderr, "jailpool worker {}: {} results not published\n", o_.consumer,
                 again.size() + outgoing_.size() + (sent ? 0 : adds_end.size()));
      outgoing_.clear();
      return;
    }
    {
      std::lock_guard lock(mu_);
      for (const Outgoing& out : done) {
        unacked_.erase(out.entry_id);
        progress_.count(out.result);
      }
      for (auto& out : again) outgoing_.push_front(std::move(out));
    }
    progress_.show();
    if (!again.empty()) std::this_thread::sleep_for(1s);
  }
}

}  // namespace

int cmd_worker(const WorkerOptions& given) {
  WorkerOptions o = given;
  RedisUrl url = resolve_redis(o.redis);
  if (o.jobs == 0) throw ConfigError("-j", "must be at least 1");
  if (o.max_deliveries == 0) throw ConfigError("--max-deliveries", "must be at least 1");
  std::optional<uint64_t> claim_after_ms;
  if (!o.claim_after.empty()) {
    claim_after_ms = (parse_duration_us(o.claim_after, "--claim-after") + 999) / 1000;
    if (*claim_after_ms == 0) throw ConfigError("--claim-after", "must be positive");
  }
  if (o.consumer.empty()) {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    o.consumer = fmt::format("{}-{}", host, getpid());
  }
  if (o.dead.empty()) o.dead = o.redis.stream + ":dead";
  Profile profile = o.profile_path.empty() ? default_profile() : load_profile_file(o.profile_path);

  auto reader = connect_or_config_error(url);
  auto writer = connect_or_config_error(url);
  ensure_group(*reader, o.redis.stream, o.group);

  sched::ExecutorOptions options;
  options.parallelism = o.jobs;
  options.use_pool = o.use_pool;
  options.use_slots = o.use_slots;
  if (!o.cgroup_parent.empty()) options.cgroup_parent = o.cgroup_parent;
  sched::Executor executor(options);
  sched::SubmissionQueue queue(2 * o.jobs);
  Worker worker(o, claim_after_ms, profile, queue);
  fmt::print(stderr, "jailpool worker {}: {} -> {} (group {}), -j {}\n", o.consumer, o.redis.stream,
             o.redis.results, o.group, o.jobs);

  set_stop_executor(&executor);
  std::thread publisher([&] { worker.publisher_main(*writer); });
  std::thread reader_thread([&] { worker.reader_main(*reader); });
  std::exception_ptr failure;
  try {
    executor.run(queue, [&](JobResult&& r) { worker.on_result(std::move(r)); });
  } catch (...) {
    failure = std::current_exception();
    request_stop(2);
  }
  set_stop_executor(nullptr);
  worker.executor_finished();
  reader_thread.join();
  publisher.join();
  if (failure) std::rethrow_exception(failure);
  // A consumer with nothing pending leaves the group: default names (HOST-PID) would pile up.
  try {
    if (!reader->connected()) reader->reconnect();
    Reply mine = reader->command({"XPENDING", o.redis.stream, o.group, "-", "+", "1", o.consumer});
    if (mine.is_array() && mine.elements.empty()) {
      reader->command({"XGROUP", "DELCONSUMER", o.redis.stream, o.group, o.consumer});
    }
  } catch (const std::exception&) {
    // Redis away: the name stays in the group, harmless.
  }
  worker.summary();
  return worker.failed() ? 1 : 0;
}

}  // namespace jailpool::worker
