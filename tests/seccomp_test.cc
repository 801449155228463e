// seccomp: every denied call kills a filtered child with SIGSYS (or, for the calls that fail
// softly, returns -1 with its errno and the child lives), everything a normal program needs still
// works under the filter, and the profile's lists are checked.
#include "isolate/seccomp.h"

#include <asm/unistd.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/io_uring.h>
#include <linux/keyctl.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>

#include "common/error.h"

extern char** environ;

namespace jailpool::isolate {
namespace {

// Runs `body` in a forked child that first installs `prog` (as a job's process does: no_new_privs,
// then seccomp(2)), and returns the child's wait status. The child has its own session and
// /dev/null as stdin, so a call that wrongly got through cannot reach the test's terminal; an
// alarm bounds it. The child exits with body's return value.
// `first`, when given, is installed before `prog` (as a job installs the lock ban).
int run_filtered(SeccompProgram& prog, const std::function<int()>& body,
                 const sock_fprog* first = nullptr) {
  const sock_fprog* fprog = prog.fprog();
  pid_t pid = ::fork();
  if (pid < 0) {
    ADD_FAILURE() << "fork: " << std::strerror(errno);
    return -1;
  }
  if (pid == 0) {
    ::alarm(20);
    ::setsid();
    int null = ::open("/dev/null", O_RDWR);
    if (null < 0 || ::dup2(null, 0) < 0) ::_exit(120);
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) ::_exit(121);
    if (first != nullptr && ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, first) != 0) {
      ::_exit(123);
    }
    if (fprog->len > 0 && ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, fprog) != 0) {
      ::_exit(122);
    }
    ::_exit(body());
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      ADD_FAILURE() << "waitpid: " << std::strerror(errno);
      return -1;
    }
  }
  return status;
}

std::string describe(int status) {
  if (WIFEXITED(status)) return "exited " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("killed by ") + ::strsignal(WTERMSIG(status));
  return "status " + std::to_string(status);
}

// Each evaluates its argument (a run_filtered call) exactly once.
::testing::AssertionResult killed_by_sigsys(int status) {
  if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << describe(status);
}
::testing::AssertionResult exited(int status, int code = 0) {
  if (WIFEXITED(status) && WEXITSTATUS(status) == code) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << describe(status);
}
#define EXPECT_SIGSYS(status) EXPECT_TRUE(killed_by_sigsys(status))
#define EXPECT_EXIT0(status) EXPECT_TRUE(exited(status))

SeccompProgram default_program() {
  Profile profile;
  profile.set_seccomp(SECCOMP_DEFAULT);
  return compile_seccomp(profile);
}

int dev_null() {
  return ::open("/dev/null", O_RDWR | O_CLOEXEC);
}

// A descriptor, opened with `flags`, of a fresh regular file of our own (already unlinked), so that
// locks and leases would succeed without the filter; -1 on error.
int temp_fd(int flags) {
  char path[] = "/tmp/jailpool-seccomp-XXXXXX";
  int fd = ::mkstemp(path);
  if (fd < 0) return -1;
  ::close(fd);
  fd = ::open(path, flags | O_CLOEXEC);
  ::unlink(path);
  return fd;
}

// --- denied calls --------------------------------------------------------------------------------

struct DeniedCall {
  const char* name;
  void (*call)();
};

