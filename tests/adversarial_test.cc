// The adversarial suite: hostile programs (tests/adversarial/*.c, at /progs in the jail) run
// inside the sandbox with limits, each attempting one escape, and every attempt must fail while
// the host stays untouched.
//
// Each program prints "ATTEMPT <what>" just before the dangerous call and then one
// "RESULT blocked <ERRNO|how>", "RESULT escaped <detail>" or "RESULT done <detail>" (for the
// attempts only the host can judge: daemons, floods). A case lists the outcomes it accepts:
// "SECCOMP" (killed by the filter after its ATTEMPT line), an errno name, a pseudo-name such as
// MASKED or EMPTY, or DONE. Each case runs in a fresh jail and in a pooled template.
//
// Around every test the host is checked: the mounts of this namespace, the job cgroups below the
// test's parent, (name, size, mtime) of /etc, /root and /var/tmp, and processes carrying the
// job marker must be as before; a host bait set up by the test (a secret file, a process of the
// job's uid with a secret in its environment and command line, TCP/UDP/abstract listeners)
// must be untouched: the process alive, no connection, no datagram.
//
// Also here: the same programs with the filter off and bare on the host, to show the attempts and
// the host checks can fail (AdversarialSanity, AdversarialBaitTest); huge argv/env in a spec;
// and two jobs at once through `jailpool batch -j 2` (AdversarialBatchTest). A test that finds a
// real hole is skipped with "HOLE: ..." (today: inotify on the shared read-only binds).
#include <arpa/inet.h>
#include <fcntl.h>
#include <google/protobuf/util/json_util.h>
#include <grp.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.h"
#include "config/profile.h"
#include "sched/executor.h"
#include "test_support.h"

namespace jailpool {
namespace {

namespace fs = std::filesystem;
namespace pbu = google::protobuf::util;
using testing_env::to_json_line;
using namespace std::chrono_literals;

using testing_env::describe;
using testing_env::in_jail;
using testing_env::job_marker;
using testing_env::join;
using testing_env::kMiB;
using testing_env::kProgsInJail;
using testing_env::leftover_processes;
using testing_env::poll_until_empty;
using testing_env::read_file;
using testing_env::TempDir;

// The writable /tmp of the adversarial profile: small, so that filling it is quick.
constexpr uint64_t kTmpBytes = 16 * kMiB;
constexpr uint64_t kTmpInodes = 1024;
constexpr uint32_t kDevShmInodes = 4096;  // the jail's /dev/shm (src/isolate/jail.cc)
constexpr uint32_t kOpenFiles = 64;
constexpr uint32_t kJobUid = 65534;  // the default profile's

// ---------------------------------------------------------------------------------------------
// Host state that must not change.

struct HostSnapshot {
  std::set<std::string> mounts;
  std::map<std::string, std::string> dir_entries;  // path -> "size mtime"

  static HostSnapshot take() {
    HostSnapshot s;
    std::istringstream in(read_file("/proc/self/mountinfo"));
    std::string line;
    while (std::getline(in, line)) s.mounts.insert(line);
    for (const char* dir : {"/etc", "/root", "/var/tmp"}) {
      std::error_code ec;
      for (const auto& entry : fs::directory_iterator(dir, ec)) {
        struct stat st;
        if (::lstat(entry.path().c_str(), &st) != 0) continue;
        s.dir_entries[entry.path().string()] = std::to_string(st.st_size) + " " +
                                               std::to_string(st.st_mtim.tv_sec) + "." +
                                               std::to_string(st.st_mtim.tv_nsec);
      }
    }
    return s;
  }

