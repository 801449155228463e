// What worker, submit and collect share: the connection from the flags, an entry's job id.
#pragma once

#include <memory>
#include <string>

#include "worker/redis_client.h"
#include "worker/worker.h"

namespace jailpool::sched {
class Executor;
}

namespace jailpool::worker {

// The URL of --redis with the password of --auth-file (ConfigError naming the flag).
RedisUrl resolve_redis(const RedisOptions& options);

// Connects; a server that cannot be reached at start is a bad --redis (ConfigError), not
// something to wait for: later losses are retried.
std::unique_ptr<RedisClient> connect_or_config_error(const RedisUrl& url);

// The job id of an entry: the spec's id (read leniently: unknown fields allowed), else its
// `id` field (submit sets it, for specs without an id or that do not parse), else
// "entry-<entry id>".
std::string entry_job_id(const StreamEntry& entry);

// The level given to request_stop() (0: none).
int stop_level();
// The executor that request_stop(2) kills the jobs of (null: none).
void set_stop_executor(sched::Executor* executor);

}  // namespace jailpool::worker