// Arguments are the real ones where that is harmless, so a hole in the filter shows as a call that
// returns (the child then exits 0) rather than as a kill.
const DeniedCall kDeniedCalls[] = {
    {"bpf", [] { ::syscall(SYS_bpf, 0, nullptr, 0); }},
    {"perf_event_open", [] { ::syscall(SYS_perf_event_open, nullptr, 0, -1, -1, 0); }},
    {"keyctl", [] { ::syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, 0); }},
    {"add_key", [] { ::syscall(SYS_add_key, "user", "jailpool", "x", 1, KEY_SPEC_USER_KEYRING); }},
    {"io_uring_setup",
     [] {
       io_uring_params params{};
       ::syscall(SYS_io_uring_setup, 4, &params);
     }},
    {"userfaultfd", [] { ::syscall(SYS_userfaultfd, O_CLOEXEC); }},
    {"ptrace", [] { ::ptrace(PTRACE_PEEKDATA, ::getppid(), nullptr, nullptr); }},
    {"mount", [] { ::mount("none", "/nonexistent-jailpool", "tmpfs", 0, nullptr); }},
    {"fsopen", [] { ::syscall(SYS_fsopen, "tmpfs", 0); }},
    {"open_tree", [] { ::syscall(SYS_open_tree, AT_FDCWD, "/nonexistent-jailpool", 0); }},
    {"open_tree_attr", [] { ::syscall(467, AT_FDCWD, "/nonexistent-jailpool", 0, nullptr, 0); }},
    {"chroot", [] { ::chroot("/"); }},
    {"unshare_newns", [] { ::unshare(CLONE_NEWNS); }},
    {"unshare_newuser", [] { ::unshare(CLONE_NEWUSER); }},
    {"setns", [] { ::setns(-1, 0); }},
    {"clone_newnet",
     [] {
       long pid = ::syscall(SYS_clone, CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0);
       if (pid == 0) ::_exit(0);
       if (pid > 0) ::waitpid(static_cast<pid_t>(pid), nullptr, 0);
     }},
    {"clone_newuser",
     [] {
       long pid = ::syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
       if (pid == 0) ::_exit(0);
       if (pid > 0) ::waitpid(static_cast<pid_t>(pid), nullptr, 0);
     }},
    {"clone_newpid_thread_flags",
     [] {
       long pid = ::syscall(SYS_clone, CLONE_NEWPID | CLONE_FILES | CLONE_FS | SIGCHLD, 0, 0, 0, 0);
       if (pid == 0) ::_exit(0);
       if (pid > 0) ::waitpid(static_cast<pid_t>(pid), nullptr, 0);
     }},
    {"ioctl_tiocsti", [] { ::ioctl(0, TIOCSTI, "x"); }},
    // The kernel reads cmd as 32 bits: the upper half must not hide TIOCSTI (CVE-2019-10063).
    {"ioctl_tiocsti_high_bits",
     [] { ::syscall(SYS_ioctl, 0, static_cast<unsigned long>(TIOCSTI) | (1UL << 32), "x"); }},
    {"ioctl_tioclinux",
     [] {
       char sub = 6;
       ::ioctl(0, TIOCLINUX, &sub);
     }},
    {"socket_vsock", [] { ::socket(AF_VSOCK, SOCK_STREAM, 0); }},
    {"socket_packet", [] { ::socket(AF_PACKET, SOCK_RAW, 0); }},
    {"x32_getpid", [] { ::syscall(__X32_SYSCALL_BIT | __NR_getpid); }},
    {"x32_highest_number", [] { ::syscall(__X32_SYSCALL_BIT | 0x3fffffff); }},
};

void PrintTo(const DeniedCall& call, std::ostream* os) {
  *os << call.name;
}

class DeniedCallTest : public ::testing::TestWithParam<DeniedCall> {};

TEST_P(DeniedCallTest, KillsWithSigsys) {
  SeccompProgram prog = default_program();
  void (*call)() = GetParam().call;
  int status = run_filtered(prog, [call] {
    call();
    return 0;
  });
  EXPECT_SIGSYS(status);
}

INSTANTIATE_TEST_SUITE_P(Default, DeniedCallTest, ::testing::ValuesIn(kDeniedCalls),
                         [](const auto& info) { return std::string(info.param.name); });

// --- calls that fail softly ----------------------------------------------------------------------

struct SoftDeniedCall {
  const char* name;
  long (*call)();
  int err;  // what the call fails with under the filter
};

struct flock write_lock() {
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  return fl;
}

// inotify, leases, dnotify and personality changes return -1 with an errno, and the process
// lives. The calls are real ones that succeed without the filter (checked below).
const SoftDeniedCall kSoftDeniedCalls[] = {
    {"inotify_init1", [] { return long{::inotify_init1(IN_CLOEXEC)}; }, ENOSYS},
    {"fanotify_init", [] { return ::syscall(SYS_fanotify_init, 0, O_RDONLY); }, ENOSYS},
    {"fcntl_setlease", [] { return long{::fcntl(temp_fd(O_RDONLY), F_SETLEASE, F_RDLCK)}; }, EPERM},
    {"fcntl_notify",
     [] { return long{::fcntl(::open("/", O_RDONLY | O_DIRECTORY), F_NOTIFY, DN_CREATE)}; }, EPERM},
    // Setting plain PER_LINUX is refused too (the price of a one-rule filter).
    {"personality_per_linux", [] { return long{::personality(PER_LINUX)}; }, EPERM},
    {"personality_addr_no_randomize", [] { return long{::personality(ADDR_NO_RANDOMIZE)}; }, EPERM},
    {"personality_read_implies_exec", [] { return long{::personality(READ_IMPLIES_EXEC)}; }, EPERM},
    {"personality_linux32", [] { return long{::personality(PER_LINUX32)}; }, EPERM},
    {"personality_all_but_one_bit", [] { return long{::personality(0xfffffffeUL)}; }, EPERM},
    {"personality_high_flag", [] { return long{::personality(0x80000000UL)}; }, EPERM},
    // The upper half must not hide a change; it even refuses a query with it set (all 64 bits
    // are compared), which the kernel would allow.
    {"personality_high_bits",
     [] { return ::syscall(SYS_personality, (1UL << 32) | ADDR_NO_RANDOMIZE); }, EPERM},
    {"personality_query_high_bits", [] { return ::syscall(SYS_personality, 0x1ffffffffUL); },
     EPERM},
};

