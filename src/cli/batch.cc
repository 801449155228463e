// `jailpool batch`: JSON Lines of JobSpec in, JSON Lines of JobResult out, each written and
// flushed as its job ends; --resume skips ids already in an earlier results file.
#include <fcntl.h>
#include <fmt/core.h>
#include <google/protobuf/util/json_util.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include "cli/commands.h"
#include "common/error.h"
#include "config/profile.h"
#include "sched/executor.h"
#include "sched/result_sink.h"
#include "serve/client.h"

namespace jailpool::cli {
namespace {

sched::Executor* g_executor = nullptr;

std::set<std::string> read_done_ids(const std::string& path) {
  std::set<std::string> ids;
  std::ifstream in(path);
  if (!in) return ids;  // nothing done yet
  std::string line;
  while (std::getline(in, line)) {
    JobResult r;
    google::protobuf::util::JsonParseOptions o;
    o.ignore_unknown_fields = true;
    // A line cut short by a crash does not parse: its job runs again.
    if (google::protobuf::util::JsonStringToMessage(line, &r, o).ok() && !r.id().empty()) {
      ids.insert(r.id());
    }
  }
  return ids;
}

}  // namespace

void request_stop(int level) {
  if (g_executor) g_executor->stop(level >= 2);
}

int cmd_batch(const BatchOptions& o) {
  Profile batch_profile = o.profile_path.empty() || !o.server.empty()
                              ? default_profile()
                              : load_profile_file(o.profile_path);
  std::map<std::string, std::unique_ptr<Profile>> profiles;  // by path, for jobs that name one

  std::unique_ptr<std::ifstream> file;
  std::istream* in = &std::cin;
  size_t total = 0;
  if (o.input != "-") {
    file = std::make_unique<std::ifstream>(o.input);
    if (!*file) throw ConfigError("--input", fmt::format("{}: {}", o.input, std::strerror(errno)));
    std::string line;
    while (std::getline(*file, line)) {
      if (line.find_first_not_of(" \t\r") != std::string::npos) ++total;
    }
    file->clear();
    file->seekg(0);
    in = file.get();
  }
  std::set<std::string> done_ids;
  if (!o.resume_path.empty()) done_ids = read_done_ids(o.resume_path);
  bool append = !o.resume_path.empty() && o.resume_path == o.output;
  sched::ResultWriter writer(o.output, append);

  sched::ExecutorOptions options;
  options.parallelism = o.jobs;
  options.use_pool = o.use_pool;
  options.use_slots = o.use_slots;
  options.slot_spares = o.slot_spares;
  if (!o.cgroup_parent.empty()) options.cgroup_parent = o.cgroup_parent;
  std::unique_ptr<sched::Executor> executor;
  if (o.server.empty()) {
    executor = std::make_unique<sched::Executor>(options);
    g_executor = executor.get();
  }

  size_t line_no = 0, skipped = 0;
  sched::Progress progress("batch", total);
  auto report = [&](const JobResult& r) {
    writer.write(r);
    progress.count(r);
  };

  // The next job line's spec (bad lines are reported here, resumed ids skipped).
  auto next_spec = [&]() -> std::optional<JobSpec> {
    std::string line;
    while (std::getline(*in, line)) {
      ++line_no;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      JobSpec spec;
      try {
        spec = parse_job_json(line, fmt::format("job line {}", line_no));
      } catch (const Error& e) {
        // Report the bad line as a result of its own (its id, if it has one, is unknown).
        JobResult bad;
        bad.set_id(fmt::format("line-{}", line_no));
        bad.set_status(SETUP_ERROR);
        bad.set_message(e.what());
        report(bad);
        continue;
      }
      if (spec.id().empty()) spec.set_id(fmt::format("line-{}", line_no));
      if (done_ids.count(spec.id())) {
        ++skipped;
        progress.set_total(total > skipped ? total - skipped : 0);
        continue;
      }
      return spec;
    }
    return std::nullopt;
  };
  auto on_result = [&](JobResult&& r) {
    report(r);
    progress.show();
  };
  if (!o.server.empty()) {
#ifdef JAILPOOL_WITH_GRPC  // else main() has exec'd jailpool-serve
    // A running `jailpool serve` runs them (its warm pool; profiles by name).
    serve::RemoteOptions remote;
    remote.server = o.server;
    remote.token_file = o.token_file;
    auto next_remote = [&]() -> std::optional<JobSpec> {
      std::optional<JobSpec> spec = next_spec();
      if (spec && spec->profile().empty()) spec->set_profile(o.profile_path);
      return spec;
    };
    serve::run_remote_batch(remote, next_remote, on_result, std::max(1u, o.jobs) * 4);
#endif
  } else {
    executor->run(
        [&]() -> std::optional<sched::JobRequest> {
          while (std::optional<JobSpec> spec = next_spec()) {
            const Profile* profile = &batch_profile;
            if (!spec->profile().empty()) {
              auto& slot = profiles[spec->profile()];
              try {
                if (!slot) slot = std::make_unique<Profile>(load_profile_file(spec->profile()));
              } catch (const Error& e) {
                JobResult bad;
                bad.set_id(spec->id());
                bad.set_status(SETUP_ERROR);
                bad.set_message(fmt::format("profile: {}", e.what()));
                report(bad);
                continue;
              }
              profile = slot.get();
            }
            return sched::JobRequest{std::move(*spec), profile};
          }
          return std::nullopt;
        },
        on_result);
  }
  g_executor = nullptr;
  progress.summary(skipped ? fmt::format(", {} skipped (already in {})", skipped, o.resume_path)
                           : "");
  return 0;
}

}  // namespace jailpool::cli
