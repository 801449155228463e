#include "isolate/slot.h"

#include <fcntl.h>
#include <fmt/core.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>

#include "common/error.h"
#include "common/leak.h"
#include "isolate/cgroup.h"
#include "isolate/clone.h"
#include "isolate/files.h"
#include "isolate/seccomp.h"

#ifndef CLONE_CLEAR_SIGHAND
#define CLONE_CLEAR_SIGHAND 0x100000000ULL
#endif

namespace jailpool::isolate {
namespace {

constexpr size_t kSlotStackSize = 256 * 1024;

uint32_t load_state(const SlotControl& c) {
  return std::atomic_ref<const uint32_t>(c.state).load(std::memory_order_acquire);
}

}  // namespace

bool slot_capable(const Profile& profile) {
  // A slot sets its pid namespace's last pid back between jobs (slot_main); without the file
  // (a kernel built without CONFIG_CHECKPOINT_RESTORE) jobs use templates or fresh jails.
  static const bool last_pid = ::access("/proc/sys/kernel/ns_last_pid", F_OK) == 0;
  return last_pid && poolable(profile) &&
         (profile.seccomp() == SECCOMP_DEFAULT || profile.seccomp() == SECCOMP_NONE);
}

std::unique_ptr<Slot> Slot::create(const Profile& profile, SeccompProgram* seccomp) {
  if (!clone3_available()) throw Error("slot: needs clone3 (Linux 5.3)");
  std::unique_ptr<Slot> slot(new Slot());
  slot->profile_ = &profile;
  slot->seccomp_ = seccomp;
  slot->setup_ = std::make_unique<LaunchPlan>();
  slot->control_ = std::make_unique<SlotControl>();
  LaunchPlan& setup = *slot->setup_;
  SlotControl& c = *slot->control_;
  setup.uid = profile.has_uid() ? profile.uid() : 65534;
  setup.gid = profile.has_gid() ? profile.gid() : 65534;
  plan_fresh_tree(setup, profile);
  // S is pid 1 of the slot's pid namespace for all its jobs, and /proc/1 would show every job
  // what the jobs before it left in S: its children's CPU time (cutime, cstime: the jobs it
  // reaped), its own CPU, context switches and I/O. hidepid=2 hides processes of other users
  // (S is root, jobs are not; 3.3, per mount since 5.8); a job still sees its own.
  for (MountOp& op : setup.job_ops) {
    if (op.kind == MountOp::Kind::kProc) op.data = setup.keep("hidepid=2");
  }
  if (seccomp != nullptr && !seccomp->empty()) {
    setup.seccomp = seccomp->fprog();
    if (seccomp->notifies()) {
      if (seccomp->logs_allowed()) throw Error("slot: a learning-mode filter cannot be shared");
      if (seccomp_notif_size() > kSeccompNotifBuffer) {
        throw Error("seccomp: this kernel's notification does not fit the slot's buffer");
      }
      setup.seccomp_listen = true;
    }
  }
  // The writable filesystems S replaces when a job touched them, and a spare of each.
  if (!profile.cwd().empty()) c.workdir = setup.keep(profile.cwd());
  slot->filesystems_ = writable_filesystems(profile, setup.uid, setup.gid);
  if (slot->filesystems_.size() > std::size(c.fs_paths)) {
    throw Error("slot: too many writable filesystems");
  }
  c.fs_count = static_cast<int>(slot->filesystems_.size());
  slot->spares_.resize(slot->filesystems_.size());
  for (size_t i = 0; i < slot->filesystems_.size(); ++i) {
    c.fs_paths[i] = setup.keep(slot->filesystems_[i].dst);
  }
  slot->make_spares();
  setup.freeze();

  int go = eventfd(0, EFD_CLOEXEC);
  if (go < 0) throw_errno("eventfd");
  slot->go_fd_.reset(go);
  int done = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (done < 0) throw_errno("eventfd");
  slot->done_fd_.reset(done);
  c.go_fd = go;
  c.done_fd = done;
  c.setup = &setup;
  static std::atomic<uint64_t> next_id{0};
  slot->id_ = ++next_id;
  for (int i = 0; i < 2; ++i) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) throw_errno("slot output pipe");
    slot->out_read_[i].reset(fds[0]);
    slot->out_write_[i].reset(fds[1]);
    if (fcntl(fds[0], F_SETFL, O_NONBLOCK) < 0) throw_errno("slot output pipe O_NONBLOCK");
  }

  slot->stack_ = mmap(nullptr, kSlotStackSize, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
  if (slot->stack_ == MAP_FAILED) {
    slot->stack_ = nullptr;
    throw_errno("mmap slot stack");
  }
  CloneRequest request;
  request.flags = CLONE_FILES | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS |
                  CLONE_NEWNET | CLONE_NEWCGROUP | CLONE_PIDFD | CLONE_CLEAR_SIGHAND;
  request.stack = slot->stack_;
  request.stack_size = kSlotStackSize;
  request.fn = slot_main;
  request.arg = &c;
  int pidfd = -1;
  pid_t pid = clone_vm(request, &pidfd);
  if (pid < 0) throw SysError(-pid, "clone3 of a slot");
  slot->pid_ = pid;
  slot->pidfd_.reset(pidfd);

  // Wait until S is ready, or dead.
  for (;;) {
    pollfd fds[2] = {{done, POLLIN, 0}, {pidfd, POLLIN, 0}};
    int n = ::poll(fds, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno("poll slot");
    slot->drain_done();
    uint32_t state = load_state(c);
    if (state == SlotControl::kReady) {
      slot->want_ready_wake(false);
      return slot;
    }
    if (fds[1].revents & POLLIN) {
      std::atomic_thread_fence(std::memory_order_acquire);
      std::string why = setup.report.stage != LaunchStage::kNone ? describe_failure(setup)
                                                                 : std::string("its init died");
      throw Error("slot: " + why);
    }
  }
}

void Slot::drain_done() const {
  uint64_t count;  // one read takes the whole count (not EFD_SEMAPHORE)
  if (::read(done_fd_.get(), &count, sizeof count) < 0 && errno == EINTR) {
    [[maybe_unused]] ssize_t again = ::read(done_fd_.get(), &count, sizeof count);
  }
}

SlotControl::State Slot::state() const {
  return static_cast<SlotControl::State>(load_state(*control_));
}

bool Slot::broken() const {
  if (pid_ < 0 || state() == SlotControl::kBroken) return true;
  return !alive();
}

void Slot::make_spares() {
  SlotControl& c = *control_;
  for (size_t i = 0; i < filesystems_.size(); ++i) {
    std::atomic_ref<int> spare(c.spare_fds[i]);
    if (spare.load(std::memory_order_acquire) >= 0) continue;
    const WritableFs& fs = filesystems_[i];
    spares_[i] = mount_detached_tmpfs(fs.data, fs.flags, "a slot's " + fs.dst);
    spare.store(spares_[i].get(), std::memory_order_release);
  }
}

void Slot::want_ready_wake(bool on) const {
  std::atomic_ref<uint32_t>(control_->ready_waiter).store(on ? 1 : 0, std::memory_order_seq_cst);
  std::atomic_thread_fence(std::memory_order_seq_cst);  // before the caller's read of the state
}

bool Slot::alive() const {
  pollfd p{pidfd_.get(), POLLIN, 0};
  return ::poll(&p, 1, 0) == 0;  // readable once S died
}

bool Slot::ready() const {
  return state() == SlotControl::kReady && !broken();
}

std::string Slot::broken_reason() const {
  const SlotControl& c = *control_;
  if (state() == SlotControl::kBroken) {
    std::string s = describe_slot_reset(c.reset_failure);
    if (c.reset_index >= 0 && c.reset_index < c.fs_count) {
      s += fmt::format(" ({})", c.fs_paths[c.reset_index]);
    }
    if (c.reset_err != 0) s += fmt::format(": {}", std::strerror(c.reset_err));
    return s;
  }
  return "its init died";
}

void Slot::start(const JailConfig& config, const JobCgroup& cgroup) {
  if (config.profile != profile_) throw Error("slot: a job of another profile");
  if (!config.extra_binds.empty()) {
    throw Error("slot: a job with binds of its own needs a fresh jail");
  }
  if (config.argv.empty() || config.argv[0].empty()) throw ConfigError("argv", "empty command");
  if (state() != SlotControl::kReady) throw Error("slot: not ready");
  auto plan = std::make_unique<LaunchPlan>();
  const Profile& profile = *profile_;
  plan->uid = profile.has_uid() ? profile.uid() : 65534;
  plan->gid = profile.has_gid() ? profile.gid() : 65534;
  std::vector<UniqueFd> dups;
  for (int i = 0; i < 3; ++i) {
    // Dup'ed onto 0..2 in the job's copy of the table: never one of those numbers itself.
    int fd = config.stdio[i];
    if (fd < 0 && i > 0) throw Error(fmt::format("slot: no fd for stdio {}", i));
    if (fd >= 0 && fd < 3) {
      fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
      if (fd < 0) throw_errno("dup stdio fd");
      dups.emplace_back(fd);
    }
    plan->stdio[i] = fd;
  }
  // No CLONE_INTO_CGROUP under the filter: the job writes itself into every hierarchy.
  plan->attach_fds = cgroup.attach_fds(true);
  plan->ignored_signals = 0;  // S reset those it inherited, once
  plan->slot_job = true;
  plan->cwd =
      plan->keep(!config.cwd.empty() ? config.cwd : (profile.cwd().empty() ? "/" : profile.cwd()));
  plan->rlimits = config.rlimits;
  if (config.cwd_mount_fd >= 0) {
    // Its files: S puts their tmpfs on the working directory (the fd number is S's too:
    // CLONE_FILES; the caller keeps it open until the result).
    if (control_->workdir == nullptr) throw Error("slot: no working directory for files");
    plan->workdir_mount_fd = config.cwd_mount_fd;
  }
  for (const std::string& c : exec_candidates(config.argv[0], config.env)) {
    plan->exec_paths.push_back(plan->keep(c));
  }
  for (const auto& a : config.argv) plan->argv.push_back(plan->keep_mutable(a));
  plan->argv.push_back(nullptr);
  for (const auto& e : config.env) plan->envp.push_back(plan->keep_mutable(e));
  plan->envp.push_back(nullptr);
  plan->freeze();
  job_ = std::move(plan);
  job_fds_ = std::move(dups);
  make_spares();  // for the filesystems the last job's reset replaced
  SlotControl& c = *control_;
  c.job = job_.get();
  drain_done();
  std::atomic_ref<uint32_t>(c.kill_requested).store(0, std::memory_order_relaxed);
  std::atomic_ref<uint32_t>(c.state).store(SlotControl::kRunning, std::memory_order_release);
  start_ns_ = monotonic_now_ns();
  uint64_t one = 1;
  if (::write(go_fd_.get(), &one, sizeof one) != sizeof one) throw_errno("wake slot");
}

bool Slot::result_ready() const {
  uint32_t s = state();
  return job_ && (s == SlotControl::kResult || s == SlotControl::kReady ||
                  (s == SlotControl::kBroken && control_->job == job_.get()));
}

uint64_t Slot::exec_ns() const {
  if (!job_) return 0;
  return std::atomic_ref<uint64_t>(job_->report.exec_ns).load(std::memory_order_relaxed);
}

void Slot::kill_job() {
  std::atomic_ref<uint32_t>(control_->kill_requested).store(1, std::memory_order_release);
}

JailOutcome Slot::outcome() const {
  if (!job_) throw Error("slot: no job");
  std::atomic_thread_fence(std::memory_order_acquire);
  JailOutcome out;
  const LaunchReport& r = job_->report;
  out.job_exited = r.job_exited;
  out.wait_status = r.wait_status;
  out.rusage = r.rusage;
  out.exec_ns = r.exec_ns;
  out.exit_ns = r.exit_ns;
  out.seccomp_denied_nr = r.seccomp_denied_nr;
  out.seccomp_denied_arch = r.seccomp_denied_arch;
  out.survivors = r.survivors;
  if (r.stage != LaunchStage::kNone) {
    out.setup_failed = true;
    out.setup_error = describe_failure(*job_);
  }
  // Killed by jailpool: as in a fresh jail, whose init dies first, the job's end is not its
  // own (no exit status).
  if (std::atomic_ref<const uint32_t>(control_->kill_requested).load(std::memory_order_acquire)) {
    out.job_exited = false;
    out.wait_status = 0;
  }
  return out;
}

std::unique_ptr<SlotRemains> Slot::kill_and_take() {
  std::unique_ptr<SlotRemains> rem(new SlotRemains());
  if (pid_ > 0) syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0);
  rem->pid_ = pid_;
  rem->pidfd_ = std::move(pidfd_);
  rem->stack_ = stack_;
  rem->control_ = std::move(control_);
  rem->setup_ = std::move(setup_);
  rem->job_ = std::move(job_);
  rem->spares_ = std::move(spares_);
  rem->cgroup_ = std::move(cgroup);
  pid_ = -1;
  stack_ = nullptr;
  return rem;
}

