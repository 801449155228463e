// Starting a child that shares jailpool's memory (CLONE_VM) on a stack of its own, with
// clone3 (CLONE_INTO_CGROUP, CLONE_PIDFD) where the kernel has it, else clone(2).
#pragma once

#include <sys/types.h>

#include <cstdint>

namespace jailpool::isolate {

struct CloneRequest {
  uint64_t flags = 0;     // CLONE_* (CLONE_VM is implied)
  int cgroup_fd = -1;     // >= 0: CLONE_INTO_CGROUP (clone3 only)
  void* stack = nullptr;  // lowest address of the child's stack
  size_t stack_size = 0;
  int (*fn)(void*) = nullptr;  // runs in the child; its return value is the exit code
  void* arg = nullptr;
};

// Returns the child's pid and stores a pidfd in *pidfd when CLONE_PIDFD is in flags.
// Returns -errno on failure (no exception: also used inside the jail's init).
// With clone3 unavailable (kernel < 5.3, or ENOSYS under a foreign seccomp policy) it falls
// back to clone(2); CLONE_INTO_CGROUP then fails with -EOPNOTSUPP, so callers probe first.
pid_t clone_vm(const CloneRequest& request, int* pidfd);

// Whether clone3 is usable (probed once, lazily; safe to call from several threads).
bool clone3_available();

}  // namespace jailpool::isolate
