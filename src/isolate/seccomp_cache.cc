#include "isolate/seccomp_cache.h"

#include <elf.h>
#include <fcntl.h>
#include <fmt/core.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <link.h>
#include <linux/filter.h>
#include <seccomp.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <optional>
#include <vector>

#include "common/unique_fd.h"

namespace jailpool::isolate {
namespace {

constexpr char kMagic[8] = {'J', 'P', 'S', 'C', 'M', 'P', '2', '\n'};
constexpr uint32_t kNotifies = 1, kLogsAllowed = 2;
constexpr uint32_t kMaxInsns = 4096;    // BPF_MAXINSNS
constexpr uint32_t kMaxKey = 1u << 20;  // a profile is a few KiB

struct Header {
  char magic[8];
  uint32_t key_len;
  uint32_t insn_count;  // the main filter's, then
  uint32_t flags;
  uint32_t ban_count;  // the lock ban's (SeccompProgram::lock_ban_fprog; 0: none)
  uint64_t checksum;   // FNV-1a over flags, key and all instructions
};
static_assert(sizeof(Header) == 32);

uint64_t fnv1a(const void* data, size_t n, uint64_t h = 0xcbf29ce484222325ull) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

uint64_t checksum(uint32_t flags, const std::string& key, const sock_filter* insns, size_t n) {
  uint64_t h = fnv1a(&flags, sizeof flags);
  h = fnv1a(key.data(), key.size(), h);
  return fnv1a(insns, n * sizeof(sock_filter), h);
}

// The GNU build id of the running executable (static: libseccomp included), or "".
std::string build_id() {
  static const std::string id = [] {
    std::string out;
    dl_iterate_phdr(
        [](dl_phdr_info* info, size_t, void* data) -> int {
          auto* out = static_cast<std::string*>(data);
          for (int i = 0; i < info->dlpi_phnum; ++i) {
            const ElfW(Phdr)& ph = info->dlpi_phdr[i];
            if (ph.p_type != PT_NOTE) continue;
            const char* p = reinterpret_cast<const char*>(info->dlpi_addr + ph.p_vaddr);
            const char* end = p + ph.p_memsz;
            while (p + sizeof(ElfW(Nhdr)) <= end) {
              const auto* note = reinterpret_cast<const ElfW(Nhdr)*>(p);
              const char* name = p + sizeof(ElfW(Nhdr));
              const char* desc = name + ((note->n_namesz + 3) & ~3u);
              const char* next = desc + ((note->n_descsz + 3) & ~3u);
              if (next > end) break;
              if (note->n_type == NT_GNU_BUILD_ID && note->n_namesz == 4 &&
                  std::memcmp(name, "GNU", 4) == 0) {
                for (uint32_t j = 0; j < note->n_descsz; ++j) {
                  *out += fmt::format("{:02x}", static_cast<unsigned char>(desc[j]));
                }
                return 1;
              }
              p = next;
            }
          }
          return 1;  // the first object is the executable: stop there
        },
        &out);
    return out;
  }();
  return id;
}

// Everything the compiled program depends on; "" when it cannot be known (no build id).
std::string cache_key(const Profile& profile, const SeccompReporting& reporting) {
  const std::string& id = build_id();
  if (id.empty()) return {};
  utsname u{};
  if (uname(&u) < 0) return {};
  const scmp_version* v = seccomp_version();
  std::string key = fmt::format(
      "jailpool seccomp cache 1\nbuild {}\nlibseccomp {}.{}.{}\nkernel {} {} {}\nreporting {} {} "
      "{}\n",
      id, v ? v->major : 0, v ? v->minor : 0, v ? v->micro : 0, u.release, u.version, u.machine,
      reporting.name_violations ? 1 : 0, reporting.log_allowed ? 1 : 0,
      reporting.slot_spawner ? 1 : 0);
  std::string serialized;
  {
    google::protobuf::io::StringOutputStream stream(&serialized);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    if (!profile.SerializeToCodedStream(&coded)) return {};
  }
  key += "profile ";
  key += serialized;
  return key;
}

std::string file_name(const std::string& key) {
  return fmt::format("{:016x}.bpf", fnv1a(key.data(), key.size()));
}

// Creates `dir` (and missing parents) 0700 and opens it, or returns -1: not a directory of ours
// that no one else may write.
UniqueFd open_dir(const std::string& dir) {
  if (dir.empty() || dir[0] != '/') return {};
  for (size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos == dir.size() || dir[pos] == '/') {
      if (::mkdir(dir.substr(0, pos).c_str(), 0700) < 0 && errno != EEXIST) return {};
    }
  }
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return {};
  struct stat st;
  if (::fstat(fd.get(), &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::geteuid() ||
      (st.st_mode & 022) != 0) {
    return {};
  }
  return fd;
}

bool read_at(int fd, char* out, size_t n, size_t offset) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = ::pread(fd, out + done, n - done, static_cast<off_t>(offset + done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    done += static_cast<size_t>(r);
  }
  return true;
}

bool write_all(int fd, const char* data, size_t n) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = ::write(fd, data + done, n - done);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    done += static_cast<size_t>(r);
  }
  return true;
}

