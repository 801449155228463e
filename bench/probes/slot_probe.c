// Lower bound of a slot's per-job kernel work, against a bare launch, side by side in one run.
// Run it (as root, on an idle machine; it makes and removes jailpool-probe-<pid> cgroups):
//   cc -O2 -Wall -o /tmp/slot_probe bench/probes/slot_probe.c -lseccomp
//   /tmp/slot_probe build/bench/noop [workers=2] [seconds=2] [rounds=3]
// Modes (each worker a process of its own, rounds interleaved):
//   bare  : clone(CLONE_VM|CLONE_VFORK) + exec + wait, no isolation.
//   slot  : a slot S made once (NEWPID|NEWNS|NEWIPC|NEWUTS|NEWNET, no_new_privs, a ~60-call
//           deny-list filter attached to itself). Per job: the driver wakes S (eventfd), S
//           clone(VM|VFORK)s J, J writes "0" into the v2 and the v1 memory and pids
//           cgroup.procs fds, setresuid(65534), close_range, exec; S waits, kill(-1, SIGKILL),
//           reaps, wakes the driver (eventfd). Cgroups are reused (no reset: a bound).
//           Hierarchies not mounted (e.g. /sys/fs/cgroup/unified on pure v1) are skipped.
//   full  : slot, plus the rest of the kernel work a complete design does per job, so that the
//           bound covers the whole requirement (exact accounting, captured output, a complete
//           reset), as jailpool's slots do it: the driver resets the v1 memory peak (a write and
//           a read) before the job, and after it reads 6 accounting files (v2 cpu.stat, v1
//           memory max_usage, failcnt, oom_control, pids.peak, pids.events) and drains the
//           job's stdout and stderr (pipes made once per slot); J also joins a cgroup namespace
//           of its own, takes a process group and sets 5 rlimits; S, after reaping, sets its pid
//           namespace's last pid back, moves into a new ipc namespace, fstat+fstatfs the roots
//           of its 3 tmpfs (/tmp, /box, /dev/shm), reads its net namespace's counters (dev, snmp,
//           snmp6) and socket counts (sockstat, sockstat6) and checks the hostname.
// (jailpool's slots cannot use clone3(CLONE_INTO_CGROUP): their filter makes clone3 ENOSYS.)
// Prints jobs/s and p50 latency (driver's wake to S's done) per mode and round, and CPU per job:
//   launcher: the driver's own (bare: its clone and wait; slot: its two eventfd calls);
//   slot init: S's own (its clone, wait, kill, reap and wake-ups);
//   job: the jobs' processes, from their clone to their exit (their pre-exec steps included).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char* prog;
static int cg_fds[3] = {-1, -1, -1};  // v2, v1 memory, v1 pids cgroup.procs
static char* const argv_[] = {"noop", NULL};
static char* const envp_[] = {NULL};
static int full;                                   // the "full" mode
static int out_pipe[2][2] = {{-1, -1}, {-1, -1}};  // full: the job's stdout, stderr

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int job_bare(void* arg) {
  (void)arg;
  execve(prog, argv_, envp_);
  _exit(127);
}