void PrintTo(const SoftDeniedCall& call, std::ostream* os) {
  *os << call.name;
}

// Exits 0 if the call failed with `err`, 1 if it succeeded, 2 + errno if it failed otherwise.
int soft_call_status(long (*call)(), int err) {
  errno = 0;
  long ret = call();
  if (ret != -1) return 1;
  return errno == err ? 0 : std::min(2 + errno, 255);
}

class SoftDeniedCallTest : public ::testing::TestWithParam<SoftDeniedCall> {};

TEST_P(SoftDeniedCallTest, FailsWithErrno) {
  SeccompProgram prog = default_program();
  SoftDeniedCall param = GetParam();
  EXPECT_EXIT0(run_filtered(prog, [param] { return soft_call_status(param.call, param.err); }));
}

// The check itself: without the filter the call succeeds, so the errno above is the filter's.
TEST_P(SoftDeniedCallTest, SucceedsWithoutAFilter) {
  SeccompProgram none;
  SoftDeniedCall param = GetParam();
  EXPECT_TRUE(
      exited(run_filtered(none, [param] { return soft_call_status(param.call, param.err); }), 1));
}

INSTANTIATE_TEST_SUITE_P(Default, SoftDeniedCallTest, ::testing::ValuesIn(kSoftDeniedCalls),
                         [](const auto& info) { return std::string(info.param.name); });

// File locks: the default policy allows them (a jail's files are its own inodes, overlay.h);
// the lock ban, which a job installs as well when its jail could not get them, refuses them
// with ENOLCK, and the process lives.
struct LockCall {
  const char* name;
  long (*call)();
};
const LockCall kLockCalls[] = {
    {"flock", [] { return long{::flock(temp_fd(O_RDWR), LOCK_EX)}; }},
    {
        "flock_shared_nonblocking",
        [] { return long{::flock(temp_fd(O_RDONLY), LOCK_SH | LOCK_NB)}; },
    },
    {
        "fcntl_setlk",
        [] {
          struct flock fl = write_lock();
          return long{::fcntl(temp_fd(O_RDWR), F_SETLK, &fl)};
        },
    },
    {
        "fcntl_setlkw",
        [] {
          struct flock fl = write_lock();
          return long{::fcntl(temp_fd(O_RDWR), F_SETLKW, &fl)};
        },
    },
    {
        "fcntl_ofd_setlk",
        [] {
          struct flock fl = write_lock();
          return long{::fcntl(temp_fd(O_RDWR), F_OFD_SETLK, &fl)};
        },
    },
    {
        "fcntl_ofd_setlkw",
        [] {
          struct flock fl = write_lock();
          return long{::fcntl(temp_fd(O_RDWR), F_OFD_SETLKW, &fl)};
        },
    },
    // The kernel reads cmd as 32 bits: the upper half must not hide F_SETLK.
    {
        "fcntl_setlk_high_bits",
        [] {
          struct flock fl = write_lock();
          return ::syscall(SYS_fcntl, temp_fd(O_RDWR), F_SETLK | (1UL << 32), &fl);
        },
    },
};

void PrintTo(const LockCall& call, std::ostream* os) {
  *os << call.name;
}

class LockCallTest : public ::testing::TestWithParam<LockCall> {};

TEST_P(LockCallTest, AllowedByTheDefaultPolicy) {
  SeccompProgram prog = default_program();
  LockCall param = GetParam();
  EXPECT_TRUE(
      exited(run_filtered(prog, [param] { return soft_call_status(param.call, ENOLCK); }), 1));
}