  // What differs from `before`, one line each.
  std::vector<std::string> changes_since(const HostSnapshot& before) const {
    std::vector<std::string> out;
    for (const auto& m : mounts) {
      if (!before.mounts.count(m)) out.push_back("new mount: " + m);
    }
    for (const auto& m : before.mounts) {
      if (!mounts.count(m)) out.push_back("mount gone: " + m);
    }
    for (const auto& [path, what] : dir_entries) {
      auto it = before.dir_entries.find(path);
      if (it == before.dir_entries.end()) {
        out.push_back("new file: " + path);
      } else if (it->second != what) {
        out.push_back("changed: " + path + " (" + it->second + " -> " + what + ")");
      }
    }
    for (const auto& [path, what] : before.dir_entries) {
      if (!dir_entries.count(path)) out.push_back("file gone: " + path);
    }
    return out;
  }
};

// ---------------------------------------------------------------------------------------------
// The bait: what a job would reach if it escaped.

std::string random_token() {
  std::random_device rd;
  std::mt19937_64 rng((static_cast<uint64_t>(rd()) << 32) ^ rd() ^
                      static_cast<uint64_t>(::getpid()));
  char buf[40];
  std::snprintf(buf, sizeof buf, "jpadv%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

int listen_tcp(uint32_t addr, uint16_t* port) {
  int s = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(addr);
  socklen_t len = sizeof a;
  if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(s, 16) != 0 ||
      ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(s);
    return -1;
  }
  *port = ntohs(a.sin_port);
  return s;
}

// The first non-loopback IPv4 address of the host, or "".
std::string host_ipv4() {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return "";
  std::string out;
  for (ifaddrs* i = list; i != nullptr && out.empty(); i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) continue;
    auto* in = reinterpret_cast<sockaddr_in*>(i->ifa_addr);
    if (ntohl(in->sin_addr.s_addr) >> 24 == 127) continue;
    char buf[INET_ADDRSTRLEN];
    if (::inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf) != nullptr) out = buf;
  }
  ::freeifaddrs(list);
  return out;
}

class HostBait {
 public:
  HostBait() : secret_(random_token()), dir_("jailpool-adv") {
    secret_path_ = dir_.write("secret", secret_ + "\n");
    // Readable by anyone who can reach it (the bait test reads it as the job's uid, bare).
    ::chmod(dir_.path().c_str(), 0755);
    ::chmod(secret_path_.c_str(), 0644);
    tcp_loopback_.reset(listen_tcp(INADDR_LOOPBACK, &tcp_loopback_port_));
    tcp_any_.reset(listen_tcp(INADDR_ANY, &tcp_any_port_));
    udp_.reset(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (!udp_ || ::bind(udp_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(udp_.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      udp_.reset();
    } else {
      udp_port_ = ntohs(a.sin_port);
    }
    abstract_name_ = "jailpool-adv-" + secret_;
    abstract_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    std::memcpy(un.sun_path + 1, abstract_name_.data(), abstract_name_.size());
    auto un_len =
        static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + abstract_name_.size());
    if (!abstract_ || ::bind(abstract_.get(), reinterpret_cast<sockaddr*>(&un), un_len) != 0 ||
        ::listen(abstract_.get(), 16) != 0) {
      abstract_.reset();
    }
    host_ip_ = host_ipv4();
    start_sentinel();
  }

  ~HostBait() {
    if (sentinel_ > 0) {
      ::kill(sentinel_, SIGKILL);  // our own child
      while (::waitpid(sentinel_, nullptr, 0) < 0 && errno == EINTR) {
      }
    }
  }

  // "" when everything was set up.
  std::string setup_problem() const {
    if (dir_.path().empty()) return "no temp dir";
    if (!tcp_loopback_ || !tcp_any_) return "no TCP listener";
    if (!udp_) return "no UDP socket";
    if (!abstract_) return "no abstract socket";
    if (sentinel_ <= 0) return "no sentinel process (cannot run the sleeper as uid 65534?)";
    return "";
  }

  // What reached the bait; empty when nothing did.
  std::vector<std::string> disturbances() {
    std::vector<std::string> out;
    if (sentinel_ > 0) {
      int status = 0;
      pid_t r = ::waitpid(sentinel_, &status, WNOHANG);
      if (r == sentinel_) {
        out.push_back("the sentinel process (uid " + std::to_string(kJobUid) + ", host pid " +
                      std::to_string(sentinel_) + ") died: status " + std::to_string(status));
        sentinel_ = -1;
      } else {
        std::string stat = read_file("/proc/" + std::to_string(sentinel_) + "/stat");
        auto close_paren = stat.rfind(')');
        if (close_paren != std::string::npos && close_paren + 2 < stat.size() &&
            stat[close_paren + 2] == 'T') {
          out.push_back("the sentinel process was stopped");
        }
      }
    }
    for (int fd : {tcp_loopback_.get(), tcp_any_.get(), abstract_.get()}) {
      int conn = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (conn >= 0) {
        out.push_back("a connection arrived on a host listener (fd " + std::to_string(fd) + ")");
        ::close(conn);
      }
    }
    char buf[64];
    int datagrams = 0;
    while (::recv(udp_.get(), buf, sizeof buf, MSG_DONTWAIT) >= 0) ++datagrams;
    if (datagrams > 0) out.push_back("datagrams arrived on the host's UDP socket");
    if (read_file(secret_path_) != secret_ + "\n") out.push_back("the host secret file changed");
    return out;
  }

  // Replaces {placeholders} in a case's argument.
  std::string expand(std::string arg) const {
    const std::pair<const char*, std::string> vars[] = {
        {"{secret}", secret_},
        {"{secret_path}", secret_path_},
        {"{sentinel}", std::to_string(sentinel_)},
        {"{self}", std::to_string(::getpid())},
        {"{tcp_port}", std::to_string(tcp_loopback_port_)},
        {"{tcp_any_port}", std::to_string(tcp_any_port_)},
        {"{udp_port}", std::to_string(udp_port_)},
        {"{abstract}", abstract_name_},
        {"{host_ip}", host_ip_},
    };
    for (const auto& [key, value] : vars) {
      for (size_t pos; (pos = arg.find(key)) != std::string::npos;)
        arg.replace(pos, std::strlen(key), value);
    }
    return arg;
  }

  const std::string& host_ip() const { return host_ip_; }

 private:
  // A process of the job's uid, with the secret in its command line and environment: visible
  // and signallable by the job if the pid namespace failed.
  void start_sentinel() {
    const std::string path = testing_env::prog("sleeper");
    std::string arg0 = "sleeper-" + secret_;
    std::string env0 = "JAILPOOL_ADV_SECRET=" + secret_;
    pid_t parent = ::getpid();
    sentinel_ = ::fork();
    if (sentinel_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      if (::setgroups(0, nullptr) != 0 || ::setresgid(kJobUid, kJobUid, kJobUid) != 0 ||
          ::setresuid(kJobUid, kJobUid, kJobUid) != 0) {
        ::_exit(126);
      }
      char* argv[] = {arg0.data(), nullptr};
      char* envp[] = {env0.data(), nullptr};
      ::execve(path.c_str(), argv, envp);
      ::_exit(125);
    }
    // Wait until it runs the sleeper (its command line shows the secret).
    auto deadline = std::chrono::steady_clock::now() + 5s;
    bool running = false;
    while (sentinel_ > 0 && !running && std::chrono::steady_clock::now() < deadline) {
      running = read_file("/proc/" + std::to_string(sentinel_) + "/cmdline").find(secret_) !=
                std::string::npos;
      if (!running) std::this_thread::sleep_for(2ms);
    }
    if (sentinel_ > 0 && !running) {  // could not exec the sleeper as the job's uid
      ::kill(sentinel_, SIGKILL);
      while (::waitpid(sentinel_, nullptr, 0) < 0 && errno == EINTR) {
      }
      sentinel_ = -1;
    }
  }

  std::string secret_;
  TempDir dir_;
  std::string secret_path_;
  UniqueFd tcp_loopback_, tcp_any_, udp_, abstract_;
  uint16_t tcp_loopback_port_ = 0, tcp_any_port_ = 0, udp_port_ = 0;
  std::string abstract_name_;
  std::string host_ip_;
  pid_t sentinel_ = -1;
};

// ---------------------------------------------------------------------------------------------
// Running a program and reading its outcome.

// The default profile, the test programs bound at /progs (by the profile, so that jobs can run
// from pooled templates) and a small /tmp.
Profile adversarial_profile() {
  Profile profile = default_profile();
  Bind* bind = profile.add_bind();
  bind->set_src(JAILPOOL_TEST_PROGS);
  bind->set_dst(kProgsInJail);
  for (Tmpfs& fs : *profile.mutable_tmpfs()) {
    if (fs.dst() == "/tmp") {
      fs.set_size_bytes(kTmpBytes);
      fs.set_nr_inodes(kTmpInodes);
    }
  }
  return profile;
}

// "SECCOMP", the word after "RESULT blocked", "ESCAPED", "DONE", or the status when the
// program printed no RESULT line.
std::string outcome_of(const JobResult& r) {
  if (r.status() == SECCOMP_VIOLATION) return "SECCOMP";
  std::istringstream in(r.stdout());
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string tag, kind, what;
    words >> tag >> kind >> what;
    if (tag != "RESULT") continue;
    if (kind == "blocked") return what;
    if (kind == "escaped") return "ESCAPED";
    if (kind == "done") return "DONE";
  }
  std::string s = Status_Name(r.status());
  if (r.signal() != 0) s += ":" + std::to_string(r.signal());
  return s;
}

// A number printed as "key=N" on the RESULT line; -1 when absent.
long long result_number(const JobResult& r, const std::string& key) {
  auto pos = r.stdout().find(" " + key + "=");
  if (pos == std::string::npos) return -1;
  return std::atoll(r.stdout().c_str() + pos + key.size() + 2);
}

enum class Setup {
  kNone,
  kPtyStdin,      // stdin is a pty slave the test holds
  kSmallNoFile,   // open_files = kOpenFiles
  kSmallOutput,   // output_bytes = 1 MiB (RLIMIT_FSIZE)
  kSetuidBind,    // a setuid-root copy of suid_probe bound at /suid/suid_probe
  kFileCapsBind,  // a copy of suid_probe with file capabilities bound at /suid/suid_probe
  kHostLocks,     // the test holds locks on the host's file of the program (HostLocks)
};

// An exclusive flock and a POSIX read lock (whole file) on a host file, held while it lives.
class HostLocks {
 public:
  explicit HostLocks(const std::string& path) : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
    struct flock fl {};
    fl.l_type = F_RDLCK;
    fl.l_whence = SEEK_SET;
    ok_ = fd_ >= 0 && ::flock(fd_, LOCK_EX | LOCK_NB) == 0 && ::fcntl(fd_, F_SETLK, &fl) == 0;
  }
  ~HostLocks() {
    if (fd_ >= 0) ::close(fd_);
  }
  HostLocks(const HostLocks&) = delete;
  HostLocks& operator=(const HostLocks&) = delete;
  bool ok() const { return ok_; }

