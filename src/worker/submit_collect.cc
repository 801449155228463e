// `jailpool submit` (JSON Lines of JobSpec into the jobs stream) and `jailpool collect` (one
// result per id from the results stream, the latest attempt).
#include <fmt/core.h>
#include <google/protobuf/util/json_util.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>

#include "config/profile.h"
#include "sched/result_sink.h"
#include "worker/redis_client.h"
#include "worker/worker.h"
#include "worker/worker_common.h"

namespace jailpool::worker {
namespace {

constexpr size_t kSubmitBatch = 500;

// Runs `commands` in one pipeline, reconnecting with backoff while Redis is away (until a stop
// signal). A batch that was cut short goes again whole: an entry may be added twice (its job
// then runs twice, collect keeps one result), never lost.
std::vector<Reply> pipeline_retrying(RedisClient& redis, const std::vector<Command>& commands,
                                     const char* who) {
  bool said = false;
  for (;;) {
    try {
      if (!redis.connected() &&
          !redis.reconnect_with_backoff([] { return stop_level() != 0; }, nullptr)) {
        throw Error("interrupted while Redis was away");
      }
      return redis.pipeline(commands);
    } catch (const RedisDown& e) {
      if (!said) fmt::print(stderr, "jailpool {}: redis: {}; reconnecting\n", who, e.what());
      said = true;
    }
  }
}

bool blank(const std::string& line) {
  return line.find_first_not_of(" \t\r") == std::string::npos;
}

}  // namespace

int cmd_submit(const SubmitOptions& o) {
  RedisUrl url = resolve_redis(o.redis);
  std::unique_ptr<std::ifstream> file;
  std::istream* in = &std::cin;
  if (o.input != "-") {
    file = std::make_unique<std::ifstream>(o.input);
    if (!*file) throw ConfigError("--input", fmt::format("{}: {}", o.input, std::strerror(errno)));
    in = file.get();
  }
  auto redis = connect_or_config_error(url);
  ensure_group(*redis, o.redis.stream, o.group);

  size_t line_no = 0, submitted = 0, invalid = 0;
  std::vector<Command> batch;
  std::string ids_out;
  auto flush = [&] {
    if (batch.empty()) return;
    auto replies = pipeline_retrying(*redis, batch, "submit");
    for (const Reply& r : replies) r.check("XADD " + o.redis.stream);
    submitted += batch.size();
    std::fwrite(ids_out.data(), 1, ids_out.size(), stdout);
    std::fflush(stdout);
    ids_out.clear();
    batch.clear();
  };
  std::string line;
  while (std::getline(*in, line) && stop_level() == 0) {
    ++line_no;
    if (blank(line)) continue;
    std::string id;
    try {
      JobSpec spec = parse_job_json(line, fmt::format("line {}", line_no));
      id = spec.id();
    } catch (const Error& e) {
      // Submitted all the same: the worker that takes it reports a SETUP_ERROR result for its
      // id, as `batch` does for a bad line.
      ++invalid;
      fmt::print(stderr, "jailpool submit: {} (submitted: its result will be a SETUP_ERROR)\n",
                 e.what());
      id = entry_job_id(StreamEntry{"", {{"spec", line}}});
      if (id.rfind("entry-", 0) == 0) id.clear();
    }
    if (id.empty()) id = fmt::format("line-{}", line_no);
    batch.push_back({"XADD", o.redis.stream, "*", "id", id, "spec", line});
    ids_out += id + "\n";
    if (batch.size() >= kSubmitBatch) flush();
  }
  flush();
  fmt::print(stderr, "jailpool submit: {} jobs into {}{}\n", submitted, o.redis.stream,
             invalid ? fmt::format(" ({} not valid: SETUP_ERROR results)", invalid) : "");
  return stop_level() == 0 ? 0 : 1;
}

int cmd_collect(const CollectOptions& o) {
  RedisUrl url = resolve_redis(o.redis);
  std::vector<std::string> wanted;
  std::set<std::string> wanted_set;
  if (!o.ids_path.empty()) {
    std::ifstream ids(o.ids_path);
    if (!ids) throw ConfigError("--ids", fmt::format("{}: {}", o.ids_path, std::strerror(errno)));
    std::string line;
    while (std::getline(ids, line)) {
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
      if (line.empty()) continue;
      if (wanted_set.insert(line).second) wanted.push_back(line);
    }
  } else if (o.wait) {
    throw ConfigError("--wait", "needs --ids (the ids to wait for, e.g. what submit printed)");
  }
  sched::ResultWriter writer(o.output, false);
  auto redis = connect_or_config_error(url);

  struct Latest {
    unsigned attempt = 0;
    JobResult result;
  };
  std::map<std::string, Latest> latest;
  std::vector<std::string> order;  // first seen, when no --ids
  sched::Progress progress("collect", wanted.size());
  std::string last = "0";
  size_t unparsed = 0;
  for (;;) {
    bool complete = !wanted.empty() && progress.done() == wanted.size();
    if (complete || stop_level() != 0) break;
    Command read{"XREAD", "COUNT", "1000"};
    if (o.wait) read.insert(read.end(), {"BLOCK", "1000"});
    read.insert(read.end(), {"STREAMS", o.redis.results, last});
    Reply r = pipeline_retrying(*redis, {read}, "collect").front();
    r.check("XREAD " + o.redis.results);
    if (!r.is_array() || r.elements.empty()) {
      if (!o.wait) break;  // read to the end
      progress.show();
      continue;
    }
    for (const Reply& stream : r.elements) {
      if (!stream.is_array() || stream.elements.size() < 2) continue;
      for (const StreamEntry& e : parse_entries(stream.elements[1])) {
        last = e.id;
        const std::string* id = e.field("id");
        const std::string* json = e.field("result");
        if (id == nullptr || json == nullptr) continue;
        if (!wanted_set.empty() && !wanted_set.count(*id)) continue;
        const std::string* attempt_text = e.field("attempt");
        unsigned attempt =
            attempt_text ? static_cast<unsigned>(std::atoi(attempt_text->c_str())) : 1;
        JobResult result;
        google::protobuf::util::JsonParseOptions po;
        po.ignore_unknown_fields = true;
        if (!google::protobuf::util::JsonStringToMessage(*json, &result, po).ok()) {
          ++unparsed;
          continue;
        }
        auto [it, fresh] = latest.try_emplace(*id);
        if (!fresh && attempt < it->second.attempt) continue;  // an older attempt, late
        if (fresh) {
          order.push_back(*id);
        } else {
          progress.uncount(it->second.result);
        }
        it->second.attempt = attempt;
        it->second.result = std::move(result);
        progress.count(it->second.result);
      }
    }
    progress.show();
  }
  size_t missing = 0;
  for (const std::string& id : wanted.empty() ? order : wanted) {
    auto it = latest.find(id);
    if (it == latest.end()) {
      ++missing;
      continue;
    }
    writer.write(it->second.result);
  }
  std::string extra;
  if (missing) extra += fmt::format(", {} of {} ids without a result", missing, wanted.size());
  if (unparsed) extra += fmt::format(", {} results that are not JobResult JSON", unparsed);
  progress.summary(extra);
  return missing == 0 && stop_level() == 0 ? 0 : 1;
}

}  // namespace jailpool::worker