TEST_P(LockCallTest, RefusedByTheLockBan) {
  SeccompProgram prog = default_program();
  ASSERT_NE(prog.lock_ban_fprog(), nullptr);
  LockCall param = GetParam();
  EXPECT_EXIT0(run_filtered(
      prog, [param] { return soft_call_status(param.call, ENOLCK); }, prog.lock_ban_fprog()));
}

INSTANTIATE_TEST_SUITE_P(Default, LockCallTest, ::testing::ValuesIn(kLockCalls),
                         [](const auto& info) { return std::string(info.param.name); });

// The ban leaves the rest of fcntl alone, F_GETLK included, and exists in the default mode only.
TEST(Seccomp, LockBanKeepsTheRestOfFcntl) {
  SeccompProgram prog = default_program();
  EXPECT_EXIT0(run_filtered(
      prog,
      [] {
        int fd = temp_fd(O_RDWR);
        struct flock fl = write_lock();
        if (::fcntl(fd, F_GETLK, &fl) != 0 || fl.l_type != F_UNLCK) return 1;
        int flags = ::fcntl(fd, F_GETFL);
        return flags >= 0 && ::fcntl(fd, F_SETFL, flags | O_APPEND) == 0 ? 0 : 2;
      },
      prog.lock_ban_fprog()));
  Profile allow;
  allow.set_seccomp(SECCOMP_ALLOW_LIST);
  allow.add_seccomp_allow("exit_group");
  allow.add_seccomp_allow("flock");
  EXPECT_EQ(compile_seccomp(allow).lock_ban_fprog(), nullptr);
  Profile none;
  none.set_seccomp(SECCOMP_NONE);
  EXPECT_EQ(compile_seccomp(none).lock_ban_fprog(), nullptr);
}

