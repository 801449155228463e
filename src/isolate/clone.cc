#include "isolate/clone.h"

#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "isolate/raw_syscall.h"

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

// clone3 with CLONE_VM needs the child to start on its own stack and call a function, which C
// cannot express: the child resumes after the syscall instruction with the new stack pointer.
// jp_clone3_call(args, size, fn, arg) returns the pid in the parent; in the child it calls
// fn(arg) and exits with its result, never returning.
extern "C" long jp_clone3_call(struct clone_args* args, size_t size, int (*fn)(void*), void* arg);

#if defined(__x86_64__)
__asm__(
    ".text\n"
    ".globl jp_clone3_call\n"
    ".type jp_clone3_call,@function\n"
    "jp_clone3_call:\n"
    "  mov %rdx, %r8\n"   // fn (r8/r9 survive the syscall)
    "  mov %rcx, %r9\n"   // arg
    "  mov $435, %eax\n"  // __NR_clone3
    "  syscall\n"
    "  test %rax, %rax\n"
    "  jnz 1f\n"
    "  xor %ebp, %ebp\n"  // child: fresh stack, no frame to return to
    "  mov %r9, %rdi\n"
    "  call *%r8\n"
    "  mov %eax, %edi\n"
    "  mov $231, %eax\n"  // exit_group
    "  syscall\n"
    "  hlt\n"
    "1:\n"
    "  ret\n"
    ".size jp_clone3_call, .-jp_clone3_call\n");
#elif defined(__aarch64__)
__asm__(
    ".text\n"
    ".globl jp_clone3_call\n"
    ".type jp_clone3_call,%function\n"
    "jp_clone3_call:\n"
    "  mov x9, x2\n"
    "  mov x10, x3\n"
    "  mov x8, #435\n"
    "  svc 0\n"
    "  cbnz x0, 1f\n"
    "  mov x29, xzr\n"
    "  mov x0, x10\n"
    "  blr x9\n"
    "  mov x8, #94\n"  // exit_group
    "  svc 0\n"
    "  brk #0\n"
    "1:\n"
    "  ret\n"
    ".size jp_clone3_call, .-jp_clone3_call\n");
#endif

namespace jailpool::isolate {
namespace {

// -1 unknown, 0 no, 1 yes.
std::atomic<int> g_clone3_state{-1};

// clone3 with a size below its first version fails before doing anything: EINVAL where the
// call exists, ENOSYS where it does not (Linux < 5.3, or a container's filter that hides it).
// One syscall, where a clone of a child that exits at once costs a process.
bool probe_clone3() {
  long r = ::syscall(SYS_clone3, nullptr, 0);
  return r < 0 && errno == EINVAL;
}

}  // namespace

bool clone3_available() {
  int state = g_clone3_state.load(std::memory_order_acquire);
  if (state < 0) {
    state = probe_clone3() ? 1 : 0;
    g_clone3_state.store(state, std::memory_order_release);
  }
  return state == 1;
}

pid_t clone_vm(const CloneRequest& request, int* pidfd) {
  uint64_t flags = request.flags | CLONE_VM;
  if (clone3_available()) {
    clone_args args{};
    args.flags = flags;
    args.exit_signal = SIGCHLD;
    args.stack = reinterpret_cast<uint64_t>(request.stack);
    args.stack_size = request.stack_size;
    if (request.cgroup_fd >= 0) {
      args.flags |= CLONE_INTO_CGROUP;
      args.cgroup = static_cast<uint64_t>(request.cgroup_fd);
    }
    if (flags & CLONE_PIDFD) args.pidfd = reinterpret_cast<uint64_t>(pidfd);
    return static_cast<pid_t>(jp_clone3_call(&args, sizeof args, request.fn, request.arg));
  }
  if (request.cgroup_fd >= 0) return -EOPNOTSUPP;
  // clone(2) fallback: the glibc wrapper switches stacks itself. Note it is only reached on
  // kernels without clone3, so errno races with the caller's thread do not matter there.
  char* top = static_cast<char*>(request.stack) + request.stack_size;
  int pid = ::clone(request.fn, top, static_cast<int>(flags) | SIGCHLD, request.arg, pidfd);
  return pid < 0 ? -errno : pid;
}

}  // namespace jailpool::isolate
