#include "sched/result_sink.h"

#include <fcntl.h>
#include <fmt/core.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"
#include "config/profile.h"

namespace jailpool::sched {

ResultWriter::ResultWriter(const std::string& path, bool append, const std::string& flag) {
  if (path == "-") {
    fd_ = 1;
    return;
  }
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0644);
  if (fd_ < 0) throw ConfigError(flag, fmt::format("{}: {}", path, std::strerror(errno)));
  owned_ = true;
  if (append) {
    off_t size = lseek(fd_, 0, SEEK_END);
    char last = '\n';
    if (size > 0 && pread(fd_, &last, 1, size - 1) == 1 && last != '\n') write_all("\n");
  }
}

ResultWriter::~ResultWriter() {
  if (owned_) ::close(fd_);
}

void ResultWriter::write(const JobResult& r) {
  write_all(result_to_json(r) + "\n");
}

void ResultWriter::write_all(const std::string& s) {
  size_t done = 0;
  while (done < s.size()) {
    ssize_t n = ::write(fd_, s.data() + done, s.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw SysError(errno, "write results");
    done += static_cast<size_t>(n);
  }
}

Progress::Progress(std::string name, size_t total)
    : name_(std::move(name)),
      total_(total),
      tty_(isatty(2)),
      t0_(std::chrono::steady_clock::now()),
      last_(t0_) {}

void Progress::count(const JobResult& r) {
  ++counts_[Status_Name(r.status())];
  ++done_;
}

void Progress::uncount(const JobResult& r) {
  auto it = counts_.find(Status_Name(r.status()));
  if (it != counts_.end() && it->second > 0 && --it->second == 0) counts_.erase(it);
  if (done_ > 0) --done_;
}

double Progress::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
}

void Progress::show(bool force) {
  if (!tty_) return;
  auto now = std::chrono::steady_clock::now();
  if (!force && now - last_ < std::chrono::milliseconds(200)) return;
  last_ = now;
  double secs = elapsed();
  double rate = secs > 0 ? done_ / secs : 0;
  std::string line =
      fmt::format("\r{}/{} jobs  {:.0f} jobs/s", done_, total_ ? total_ : done_, rate);
  if (total_ && rate > 0 && total_ >= done_) {
    line += fmt::format("  ETA {:.0f} s", (total_ - done_) / rate);
  }
  for (const auto& [status, n] : counts_) line += fmt::format("  {} {}", status, n);
  fmt::print(stderr, "{}\x1b[K", line);
}

void Progress::summary(const std::string& extra) {
  show(true);
  if (tty_) fmt::print(stderr, "\n");
  double secs = elapsed();
  fmt::print(stderr, "jailpool {}: {} jobs in {:.2f} s ({:.0f} jobs/s){}\n", name_, done_, secs,
             secs > 0 ? done_ / secs : 0.0, extra);
  for (const auto& [status, n] : counts_) fmt::print(stderr, "  {:<26} {:>8}\n", status, n);
}

}  // namespace jailpool::sched
