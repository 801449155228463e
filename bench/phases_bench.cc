// Microbenchmarks of the phases of one pooled job, each against a bare baseline measured in
// the same run (BM_BareSpawn: posix_spawn + waitpid of a static no-op, glibc's posix_spawn is
// clone(CLONE_VM|CLONE_VFORK) + exec), so that ratios can be read off one table.
//
// Run as root. Cleans up after itself: every cgroup it creates lives below
// "jailpool-bench-<pid>" (removed at the end), every process it starts is reaped.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "common/unique_fd.h"
#include "config/profile.h"
#include "isolate/cgroup.h"
#include "isolate/jail.h"
#include "isolate/seccomp.h"
#include "pool/template_pool.h"
#include "sched/event_loop.h"

extern char** environ;

namespace {

using namespace jailpool;

constexpr uint64_t kMemoryLimit = 64ull << 20;
constexpr uint64_t kPidsLimit = 64;

// Shared state, built on first use so that a --benchmark_filter run only pays for what it uses.
struct Env {
  std::string parent = "jailpool-bench-" + std::to_string(getpid());
  Profile profile;
  isolate::SeccompProgram seccomp;
  UniqueFd devnull;
  std::unique_ptr<isolate::CgroupSystem> cgroups;
  std::unique_ptr<pool::TemplatePool> templates;
  uint64_t serial = 0;
  uint64_t rmdir_busy_retries = 0;

  Env() {
    profile = default_profile();
    Bind* b = profile.add_bind();
    b->set_src(JAILPOOL_BENCH_DIR);
    b->set_dst("/bench");
    validate_profile(profile);
    seccomp = isolate::compile_seccomp(profile);
    int fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    if (fd < 0) throw_errno("open /dev/null");
    devnull.reset(fd);
  }

  isolate::CgroupSystem& cg() {
    if (!cgroups) cgroups = isolate::CgroupSystem::detect(parent);
    return *cgroups;
  }
  pool::TemplatePool& pool() {
    if (!templates) {
      templates = std::make_unique<pool::TemplatePool>(1);
      templates->prefill(profile, 1);
    }
    return *templates;
  }
  std::unique_ptr<isolate::JobCgroup> new_cgroup() {
    isolate::CgroupLimits limits;
    limits.memory_bytes = kMemoryLimit;
    limits.pids = kPidsLimit;
    return cg().create("b-" + std::to_string(++serial), limits);
  }
  // release_dirs + rmdir of each (deepest first), retrying EBUSY for up to ~100 ms: a task
  // that was just reaped can take a moment to leave its cgroup.
  void destroy_cgroup(std::unique_ptr<isolate::JobCgroup> cgroup) {
    std::vector<std::string> dirs = cgroup->release_dirs();
    cgroup.reset();
    auto t0 = std::chrono::steady_clock::now();
    for (const std::string& dir : dirs) {
      while (::rmdir(dir.c_str()) < 0) {
        if (errno == ENOENT) break;
        if (errno != EBUSY ||
            std::chrono::steady_clock::now() - t0 > std::chrono::milliseconds(100))
          throw_errno("rmdir " + dir);
        ++rmdir_busy_retries;
        std::this_thread::sleep_for(std::chrono::microseconds(50));
      }
    }
  }

  // Everything the benchmarks left: templates (their holders are killed and reaped), the
  // parent cgroups. Returns false if a parent directory is still there.
  bool teardown() {
    templates.reset();
    if (!cgroups) return true;
    std::vector<std::string> dirs = cgroups->parent_dirs();
    cgroups->remove_parent_if_empty();
    cgroups.reset();
    bool ok = true;
    for (const std::string& d : dirs) {
      struct stat st;
      if (::stat(d.c_str(), &st) == 0) {
        std::fprintf(stderr, "jailpool_bench: cgroup %s was left behind\n", d.c_str());
        ok = false;
      }
    }
    return ok;
  }
};

Env* g_env = nullptr;

Env& env() {
  if (g_env == nullptr) g_env = new Env();
  return *g_env;
}

bool need_root(benchmark::State& state) {
  if (geteuid() == 0) return true;
  state.SkipWithError("needs root");
  return false;
}

// --- baseline ---------------------------------------------------------------------------------

void BM_BareSpawn(benchmark::State& state) {
  char* argv[] = {const_cast<char*>(JAILPOOL_BENCH_NOOP), nullptr};
  for (auto _ : state) {
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], nullptr, nullptr, argv, environ);
    if (rc != 0) {
      state.SkipWithError(std::strerror(rc));
      break;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      state.SkipWithError("noop failed");
      break;
    }
  }
}
BENCHMARK(BM_BareSpawn)->Unit(benchmark::kMicrosecond)->UseRealTime();

// --- templates ----------------------------------------------------------------------------------