// AF_ALG (the kernel's crypto API) fails as if the kernel did not have it.
TEST(Seccomp, AfAlgSocketIsRefused) {
  SeccompProgram none;
  auto af_alg = [] {
    int fd = ::socket(AF_ALG, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    return fd >= 0 ? 0 : errno == EAFNOSUPPORT ? 1 : 2;
  };
  if (!exited(run_filtered(none, af_alg), 0)) {
    GTEST_SKIP() << "this kernel has no AF_ALG (CONFIG_CRYPTO_USER_API)";
  }
  SeccompProgram prog = default_program();
  EXPECT_TRUE(exited(run_filtered(prog, af_alg), 1));
}

// The i386 ABI (int 0x80 from a 64-bit process) hits the bad-arch action.
#if defined(__x86_64__)
long i386_getpid() {
  long ret;
  asm volatile("int $0x80" : "=a"(ret) : "a"(20L) : "rcx", "r8", "r9", "r10", "r11", "memory");
  return ret;
}

TEST(Seccomp, I386AbiKills) {
  SeccompProgram none;
  int status = run_filtered(none, [] { return i386_getpid() == ::getpid() ? 0 : 1; });
  if (!exited(status)) {
    GTEST_SKIP() << "no i386 emulation in this kernel (" << describe(status) << ")";
  }
  SeccompProgram prog = default_program();
  EXPECT_SIGSYS(run_filtered(prog, [] { return i386_getpid() > 0 ? 0 : 1; }));
}
#endif

// Every call on the unconditional list, called with junk arguments (-1: bad fds, pointers and
// flags, so a call that got through would fail harmlessly), kills; clone3 and the inotify calls
// fail with their errno instead.
TEST(Seccomp, EveryUnconditionalDenialKills) {
  SeccompProgram prog = default_program();
  for (const std::string& name : default_denied_syscalls()) {
    int nr = ::seccomp_syscall_resolve_name(name.c_str());
    if (name == "open_tree_attr" && nr < 0) nr = 467;
    ASSERT_GE(nr, 0) << name;
    int err = name == "clone3" || name.find("notify_init") != std::string::npos ? ENOSYS : 0;
    int status = run_filtered(prog, [nr, err] {
      long ret = ::syscall(nr, -1L, -1L, -1L, -1L, -1L, -1L);
      return ret == -1 && errno == err ? 0 : 1;
    });
    if (err != 0) {
      EXPECT_EXIT0(status) << " for " << name;
    } else {
      EXPECT_SIGSYS(status) << " for " << name;
    }
  }
}

// clone3 fails with ENOSYS (glibc then falls back to clone), whatever its flags.
TEST(Seccomp, Clone3FailsWithEnosys) {
  SeccompProgram prog = default_program();
  int status = run_filtered(prog, [] {
    clone_args args{};
    args.flags = CLONE_NEWUSER | CLONE_NEWNS;
    args.exit_signal = SIGCHLD;
    long pid = ::syscall(SYS_clone3, &args, sizeof args);
    if (pid == 0) ::_exit(0);
    if (pid > 0) {
      ::waitpid(static_cast<pid_t>(pid), nullptr, 0);
      return 1;
    }
    return errno == ENOSYS ? 0 : 2;
  });
  EXPECT_EXIT0(status);
}

// --- what must keep working --------------------------------------------------------------------

void* thread_main(void* arg) {
  *static_cast<int*>(arg) = 42;
  return nullptr;
}

// The everyday calls of a program, each step with its own exit code.
int everyday_calls() {
  if (::getpid() <= 0) return 1;
  char path[] = "/tmp/jailpool-seccomp-XXXXXX";
  int fd = ::mkstemp(path);
  if (fd < 0) return 2;
  ::unlink(path);
  if (::write(fd, "hello", 5) != 5) return 3;
  char buf[8] = {};
  if (::pread(fd, buf, 5, 0) != 5 || std::memcmp(buf, "hello", 5) != 0) return 4;
  int status_fd = ::open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  if (status_fd < 0 || ::read(status_fd, buf, sizeof buf) <= 0) return 5;
  ::close(status_fd);

  // Threads: glibc 2.34+ tries clone3 first and must fall back to clone.
  int value = 0;
  pthread_t thread;
  if (::pthread_create(&thread, nullptr, thread_main, &value) != 0) return 6;
  if (::pthread_join(thread, nullptr) != 0 || value != 42) return 7;

  pid_t pid = ::fork();
  if (pid < 0) return 8;
  if (pid == 0) ::_exit(9);
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 9) {
    return 10;
  }

  // posix_spawn: glibc uses clone3(CLONE_VM | CLONE_VFORK), then clone.
  char arg0[] = "true";
  char* argv[] = {arg0, nullptr};
  if (::posix_spawn(&pid, "/bin/true", nullptr, nullptr, argv, environ) != 0) return 11;
  if (::waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return 12;
  }

  if (::personality(0xffffffff) < 0) return 13;  // the query (changes fail: see above)

  void* mem = ::mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return 15;
  static_cast<char*>(mem)[4096] = 1;
  if (::munmap(mem, 1 << 20) != 0) return 16;

  // Allowed forms of the calls with argument rules.
  struct flock fl {};
  fl.l_type = F_WRLCK;
  if (::fcntl(fd, F_GETLK, &fl) != 0) return 17;
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_APPEND) != 0) return 18;
  int nbytes = 0;
  if (::ioctl(fd, FIONREAD, &nbytes) != 0) return 19;
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return 20;
  int netlink = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, 0);
  if (netlink < 0) return 21;
  int inet = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (inet < 0) return 22;
  // clone with plain flags, as fork does.
  long child =
      ::syscall(SYS_clone, CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | SIGCHLD, 0, 0, 0, 0);
  if (child == 0) ::_exit(0);
  if (child < 0 || ::waitpid(static_cast<pid_t>(child), nullptr, 0) != child) return 23;
  return 0;
}

TEST(Seccomp, EverydayCallsWorkUnderTheFilter) {
  SeccompProgram prog = default_program();
  EXPECT_EXIT0(run_filtered(prog, everyday_calls));
}

// The check itself: the same steps pass with no filter.
TEST(Seccomp, EverydayCallsWorkWithoutAFilter) {
  SeccompProgram none;
  EXPECT_EXIT0(run_filtered(none, everyday_calls));
}

TEST(Seccomp, ShellRunsUnderTheFilter) {
  SeccompProgram prog = default_program();
  int status = run_filtered(prog, [] {
    ::execl("/bin/sh", "sh", "-c", "/bin/true && ls / >/dev/null && exit 7", nullptr);
    return 127;
  });
  EXPECT_TRUE(exited(status, 7));
}

// --- modes and lists ----------------------------------------------------------------------------

TEST(Seccomp, NoneGivesAnEmptyProgram) {
  Profile profile;
  profile.set_seccomp(SECCOMP_NONE);
  SeccompProgram prog = compile_seccomp(profile);
  EXPECT_TRUE(prog.empty());
  EXPECT_EQ(prog.size(), 0u);
}