 private:
  int fd_;
  bool ok_ = false;
};

struct Case {
  std::string name;
  std::string prog;               // in /progs, or an absolute path in the jail
  std::vector<std::string> args;  // with {placeholders} (HostBait::expand)
  std::set<std::string> accept;   // accepted outcomes (outcome_of)
  Setup setup = Setup::kNone;
  std::function<void(const JobResult&)> check;  // more assertions on the result
  // The attempt needs the i386 entry (int 0x80): skipped when the kernel has none (the program
  // faults with SIGSEGV bare on the host too, e.g. under the PVM hypervisor).
  bool needs_i386 = false;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.name;
}

Case killed(std::string name, std::string prog, std::vector<std::string> args = {}) {
  return Case{std::move(name), std::move(prog), std::move(args), {"SECCOMP"}};
}

Case blocked(std::string name, std::string prog, std::vector<std::string> args,
             std::set<std::string> accept) {
  return Case{std::move(name), std::move(prog), std::move(args), std::move(accept)};
}

Case with(Case c, Setup setup) {
  c.setup = setup;
  return c;
}

Case checked(Case c, std::function<void(const JobResult&)> check) {
  c.check = std::move(check);
  return c;
}

const std::set<std::string> kAbsent = {"ENOENT"};
const std::set<std::string> kNoWrite = {"EROFS", "EACCES", "EPERM"};

std::vector<Case> all_cases() {
  std::vector<Case> c;
  // --- Every call the default policy denies, each its own entry.
  Case int80 = killed("I386IntEighty", "sys_int80");
  int80.needs_i386 = true;
  c.push_back(int80);
  c.push_back(killed("X32Abi", "sys_x32"));
  c.push_back(killed("IoUringSetup", "sys_io_uring"));
  c.push_back(killed("Bpf", "sys_bpf"));
  c.push_back(killed("PerfEventOpen", "sys_perf_event"));
  c.push_back(killed("Userfaultfd", "sys_userfaultfd"));
  for (const char* m : {"keyctl", "add_key", "request_key"}) {
    c.push_back(killed(std::string("Keyring_") + m, "sys_keyring", {m}));
  }
  c.push_back(killed("PtraceJailInit", "sys_ptrace", {"attach", "1"}));
  c.push_back(killed("PtraceJailpool", "sys_ptrace", {"attach", "{self}"}));
  c.push_back(killed("PtraceSeizeHostProcess", "sys_ptrace", {"seize", "{sentinel}"}));
  c.push_back(killed("PtraceTraceme", "sys_ptrace", {"traceme"}));
  c.push_back(killed("ProcessVmReadv", "sys_process_vm", {"readv"}));
  c.push_back(killed("ProcessVmWritev", "sys_process_vm", {"writev"}));
  for (const char* m : {"mount", "umount2_plain", "pivot_root", "chroot"}) {
    c.push_back(killed(std::string("OldMountApi_") + m, "sys_mount", {m}));
  }
  // umount2(MNT_DETACH) is the one umount a slot's init makes (it takes a job's working
  // directory away): its filter, which the job inherits, lets exactly that through, and the
  // job, with no capability, gets EPERM. A fresh jail's filter kills it.
  c.push_back(blocked("OldMountApi_umount2", "sys_mount", {"umount2"}, {"SECCOMP", "EPERM"}));
  for (const char* m :
       {"fsopen", "fsconfig", "fsmount", "fspick", "open_tree", "move_mount", "mount_setattr"}) {
    c.push_back(killed(std::string("NewMountApi_") + m, "sys_new_mount_api", {m}));
  }
  for (const char* m : {"unshare", "setns", "clone"}) {
    c.push_back(killed(std::string("Namespaces_") + m, "sys_namespaces", {m}));
  }
  // clone3's flags are out of seccomp's reach: denied with ENOSYS (glibc falls back to clone).
  c.push_back(blocked("Namespaces_clone3", "sys_namespaces", {"clone3"}, {"ENOSYS"}));
  for (const char* m : {"kexec_load", "kexec_file_load"}) {
    c.push_back(killed(std::string("Kexec_") + m, "sys_kexec", {m}));
  }
  for (const char* m : {"init_module", "finit_module", "delete_module"}) {
    c.push_back(killed(std::string("Modules_") + m, "sys_modules", {m}));
  }
  for (const char* m : {"name_to_handle_at", "open_by_handle_at"}) {
    c.push_back(killed(std::string("FileHandle_") + m, "sys_file_handle", {m}));
  }
  for (const char* m : {"tiocsti", "tiocsti_high", "tioclinux"}) {
    c.push_back(killed(std::string("TtyIoctl_") + m, "sys_tty_ioctl", {m}));
  }
  c.push_back(
      with(killed("TtyIoctl_tiocsti_pty_stdin", "sys_tty_ioctl", {"tiocsti"}), Setup::kPtyStdin));
  c.push_back(with(killed("TtyIoctl_tiocsti_high_pty_stdin", "sys_tty_ioctl", {"tiocsti_high"}),
                   Setup::kPtyStdin));
  c.push_back(killed("SocketFamily_vsock", "sys_socket_family", {"vsock"}));
  c.push_back(killed("SocketFamily_packet", "sys_socket_family", {"packet"}));
  c.push_back(blocked("SocketFamily_raw_inet", "sys_socket_family", {"raw_inet"}, {"EPERM"}));
  // Locks work, on the jail's own inode of the shared file: the host's locks on it are out of
  // sight (ENOLCK where the jail could not get its own inodes and keeps the lock ban; not here:
  // the VM and host kernels have overlayfs).
  for (const char* m : {"flock", "setlk", "setlkw", "ofd_setlk"}) {
    c.push_back(with(blocked(std::string("FileLocks_") + m, "sys_file_locks", {m}, {"PRIVATE"}),
                     Setup::kHostLocks));
  }
  for (const char* m : {"setlease", "notify"}) {
    c.push_back(blocked(std::string("FileLocks_") + m, "sys_file_locks", {m}, {"EPERM"}));
  }
  for (const char* m : {"addr_no_randomize", "read_implies_exec", "mmap_page_zero", "high_bits"}) {
    c.push_back(blocked(std::string("Personality_") + m, "sys_personality", {m}, {"EPERM"}));
  }
  c.push_back(killed("Acct", "sys_acct"));
  c.push_back(killed("Swapon", "sys_swapon", {"swapon"}));
  c.push_back(killed("Swapoff", "sys_swapon", {"swapoff"}));
  c.push_back(killed("Reboot", "sys_reboot"));
  for (const char* m : {"settimeofday", "clock_settime", "adjtimex", "clock_adjtime"}) {
    c.push_back(killed(std::string("Clock_") + m, "sys_set_clock", {m}));
  }

  // --- /proc.
  c.push_back(
      blocked("ProcRootToHostFile", "proc_root_escape", {"{secret_path}"}, {"ENOENT", "EACCES"}));
  c.push_back(blocked("ProcFdWalk", "proc_fd_walk", {}, {"EACCES", "ENOENT"}));
  c.push_back(
      blocked("ProcSelfExeWrite", "proc_exe_overwrite", {"self"}, {"EACCES", "EROFS", "ETXTBSY"}));
  // ENOENT: a slot's init is hidden from its jobs (hidepid).
  c.push_back(blocked("ProcInitExeWrite", "proc_exe_overwrite", {"init"},
                      {"EACCES", "EROFS", "ETXTBSY", "ENOENT"}));
  c.push_back(
      blocked("ProcExePathWrite", "proc_exe_overwrite", {"path"}, {"EACCES", "EROFS", "ETXTBSY"}));
  c.push_back(blocked("ProcHostEnvironAndCmdline", "proc_host_environ", {"{secret}"},
                      {"EACCES", "ENOENT"}));
  c.push_back(blocked("ProcSysCorePattern", "proc_sys_write",
                      {"/proc/sys/kernel/core_pattern", "|/tmp/x"}, kNoWrite));
  c.push_back(
      blocked("ProcSysHostname", "proc_sys_write", {"/proc/sys/kernel/hostname", "x"}, kNoWrite));
  c.push_back(
      blocked("ProcSysDropCaches", "proc_sys_write", {"/proc/sys/vm/drop_caches", "1"}, kNoWrite));
  c.push_back(blocked("ProcSysrqTrigger", "proc_sys_write", {"/proc/sysrq-trigger", "h"},
                      {"MASKED", "EACCES", "ENOENT"}));
  for (const char* p : {"kallsyms", "keys", "timer_list", "kcore", "sched_debug"}) {
    c.push_back(blocked(std::string("ProcMaskedRead_") + p, "proc_masked_read",
                        {std::string("/proc/") + p}, {"EMPTY", "EACCES", "ENOENT"}));
  }
  c.push_back(blocked("ProcOomScoreAdj", "proc_oom_adj", {}, {"EACCES", "EPERM"}));

  // --- Files outside /tmp, /dev/shm and the working directory; host secrets.
  for (const char* p : {"/", "/usr", "/usr/bin", "/etc", "/progs", "/dev", "/proc", "/x",
                        "/etc/passwd", "/usr/bin/env", "/etc/ld.so.cache"}) {
    std::string name = std::string("WriteOutside_") + (p[1] ? p + 1 : "root");
    for (char& ch : name) {
      if (ch == '/' || ch == '.') ch = '_';
    }
    c.push_back(
        blocked(name, "fs_write_outside", {p},
                p == std::string("/proc") ? std::set<std::string>{"ENOENT", "EACCES"} : kNoWrite));
  }
  for (const char* p : {"/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/root/.bashrc",
                        "/etc/ssh/ssh_host_ed25519_key", "/var/log/syslog", "{secret_path}"}) {
    std::string name = std::string("ReadSecret_") + p;
    for (char& ch : name) {
      if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_') ch = '_';
    }
    c.push_back(blocked(name, "fs_read_secret", {p}, {"ENOENT", "EACCES"}));
  }
  c.push_back(blocked("ChownToRoot", "fs_chown_root", {"chown_root"}, {"EPERM"}));
  c.push_back(blocked("ChgrpToRoot", "fs_chown_root", {"chgrp_root"}, {"EPERM"}));
  for (const char* m : {"setuid", "setresuid", "setgid", "setgroups", "capset"}) {
    c.push_back(blocked(std::string("BecomeRoot_") + m, "setuid_calls", {m}, {"EPERM"}));
  }
  for (const char* m : {"nofile", "fsize", "cpu", "stack"}) {
    c.push_back(blocked(std::string("RaiseHardRlimit_") + m, "rlimit_raise", {m}, {"EPERM"}));
  }
  c.push_back(with(blocked("SetuidRootBinaryInBind", "/suid/suid_probe", {}, {"EPERM"}),
                   Setup::kSetuidBind));
  c.push_back(with(blocked("FileCapsBinaryInBind", "/suid/suid_probe", {}, {"EPERM"}),
                   Setup::kFileCapsBind));

  // --- Devices.
  for (const char* m : {"block", "char"}) {
    c.push_back(blocked(std::string("Mknod_") + m, "dev_mknod", {m}, {"EPERM"}));
  }
  // A whiteout (0:0) needs no CAP_MKNOD (5.8+): it is made, but opening it fails (EACCES).
  c.push_back(blocked("Mknod_whiteout", "dev_mknod", {"whiteout"}, {"EPERM", "EACCES"}));
  for (const char* p :
       {"/dev/sda", "/dev/vda", "/dev/mem", "/dev/kmem", "/dev/port", "/dev/kmsg", "/dev/tty",
        "/dev/console", "/dev/tty0", "/dev/kvm", "/dev/net/tun", "/dev/fuse", "/dev/loop-control",
        "/dev/loop0", "/dev/ptmx", "/dev/btrfs-control", "/dev/cpu/0/msr", "/dev/hwrng"}) {
    std::string name = std::string("OpenDevice_") + (p + 5);
    for (char& ch : name) {
      if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_') ch = '_';
    }
    c.push_back(blocked(name, "dev_open", {p}, kAbsent));
  }

  // --- Signals and processes.
  c.push_back(blocked("KillMinusOne", "kill_everything", {}, {"ESRCH"}));
  c.push_back(blocked("KillMinusOneSigstop", "kill_everything", {"19"}, {"ESRCH"}));
  // OWN: in a slot's long-lived pid namespace the number may be the job's own pid there
  // (signal_host_pid.c); never a host process.
  c.push_back(blocked("SignalHostSentinel", "signal_host_pid", {"{sentinel}"}, {"ESRCH", "OWN"}));
  c.push_back(blocked("SignalJailpool", "signal_host_pid", {"{self}"}, {"ESRCH", "OWN"}));
  c.push_back(blocked("SignalJailInit", "signal_host_pid", {"1"}, {"EPERM"}));
  c.push_back(blocked("DoubleForkDaemon", "daemon_double_fork", {}, {"DONE"}));
  c.push_back(blocked("StoppedChildren", "daemon_stopped", {}, {"DONE"}));
  c.push_back(blocked("RespawningDaemon", "daemon_respawn", {}, {"DONE"}));
  c.push_back(blocked("CgroupProcsWrite", "cgroup_escape", {"procs"}, kAbsent));
  c.push_back(blocked("CgroupPathHidden", "cgroup_escape", {"path"}, {"HIDDEN"}));

  // --- Exhaustion.
  c.push_back(with(checked(blocked("FdExhaustion", "fd_exhaust", {}, {"EMFILE"}),
                           [](const JobResult& r) {
                             long long opened = result_number(r, "opened");
                             EXPECT_GE(opened, 1);
                             EXPECT_LE(opened, kOpenFiles) << "RLIMIT_NOFILE did not hold";
                           }),
                   Setup::kSmallNoFile));
  c.push_back(checked(blocked("TmpInodeExhaustion", "tmp_inode_exhaust", {"/tmp"}, {"ENOSPC"}),
                      [](const JobResult& r) {
                        long long created = result_number(r, "created");
                        EXPECT_GE(created, 1);
                        EXPECT_LE(created, static_cast<long long>(kTmpInodes))
                            << "more files than the tmpfs nr_inodes";
                      }));
  c.push_back(
      checked(blocked("DevShmInodeExhaustion", "tmp_inode_exhaust", {"/dev/shm"}, {"ENOSPC"}),
              [](const JobResult& r) {
                long long created = result_number(r, "created");
                EXPECT_GE(created, 1);
                EXPECT_LE(created, static_cast<long long>(kDevShmInodes));
              }));
  c.push_back(checked(blocked("TmpSpaceExhaustion", "tmp_space_fill", {"/tmp"}, {"ENOSPC"}),
                      [](const JobResult& r) {
                        long long bytes = result_number(r, "bytes");
                        EXPECT_GE(bytes, 1);
                        EXPECT_LE(bytes, static_cast<long long>(kTmpBytes));
                      }));
  c.push_back(with(checked(blocked("OutputFileLimit", "tmp_space_fill", {"/box"}, {"EFBIG"}),
                           [](const JobResult& r) {
                             EXPECT_LE(result_number(r, "bytes"), static_cast<long long>(1 * kMiB));
                           }),
                   Setup::kSmallOutput));
  c.push_back(blocked("ExecOneHugeArgument", "exec_huge_args", {"one_long"}, {"E2BIG"}));
  c.push_back(blocked("ExecHugeArgumentList", "exec_huge_args", {"total"}, {"E2BIG"}));

  // --- Links and FIFOs in the writable places.
  c.push_back(
      blocked("SymlinksToSecrets", "symlink_secrets", {"{secret_path}"}, {"ENOENT", "EACCES"}));
  for (const char* m : {"passwd", "prog", "fd"}) {
    c.push_back(blocked(std::string("HardlinkAcrossMounts_") + m, "hardlink_cross", {m},
                        {"EXDEV", "EPERM"}));
  }
  c.push_back(blocked("FifosInWorkdir", "fifo_trap", {}, {"DONE"}));

  // --- The host's network.
  c.push_back(blocked("ConnectHostLoopbackTcp", "net_connect_host",
                      {"tcp", "127.0.0.1", "{tcp_port}"}, {"ECONNREFUSED"}));
  c.push_back(blocked("ConnectHostLoopbackAnyTcp", "net_connect_host",
                      {"tcp", "127.0.0.1", "{tcp_any_port}"}, {"ECONNREFUSED"}));
  c.push_back(blocked("ConnectHostAddressTcp", "net_connect_host",
                      {"tcp", "{host_ip}", "{tcp_any_port}"}, {"ENETUNREACH", "EHOSTUNREACH"}));
  c.push_back(blocked("SendHostLoopbackUdp", "net_connect_host", {"udp", "127.0.0.1", "{udp_port}"},
                      {"ECONNREFUSED"}));
  c.push_back(blocked("ConnectHostAbstractSocket", "net_connect_host", {"abstract", "{abstract}"},
                      {"ECONNREFUSED"}));
  return c;
}

// ---------------------------------------------------------------------------------------------

struct Param {
  Case c;
  bool pool;
};

void PrintTo(const Param& p, std::ostream* os) {
  *os << p.c.name << (p.pool ? " (pooled)" : " (fresh)");
}

std::vector<Param> all_params() {
  std::vector<Param> out;
  for (const Case& c : all_cases()) {
    out.push_back({c, false});
    out.push_back({c, true});
  }
  return out;
}

// Job cgroups below the test parent, but for the pre-created ones of a live executor's cgroup
// pool (job-<our pid>-p...), which are checked once that executor is gone.
std::vector<std::string> job_cgroups_left_but_pooled() {
  const std::string pooled = "/job-" + std::to_string(::getpid()) + "-p";
  std::vector<std::string> out;
  for (auto& dir : testing_env::job_cgroups_left()) {
    if (dir.find(pooled) == std::string::npos) out.push_back(dir);
  }
  return out;
}

// The host checks around every test.
class AdversarialHostCheck {
 public:
  void before() {
    snapshot_ = HostSnapshot::take();
    auto procs = leftover_processes();
    EXPECT_TRUE(procs.empty()) << "marked processes before the test:\n" << join(procs);
  }
  void after() {
    auto procs = poll_until_empty(leftover_processes, 3000ms);
    EXPECT_TRUE(procs.empty()) << "processes of the job survived it:\n" << join(procs);
    auto dirs = poll_until_empty(job_cgroups_left_but_pooled, 2000ms);
    EXPECT_TRUE(dirs.empty()) << "job cgroups left behind:\n" << join(dirs);
    auto changes = HostSnapshot::take().changes_since(snapshot_);
    EXPECT_TRUE(changes.empty()) << "the host changed:\n" << join(changes, 30);
  }

