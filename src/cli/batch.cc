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

class ResultWriter {
 public:
  ResultWriter(const std::string& path, bool append) {
    if (path == "-") {
      fd_ = 1;
      return;
    }
    fd_ =
        ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0644);
    if (fd_ < 0) throw ConfigError("--output", fmt::format("{}: {}", path, std::strerror(errno)));
    owned_ = true;
    if (append) {
      // After a crash the file may end in a partial line: start on a fresh one.
      off_t size = lseek(fd_, 0, SEEK_END);
      char last = '\n';
      if (size > 0 && pread(fd_, &last, 1, size - 1) == 1 && last != '\n') write_all("\n");
    }
  }
  ~ResultWriter() {
    if (owned_) ::close(fd_);
  }
  // One write per result: a kill leaves whole lines or one cut-off last line.
  void write(const JobResult& r) { write_all(result_to_json(r) + "\n"); }

 private:
  void write_all(const std::string& s) {
    size_t done = 0;
    while (done < s.size()) {
      ssize_t n = ::write(fd_, s.data() + done, s.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw SysError(errno, "write results");
      done += static_cast<size_t>(n);
    }
  }
  int fd_ = -1;
  bool owned_ = false;
};

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
  ResultWriter writer(o.output, append);

  sched::ExecutorOptions options;
  options.parallelism = o.jobs;
  options.use_pool = o.use_pool;
  options.use_slots = o.use_slots;
  if (!o.cgroup_parent.empty()) options.cgroup_parent = o.cgroup_parent;
  std::unique_ptr<sched::Executor> executor;
  if (o.server.empty()) {
    executor = std::make_unique<sched::Executor>(options);
    g_executor = executor.get();
  }

  const bool tty = isatty(2);
  size_t line_no = 0, skipped = 0, done = 0;
  std::map<std::string, size_t> counts;
  auto t0 = std::chrono::steady_clock::now();
  auto last_progress = t0;
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  auto progress = [&](bool force) {
    if (!tty) return;
    auto now = std::chrono::steady_clock::now();
    if (!force && now - last_progress < std::chrono::milliseconds(200)) return;
    last_progress = now;
    double secs = elapsed();
    double rate = secs > 0 ? done / secs : 0;
    std::string line =
        fmt::format("\r{}/{} jobs  {:.0f} jobs/s", done, total ? total - skipped : done, rate);
    if (total && rate > 0) line += fmt::format("  ETA {:.0f} s", (total - skipped - done) / rate);
    for (const auto& [status, n] : counts) line += fmt::format("  {} {}", status, n);
    fmt::print(stderr, "{}\x1b[K", line);
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
        writer.write(bad);
        ++counts["SETUP_ERROR"];
        ++done;
        continue;
      }
      if (spec.id().empty()) spec.set_id(fmt::format("line-{}", line_no));
      if (done_ids.count(spec.id())) {
        ++skipped;
        continue;
      }
      return spec;
    }
    return std::nullopt;
  };
  auto on_result = [&](JobResult&& r) {
    writer.write(r);
    ++counts[Status_Name(r.status())];
    ++done;
    progress(false);
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
                writer.write(bad);
                ++counts["SETUP_ERROR"];
                ++done;
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
  progress(true);
  if (tty) fmt::print(stderr, "\n");
  double secs = elapsed();
  fmt::print(stderr, "jailpool batch: {} jobs in {:.2f} s ({:.0f} jobs/s){}\n", done, secs,
             secs > 0 ? done / secs : 0.0,
             skipped ? fmt::format(", {} skipped (already in {})", skipped, o.resume_path) : "");
  for (const auto& [status, n] : counts) fmt::print(stderr, "  {:<26} {:>8}\n", status, n);
  return 0;
}

}  // namespace jailpool::cli