// The instructions the kernel runs for a syscall number with every argument 0, as it does when
// it prepares a filter's action cache at attach time (seccomp_cache_prepare, 5.11): it emulates
// the filter for each native number and gives up at the first load of an argument. That walk
// under the sighand lock was most of the attach cost of a linear filter here (512 us against
// 196 us for the same policy compiled as a binary tree). Returns the count until a return or an
// argument load; -1 for an instruction this walk does not know.
int instructions_run(SeccompProgram& prog, uint32_t arch, uint32_t nr) {
  const sock_filter* insns = prog.fprog()->filter;
  uint32_t acc = 0;
  int run = 0;
  for (size_t pc = 0; pc < prog.size(); ++pc) {
    const sock_filter& in = insns[pc];
    ++run;
    switch (in.code) {
      case BPF_LD | BPF_W | BPF_ABS:
        if (in.k == offsetof(seccomp_data, nr)) {
          acc = nr;
        } else if (in.k == offsetof(seccomp_data, arch)) {
          acc = arch;
        } else {
          return run;  // an argument (or the instruction pointer): not a constant path
        }
        break;
      case BPF_RET | BPF_K:
        return run;
      case BPF_JMP | BPF_JA:
        pc += in.k;
        break;
      case BPF_JMP | BPF_JEQ | BPF_K:
        pc += acc == in.k ? in.jt : in.jf;
        break;
      case BPF_JMP | BPF_JGT | BPF_K:
        pc += acc > in.k ? in.jt : in.jf;
        break;
      case BPF_JMP | BPF_JGE | BPF_K:
        pc += acc >= in.k ? in.jt : in.jf;
        break;
      case BPF_JMP | BPF_JSET | BPF_K:
        pc += (acc & in.k) != 0 ? in.jt : in.jf;
        break;
      case BPF_ALU | BPF_AND | BPF_K:
        acc &= in.k;
        break;
      default:
        return -1;
    }
  }
  return -1;
}

TEST(Seccomp, DefaultProgramIsShallowAndStable) {
  SeccompProgram a = default_program();
  SeccompProgram b = default_program();
  ASSERT_FALSE(a.empty());
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(std::memcmp(a.fprog()->filter, b.fprog()->filter, a.size() * sizeof(sock_filter)), 0);
  // Compiled as a binary tree (libseccomp's optimization level 2): any call is decided in a
  // couple of dozen instructions; the linear layout took up to ~70 for an allowed one.
  int deepest = 0;
  for (uint32_t nr = 0; nr < 512; ++nr) {
    int run = instructions_run(a, native_audit_arch(), nr);
    ASSERT_GT(run, 0) << "syscall " << nr << ": an instruction the walk does not know";
    deepest = std::max(deepest, run);
  }
  EXPECT_LE(deepest, 24);
  EXPECT_LT(a.size(), 200u);
  std::printf("default policy: %zu BPF instructions, at most %d run per call\n", a.size(), deepest);
}

// An allow-list profile. Unless empty, it also allows sigaltstack, which the sanitizers' runtime
// calls on the way out of a child (JAILPOOL_SANITIZE builds).
Profile allow_list(std::initializer_list<const char*> names) {
  Profile profile;
  profile.set_seccomp(SECCOMP_ALLOW_LIST);
  for (const char* name : names) profile.add_seccomp_allow(name);
  if (names.size() > 0) profile.add_seccomp_allow("sigaltstack");
  return profile;
}

TEST(Seccomp, AllowListRunsOnlyTheNamedCalls) {
  SeccompProgram prog = compile_seccomp(allow_list({"exit_group", "write"}));
  int pipefd[2];
  ASSERT_EQ(::pipe(pipefd), 0);
  EXPECT_EXIT0(run_filtered(prog, [&] { return ::write(pipefd[1], "ok", 2) == 2 ? 0 : 1; }));
  EXPECT_SIGSYS(run_filtered(prog, [] { return ::syscall(SYS_getpid) > 0 ? 0 : 1; }));
  ::close(pipefd[0]);
  ::close(pipefd[1]);
}

TEST(Seccomp, EmptyAllowListKillsEverything) {
  SeccompProgram prog = compile_seccomp(allow_list({}));
  ASSERT_FALSE(prog.empty());
  EXPECT_SIGSYS(run_filtered(prog, [] { return 0; }));  // even exit_group
}