// The program stored under `name`, if the file is ours and holds exactly `key`.
std::optional<SeccompProgram> load(int dir_fd, const std::string& name, const std::string& key) {
  UniqueFd fd(::openat(dir_fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!fd) return std::nullopt;
  struct stat st;
  if (::fstat(fd.get(), &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != ::geteuid() ||
      (st.st_mode & 022) != 0 || st.st_size < static_cast<off_t>(sizeof(Header))) {
    return std::nullopt;
  }
  Header h;
  if (!read_at(fd.get(), reinterpret_cast<char*>(&h), sizeof h, 0)) return std::nullopt;
  if (std::memcmp(h.magic, kMagic, sizeof kMagic) != 0 || h.key_len != key.size() ||
      h.insn_count == 0 || h.insn_count > kMaxInsns || h.ban_count > kMaxInsns ||
      (h.flags & ~(kNotifies | kLogsAllowed)) ||
      static_cast<uint64_t>(st.st_size) !=
          sizeof h + h.key_len + uint64_t{h.insn_count + h.ban_count} * sizeof(sock_filter)) {
    return std::nullopt;
  }
  size_t total = size_t{h.insn_count} + h.ban_count;
  std::vector<char> body(h.key_len + total * sizeof(sock_filter));
  if (!read_at(fd.get(), body.data(), body.size(), sizeof h)) return std::nullopt;
  if (std::memcmp(body.data(), key.data(), key.size()) != 0) return std::nullopt;
  std::vector<sock_filter> insns(total);
  std::memcpy(insns.data(), body.data() + key.size(), total * sizeof(sock_filter));
  if (checksum(h.flags, key, insns.data(), insns.size()) != h.checksum) return std::nullopt;
  std::vector<sock_filter> ban(insns.begin() + h.insn_count, insns.end());
  insns.resize(h.insn_count);
  SeccompProgram program(std::move(insns), (h.flags & kNotifies) != 0,
                         (h.flags & kLogsAllowed) != 0);
  if (!ban.empty()) program.set_lock_ban(std::move(ban));
  return program;
}

// insns: the main filter's instructions, then the lock ban's (ban_count of them).
void store(int dir_fd, const std::string& name, const std::string& key,
           const std::vector<sock_filter>& insns, uint32_t ban_count, uint32_t flags) {
  static std::atomic<unsigned> serial{0};
  std::string tmp = fmt::format(".tmp-{}-{}", ::getpid(), serial++);
  UniqueFd fd(
      ::openat(dir_fd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) return;
  Header h{};
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  h.key_len = static_cast<uint32_t>(key.size());
  h.insn_count = static_cast<uint32_t>(insns.size()) - ban_count;
  h.flags = flags;
  h.ban_count = ban_count;
  h.checksum = checksum(flags, key, insns.data(), insns.size());
  bool ok = write_all(fd.get(), reinterpret_cast<const char*>(&h), sizeof h) &&
            write_all(fd.get(), key.data(), key.size()) &&
            write_all(fd.get(), reinterpret_cast<const char*>(insns.data()),
                      insns.size() * sizeof(sock_filter));
  fd.reset();
  // rename replaces atomically: a reader sees the old file, the new one or none.
  if (!ok || ::renameat(dir_fd, tmp.c_str(), dir_fd, name.c_str()) < 0) {
    ::unlinkat(dir_fd, tmp.c_str(), 0);
  }
}

}  // namespace

std::string seccomp_cache_path(const Profile& profile, const SeccompReporting& reporting,
                               const std::string& dir) {
  std::string key = cache_key(profile, reporting);
  return key.empty() ? std::string() : dir + "/" + file_name(key);
}

SeccompProgram compile_seccomp_cached(const Profile& profile, const SeccompReporting& reporting,
                                      const std::string& dir) {
  // No filter: nothing worth keeping (and the names are still checked by compile_seccomp).
  if (dir.empty() || profile.seccomp() == SECCOMP_NONE) return compile_seccomp(profile, reporting);
  std::string key = cache_key(profile, reporting);
  if (key.size() > kMaxKey) key.clear();
  UniqueFd dir_fd;
  if (!key.empty()) dir_fd = open_dir(dir);
  if (!dir_fd) return compile_seccomp(profile, reporting);
  std::string name = file_name(key);
  if (auto cached = load(dir_fd.get(), name, key)) return std::move(*cached);
  SeccompProgram program = compile_seccomp(profile, reporting);
  const std::vector<sock_filter>& ban = program.lock_ban_instructions();
  if (!program.empty() && program.size() <= kMaxInsns && ban.size() <= kMaxInsns) {
    std::vector<sock_filter> all = program.instructions();
    all.insert(all.end(), ban.begin(), ban.end());
    store(dir_fd.get(), name, key, all, static_cast<uint32_t>(ban.size()),
          (program.notifies() ? kNotifies : 0) | (program.logs_allowed() ? kLogsAllowed : 0));
  }
  return program;
}

}  // namespace jailpool::isolate