 private:
  HostSnapshot snapshot_;
};

// The cases share two executors (fresh jails, pooled templates) for the suite: a job per case
// is what is tested, not the executor's start-up. Once they are gone, no job cgroup may be left.
class AdversarialTest : public ::testing::TestWithParam<Param> {
 public:
  static void SetUpTestSuite() {
    for (bool pool : {false, true}) {
      sched::ExecutorOptions options;
      options.cgroup_parent = testing_env::cgroup_parent();
      options.use_pool = pool;
      executors_[pool] = std::make_unique<sched::Executor>(options);
    }
  }
  static void TearDownTestSuite() {
    for (auto& e : executors_) e.reset();
    auto dirs = poll_until_empty(testing_env::job_cgroups_left, 2000ms);
    EXPECT_TRUE(dirs.empty()) << "job cgroups left after the executors ended:\n" << join(dirs);
  }

 protected:
  void SetUp() override {
    host_.before();
    bait_ = std::make_unique<HostBait>();
    ASSERT_EQ(bait_->setup_problem(), "");
    ASSERT_TRUE(executors_[GetParam().pool]);
    profile_ = adversarial_profile();
  }

  void TearDown() override {
    auto disturbed = bait_->disturbances();
    EXPECT_TRUE(disturbed.empty()) << "the job reached the host:\n" << join(disturbed);
    bait_.reset();
    host_.after();
  }