TEST(Seccomp, AllowListStillKillsForeignAbis) {
  SeccompProgram prog = compile_seccomp(allow_list({"exit_group", "getpid"}));
  EXPECT_EXIT0(run_filtered(prog, [] { return ::syscall(SYS_getpid) > 0 ? 0 : 1; }));
  EXPECT_SIGSYS(run_filtered(prog, [] {
    ::syscall(__X32_SYSCALL_BIT | __NR_getpid);
    return 0;
  }));
}

TEST(Seccomp, AllowListDenyWins) {
  Profile profile = allow_list({"exit_group", "getpid", "getppid"});
  profile.add_seccomp_deny("getppid");
  SeccompProgram prog = compile_seccomp(profile);
  EXPECT_EXIT0(run_filtered(prog, [] { return ::syscall(SYS_getpid) > 0 ? 0 : 1; }));
  EXPECT_SIGSYS(run_filtered(prog, [] { return ::syscall(SYS_getppid) > 0 ? 0 : 1; }));
}

TEST(Seccomp, ExtraDenyAddsToTheDefault) {
  Profile profile;
  profile.add_seccomp_deny("getppid");
  profile.add_seccomp_deny("ioctl");   // replaces the TIOCSTI/TIOCLINUX rules: any ioctl kills
  profile.add_seccomp_deny("clone3");  // already denied (ENOSYS): stays so, no error
  profile.add_seccomp_deny("bpf");     // already denied
  SeccompProgram prog = compile_seccomp(profile);
  EXPECT_SIGSYS(run_filtered(prog, [] { return ::syscall(SYS_getppid) > 0 ? 0 : 1; }));
  EXPECT_SIGSYS(run_filtered(prog, [] {
    int n;
    ::ioctl(0, FIONREAD, &n);
    return 0;
  }));
  EXPECT_EXIT0(run_filtered(
      prog, [] { return ::syscall(SYS_clone3, nullptr, 0) < 0 && errno == ENOSYS ? 0 : 1; }));
  EXPECT_EXIT0(run_filtered(prog, [] { return ::syscall(SYS_getpid) > 0 ? 0 : 1; }));
}

// seccomp_deny turns the soft denials into kills: any flock, fcntl or personality call.
TEST(Seccomp, ExtraDenyKillsSoftDenials) {
  Profile profile;
  profile.add_seccomp_deny("flock");
  profile.add_seccomp_deny("fcntl");
  profile.add_seccomp_deny("personality");
  SeccompProgram prog = compile_seccomp(profile);
  EXPECT_SIGSYS(run_filtered(prog, [] { return ::flock(dev_null(), LOCK_EX); }));
  EXPECT_SIGSYS(run_filtered(prog, [] {
    struct flock fl = write_lock();
    return ::fcntl(dev_null(), F_SETLK, &fl);
  }));
  // The lock ban leaves denied calls to the main filter (its errno would outrank a notification).
  EXPECT_SIGSYS(run_filtered(
      prog, [] { return ::flock(dev_null(), LOCK_EX); }, prog.lock_ban_fprog()));
  EXPECT_SIGSYS(run_filtered(
      prog,
      [] {
        struct flock fl = write_lock();
        return ::fcntl(dev_null(), F_SETLK, &fl);
      },
      prog.lock_ban_fprog()));
  EXPECT_SIGSYS(run_filtered(prog, [] { return ::fcntl(0, F_GETFL) >= 0 ? 0 : 1; }));
  EXPECT_SIGSYS(run_filtered(prog, [] { return ::personality(0xffffffff) >= 0 ? 0 : 1; }));
  EXPECT_EXIT0(run_filtered(prog, [] { return ::syscall(SYS_getpid) > 0 ? 0 : 1; }));
}

TEST(Seccomp, UnknownNamesAreConfigErrors) {
  Profile allow = allow_list({"exit_group", "no_such_call"});
  try {
    compile_seccomp(allow);
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.field(), "seccomp_allow");
    EXPECT_NE(std::string(e.what()).find("unknown syscall no_such_call"), std::string::npos)
        << e.what();
  }

  Profile deny;
  deny.add_seccomp_deny("getpid");
  deny.add_seccomp_deny("frobnicate");
  try {
    compile_seccomp(deny);
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.field(), "seccomp_deny");
    EXPECT_NE(std::string(e.what()).find("unknown syscall frobnicate"), std::string::npos)
        << e.what();
  }

  // Checked even with the filter off.
  deny.set_seccomp(SECCOMP_NONE);
  EXPECT_THROW(compile_seccomp(deny), ConfigError);
}

