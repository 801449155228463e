// What the front ends that produce many results share (batch, collect): the results file (JSON
// Lines, one write per result) and the progress line and summary on stderr.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <string>

#include "jailpool.pb.h"

namespace jailpool::sched {

class ResultWriter {
 public:
  // path "-": stdout. append: keep what is there (after a crash the file may end in a cut-off
  // line: the next result starts on a fresh one). Throws ConfigError(flag, ...) when the file
  // cannot be opened.
  ResultWriter(const std::string& path, bool append, const std::string& flag = "--output");
  ~ResultWriter();
  ResultWriter(const ResultWriter&) = delete;
  ResultWriter& operator=(const ResultWriter&) = delete;

  // One write per result: a kill leaves whole lines or one cut-off last line.
  void write(const JobResult& r);

 private:
  void write_all(const std::string& s);
  int fd_ = -1;
  bool owned_ = false;
};

// "\r12/100 jobs  340 jobs/s  ETA 0 s  OK 11  SETUP_ERROR 1" on a terminal (stderr), at most
// every 200 ms; then "jailpool NAME: N jobs in S s (R jobs/s)EXTRA" and the count of each status.
class Progress {
 public:
  Progress(std::string name, size_t total);
  void set_total(size_t total) { total_ = total; }
  void count(const JobResult& r);
  // Takes back a count (a later result replaces this one).
  void uncount(const JobResult& r);
  void show(bool force = false);
  double elapsed() const;
  size_t done() const { return done_; }
  // Ends the progress line and prints the summary.
  void summary(const std::string& extra = "");

 private:
  std::string name_;
  size_t total_;
  size_t done_ = 0;
  std::map<std::string, size_t> counts_;
  bool tty_;
  std::chrono::steady_clock::time_point t0_, last_;
};

}  // namespace jailpool::sched
