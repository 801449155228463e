// From an ExecRequest to the executor's JobRequests: the checks a server adds to validate_job
// (no host path unless allowed, profiles by name, pipes), and the resolution of what only the
// server knows (cached files, stdin bytes). Nothing of gRPC here: errors carry a code the
// service turns into a gRPC status.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/unique_fd.h"
#include "jailpool.pb.h"
#include "sched/executor.h"
#include "serve/file_cache.h"
#include "service.pb.h"

namespace jailpool::serve {

// A request refused before anything starts: the field and the problem in one line.
struct RequestError {
  enum Code { kInvalidArgument, kNotFound } code = kInvalidArgument;
  std::string message;
};

// The profiles a request may name: NAME.textproto files of --profile-dir, loaded once at the
// start (a reload is a restart), and the built-in default ("" or "default", unless the
// directory has a default.textproto). The executor keys its seccomp programs, templates and
// slots by a profile's content (intern_profile), not by these addresses.
class Profiles {
 public:
  explicit Profiles(const std::string& dir);
  const Profile* find(const std::string& name) const;  // null: no such profile
  std::vector<std::string> names() const;

 private:
  std::map<std::string, std::unique_ptr<Profile>> by_name_;
};

struct PrepareContext {
  const Profiles* profiles = nullptr;
  FileCache* cache = nullptr;
  bool allow_host_paths = false;
};

// A request ready for the executor: its pipes and stdin bytes are fds of JobRequest::stdio.
struct PreparedGroup {
  std::vector<sched::JobRequest> jobs;  // in the order of ExecRequest.jobs
  // Cache entries the jobs read: kept until the group has ended.
  std::vector<FileCache::Pin> pins;
  // What the jobs' results must have put into the cache: (job, copy_out index).
  std::vector<std::pair<int, int>> cache_outs;
};

// Checks and resolves `request`; throws RequestError.
PreparedGroup prepare_group(const ExecRequest& request, const PrepareContext& context);

}  // namespace jailpool::serve