void BM_TemplateAcquireRelease(benchmark::State& state) {
  if (!need_root(state)) return;
  try {
    Env& e = env();
    pool::TemplatePool& pool = e.pool();
    for (auto _ : state) {
      auto t = pool.acquire(e.profile);
      pool.release(std::move(t));
    }
    state.counters["created"] = static_cast<double>(pool.stats().created);
  } catch (const std::exception& ex) {
    state.SkipWithError(ex.what());
  }
}
BENCHMARK(BM_TemplateAcquireRelease)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_TemplateCreate(benchmark::State& state) {
  if (!need_root(state)) return;
  try {
    Env& e = env();
    for (auto _ : state) {
      auto t = isolate::JailTemplate::create(e.profile);
      t.reset();  // kills and reaps the holder
    }
  } catch (const std::exception& ex) {
    state.SkipWithError(ex.what());
  }
}
BENCHMARK(BM_TemplateCreate)->Unit(benchmark::kMicrosecond)->UseRealTime();

// --- cgroups ------------------------------------------------------------------------------------

void BM_CgroupCreateDestroy(benchmark::State& state) {
  if (!need_root(state)) return;
  try {
    Env& e = env();
    for (auto _ : state) e.destroy_cgroup(e.new_cgroup());
  } catch (const std::exception& ex) {
    state.SkipWithError(ex.what());
  }
}
BENCHMARK(BM_CgroupCreateDestroy)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_CgroupReadStats(benchmark::State& state) {
  if (!need_root(state)) return;
  try {
    Env& e = env();
    auto cg = e.new_cgroup();
    for (auto _ : state) benchmark::DoNotOptimize(cg->read_stats());
    e.destroy_cgroup(std::move(cg));
  } catch (const std::exception& ex) {
    state.SkipWithError(ex.what());
  }
}
BENCHMARK(BM_CgroupReadStats)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_CgroupReadCpu(benchmark::State& state) {
  if (!need_root(state)) return;
  try {
    Env& e = env();
    auto cg = e.new_cgroup();
    for (auto _ : state) benchmark::DoNotOptimize(cg->read_cpu_usec());
    e.destroy_cgroup(std::move(cg));
  } catch (const std::exception& ex) {
    state.SkipWithError(ex.what());
  }
}
BENCHMARK(BM_CgroupReadCpu)->Unit(benchmark::kMicrosecond)->UseRealTime();

// --- whole jobs ---------------------------------------------------------------------------------

// One job per iteration, as the executor runs it: fresh job cgroup, (pooled: template acquire),
// Jail::start, poll(pidfd), reap, (pooled: release), release_dirs + rmdir.
void run_jail_bench(benchmark::State& state, bool pooled) {
  if (!need_root(state)) return;
  try {
    Env& e = env();
    pool::TemplatePool* pool = pooled ? &e.pool() : nullptr;
    isolate::JailConfig config;
    config.profile = &e.profile;
    config.argv = {"/bench/noop"};
    config.env.assign(e.profile.env().begin(), e.profile.env().end());
    for (int& fd : config.stdio) fd = e.devnull.get();
    config.seccomp = &e.seccomp;
    uint64_t retries0 = e.rmdir_busy_retries;
    for (auto _ : state) {
      auto cg = e.new_cgroup();
      std::unique_ptr<isolate::JailTemplate> t;
      if (pool) {
        t = pool->acquire(e.profile);
        config.from_template = t.get();
      }
      auto jail = isolate::Jail::start(config, *cg);
      pollfd p{jail->pidfd(), POLLIN, 0};
      while (::poll(&p, 1, -1) < 0 && errno == EINTR) {
      }
      isolate::JailOutcome out = jail->reap();
      jail.reset();
      if (pool) {
        config.from_template = nullptr;
        pool->release(std::move(t));
      }
      e.destroy_cgroup(std::move(cg));
      if (out.setup_failed) {
        state.SkipWithError(("setup failed: " + out.setup_error).c_str());
        break;
      }
      if (!out.job_exited || !WIFEXITED(out.wait_status) || WEXITSTATUS(out.wait_status) != 0) {
        state.SkipWithError("noop did not exit 0");
        break;
      }
    }
    state.counters["rmdir_busy_retries"] = static_cast<double>(e.rmdir_busy_retries - retries0);
  } catch (const std::exception& ex) {
    state.SkipWithError(ex.what());
  }
}

void BM_JailPooled(benchmark::State& state) {
  run_jail_bench(state, true);
}
BENCHMARK(BM_JailPooled)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_JailFresh(benchmark::State& state) {
  run_jail_bench(state, false);
}
BENCHMARK(BM_JailFresh)->Unit(benchmark::kMicrosecond)->UseRealTime();

// --- seccomp ------------------------------------------------------------------------------------