#if defined(__x86_64__)
// A real syscall of another architecture (socketcall is i386's) is accepted and skipped, so one
// profile can serve several architectures.
TEST(Seccomp, NamesOfOtherArchitecturesAreSkipped) {
  Profile profile = allow_list({"exit_group", "getpid", "socketcall"});
  profile.add_seccomp_deny("socketcall");
  SeccompProgram prog = compile_seccomp(profile);
  EXPECT_EXIT0(run_filtered(prog, [] { return ::syscall(SYS_getpid) > 0 ? 0 : 1; }));

  Profile deny;
  deny.add_seccomp_deny("socketcall");
  EXPECT_FALSE(compile_seccomp(deny).empty());
}
#endif

TEST(Seccomp, DefaultDeniedList) {
  const auto& names = default_denied_syscalls();
  auto has = [&](const char* name) { return std::count(names.begin(), names.end(), name) == 1; };
  for (const char* name : {"bpf", "io_uring_setup", "keyctl", "mount", "unshare", "setns",
                           "kexec_load", "open_by_handle_at", "clone3", "ptrace"}) {
    EXPECT_TRUE(has(name)) << name;
  }
  // Calls denied only for some arguments are not on the list, nor flock (allowed: a jail's
  // files are its own).
  for (const char* name : {"clone", "ioctl", "socket", "fcntl", "personality", "getpid", "flock"}) {
    EXPECT_FALSE(has(name)) << name;
  }
}

TEST(Seccomp, SyscallName) {
  EXPECT_EQ(syscall_name(SYS_getpid), "getpid");
  EXPECT_EQ(syscall_name(SYS_clone3), "clone3");
  EXPECT_EQ(syscall_name(100000), "syscall 100000");
}

}  // namespace

// Profile.socket_families: the named families work, every other fails as if absent.
int socket_outcome(int family) {
  int fd = ::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd >= 0) {
    ::close(fd);
    return 0;
  }
  return errno == EAFNOSUPPORT ? 1 : 2;
}

TEST(Seccomp, SocketFamiliesRestrictSocket) {
  SeccompProgram none;
  ASSERT_TRUE(exited(run_filtered(none, [] { return socket_outcome(AF_INET); }), 0));
  ASSERT_TRUE(exited(run_filtered(none, [] { return socket_outcome(AF_INET6); }), 0));

  Profile profile;
  profile.set_seccomp(SECCOMP_DEFAULT);
  profile.add_socket_families("unix");
  profile.add_socket_families("netlink");
  SeccompProgram prog = compile_seccomp(profile);
  EXPECT_TRUE(exited(run_filtered(prog, [] { return socket_outcome(AF_UNIX); }), 0));
  EXPECT_TRUE(exited(run_filtered(prog, [] { return socket_outcome(AF_INET); }), 1));
  EXPECT_TRUE(exited(run_filtered(prog, [] { return socket_outcome(AF_INET6); }), 1));
  // The upper half of the register does not hide a family.
  EXPECT_TRUE(exited(run_filtered(prog,
                                  [] {
                                    long fd = ::syscall(SYS_socket, AF_INET | (1L << 32),
                                                        SOCK_DGRAM | SOCK_CLOEXEC, 0);
                                    return fd >= 0 ? 0 : errno == EAFNOSUPPORT ? 1 : 2;
                                  }),
                     1));
  // The default policy's denials stay: packet sockets still kill.
  EXPECT_SIGSYS(run_filtered(prog, [] { return socket_outcome(AF_PACKET); }));

  // In an allow-list, socket is allowed only for the named families.
  Profile allow = allow_list({"socket", "close", "exit_group"});
  allow.add_socket_families("unix");
  SeccompProgram allow_prog = compile_seccomp(allow);
  EXPECT_TRUE(exited(run_filtered(allow_prog, [] { return socket_outcome(AF_UNIX); }), 0));
  EXPECT_SIGSYS(run_filtered(allow_prog, [] { return socket_outcome(AF_INET); }));
}

TEST(Seccomp, UnknownSocketFamilyNamesTheField) {
  Profile profile;
  profile.add_socket_families("unix");
  profile.add_socket_families("carrier-pigeon");
  try {
    compile_seccomp(profile);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("socket_families[1]"), std::string::npos) << e.what();
  }
}

}  // namespace jailpool::isolate