static int job_slot(void* arg) {
  (void)arg;
  for (int i = 0; i < 3; ++i)
    if (cg_fds[i] >= 0 && write(cg_fds[i], "0", 1) < 0) _exit(120 + i);
  if (full) {
    if (unshare(CLONE_NEWCGROUP) || setpgid(0, 0)) _exit(119);
    static const int res[] = {RLIMIT_CORE, RLIMIT_CPU, RLIMIT_FSIZE, RLIMIT_NOFILE, RLIMIT_STACK};
    static const rlim_t val[] = {0, 11, 64 << 20, 256, 64 << 20};
    for (int i = 0; i < 5; ++i) {
      struct rlimit rl = {val[i], val[i]};
      if (setrlimit(res[i], &rl)) _exit(118);
    }
    if (dup2(out_pipe[0][1], 1) < 0 || dup2(out_pipe[1][1], 2) < 0) _exit(117);
  }
  if (setgroups(0, NULL) || setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
    _exit(125);
  syscall(SYS_close_range, 3, ~0U, 0);
  execve(prog, argv_, envp_);
  _exit(127);
}

static char jstack[65536] __attribute__((aligned(64)));

static pid_t spawn(int (*fn)(void*)) {
  return clone(fn, jstack + sizeof jstack, CLONE_VM | CLONE_VFORK | SIGCHLD, NULL);
}

static void install_filter(void) {
  // clang-format off
  static const char* deny[] = {"mount", "umount2", "setns", "pivot_root", "chroot", "bpf",
      "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key", "ptrace",
      "process_vm_readv", "process_vm_writev", "kexec_load", "init_module", "finit_module",
      "delete_module", "open_by_handle_at", "name_to_handle_at", "acct", "swapon", "swapoff",
      "reboot", "settimeofday", "clock_settime", "syslog", "io_uring_setup", "io_uring_enter",
      "fsopen", "fsmount", "open_tree", "move_mount", "iopl", "ioperm", "quotactl"};
  // clang-format on
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  for (size_t i = 0; i < sizeof deny / sizeof *deny; ++i)
    seccomp_rule_add(ctx, SCMP_ACT_KILL_PROCESS, seccomp_syscall_resolve_name(deny[i]), 0);
  // unshare: only CLONE_NEWIPC and CLONE_NEWCGROUP (one kill rule per other flag bit).
  for (int bit = 0; bit < 32; ++bit) {
    unsigned flag = 1u << bit;
    if (flag == CLONE_NEWIPC || flag == CLONE_NEWCGROUP) continue;
    seccomp_rule_add(ctx, SCMP_ACT_KILL_PROCESS, SCMP_SYS(unshare), 1,
                     SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag));
  }
  seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
  seccomp_rule_add(ctx, SCMP_ACT_KILL_PROCESS, SCMP_SYS(clone), 1,
                   SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWPID, CLONE_NEWPID));
  seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 1);
  if (seccomp_load(ctx) < 0) {
    perror("seccomp_load");
    exit(1);
  }
  seccomp_release(ctx);
}

// The slot: pid 1 of its namespaces; serves jobs until the go eventfd says 0 (never here).
static int go_fd, done_fd;
static uint64_t* slot_cpu;  // S's own and its children's CPU (ns), written when told to stop

static uint64_t tv_ns(struct timeval a, struct timeval b) {
  return ((uint64_t)a.tv_sec + (uint64_t)b.tv_sec) * 1000000000ull +
         ((uint64_t)a.tv_usec + (uint64_t)b.tv_usec) * 1000ull;
}

static void cpu_of(int who, uint64_t* out) {
  struct rusage ru;
  getrusage(who, &ru);
  *out = tv_ns(ru.ru_utime, ru.ru_stime);
}

static int reset_fail(int code) {
  _exit(code);
}