// prctl(NO_NEW_PRIVS) + seccomp(SET_MODE_FILTER) of the compiled default program, timed inside
// a forked child (the filter cannot be removed again) and reported through a pipe.
void BM_SeccompInstall(benchmark::State& state) {
  try {
    Env& e = env();
    const sock_fprog* prog = e.seccomp.fprog();
    state.counters["insns"] = static_cast<double>(e.seccomp.size());
    for (auto _ : state) {
      int fds[2];
      if (pipe2(fds, O_CLOEXEC) < 0) throw_errno("pipe");
      pid_t pid = fork();
      if (pid < 0) throw_errno("fork");
      if (pid == 0) {
        timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        long rc = prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        if (rc == 0) rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, prog);
        clock_gettime(CLOCK_MONOTONIC, &b);
        int64_t ns = rc == 0 ? (b.tv_sec - a.tv_sec) * 1000000000ll + (b.tv_nsec - a.tv_nsec) : -1;
        ssize_t w = write(fds[1], &ns, sizeof ns);
        _exit(w == sizeof ns ? 0 : 1);
      }
      ::close(fds[1]);
      int64_t ns = -1;
      ssize_t r;
      while ((r = read(fds[0], &ns, sizeof ns)) < 0 && errno == EINTR) {
      }
      ::close(fds[0]);
      int status;
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      if (r != sizeof ns || ns < 0) {
        state.SkipWithError("seccomp install failed in the child");
        break;
      }
      state.SetIterationTime(static_cast<double>(ns) / 1e9);
    }
  } catch (const std::exception& ex) {
    state.SkipWithError(ex.what());
  }
}
BENCHMARK(BM_SeccompInstall)->Unit(benchmark::kMicrosecond)->UseManualTime();

// --- event loop ---------------------------------------------------------------------------------

std::unique_ptr<sched::EventLoop> make_loop(benchmark::State& state) {
  auto backend =
      state.range(0) == 0 ? sched::EventLoop::Backend::kUring : sched::EventLoop::Backend::kPoll;
  auto loop = sched::EventLoop::create(backend);
  state.SetLabel(loop->name());
  return loop;
}

// timer_at(now) + wait until it completes. Arg 0: io_uring, 1: poll.
void BM_EventLoopTimer(benchmark::State& state) {
  try {
    auto loop = make_loop(state);
    std::vector<sched::Completion> out;
    uint64_t token = 0;
    for (auto _ : state) {
      loop->timer_at(isolate::monotonic_now_ns(), ++token);
      out.clear();
      while (out.empty()) loop->wait(out, -1);
    }
  } catch (const std::exception& ex) {
    state.SkipWithError(ex.what());
  }
}
BENCHMARK(BM_EventLoopTimer)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond)->UseRealTime();

// rmdir of an empty directory (made untimed under /tmp per iteration) until its completion.
// Arg 0: io_uring (UNLINKAT), 1: poll (synchronous rmdir), 2: a plain rmdir(2), the baseline.
void BM_AsyncRmdir(benchmark::State& state) {
  std::string base = "/tmp/jailpool-bench-" + std::to_string(getpid()) + "-rmdir";
  try {
    std::unique_ptr<sched::EventLoop> loop;
    if (state.range(0) == 2) {
      state.SetLabel("rmdir(2)");
    } else {
      loop = make_loop(state);
    }
    std::vector<sched::Completion> out;
    uint64_t token = 0;
    for (auto _ : state) {
      if (::mkdir(base.c_str(), 0700) < 0) throw_errno("mkdir " + base);
      auto t0 = std::chrono::steady_clock::now();
      int result;
      if (loop) {
        loop->rmdir(base, ++token);
        out.clear();
        while (out.empty()) loop->wait(out, -1);
        result = out[0].result;
      } else {
        result = ::rmdir(base.c_str()) < 0 ? -errno : 0;
      }
      auto t1 = std::chrono::steady_clock::now();
      if (result != 0) {
        ::rmdir(base.c_str());
        state.SkipWithError(("rmdir: " + std::string(std::strerror(-result))).c_str());
        break;
      }
      state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
    }
  } catch (const std::exception& ex) {
    ::rmdir(base.c_str());
    state.SkipWithError(ex.what());
  }
}
BENCHMARK(BM_AsyncRmdir)->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond)->UseManualTime();

// The per-job JSON Lines work of `batch`: parsing a job line and printing a full result
// (protobuf's json_util, as the front end does).
void BM_JobJsonParse(benchmark::State& state) {
  const std::string line =
      R"({"id":"j1","argv":["/bench/noop","x"],"limits":{"cpu_time_ms":1000,"memory_bytes":"268435456"}})";
  for (auto _ : state) benchmark::DoNotOptimize(parse_job_json(line, "line 1"));
}
BENCHMARK(BM_JobJsonParse)->Unit(benchmark::kMicrosecond);

void BM_ResultJsonPrint(benchmark::State& state) {
  JobResult result;
  result.set_id("j1");
  result.set_status(OK);
  result.set_cpu_time_us(1234);
  result.set_memory_peak_bytes(262144);
  result.set_stdout("hello\n");
  for (auto _ : state) benchmark::DoNotOptimize(result_to_json(result));
}
BENCHMARK(BM_ResultJsonPrint)->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  if (geteuid() != 0) std::fprintf(stderr, "jailpool_bench: not root, jail benchmarks skip\n");
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  bool clean = true;
  if (g_env != nullptr) {
    try {
      clean = g_env->teardown();
    } catch (const std::exception& ex) {
      std::fprintf(stderr, "jailpool_bench: cleanup: %s\n", ex.what());
      clean = false;
    }
    delete g_env;
  }
  return clean ? 0 : 1;
}
