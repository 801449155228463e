#include "worker/worker_common.h"

#include <google/protobuf/util/json_util.h>

#include <atomic>

#include "jailpool.pb.h"
#include "sched/executor.h"

namespace jailpool::worker {
namespace {
std::atomic<int> g_stop{0};
std::atomic<sched::Executor*> g_executor{nullptr};
}  // namespace

int stop_level() {
  return g_stop.load();
}

void set_stop_executor(sched::Executor* executor) {
  g_executor.store(executor);
}

void request_stop(int level) {
  if (level > g_stop.load()) g_stop.store(level);
  if (level >= 2) {
    if (sched::Executor* e = g_executor.load()) e->stop(true);
  }
}

RedisUrl resolve_redis(const RedisOptions& options) {
  if (options.url.empty()) throw ConfigError("--redis", "a Redis URL is required");
  RedisUrl url = parse_redis_url(options.url);
  if (!options.auth_file.empty()) url.password = read_auth_file(options.auth_file);
  return url;
}

std::unique_ptr<RedisClient> connect_or_config_error(const RedisUrl& url) {
  try {
    return std::make_unique<RedisClient>(url);
  } catch (const RedisDown& e) {
    throw ConfigError("--redis", e.what());
  }
}

std::string entry_job_id(const StreamEntry& entry) {
  if (const std::string* json = entry.field("spec"); json != nullptr) {
    JobSpec spec;
    google::protobuf::util::JsonParseOptions options;
    options.ignore_unknown_fields = true;
    if (google::protobuf::util::JsonStringToMessage(*json, &spec, options).ok() &&
        !spec.id().empty()) {
      return spec.id();
    }
  }
  if (const std::string* id = entry.field("id"); id != nullptr && !id->empty()) return *id;
  return "entry-" + entry.id;
}

}  // namespace jailpool::worker
