#include "serve/requests.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/core.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "common/error.h"
#include "config/profile.h"

namespace jailpool::serve {

namespace {

[[noreturn]] void invalid(const std::string& field, std::string_view problem) {
  throw RequestError{RequestError::kInvalidArgument, fmt::format("{}: {}", field, problem)};
}

constexpr const char* kNoHostPaths =
    "host paths are not allowed on this server (send content, or a cached file_id)";

// The bytes in a sealed memfd, read from its start by whoever opens /proc/self/fd/N.
UniqueFd memfd_with(const std::string& bytes) {
  UniqueFd fd(::memfd_create("jailpool-stdin", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd) throw_errno("memfd_create");
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw_errno("write memfd");
    done += static_cast<size_t>(n);
  }
  (void)::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
  return fd;
}

FileCache::Pin pin_or_throw(FileCache& cache, const std::string& id, const std::string& field) {
  if (!valid_file_id(id)) invalid(field, "not a file id (64 lowercase hex digits)");
  std::optional<FileCache::Pin> pin = cache.pin(id);
  if (!pin) {
    throw RequestError{RequestError::kNotFound,
                       fmt::format("{}: no file {} in the cache", field, id)};
  }
  return std::move(*pin);
}

void check_output_stream(const Stream& s, const std::string& field, bool host_paths) {
  if (s.has_path() && !host_paths) invalid(field + ".path", kNoHostPaths);
  if (s.has_inherit()) invalid(field + ".inherit", "the server's own streams are not the job's");
  if (s.has_content()) invalid(field + ".content", "only for stdin");
  if (s.has_file_id()) invalid(field + ".file_id", "only for stdin");
}

}  // namespace

Profiles::Profiles(const std::string& dir) {
  by_name_[""] = std::make_unique<Profile>(default_profile());
  if (dir.empty()) return;
  DIR* d = ::opendir(dir.c_str());
  if (!d) throw ConfigError("--profile-dir", fmt::format("{}: {}", dir, std::strerror(errno)));
  std::vector<std::string> files;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    const std::string ext = ".textproto";
    if (name.size() > ext.size() && name.compare(name.size() - ext.size(), ext.size(), ext) == 0) {
      files.push_back(name);
    }
  }
  ::closedir(d);
  for (const std::string& file : files) {
    std::string name = file.substr(0, file.size() - std::strlen(".textproto"));
    auto profile = std::make_unique<Profile>(load_profile_file(dir + "/" + file));
    by_name_[name == "default" ? "" : name] = std::move(profile);
  }
}

const Profile* Profiles::find(const std::string& name) const {
  auto it = by_name_.find(name == "default" ? "" : name);
  return it == by_name_.end() ? nullptr : it->second.get();
}

std::vector<std::string> Profiles::names() const {
  std::vector<std::string> out;
  for (const auto& [name, profile] : by_name_) out.push_back(name.empty() ? "default" : name);
  return out;
}

PreparedGroup prepare_group(const ExecRequest& request, const PrepareContext& ctx) {
  PreparedGroup group;
  if (request.jobs_size() == 0) invalid("jobs", "empty (nothing to run)");
  if (request.jobs_size() > 1 || request.pipes_size() > 0) {
    invalid(request.jobs_size() > 1 ? "jobs" : "pipes",
            "groups of jobs are not supported by this server yet");
  }
  const bool host = ctx.allow_host_paths;
  for (int i = 0; i < request.jobs_size(); ++i) {
    const std::string job_field = fmt::format("jobs[{}]", i);
    JobSpec spec = request.jobs(i);
    const Profile* profile = ctx.profiles->find(spec.profile());
    if (!profile) {
      invalid(job_field + ".profile",
              fmt::format("no profile \"{}\" on this server (it has: {})", spec.profile(),
                          fmt::join(ctx.profiles->names(), ", ")));
    }
    spec.clear_profile();
    if (!host && spec.bind_size() > 0) invalid(job_field + ".bind[0]", kNoHostPaths);
    for (int k = 0; k < spec.copy_in_size(); ++k) {
      CopyIn* c = spec.mutable_copy_in(k);
      const std::string field = fmt::format("{}.copy_in[{}]", job_field, k);
      if (c->has_src() && !host) invalid(field + ".src", kNoHostPaths);
      if (c->has_file_id()) {
        FileCache::Pin pin = pin_or_throw(*ctx.cache, c->file_id(), field + ".file_id");
        c->set_src(pin.path());  // the server's own file, pinned until the group has ended
        group.pins.push_back(std::move(pin));
      }
    }
    for (int k = 0; k < spec.copy_out_size(); ++k) {
      CopyOut* c = spec.mutable_copy_out(k);
      const std::string field = fmt::format("{}.copy_out[{}]", job_field, k);
      if (!c->dst().empty() && !host) invalid(field + ".dst", kNoHostPaths);
      if (c->cache()) {
        if (!c->dst().empty()) {
          invalid(field + ".cache", "with a dst (a file goes into the cache or to a host path)");
        }
        c->set_cache(false);  // collected into the result, then put into the cache
        group.cache_outs.emplace_back(i, k);
      }
    }
    const Stream& in = spec.stdin();
    if (in.has_path() && !host) invalid(job_field + ".stdin.path", kNoHostPaths);
    if (in.has_inherit()) {
      invalid(job_field + ".stdin.inherit", "the server's own streams are not the job's");
    }
    if (in.has_content() || in.has_file_id()) {
      std::string path;
      if (in.has_file_id()) {
        FileCache::Pin pin = pin_or_throw(*ctx.cache, in.file_id(), job_field + ".stdin.file_id");
        path = pin.path();
        group.pins.push_back(std::move(pin));
      } else {
        UniqueFd fd = memfd_with(in.content());
        path = fmt::format("/proc/self/fd/{}", fd.get());
        group.held_fds.push_back(std::move(fd));
      }
      spec.mutable_stdin()->set_path(path);
    }
    check_output_stream(spec.stdout(), job_field + ".stdout", host);
    check_output_stream(spec.stderr(), job_field + ".stderr", host);
    try {
      validate_job(spec);
    } catch (const ConfigError& e) {
      invalid(job_field + "." + e.field(), std::string_view(e.what()).substr(std::min(
                                               e.field().size() + 2, std::strlen(e.what()))));
    }
    sched::JobRequest job;
    job.spec = std::move(spec);
    job.profile = profile;
    group.jobs.push_back(std::move(job));
  }
  return group;
}

}  // namespace jailpool::serve
