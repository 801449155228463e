// The client side of `jailpool run --server` and `jailpool batch --server`: jobs written for
// the local CLI (host paths in stdin, stdout, copy-in, copy-out, a profile file) are sent to a
// running `jailpool serve`, whose warm pool runs them. What names a host path is done here, on
// the client's host: files are read into the request, outputs written from the result.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "jailpool.pb.h"

namespace jailpool::serve {

struct RemoteOptions {
  std::string server;      // unix:PATH or HOST:PORT
  std::string token_file;  // "": $JAILPOOL_TOKEN, if set
  // jailpool's own fds for Stream.inherit: stdin is read whole (unless a tty), stdout and
  // stderr get the job's captured output after it ends.
  int inherit_fds[3] = {0, 1, 2};
};

// One job; the result as the local executor would give it (SETUP_ERROR when the server
// refused the request, with its reason). Throws Error when the server cannot be reached.
JobResult run_remote(const RemoteOptions& options, const JobSpec& spec);

// Jobs from `next` (until nullopt), up to `in_flight` at once on one stream; `on_result` for
// each as it ends. `next` and `on_result` are never called at the same time.
void run_remote_batch(const RemoteOptions& options,
                      const std::function<std::optional<JobSpec>()>& next,
                      const std::function<void(JobResult&&)>& on_result, unsigned in_flight);

}  // namespace jailpool::serve
