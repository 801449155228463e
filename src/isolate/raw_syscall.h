// Raw system calls for code that runs in a child sharing jailpool's memory (CLONE_VM).
//
// Such a child runs on jailpool's TLS: glibc's wrappers would write the calling thread's errno
// (racing with it) and some take locks. These wrappers return -errno instead and touch no
// memory but their arguments. Only x86_64 and aarch64 are supported.
#pragma once

#include <sys/syscall.h>

#include <cstddef>
#include <cstdint>

namespace jailpool::isolate::raw {

#if defined(__x86_64__)
inline long syscall6(long nr, long a, long b, long c, long d, long e, long f) {
  long ret;
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
}
#elif defined(__aarch64__)
inline long syscall6(long nr, long a, long b, long c, long d, long e, long f) {
  register long x8 __asm__("x8") = nr;
  register long x0 __asm__("x0") = a;
  register long x1 __asm__("x1") = b;
  register long x2 __asm__("x2") = c;
  register long x3 __asm__("x3") = d;
  register long x4 __asm__("x4") = e;
  register long x5 __asm__("x5") = f;
  __asm__ volatile("svc 0"
                   : "+r"(x0)
                   : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                   : "memory");
  return x0;
}
#else
#error "jailpool supports x86_64 and aarch64"
#endif

template <typename... Args>
inline long call(long nr, Args... args) {
  long a[6] = {(long)args...};
  return syscall6(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

inline size_t strlen(const char* s) {
  size_t n = 0;
  while (s[n]) ++n;
  return n;
}

inline long write_all(int fd, const char* data, size_t len) {
  while (len > 0) {
    long n = call(SYS_write, fd, data, len);
    if (n == -4 /* EINTR */) continue;
    if (n < 0) return n;
    data += n;
    len -= static_cast<size_t>(n);
  }
  return 0;
}

[[noreturn]] inline void exit_group(int code) {
  for (;;) call(SYS_exit_group, code);
}

}  // namespace jailpool::isolate::raw