static int slot_main(void) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  int last_pid = -1, roots[3] = {-1, -1, -1}, net[5];
  static char seen[5][8192], now[8192];
  ssize_t seen_len[5];
  if (full) {
    // Its own tmpfs on /tmp, /box (made in the private /tmp) and /dev/shm, never propagated.
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)) _exit(10);
    const char* where[3] = {"/tmp", "/tmp/box", "/dev/shm"};
    for (int i = 0; i < 3; ++i) {
      if (i == 1) mkdir("/tmp/box", 0755);
      if (mount("tmpfs", where[i], "tmpfs", MS_NOSUID | MS_NODEV, "size=64m")) _exit(11);
      roots[i] = open(where[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    last_pid = open("/proc/sys/kernel/ns_last_pid", O_WRONLY | O_CLOEXEC);
    const char* files[5] = {"/proc/self/net/dev", "/proc/self/net/snmp", "/proc/self/net/snmp6",
                            "/proc/self/net/sockstat", "/proc/self/net/sockstat6"};
    for (int i = 0; i < 5; ++i) {
      net[i] = open(files[i], O_RDONLY | O_CLOEXEC);
      seen_len[i] = pread(net[i], seen[i], sizeof seen[i], 0);
    }
    if (last_pid < 0 || roots[0] < 0) _exit(12);
  }
  install_filter();
  for (;;) {
    uint64_t v;
    if (read(go_fd, &v, 8) != 8) _exit(1);
    if (v == 2) {  // stop: report CPU
      uint64_t mine, children;
      cpu_of(RUSAGE_SELF, &mine);
      cpu_of(RUSAGE_CHILDREN, &children);
      slot_cpu[0] += mine;  // the slots of a worker stop one after the other
      slot_cpu[1] += children;
      v = 1;
      if (write(done_fd, &v, 8) != 8) _exit(3);
      _exit(0);
    }
    pid_t pid = spawn(job_slot);
    if (pid < 0) _exit(2);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    kill(-1, SIGKILL);
    int other;
    while (waitpid(-1, &other, WNOHANG | __WALL) > 0) {
    }
    v = (uint64_t)st + 1;
    if (write(done_fd, &v, 8) != 8) _exit(3);
    if (full) {  // the reset, after the result (off the job's latency, as in jailpool)
      if (pwrite(last_pid, "1", 1, 0) != 1) reset_fail(20);
      if (unshare(CLONE_NEWIPC)) reset_fail(21);
      for (int i = 0; i < 3; ++i) {
        struct stat sb;
        struct statfs fb;
        if (fstat(roots[i], &sb) || fstatfs(roots[i], &fb)) reset_fail(22);
      }
      for (int i = 0; i < 5; ++i) {
        ssize_t n = pread(net[i], now, sizeof now, 0);
        if (i < 3 && (n != seen_len[i] || memcmp(now, seen[i], (size_t)n) != 0)) reset_fail(23);
      }
      struct utsname u;
      if (uname(&u)) reset_fail(24);
    }
  }
}

static int cmp(const void* a, const void* b) {
  uint64_t x = *(const uint64_t*)a, y = *(const uint64_t*)b;
  return x < y ? -1 : x > y;
}

// One worker: runs jobs for `seconds`; writes count, p50 (µs) and the CPU (ns) of the launcher,
// the slot init and the jobs to out[0..4].
static void worker(const char* mode, int index, double seconds, uint64_t* out) {
  char path[256];
  const char* base[3] = {"/sys/fs/cgroup/unified", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids"};
  for (int i = 0; i < 3; ++i) {
    snprintf(path, sizeof path, "%s/jailpool-probe-%d/w%d", base[i], getppid(), index);
    mkdir(path, 0755);
    strcat(path, "/cgroup.procs");
    cg_fds[i] = open(path, O_WRONLY | O_CLOEXEC);
  }
  int slot = strcmp(mode, "bare") != 0;
  full = strcmp(mode, "full") == 0;
  // full: two slots per worker, used in turn, so that a slot's reset is off the next job's path
  // (jailpool's spare slot).
  int nslots = full ? 2 : slot, gos[2], dones[2], acct[6] = {-1, -1, -1, -1, -1, -1};
  pid_t ss[2] = {-1, -1};
  slot_cpu = out + 3;
  slot_cpu[0] = slot_cpu[1] = 0;
  uint64_t self0;
  cpu_of(RUSAGE_SELF, &self0);
  if (full) {
    for (int i = 0; i < 2; ++i) {
      if (pipe2(out_pipe[i], O_CLOEXEC)) exit(6);
      fcntl(out_pipe[i][0], F_SETFL, O_NONBLOCK);
    }
    const char* files[6][2] = {{base[0], "cpu.stat"},       {base[1], "memory.max_usage_in_bytes"},
                               {base[1], "memory.failcnt"}, {base[1], "memory.oom_control"},
                               {base[2], "pids.peak"},      {base[2], "pids.events"}};
    for (int i = 0; i < 6; ++i) {
      snprintf(path, sizeof path, "%s/jailpool-probe-%d/w%d/%s", files[i][0], getppid(), index,
               files[i][1]);
      acct[i] = open(path, (i == 1 ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    }
  }
  for (int k = 0; k < nslots; ++k) {
    go_fd = gos[k] = eventfd(0, EFD_CLOEXEC);
    done_fd = dones[k] = eventfd(0, EFD_CLOEXEC);
    ss[k] =
        syscall(SYS_clone,
                CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET | SIGCHLD,
                0, 0, 0, 0);
    if (ss[k] == 0) slot_main();
  }
  size_t cap = 1 << 20, n = 0;
  uint64_t* lat = malloc(cap * sizeof *lat);
  uint64_t end = now_ns() + (uint64_t)(seconds * 1e9);
  while (now_ns() < end && n < cap) {
    uint64_t t0 = now_ns();
    if (slot) {
      int k = full ? (int)(n % 2) : 0;
      char buf[1024];
      if (full && acct[1] >= 0) {  // the memory peak back to the usage, and that baseline
        if (pwrite(acct[1], "0", 1, 0) != 1 || pread(acct[1], buf, sizeof buf, 0) < 0) exit(7);
      }
      uint64_t v = 1;
      if (write(gos[k], &v, 8) != 8 || read(dones[k], &v, 8) != 8) exit(4);
      if (v != 1) {
        fprintf(stderr, "%s: job status %#lx\n", mode, (unsigned long)(v - 1));
        exit(5);
      }
      if (full) {
        for (int i = 0; i < 6; ++i)
          if (acct[i] >= 0 && pread(acct[i], buf, sizeof buf, 0) < 0) exit(8);
        for (int i = 0; i < 2; ++i) {
          while (read(out_pipe[i][0], buf, sizeof buf) > 0) {
          }
        }
      }
    } else {
      pid_t pid = spawn(job_bare);
      int st;
      waitpid(pid, &st, 0);
    }
    lat[n++] = now_ns() - t0;
  }
  uint64_t self1;
  cpu_of(RUSAGE_SELF, &self1);
  out[2] = self1 - self0;
  if (nslots > 0) {
    for (int k = 0; k < nslots; ++k) {
      uint64_t v = 2;
      if (write(gos[k], &v, 8) != 8 || read(dones[k], &v, 8) != 8) exit(4);
      waitpid(ss[k], NULL, 0);
    }
  } else {
    cpu_of(RUSAGE_CHILDREN, &out[4]);
  }
  qsort(lat, n, sizeof *lat, cmp);
  out[0] = n;
  out[1] = n ? lat[n / 2] / 1000 : 0;
  free(lat);
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s PROGRAM [workers] [seconds] [rounds]\n", argv[0]);
    return 2;
  }
  prog = argv[1];
  int workers = argc > 2 ? atoi(argv[2]) : 2;
  double seconds = argc > 3 ? atof(argv[3]) : 2;
  int rounds = argc > 4 ? atoi(argv[4]) : 3;
  const char* base[3] = {"/sys/fs/cgroup/unified", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids"};
  char path[256];
  for (int i = 0; i < 3; ++i) {
    snprintf(path, sizeof path, "%s/jailpool-probe-%d", base[i], getpid());
    mkdir(path, 0755);
  }
  uint64_t* shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  const char* modes[] = {"bare", "slot", "full"};
  for (int r = 0; r < rounds; ++r) {
    double bare_rate = 0;
    for (int m = 0; m < 3; ++m) {
      for (int w = 0; w < workers; ++w) {
        if (fork() == 0) {
          worker(modes[m], w, seconds, shared + 5 * w);
          _exit(0);
        }
      }
      while (wait(NULL) > 0) {
      }
      uint64_t jobs = 0, p50 = 0, cpu[3] = {0, 0, 0};
      for (int w = 0; w < workers; ++w) {
        jobs += shared[5 * w];
        p50 += shared[5 * w + 1];
        for (int k = 0; k < 3; ++k) cpu[k] += shared[5 * w + 2 + k];
      }
      double rate = jobs / seconds;
      if (m == 0) bare_rate = rate;
      double per = jobs ? 1000.0 * (double)jobs : 1;  // ns -> us per job
      printf(
          "round %d %-5s %7.0f jobs/s (%.2fx bare) p50 %4lu us  cpu/job: launcher %4.0f us"
          "  slot init %4.0f us  job %5.0f us\n",
          r, modes[m], rate, rate / bare_rate, (unsigned long)(p50 / (uint64_t)workers),
          cpu[0] / per, cpu[1] / per, cpu[2] / per);
      fflush(stdout);
    }
  }
  for (int i = 0; i < 3; ++i) {
    for (int w = 0; w < workers; ++w) {
      snprintf(path, sizeof path, "%s/jailpool-probe-%d/w%d", base[i], getpid(), w);
      rmdir(path);
    }
    snprintf(path, sizeof path, "%s/jailpool-probe-%d", base[i], getpid());
    rmdir(path);
  }
  return 0;
}
