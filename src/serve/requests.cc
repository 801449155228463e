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

// The bytes in a sealed memfd, at offset 0: the job's stdin.
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
  if (::lseek(fd.get(), 0, SEEK_SET) < 0) throw_errno("lseek memfd");  // the job reads from 0
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
  const int n = request.jobs_size();
  // Pipes: from a job's stdout or stderr to a job's stdin, each end used once.
  std::map<std::pair<uint32_t, uint32_t>, int> piped;  // (job, fd) -> pipe index
  for (int k = 0; k < request.pipes_size(); ++k) {
    const Pipe& p = request.pipes(k);
    const std::string field = fmt::format("pipes[{}]", k);
    if (!p.has_from()) invalid(field + ".from", "missing");
    if (!p.has_to()) invalid(field + ".to", "missing");
    for (const auto& [end, name] : {std::pair{&p.from(), "from"}, std::pair{&p.to(), "to"}}) {
      if (end->job() >= static_cast<uint32_t>(n)) {
        invalid(fmt::format("{}.{}.job", field, name),
                fmt::format("{} is not a job of the request (it has {})", end->job(), n));
      }
    }
    if (p.from().fd() != 1 && p.from().fd() != 2) {
      invalid(field + ".from.fd", fmt::format("{}: a pipe starts at fd 1 or 2", p.from().fd()));
    }
    if (p.to().fd() != 0) {
      invalid(field + ".to.fd", fmt::format("{}: a pipe ends at fd 0", p.to().fd()));
    }
    for (const auto& [end, name] : {std::pair{&p.from(), "from"}, std::pair{&p.to(), "to"}}) {
      auto [it, inserted] = piped.emplace(std::pair{end->job(), end->fd()}, k);
      if (!inserted) {
        invalid(fmt::format("{}.{}", field, name),
                fmt::format("job {}'s fd {} is also an end of pipes[{}]", end->job(), end->fd(),
                            it->second));
      }
    }
  }
  const bool host = ctx.allow_host_paths;
  for (int i = 0; i < n; ++i) {
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
    sched::JobRequest job;
    const Stream& in = spec.stdin();
    if (in.has_path() && !host) invalid(job_field + ".stdin.path", kNoHostPaths);
    if (in.has_inherit()) {
      invalid(job_field + ".stdin.inherit", "the server's own streams are not the job's");
    }
    for (int fd = 0; fd < 3; ++fd) {
      const Stream& stream = fd == 0 ? spec.stdin() : fd == 1 ? spec.stdout() : spec.stderr();
      auto it = piped.find({static_cast<uint32_t>(i), static_cast<uint32_t>(fd)});
      if (it != piped.end() && stream.target_case() != Stream::TARGET_NOT_SET) {
        invalid(fmt::format("{}.{}", job_field,
                            fd == 0   ? "stdin"
                            : fd == 1 ? "stdout"
                                      : "stderr"),
                fmt::format("set, and also an end of pipes[{}]", it->second));
      }
    }
    if (in.has_content() || in.has_file_id()) {
      if (in.has_file_id()) {
        // The open file is the job's: what the cache does with the entry meanwhile is no matter.
        FileCache::Pin pin = pin_or_throw(*ctx.cache, in.file_id(), job_field + ".stdin.file_id");
        UniqueFd fd(::open(pin.path().c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
        if (!fd) throw_errno("open " + pin.path());
        job.stdio[0] = std::move(fd);
      } else {
        job.stdio[0] = memfd_with(in.content());
      }
      spec.clear_stdin();
    }
    check_output_stream(spec.stdout(), job_field + ".stdout", host);
    check_output_stream(spec.stderr(), job_field + ".stderr", host);
    try {
      validate_job(spec);
    } catch (const ConfigError& e) {
      invalid(job_field + "." + e.field(), std::string_view(e.what()).substr(std::min(
                                               e.field().size() + 2, std::strlen(e.what()))));
    }
    job.spec = std::move(spec);
    job.profile = profile;
    group.jobs.push_back(std::move(job));
  }
  for (const Pipe& p : request.pipes()) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) < 0) throw_errno("pipe2");
    group.jobs[p.to().job()].stdio[0].reset(fds[0]);
    group.jobs[p.from().job()].stdio[p.from().fd()].reset(fds[1]);
  }
  return group;
}

}  // namespace jailpool::serve