std::unique_ptr<SlotRemains> Slot::shut_down(std::unique_ptr<Slot> slot) {
  if (!slot) return nullptr;
  std::unique_ptr<SlotRemains> rem = slot->kill_and_take();
  if (rem->try_finish()) return nullptr;
  return rem;
}

Slot::~Slot() {
  std::unique_ptr<SlotRemains> rem = kill_and_take();
  if (rem->try_finish()) return;
  pollfd p{rem->pidfd(), POLLIN, 0};
  auto deadline = monotonic_now_ns() + kSlotExitWaitMs * 1000000ull;
  for (uint64_t now = monotonic_now_ns(); now < deadline; now = monotonic_now_ns()) {
    int n = ::poll(&p, 1, static_cast<int>((deadline - now) / 1000000) + 1);
    if (n != 0 && rem->try_finish()) return;
  }
  if (rem->try_finish()) return;
  fmt::print(stderr, "jailpool: a slot's init did not exit {} ms after SIGKILL, left: {}\n",
             kSlotExitWaitMs, rem->abandon());
}

bool SlotRemains::try_finish() {
  if (finished_) return true;
  if (pid_ > 0) {  // else S never started
    siginfo_t info{};
    int rc;
    do {
      rc = waitid(P_PIDFD, static_cast<id_t>(pidfd_.get()), &info, WEXITED | WNOHANG);
    } while (rc < 0 && errno == EINTR);
    if (rc == 0 && info.si_pid == 0) return false;  // still exiting
  }
  // Exited and reaped (or not our child any more: nothing to wait for either). The fds it
  // opened in the shared table are ours to close, its stack ours to free.
  finished_ = true;
  if (control_) {
    for (int fd : control_->owned_fds) {
      if (fd >= 0) ::close(fd);
    }
  }
  spares_.clear();
  if (stack_ != nullptr) munmap(stack_, kSlotStackSize);
  stack_ = nullptr;
  cgroup_.reset();  // its last processes are gone with S's pid namespace
  return true;
}

std::string SlotRemains::abandon() {
  size_t fds = 0;
  if (control_) {
    for (int fd : control_->owned_fds) fds += fd >= 0;
  }
  for (const UniqueFd& fd : spares_) fds += fd.get() >= 0;
  std::string s =
      fmt::format("pid {}: its stack ({} KiB, leaked), {} fd(s)", pid_, kSlotStackSize / 1024, fds);
  if (cgroup_) {
    // Only the paths: the directories stay until their last process has gone.
    for (const std::string& dir : cgroup_->release_dirs()) {
      s += ", cgroup " + dir;
    }
  }
  return s;
}

SlotRemains::~SlotRemains() {
  if (finished_) return;
  // S may still run on these (it is exiting; a task it shares them with may be frozen):
  // leaked, never freed under it. The cgroup's directories are busy: left (released, so that
  // its destructor neither kills nor waits).
  leak_on_purpose(std::move(control_));
  leak_on_purpose(std::move(setup_));
  leak_on_purpose(std::move(job_));
  for (UniqueFd& fd : spares_) [[maybe_unused]] int kept = fd.release();
  if (cgroup_) cgroup_->release_dirs();
}

}  // namespace jailpool::isolate