  sched::Executor& executor() { return *executors_[GetParam().pool]; }

  JobSpec job_for(const Case& c) const {
    JobSpec spec;
    spec.set_id(c.name);
    spec.add_argv(c.prog.front() == '/' ? c.prog : in_jail(c.prog));
    for (const auto& a : c.args) spec.add_argv(bait_->expand(a));
    spec.add_env(job_marker());
    Limits* limits = spec.mutable_limits();
    limits->set_wall_time_ms(30000);  // a backstop only (software emulation is ~10x slower)
    limits->set_cpu_time_ms(10000);
    return spec;
  }

  static std::unique_ptr<sched::Executor> executors_[2];
  AdversarialHostCheck host_;
  std::unique_ptr<HostBait> bait_;
  Profile profile_;
};

std::unique_ptr<sched::Executor> AdversarialTest::executors_[2];

// A pty whose slave path is the job's stdin; the test holds both ends, raw, so that any byte
// pushed into the slave's input queue (TIOCSTI) is readable at once.
class Pty {
 public:
  Pty() {
    master_.reset(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (!master_ || ::grantpt(master_.get()) != 0 || ::unlockpt(master_.get()) != 0) return;
    char name[128];
    if (::ptsname_r(master_.get(), name, sizeof name) != 0) return;
    slave_path_ = name;
    slave_.reset(::open(name, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC));
    termios t{};
    if (!slave_ || ::tcgetattr(slave_.get(), &t) != 0) return;
    ::cfmakeraw(&t);
    ::tcsetattr(slave_.get(), TCSANOW, &t);
  }
  const std::string& slave_path() const { return slave_path_; }
  bool ok() const { return static_cast<bool>(slave_); }
  // Bytes waiting in the slave's input queue (injected), "" when none.
  std::string injected() {
    char buf[256];
    ssize_t n = ::read(slave_.get(), buf, sizeof buf);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
  }

 private:
  UniqueFd master_, slave_;
  std::string slave_path_;
};

// A copy of suid_probe in a host temp dir: setuid root (or with file capabilities); the dir is
// bound at /suid.
bool make_privileged_copy(const TempDir& dir, bool file_caps, std::string* error) {
  const std::string copy = dir.file("suid_probe");
  std::error_code ec;
  fs::copy_file(testing_env::prog("suid_probe"), copy, fs::copy_options::overwrite_existing, ec);
  if (ec) {
    *error = "copy: " + ec.message();
    return false;
  }
  if (::chown(copy.c_str(), 0, 0) != 0 || ::chmod(dir.path().c_str(), 0755) != 0) {
    *error = std::string("chown: ") + std::strerror(errno);
    return false;
  }
  if (!file_caps) {
    if (::chmod(copy.c_str(), 04755) != 0) {
      *error = std::string("chmod 4755: ") + std::strerror(errno);
      return false;
    }
    return true;
  }
  ::chmod(copy.c_str(), 0755);
  // vfs_cap_data revision 2: CAP_SETUID (7) and CAP_SYS_ADMIN (21) permitted, effective bit set.
  struct {
    uint32_t magic_etc;
    struct {
      uint32_t permitted, inheritable;
    } data[2];
  } caps{};
  caps.magic_etc = 0x02000000 | 0x000001;  // VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE
  caps.data[0].permitted = (1u << 7) | (1u << 21);
  if (::setxattr(copy.c_str(), "security.capability", &caps, sizeof caps, 0) != 0) {
    *error = std::string("setxattr security.capability: ") + std::strerror(errno);
    return false;
  }
  return true;
}

// Whether sys_int80 reaches the kernel's i386 entry when run bare on the host (harmless: getpid).
bool bare_int80_works() {
  pid_t pid = ::fork();
  if (pid == 0) {
    int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 1);
    const std::string path = testing_env::prog("sys_int80");
    ::execl(path.c_str(), path.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int status = 0;
  while (pid > 0 && ::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  // The program exits 1 ("escaped") when the call returned, with no filter.
  return pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 1;
}

TEST_P(AdversarialTest, AttemptFails) {
  const Case& c = GetParam().c;
  JobSpec spec = job_for(c);
  for (const auto& arg : spec.argv()) {
    if (arg.empty()) GTEST_SKIP() << "the host has no non-loopback IPv4 address";
  }
  std::unique_ptr<Pty> pty;
  std::unique_ptr<HostLocks> host_locks;
  TempDir suid_dir("jailpool-adv-suid");
  switch (c.setup) {
    case Setup::kNone:
      break;
    case Setup::kHostLocks:
      host_locks = std::make_unique<HostLocks>(testing_env::prog(c.prog));
      ASSERT_TRUE(host_locks->ok()) << "cannot lock " << c.prog << ": " << std::strerror(errno);
      break;
    case Setup::kPtyStdin:
      pty = std::make_unique<Pty>();
      ASSERT_TRUE(pty->ok()) << "no pty: " << std::strerror(errno);
      spec.mutable_stdin()->set_path(pty->slave_path());
      break;
    case Setup::kSmallNoFile:
      spec.mutable_limits()->set_open_files(kOpenFiles);
      break;
    case Setup::kSmallOutput:
      spec.mutable_limits()->set_output_bytes(1 * kMiB);
      break;
    case Setup::kSetuidBind:
    case Setup::kFileCapsBind: {
      std::string error;
      ASSERT_TRUE(make_privileged_copy(suid_dir, c.setup == Setup::kFileCapsBind, &error)) << error;
      Bind* bind = spec.add_bind();
      bind->set_src(suid_dir.path());
      bind->set_dst("/suid");
      break;
    }
  }

  JobResult r = executor().run_one(spec, profile_);
  const std::string outcome = outcome_of(r);
  SCOPED_TRACE(describe(r));
  RecordProperty("outcome", outcome);
  RecordProperty("stdout", r.stdout());

  if (c.needs_i386 && outcome == "SIGNALED:11" && !bare_int80_works()) {
    GTEST_SKIP() << "this kernel has no i386 entry: int 0x80 faults outside the jail too";
  }
  EXPECT_NE(outcome, "ESCAPED") << "the attempt worked";
  EXPECT_TRUE(c.accept.count(outcome))
      << "outcome " << outcome << ", expected one of: " << join({c.accept.begin(), c.accept.end()});
  if (outcome == "SECCOMP") {
    EXPECT_NE(r.stdout().find("ATTEMPT "), std::string::npos)
        << "killed before it reached the attempt";
    EXPECT_EQ(r.stdout().find("RESULT "), std::string::npos) << "the call returned";
  } else if (c.accept.count(outcome)) {
    EXPECT_EQ(r.status(), OK);
  }
  if (c.check) c.check(r);
  if (pty) {
    EXPECT_EQ(pty->injected(), "") << "bytes were pushed into the job's terminal";
  }
}

INSTANTIATE_TEST_SUITE_P(Adversarial, AdversarialTest, ::testing::ValuesIn(all_params()),
                         [](const auto& info) {
                           return info.param.c.name + (info.param.pool ? "_Pooled" : "_Fresh");
                         });

// ---------------------------------------------------------------------------------------------
// The tests can fail: with the filter off, the denied calls go through (the "escaped" branch of
// the programs is reachable), so a blocked outcome above is the filter's doing.

class AdversarialSeccompOffTest : public ::testing::TestWithParam<Case> {};

TEST_P(AdversarialSeccompOffTest, EscapesWithoutTheFilter) {
  AdversarialHostCheck host;
  host.before();
  const Case& c = GetParam();
  Profile profile = adversarial_profile();
  profile.set_seccomp(SECCOMP_NONE);
  JobResult r;
  {
    sched::ExecutorOptions options;
    options.cgroup_parent = testing_env::cgroup_parent();
    sched::Executor executor(options);
    JobSpec spec;
    spec.set_id(c.name);
    spec.add_argv(in_jail(c.prog));
    for (const auto& a : c.args) spec.add_argv(a);
    spec.add_env(job_marker());
    spec.mutable_limits()->set_wall_time_ms(30000);
    r = executor.run_one(spec, profile);
  }
  EXPECT_TRUE(c.accept.count(outcome_of(r))) << outcome_of(r) << ": " << describe(r);
  host.after();
}

INSTANTIATE_TEST_SUITE_P(
    AdversarialSanity, AdversarialSeccompOffTest,
    ::testing::Values(blocked("ProcessVmReadv", "sys_process_vm", {"readv"}, {"ESCAPED"}),
                      blocked("IoUringSetup", "sys_io_uring", {}, {"ESCAPED"}),
                      blocked("Personality", "sys_personality", {"addr_no_randomize"}, {"ESCAPED"}),
                      blocked("Adjtimex", "sys_set_clock", {"adjtimex"}, {"ESCAPED"}),
                      blocked("Userfaultfd", "sys_userfaultfd", {}, {"ESCAPED"})),
    [](const auto& info) { return info.param.name; });

// ---------------------------------------------------------------------------------------------
// The host checks can fail: the same programs run bare on the host as the job's uid (no jail)
// reach every piece of the bait, and the bait notices. Only attempts that harm nothing but the
// bait (no kill(-1): other jobs of that uid may run on this host).

// Runs a test program bare, as uid/gid kJobUid, stdout and stderr to /dev/null; its exit code.
int run_bare_as_job_uid(const std::vector<std::string>& argv) {
  std::vector<std::string> args = argv;
  args[0] = testing_env::prog(args[0]);
  std::vector<char*> cargv;
  for (auto& a : args) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    int null = ::open("/dev/null", O_RDWR);
    ::dup2(null, 0), ::dup2(null, 1), ::dup2(null, 2);
    if (::setgroups(0, nullptr) != 0 || ::setresgid(kJobUid, kJobUid, kJobUid) != 0 ||
        ::setresuid(kJobUid, kJobUid, kJobUid) != 0) {
      ::_exit(126);
    }
    char* envp[] = {nullptr};
    ::execve(cargv[0], cargv.data(), envp);
    ::_exit(127);
  }
  int status = 0;
  while (pid > 0 && ::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return pid > 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(AdversarialBaitTest, ReachableWithoutTheJail) {
  HostBait bait;
  ASSERT_EQ(bait.setup_problem(), "");
  struct Attempt {
    std::vector<std::string> argv;
    int exit_code;  // 1: escaped; 0: done (judged by the bait)
  };
  const Attempt attempts[] = {
      {{"fs_read_secret", "{secret_path}"}, 1},
      {{"proc_host_environ", "{secret}"}, 1},
      {{"net_connect_host", "tcp", "127.0.0.1", "{tcp_port}"}, 1},
      {{"net_connect_host", "abstract", "{abstract}"}, 1},
      {{"net_connect_host", "udp", "127.0.0.1", "{udp_port}"}, 0},
  };
  for (const auto& a : attempts) {
    std::vector<std::string> argv;
    for (const auto& s : a.argv) argv.push_back(bait.expand(s));
    EXPECT_EQ(run_bare_as_job_uid(argv), a.exit_code) << join(argv);
  }
  // Three kinds of disturbance so far: a TCP connection, an abstract one, a datagram.
  auto seen = bait.disturbances();
  EXPECT_EQ(seen.size(), 3u) << join(seen);
  EXPECT_EQ(run_bare_as_job_uid({"signal_host_pid", bait.expand("{sentinel}")}), 1);
  // The SIGKILL was delivered; the sentinel's death is seen once it has exited.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  do {
    seen = bait.disturbances();
    if (!seen.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  } while (std::chrono::steady_clock::now() < deadline);
  ASSERT_EQ(seen.size(), 1u) << join(seen);
  EXPECT_NE(seen[0].find("sentinel"), std::string::npos) << seen[0];
}

// The lock cases can fail: bare on the host, the program sees the test's locks on its file.
TEST(AdversarialBaitTest, HostLocksAreSeenWithoutTheJail) {
  HostLocks locks(testing_env::prog("sys_file_locks"));
  ASSERT_TRUE(locks.ok()) << std::strerror(errno);
  for (const char* m : {"flock", "setlk", "setlkw", "ofd_setlk"}) {
    EXPECT_EQ(run_bare_as_job_uid({"sys_file_locks", m}), 1) << m;
  }
}

// ---------------------------------------------------------------------------------------------
// A huge argv or environment from the job's spec: a clean error of that job, jailpool unharmed.

class AdversarialSpecTest : public ::testing::Test {
 protected:
  void SetUp() override { host_.before(); }
  void TearDown() override { host_.after(); }

  JobResult run(const JobSpec& spec) {
    sched::ExecutorOptions options;
    options.cgroup_parent = testing_env::cgroup_parent();
    sched::Executor executor(options);
    return executor.run_one(spec, adversarial_profile());
  }

  AdversarialHostCheck host_;
};

JobSpec exit_zero_job(const std::string& id) {
  JobSpec spec;
  spec.set_id(id);
  spec.add_argv(in_jail("exit_code"));
  spec.add_argv("0");
  spec.add_env(job_marker());
  spec.mutable_limits()->set_wall_time_ms(30000);
  return spec;
}

void expect_clean_failure(const JobResult& r) {
  EXPECT_TRUE(r.status() == SETUP_ERROR || r.status() == NONZERO_EXIT) << describe(r);
  EXPECT_FALSE(r.message().empty()) << describe(r);
  EXPECT_EQ(r.message().find('\n'), std::string::npos) << describe(r);
}

TEST_F(AdversarialSpecTest, HugeArgumentIsACleanError) {
  JobSpec spec = exit_zero_job("huge-arg");
  spec.add_argv(std::string(512 * 1024, 'A'));  // above MAX_ARG_STRLEN (128 KiB)
  expect_clean_failure(run(spec));
}

TEST_F(AdversarialSpecTest, HugeArgumentListIsACleanError) {
  JobSpec spec = exit_zero_job("huge-argv");
  const std::string each(100 * 1024, 'B');
  for (int i = 0; i < 400; ++i) spec.add_argv(each);  // 40 MiB: above stack/4
  expect_clean_failure(run(spec));
}

TEST_F(AdversarialSpecTest, HugeEnvironmentIsACleanError) {
  JobSpec spec = exit_zero_job("huge-env");
  for (int i = 0; i < 400; ++i)
    spec.add_env("V" + std::to_string(i) + "=" + std::string(100 * 1024, 'C'));
  expect_clean_failure(run(spec));
}

TEST_F(AdversarialSpecTest, JobAfterHugeOnesStillRuns) {
  JobSpec huge = exit_zero_job("huge");
  huge.add_argv(std::string(512 * 1024, 'A'));
  sched::ExecutorOptions options;
  options.cgroup_parent = testing_env::cgroup_parent();
  options.use_pool = true;
  sched::Executor executor(options);
  Profile profile = adversarial_profile();
  JobResult bad = executor.run_one(huge, profile);
  expect_clean_failure(bad);
  JobResult good = executor.run_one(exit_zero_job("after"), profile);
  EXPECT_EQ(good.status(), OK) << describe(good);
}

// ---------------------------------------------------------------------------------------------
// Two jobs at once (`jailpool batch -j 2`, the real CLI): nothing one publishes reaches the
// other, and inotify on the shared read-only paths does not let one watch the other.

std::map<std::string, JobResult> parse_results(const std::string& text) {
  std::map<std::string, JobResult> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    JobResult r;
    if (!line.empty() && pbu::JsonStringToMessage(line, &r).ok()) out[r.id()] = r;
  }
  return out;
}

// "window START END" of a job's output, in ms; {-1, -1} when absent.
std::pair<long long, long long> window_of(const JobResult& r) {
  auto pos = r.stdout().find("window ");
  if (pos == std::string::npos) return {-1, -1};
  long long a = -1, b = -1;
  std::sscanf(r.stdout().c_str() + pos, "window %lld %lld", &a, &b);
  return {a, b};
}

class AdversarialBatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    host_.before();
    std::string profile =
        read_file(std::string(JAILPOOL_SOURCE_DIR) + "/configs/default.textproto");
    ASSERT_FALSE(profile.empty()) << "configs/default.textproto is missing";
    profile += "\nbind { src: \"" + std::string(JAILPOOL_TEST_PROGS) + "\" dst: \"" + kProgsInJail +
               "\" }\n";
    profile_ = dir_.write("profile.textproto", profile);
  }
  void TearDown() override { host_.after(); }

  // Runs the two jobs with `jailpool batch -j 2` (pooled unless `fresh`); their results by id.
  std::map<std::string, JobResult> run_pair(const std::vector<JobSpec>& jobs, bool fresh) {
    std::string input_text;
    for (const auto& j : jobs) input_text += to_json_line(j);
    std::string input = dir_.write("input.jsonl", input_text);
    std::string output = dir_.file("results.jsonl");
    std::vector<std::string> args{"batch",   "-j",  "2",        "--profile", profile_,
                                  "--input", input, "--output", output};
    if (fresh) args.push_back("--no-pool");
    testing_env::CliOutcome r = testing_env::run_cli(args, "/dev/null", 120s);
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    return parse_results(read_file(output));
  }

  JobSpec job(const std::string& id, std::vector<std::string> argv) {
    JobSpec spec;
    spec.set_id(id);
    for (auto& a : argv) spec.add_argv(a);
    spec.add_env(job_marker());
    spec.mutable_limits()->set_wall_time_ms(60000);
    return spec;
  }

  // Asserts the two jobs' windows overlapped (else the test proves nothing).
  void expect_overlap(const JobResult& a, const JobResult& b) {
    auto wa = window_of(a), wb = window_of(b);
    ASSERT_GE(wa.first, 0) << describe(a);
    ASSERT_GE(wb.first, 0) << describe(b);
    EXPECT_TRUE(wa.first < wb.second && wb.first < wa.second)
        << "the two jobs did not run at the same time: [" << wa.first << ", " << wa.second
        << "] and [" << wb.first << ", " << wb.second << "]";
  }

  TempDir dir_{"jailpool-adv-batch"};
  std::string profile_;
  AdversarialHostCheck host_;
};

constexpr const char* kWindowMs = "3000";

TEST_F(AdversarialBatchTest, ConcurrentJobsShareNothing) {
  for (bool fresh : {false, true}) {
    SCOPED_TRACE(fresh ? "fresh jails" : "pooled templates");
    auto results = run_pair({job("serve", {in_jail("cross_job"), "serve", kWindowMs}),
                             job("probe", {in_jail("cross_job"), "probe", kWindowMs})},
                            fresh);
    ASSERT_TRUE(results.count("serve") && results.count("probe"));
    const JobResult& serve = results["serve"];
    const JobResult& probe = results["probe"];
    SCOPED_TRACE("serve: " + describe(serve));
    SCOPED_TRACE("probe: " + describe(probe));
    // The server published every channel (so their absence on the other side means something).
    EXPECT_EQ(outcome_of(serve), "DONE");
    auto published = serve.stdout().substr(serve.stdout().find("published ") + 10);
    published = published.substr(0, published.find('\n'));
    for (const char* item :
         {"tmp", "box", "devshm", "sysv_shm", "sysv_msg", "sysv_sem", "mqueue", "abstract", "tcp",
          "udp", "lock_sh", "lock_passwd", "lock_devnull", "lock_stdin", "lock_prog"}) {
      EXPECT_NE(("," + published + ",").find(std::string(",") + item + ","), std::string::npos)
          << "the serving job could not publish " << item << ": " << published;
    }
    EXPECT_EQ(outcome_of(probe), "NONE") << "the probing job found the other job's state";
    expect_overlap(serve, probe);
  }
}

TEST_F(AdversarialBatchTest, InotifyOnSharedPathsSeesNoOtherJob) {
  auto results = run_pair({job("watch", {in_jail("inotify_shared"), "watch", kWindowMs}),
                           job("poke", {in_jail("inotify_shared"), "poke", kWindowMs})},
                          false);
  ASSERT_TRUE(results.count("watch") && results.count("poke"));
  const JobResult& watch = results["watch"];
  const JobResult& poke = results["poke"];
  SCOPED_TRACE("watch: " + describe(watch));
  SCOPED_TRACE("poke: " + describe(poke));
  EXPECT_EQ(outcome_of(poke), "DONE");
  // The default policy makes inotify_init1 fail with ENOSYS (this test found the channel: with
  // inotify allowed, the watching job saw every open and read the other job made of /progs).
  const std::string outcome = outcome_of(watch);
  if (outcome == "ENOSYS") return;  // refused at once: there was no window to overlap
  expect_overlap(watch, poke);
  EXPECT_TRUE(outcome == "NONE" || outcome == "SECCOMP") << outcome;
}

}  // namespace
}  // namespace jailpool
