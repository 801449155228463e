#include "config/profile.h"

#include <fcntl.h>
#include <fmt/core.h>
#include <fmt/format.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/json_util.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/error.h"
#include "common/unique_fd.h"
#include "isolate/cgroup.h"
#include "isolate/seccomp.h"

namespace jailpool {
namespace {

namespace pb = google::protobuf;

constexpr uint32_t kMaxMode = 07777;
constexpr uint64_t kMinTmpfsBytes = 4096;
constexpr uint64_t kMinTmpfsInodes = 16;
constexpr size_t kMaxHostname = 64;  // HOST_NAME_MAX

// Messages from protobuf and from us end up in one-line errors.
std::string one_line(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

// The name an "unknown field" or "unknown enum value" message is about, or "".
std::string_view named_token(std::string_view message) {
  for (std::string_view marker : {"Unknown enumeration value of \"", "has no field named \""}) {
    size_t at = message.find(marker);
    if (at == std::string_view::npos) continue;
    at += marker.size();
    const size_t end = message.find('"', at);
    if (end == std::string_view::npos) break;
    return message.substr(at, end - at);
  }
  return {};
}

bool is_token_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.';
}

// Byte offset of a 0-based (line, column) of protobuf's tokenizer (tabs advance to a multiple
// of 8), clamped to the text.
size_t offset_of(std::string_view text, int line, int column) {
  size_t off = 0;
  for (int l = 0; l < line && off < text.size(); ++l) {
    const size_t nl = text.find('\n', off);
    off = nl == std::string_view::npos ? text.size() : nl + 1;
  }
  for (int col = 0; off < text.size() && text[off] != '\n';) {
    col += text[off] == '\t' ? 8 - col % 8 : 1;
    if (col > column) break;
    ++off;
  }
  return off;
}

size_t line_start(std::string_view text, size_t at) {
  if (at == 0) return 0;
  const size_t nl = text.rfind('\n', at - 1);
  return nl == std::string_view::npos ? 0 : nl + 1;
}

// Whether text[at] is outside strings and comments (scanning its line from the start).
bool in_code(std::string_view text, size_t at) {
  char quote = 0;
  for (size_t i = line_start(text, at); i < at; ++i) {
    const char c = text[i];
    if (quote != 0) {
      if (c == '\\') {
        ++i;
      } else if (c == quote) {
        quote = 0;
      }
    } else if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '#') {
      return false;
    }
  }
  return quote == 0;
}

// Offset of the last whole-token occurrence of name in code before limit, or npos.
size_t find_token_before(std::string_view text, std::string_view name, size_t limit) {
  if (name.size() > limit) return std::string_view::npos;
  for (size_t at = text.substr(0, limit).rfind(name); at != std::string_view::npos;
       at = at == 0 ? std::string_view::npos : text.substr(0, at + name.size() - 1).rfind(name)) {
    const size_t end = at + name.size();
    if ((at == 0 || !is_token_char(text[at - 1])) &&
        (end >= text.size() || !is_token_char(text[end])) && in_code(text, at)) {
      return at;
    }
  }
  return std::string_view::npos;
}

// Length of the valid UTF-8 sequence at s[i], or 0 (overlong forms, surrogates and code
// points above U+10FFFF are invalid, as for protobuf).
size_t utf8_sequence(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const auto cont = [&](size_t k) { return i + k < s.size() && (b(k) & 0xC0) == 0x80; };
  const unsigned char c = b(0);
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    if (c == 0xE0 && b(1) < 0xA0) return 0;   // overlong
    if (c == 0xED && b(1) >= 0xA0) return 0;  // surrogates
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (c == 0xF0 && b(1) < 0x90) return 0;   // overlong
    if (c == 0xF4 && b(1) >= 0x90) return 0;  // above U+10FFFF
    return 4;
  }
  return 0;
}

bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_sequence(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

// Each invalid byte becomes U+FFFD.
std::string to_valid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 16);
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_sequence(s, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

// Keeps the first error of a text-format parse.
class FirstErrorCollector : public pb::io::ErrorCollector {
 public:
  void AddError(int line, pb::io::ColumnNumber column, const std::string& message) override {
    if (has_error_) return;
    has_error_ = true;
    line_ = line;
    column_ = column;
    message_ = one_line(message);
  }

  bool has_error() const { return has_error_; }

  // ConfigError("ORIGIN:LINE:COL", message), 1-based. Protobuf reports an unknown field or enum
  // value at the token after it (often on the next line): point at the name itself instead.
  ConfigError error(std::string_view origin, std::string_view text) const {
    if (!has_error_) return ConfigError(origin, "cannot parse the profile");
    if (line_ < 0) return ConfigError(origin, message_);
    int line = line_ + 1;
    int column = column_ + 1;
    const std::string_view name = named_token(message_);
    if (!name.empty()) {
      const size_t at = find_token_before(text, name, offset_of(text, line_, column_));
      if (at != std::string_view::npos) {
        const size_t bol = line_start(text, at);
        line = 1 + static_cast<int>(std::count(text.begin(), text.begin() + bol, '\n'));
        column = 1 + static_cast<int>(at - bol);
      }
    }
    return ConfigError(fmt::format("{}:{}:{}", origin, line, column), message_);
  }

 private:
  bool has_error_ = false;
  int line_ = -1;
  int column_ = -1;
  std::string message_;
};

// Rethrows a validation error with the origin in front of the field ("FILE: bind[0].src").
[[noreturn]] void rethrow_with_origin(const ConfigError& e, std::string_view origin) {
  std::string_view problem = e.what();
  const std::string prefix = e.field() + ": ";
  if (problem.substr(0, prefix.size()) == prefix) problem.remove_prefix(prefix.size());
  throw ConfigError(fmt::format("{}: {}", origin, e.field()), problem);
}

bool has_nul(std::string_view s) {
  return s.find('\0') != std::string_view::npos;
}

// An absolute path without ".", ".." or empty components (no "//", no trailing '/').
void check_path(std::string_view field, std::string_view path) {
  if (path.empty()) throw ConfigError(field, "empty path");
  if (has_nul(path)) throw ConfigError(field, "path contains a NUL byte");
  if (path.front() != '/') {
    throw ConfigError(field, fmt::format("\"{}\" is not an absolute path", path));
  }
  if (path == "/") return;
  std::string_view rest = path.substr(1);
  while (true) {
    const size_t slash = rest.find('/');
    const std::string_view component = rest.substr(0, slash);
    if (component.empty()) {
      throw ConfigError(field, fmt::format("\"{}\" has an empty component (\"//\" or a "
                                           "trailing '/')",
                                           path));
    }
    if (component == "." || component == "..") {
      throw ConfigError(field, fmt::format("\"{}\" contains \"{}\"", path, component));
    }
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
}

// A path inside the job's working directory (copy_in, copy_out): relative, without ".", ".."
// or empty components.
void check_relative(std::string_view field, std::string_view path) {
  if (path.empty()) throw ConfigError(field, "empty path");
  if (has_nul(path)) throw ConfigError(field, "path contains a NUL byte");
  if (!valid_utf8(path)) throw ConfigError(field, "path is not valid UTF-8");  // goes in results
  bool ok = path.front() != '/';
  for (std::string_view rest = path; ok;) {
    const size_t slash = rest.find('/');
    const std::string_view component = rest.substr(0, slash);
    ok = !component.empty() && component != "." && component != "..";
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  if (!ok) {
    throw ConfigError(field, fmt::format("\"{}\" must be relative and must not contain \"..\", "
                                         "\".\" or empty components",
                                         path));
  }
}

// A mount destination inside the sandbox: a checked path other than the sandbox root.
void check_destination(std::string_view field, std::string_view path) {
  check_path(field, path);
  if (path == "/") throw ConfigError(field, "\"/\" is the sandbox root, built by jailpool");
}

void check_env(std::string_view field, std::string_view entry) {
  if (has_nul(entry)) throw ConfigError(field, "contains a NUL byte");
  const size_t eq = entry.find('=');
  if (eq == std::string_view::npos) {
    throw ConfigError(field, fmt::format("\"{}\" is not of the form NAME=VALUE", entry));
  }
  if (eq == 0) throw ConfigError(field, fmt::format("\"{}\" has an empty name", entry));
}

// Every limit that is set must be > 0 (an unset limit means "no limit"; 0 would mean nothing
// can run). Goes through reflection so that new Limits fields are checked too.
void check_limits(const Limits& limits, std::string_view prefix) {
  const pb::Descriptor* desc = limits.GetDescriptor();
  const pb::Reflection* refl = limits.GetReflection();
  for (int i = 0; i < desc->field_count(); ++i) {
    const pb::FieldDescriptor* f = desc->field(i);
    if (!refl->HasField(limits, f)) continue;
    uint64_t value = 0;
    switch (f->cpp_type()) {
      case pb::FieldDescriptor::CPPTYPE_UINT64:
        value = refl->GetUInt64(limits, f);
        break;
      case pb::FieldDescriptor::CPPTYPE_UINT32:
        value = refl->GetUInt32(limits, f);
        break;
      default:
        continue;
    }
    if (value == 0) {
      throw ConfigError(fmt::format("{}.{}", prefix, f->name()),
                        "0 is not a limit (leave the field out for no limit)");
    }
  }
  if (!limits.has_cpus() && !limits.has_cpu_quota_percent()) return;
  // Pinning and bandwidth, against the CPUs this machine has online.
  std::vector<int> online = isolate::online_cpus();
  if (limits.has_cpus()) {
    const std::string field = fmt::format("{}.cpus", prefix);
    std::vector<int> cpus;
    try {
      cpus = isolate::parse_cpu_list(limits.cpus());
    } catch (const Error& e) {
      throw ConfigError(field, e.what());
    }
    for (int cpu : cpus) {
      if (!std::binary_search(online.begin(), online.end(), cpu)) {
        throw ConfigError(
            field, fmt::format("CPU {} is not online (online: {})", cpu, fmt::join(online, ",")));
      }
    }
  }
  if (limits.has_cpu_quota_percent() && limits.cpu_quota_percent() > 100 * online.size()) {
    throw ConfigError(fmt::format("{}.cpu_quota_percent", prefix),
                      fmt::format("{}% is more than the {} online CPUs can give (at most {}%)",
                                  limits.cpu_quota_percent(), online.size(), 100 * online.size()));
  }
}

// Destinations claimed so far, each with the field that claimed it.
class Destinations {
 public:
  void claim(const std::string& path, const std::string& field, const std::string& what) {
    auto [it, inserted] = owners_.emplace(path, what);
    if (!inserted) {
      throw ConfigError(field,
                        fmt::format("\"{}\" is also the destination of {}", path, it->second));
    }
  }

 private:
  std::map<std::string, std::string> owners_;
};

void check_bind(const Bind& bind, const std::string& name, Destinations& dsts) {
  const std::string src_field = name + ".src";
  check_path(src_field, bind.src());
  struct stat st;
  if (::lstat(bind.src().c_str(), &st) != 0) {
    const int err = errno;
    const bool missing = err == ENOENT || err == ENOTDIR;
    if (!(missing && bind.optional())) {
      throw ConfigError(src_field, fmt::format("{}: {}", bind.src(), std::strerror(err)));
    }
  }
  if (bind.dst().empty()) {  // dst defaults to src
    if (bind.src() == "/") {
      throw ConfigError(src_field, "binding \"/\" needs a dst other than \"/\"");
    }
    dsts.claim(bind.src(), src_field, name);
  } else {
    const std::string dst_field = name + ".dst";
    check_destination(dst_field, bind.dst());
    dsts.claim(bind.dst(), dst_field, name);
  }
}

void check_syscall_names(const pb::RepeatedPtrField<std::string>& names, std::string_view field) {
  for (int i = 0; i < names.size(); ++i) {
    const std::string& n = names.Get(i);
    const bool ok = !n.empty() && n.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") ==
                                      std::string::npos;
    if (!ok) {
      throw ConfigError(fmt::format("{}[{}]", field, i),
                        fmt::format("\"{}\" is not a system call name", n));
    }
  }
}

void check_stream(const Stream& stream, std::string_view name, bool is_input) {
  switch (stream.target_case()) {
    case Stream::kPath:
      if (stream.path().empty()) throw ConfigError(fmt::format("{}.path", name), "empty path");
      if (has_nul(stream.path())) {
        throw ConfigError(fmt::format("{}.path", name), "path contains a NUL byte");
      }
      break;
    case Stream::kCapture:
      if (is_input)
        throw ConfigError(fmt::format("{}.capture", name), "an input cannot be captured");
      if (!stream.capture()) {
        throw ConfigError(fmt::format("{}.capture", name),
                          "false is not a target (leave the stream out for the default)");
      }
      break;
    case Stream::kInherit:
      if (!stream.inherit()) {
        throw ConfigError(fmt::format("{}.inherit", name),
                          "false is not a target (leave the stream out for the default)");
      }
      break;
    case Stream::kContent:
    case Stream::kFileId:
      // `jailpool serve` turns them into an fd before the executor sees the job.
      throw ConfigError(
          fmt::format("{}.{}", name,
                      stream.target_case() == Stream::kContent ? "content" : "file_id"),
          is_input ? "only through jailpool serve" : "only for stdin");
    case Stream::TARGET_NOT_SET:
      if (stream.append()) {
        throw ConfigError(fmt::format("{}.append", name), "needs a path");
      }
      break;
  }
  if (stream.append() && is_input) {
    throw ConfigError(fmt::format("{}.append", name), "only for stdout and stderr");
  }
}

}  // namespace

Profile parse_profile_text(std::string_view text, std::string_view origin) {
  Profile profile;
  FirstErrorCollector errors;
  pb::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(std::string(text), &profile) || errors.has_error()) {
    throw errors.error(origin, text);
  }
  return profile;
}

Profile default_profile() {
  static const Profile profile = [] {
    // The wire format needs no descriptors (the text parser's reflection builds them all).
    Profile p;
    if (kDefaultProfileWire.empty() ||
        !p.ParseFromArray(kDefaultProfileWire.data(),
                          static_cast<int>(kDefaultProfileWire.size()))) {
      p = parse_profile_text(kDefaultProfileText, "built-in default profile");
    }
    try {
      validate_profile(p);
    } catch (const ConfigError& e) {
      rethrow_with_origin(e, "built-in default profile");
    }
    return p;
  }();
  return profile;
}

Profile load_profile_file(const std::string& path) {
  const UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throw ConfigError("--profile", fmt::format("{}: {}", path, std::strerror(errno)));
  std::string text;
  char buf[16384];
  while (true) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw ConfigError("--profile", fmt::format("{}: {}", path, std::strerror(errno)));
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  Profile profile = parse_profile_text(text, path);
  try {
    validate_profile(profile);
  } catch (const ConfigError& e) {
    rethrow_with_origin(e, path);
  }
  return profile;
}

void validate_profile(const Profile& profile) {
  Destinations dsts;

  if (profile.cwd().empty()) throw ConfigError("cwd", "missing (e.g. cwd: \"/box\")");
  check_destination("cwd", profile.cwd());
  dsts.claim(profile.cwd(), "cwd", "cwd");
  if (profile.cwd_size_bytes() != 0 && profile.cwd_size_bytes() < kMinTmpfsBytes) {
    throw ConfigError("cwd_size_bytes", fmt::format("{} is too small (at least {})",
                                                    profile.cwd_size_bytes(), kMinTmpfsBytes));
  }
  if (profile.dev_shm()) dsts.claim("/dev/shm", "dev_shm", "dev_shm");

  for (int i = 0; i < profile.bind_size(); ++i) {
    check_bind(profile.bind(i), fmt::format("bind[{}]", i), dsts);
  }

  for (int i = 0; i < profile.tmpfs_size(); ++i) {
    const Tmpfs& t = profile.tmpfs(i);
    const std::string name = fmt::format("tmpfs[{}]", i);
    check_destination(name + ".dst", t.dst());
    dsts.claim(t.dst(), name + ".dst", name);
    if (t.size_bytes() != 0 && t.size_bytes() < kMinTmpfsBytes) {
      throw ConfigError(name + ".size_bytes", fmt::format("{} is too small (at least {})",
                                                          t.size_bytes(), kMinTmpfsBytes));
    }
    if (t.nr_inodes() != 0 && t.nr_inodes() < kMinTmpfsInodes) {
      throw ConfigError(name + ".nr_inodes", fmt::format("{} is too small (at least {})",
                                                         t.nr_inodes(), kMinTmpfsInodes));
    }
    if (t.mode() > kMaxMode) {
      throw ConfigError(name + ".mode",
                        fmt::format("0{:o} is not a file mode (at most 07777)", t.mode()));
    }
  }

  // Every writable filesystem is a tmpfs of its own, mounted at a path of the read-only root:
  // one inside another would need its mount point made in the outer one for every job (and a
  // slot replaces each one whole after a job that touched it).
  std::vector<std::pair<std::string, std::string>> writable = {{profile.cwd(), "cwd"}};
  if (profile.dev_shm()) writable.emplace_back("/dev/shm", "dev_shm");
  for (int i = 0; i < profile.tmpfs_size(); ++i) {
    writable.emplace_back(profile.tmpfs(i).dst(), fmt::format("tmpfs[{}]", i));
  }
  for (const auto& [inner, inner_what] : writable) {
    for (const auto& [outer, outer_what] : writable) {
      if (inner.size() > outer.size() && inner.compare(0, outer.size(), outer) == 0 &&
          inner[outer.size()] == '/') {
        throw ConfigError(
            inner_what == "cwd" || inner_what == "dev_shm" ? inner_what : inner_what + ".dst",
            fmt::format("\"{}\" lies inside {} ({}): writable filesystems cannot nest", inner,
                        outer_what, outer));
      }
    }
  }

  for (int i = 0; i < profile.symlink_size(); ++i) {
    const Symlink& s = profile.symlink(i);
    const std::string name = fmt::format("symlink[{}]", i);
    check_destination(name + ".link", s.link());
    dsts.claim(s.link(), name + ".link", name);
    if (s.target().empty()) throw ConfigError(name + ".target", "empty");
    if (has_nul(s.target())) throw ConfigError(name + ".target", "contains a NUL byte");
  }

  if (!profile.hostname().empty()) {
    const std::string& h = profile.hostname();
    const bool ok = h.size() <= kMaxHostname &&
                    h.find_first_not_of(
                        "abcdefghijklmnopqrstuvwxyz"
                        "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.") == std::string::npos;
    if (!ok) {
      throw ConfigError("hostname", fmt::format("\"{}\" is not a host name (letters, digits, '-', "
                                                "'.'; at most {} characters)",
                                                h, kMaxHostname));
    }
  }

  for (int i = 0; i < profile.env_size(); ++i) {
    check_env(fmt::format("env[{}]", i), profile.env(i));
  }

  // 0 is root; (uint32_t)-1 means "unchanged" to setresuid/setresgid.
  if (profile.has_uid() && (profile.uid() == 0 || profile.uid() == UINT32_MAX)) {
    throw ConfigError("uid", fmt::format("{} is not allowed (use an unprivileged uid, e.g. 65534)",
                                         profile.uid()));
  }
  if (profile.has_gid() && (profile.gid() == 0 || profile.gid() == UINT32_MAX)) {
    throw ConfigError("gid", fmt::format("{} is not allowed (use an unprivileged gid, e.g. 65534)",
                                         profile.gid()));
  }

  check_limits(profile.limits(), "limits");

  if (!SeccompMode_IsValid(profile.seccomp())) {
    throw ConfigError("seccomp",
                      fmt::format("unknown mode {}", static_cast<int>(profile.seccomp())));
  }
  check_syscall_names(profile.seccomp_allow(), "seccomp_allow");
  check_syscall_names(profile.seccomp_deny(), "seccomp_deny");
  if (profile.seccomp() == SECCOMP_ALLOW_LIST && profile.seccomp_allow_size() == 0) {
    throw ConfigError("seccomp_allow", "empty, but seccomp is SECCOMP_ALLOW_LIST");
  }
  if (profile.seccomp() != SECCOMP_ALLOW_LIST && profile.seccomp_allow_size() != 0) {
    throw ConfigError("seccomp_allow", "only used with seccomp: SECCOMP_ALLOW_LIST");
  }
  if (profile.seccomp() == SECCOMP_NONE && profile.seccomp_deny_size() != 0) {
    throw ConfigError("seccomp_deny", "not used with seccomp: SECCOMP_NONE");
  }
  isolate::allowed_socket_families(profile);  // names
  if (profile.seccomp() == SECCOMP_NONE && profile.socket_families_size() != 0) {
    throw ConfigError("socket_families", "enforced by the seccomp filter: not with SECCOMP_NONE");
  }
}

void validate_job(const JobSpec& job) {
  if (job.argv_size() == 0) throw ConfigError("argv", "empty (nothing to run)");
  if (job.argv(0).empty()) throw ConfigError("argv[0]", "empty program name");
  for (int i = 0; i < job.argv_size(); ++i) {
    if (has_nul(job.argv(i))) throw ConfigError(fmt::format("argv[{}]", i), "contains a NUL byte");
  }
  for (int i = 0; i < job.env_size(); ++i) {
    check_env(fmt::format("env[{}]", i), job.env(i));
  }
  if (!job.cwd().empty()) check_path("cwd", job.cwd());

  Destinations dsts;
  for (int i = 0; i < job.bind_size(); ++i) {
    check_bind(job.bind(i), fmt::format("bind[{}]", i), dsts);
  }

  check_limits(job.limits(), "limits");

  if (job.has_stdin()) check_stream(job.stdin(), "stdin", true);
  if (job.has_stdout()) check_stream(job.stdout(), "stdout", false);
  if (job.has_stderr()) check_stream(job.stderr(), "stderr", false);

  std::map<std::string, int> copied_in;  // dst -> index
  for (int i = 0; i < job.copy_in_size(); ++i) {
    const CopyIn& c = job.copy_in(i);
    const std::string name = fmt::format("copy_in[{}]", i);
    if (c.source_case() == CopyIn::kSrc) {
      if (c.src().empty()) throw ConfigError(name + ".src", "empty path");
      if (has_nul(c.src())) throw ConfigError(name + ".src", "path contains a NUL byte");
    } else if (c.source_case() == CopyIn::kFileId) {
      throw ConfigError(name + ".file_id", "a cached file: only through jailpool serve");
    } else if (c.source_case() != CopyIn::kContent) {
      throw ConfigError(name, "needs src (a host file) or content");
    }
    check_relative(name + ".dst", c.dst());
    if (c.mode() & ~0555u) {
      throw ConfigError(name + ".mode", fmt::format("0{:o}: copied-in files are read-only (at most "
                                                    "0555)",
                                                    c.mode()));
    }
    auto [it, inserted] = copied_in.emplace(c.dst(), i);
    if (!inserted) {
      throw ConfigError(name + ".dst",
                        fmt::format("\"{}\" is also the dst of copy_in[{}]", c.dst(), it->second));
    }
  }
  for (int i = 0; i < job.copy_out_size(); ++i) {
    const CopyOut& c = job.copy_out(i);
    const std::string name = fmt::format("copy_out[{}]", i);
    check_relative(name + ".path", c.path());
    if (has_nul(c.dst())) throw ConfigError(name + ".dst", "path contains a NUL byte");
    if (!valid_utf8(c.dst())) throw ConfigError(name + ".dst", "path is not valid UTF-8");
    if (c.cache()) throw ConfigError(name + ".cache", "only through jailpool serve");
  }
}

Limits effective_limits(const Profile& profile, const JobSpec& job) {
  // Every Limits field is proto3 `optional`: MergeFrom copies exactly the fields the job set,
  // over the profile's.
  Limits limits = profile.limits();
  limits.MergeFrom(job.limits());
  return limits;
}

std::vector<std::string> effective_env(const Profile& profile, const JobSpec& job) {
  std::vector<std::string> env;
  std::unordered_map<std::string, size_t> index;  // name -> position in env
  const auto add = [&](const std::string& entry) {
    std::string name = entry.substr(0, entry.find('='));
    auto [it, inserted] = index.emplace(std::move(name), env.size());
    if (inserted) {
      env.push_back(entry);
    } else {
      env[it->second] = entry;
    }
  };
  for (const std::string& e : profile.env()) add(e);
  for (const std::string& e : job.env()) add(e);
  return env;
}

JobSpec parse_job_json(std::string_view json, std::string_view origin) {
  JobSpec job;
  pb::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto status = pb::util::JsonStringToMessage(std::string(json), &job, options);
  if (!status.ok()) {
    // The parser's message is a sentence, then the input around the error and a '^' line.
    std::string message = std::string(status.message());
    message = one_line(message.substr(0, message.find('\n')));
    if (message.empty()) message = "not a valid job (JSON object expected)";
    throw ConfigError(origin, message);
  }
  try {
    validate_job(job);
  } catch (const ConfigError& e) {
    rethrow_with_origin(e, origin);
  }
  return job;
}

std::string result_to_json(const JobResult& result) {
  // Proto3 strings must be UTF-8: the printer would drop invalid bytes (and log to stderr).
  const pb::Descriptor* desc = result.GetDescriptor();
  const pb::Reflection* refl = result.GetReflection();
  JobResult fixed;
  bool need_fix = false;
  for (int i = 0; i < desc->field_count(); ++i) {
    const pb::FieldDescriptor* f = desc->field(i);
    if (f->type() != pb::FieldDescriptor::TYPE_STRING || f->is_repeated()) continue;
    std::string scratch;
    const std::string& value = refl->GetStringReference(result, f, &scratch);
    if (valid_utf8(value)) continue;
    if (!need_fix) {
      fixed = result;
      need_fix = true;
    }
    refl->SetString(&fixed, f, to_valid_utf8(value));
  }
  const JobResult& printed = need_fix ? fixed : result;

  pb::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  options.always_print_enums_as_ints = false;
  options.add_whitespace = false;
  std::string out;
  const auto status = pb::util::MessageToJsonString(printed, &out, options);
  if (!status.ok()) {
    throw Error(fmt::format("cannot print the result of job \"{}\" as JSON: {}", result.id(),
                            one_line(std::string(status.message()))));
  }
  return out;
}

Bind parse_bind_flag(std::string_view value) {
  const auto bad = [&] {
    return ConfigError(
        "--bind",
        fmt::format("bad value \"{}\" (expected SRC, SRC:DST, SRC:DST:rw or SRC:DST:ro)", value));
  };
  std::vector<std::string_view> parts;
  std::string_view rest = value;
  while (true) {
    const size_t colon = rest.find(':');
    parts.push_back(rest.substr(0, colon));
    if (colon == std::string_view::npos) break;
    rest.remove_prefix(colon + 1);
  }
  if (parts.size() > 3) throw bad();
  for (std::string_view p : parts) {
    if (p.empty()) throw bad();
  }
  Bind bind;
  bind.set_src(std::string(parts[0]));
  check_path("--bind", bind.src());
  if (parts.size() >= 2) {
    bind.set_dst(std::string(parts[1]));
    check_destination("--bind", bind.dst());
  }
  if (parts.size() == 3) {
    if (parts[2] == "rw") {
      bind.set_rw(true);
    } else if (parts[2] != "ro") {
      throw bad();
    }
  }
  return bind;
}

CopyIn parse_copy_in_flag(std::string_view value) {
  const size_t colon = value.find(':');
  std::string_view src = value.substr(0, colon);
  std::string_view dst;
  if (colon == std::string_view::npos) {
    dst = src.substr(src.rfind('/') == std::string_view::npos ? 0 : src.rfind('/') + 1);
  } else {
    dst = value.substr(colon + 1);
  }
  if (src.empty() || dst.empty() || dst.find(':') != std::string_view::npos) {
    throw ConfigError("--copy-in",
                      fmt::format("bad value \"{}\" (expected SRC or SRC:DST)", value));
  }
  CopyIn c;
  c.set_src(std::string(src));
  c.set_dst(std::string(dst));
  check_relative("--copy-in", c.dst());
  return c;
}

CopyOut parse_copy_out_flag(std::string_view value) {
  const size_t colon = value.find(':');
  CopyOut c;
  c.set_path(std::string(value.substr(0, colon)));
  if (colon != std::string_view::npos) {
    c.set_dst(std::string(value.substr(colon + 1)));
    if (c.dst().empty() || c.dst().find(':') != std::string::npos) {
      throw ConfigError("--copy-out",
                        fmt::format("bad value \"{}\" (expected PATH or PATH:HOSTDST)", value));
    }
  }
  check_relative("--copy-out", c.path());
  return c;
}

}  // namespace jailpool
