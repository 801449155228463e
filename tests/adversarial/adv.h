// Shared by the adversarial programs (tests/adversarial/*.c; each defines _GNU_SOURCE before its
// first include, for strerrorname_np). Each program attempts one hostile thing inside the jail
// and reports on stdout, one line each:
//   ATTEMPT <what>          just before the dangerous call (so a seccomp kill is seen to happen
//                           at that call, not earlier)
//   RESULT blocked <ERRNO> [detail]   the attempt failed; exit 0
//   RESULT escaped <detail>           the attempt worked; exit 1
//   RESULT done <detail>              the program did its part, the test judges on the host
//                                     (daemons left behind, datagrams sent); exit 0
// A program killed by seccomp prints no RESULT (the job's status is SECCOMP_VIOLATION).
#pragma once
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline void adv_attempt(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void adv_attempt(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("ATTEMPT ", stdout);
  vprintf(fmt, ap);
  va_end(ap);
  fputc('\n', stdout);
  fflush(stdout);
}

static inline const char* adv_errname(int err) {
  const char* name = strerrorname_np(err);
  return name ? name : "E?";
}

// The attempt failed with `err`.
static inline __attribute__((noreturn)) void adv_blocked(int err, const char* fmt, ...)
    __attribute__((format(printf, 2, 3)));
// Prints "RESULT <tag> <fmt...>" and exits with `code`.
static inline __attribute__((noreturn)) void adv_result_v(const char* tag, int code,
                                                          const char* fmt, va_list ap) {
  printf("RESULT %s", tag);
  if (fmt != NULL && fmt[0] != 0) {
    fputc(' ', stdout);
    vprintf(fmt, ap);
  }
  fputc('\n', stdout);
  fflush(stdout);
  _exit(code);
}

static inline void adv_blocked(int err, const char* fmt, ...) {
  char tag[64];
  snprintf(tag, sizeof tag, "blocked %s", adv_errname(err));
  va_list ap;
  va_start(ap, fmt);
  adv_result_v(tag, 0, fmt, ap);
}

// The attempt worked.
static inline __attribute__((noreturn)) void adv_escaped(const char* fmt, ...)
    __attribute__((format(printf, 1, 2)));
static inline void adv_escaped(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  adv_result_v("escaped", 1, fmt, ap);
}

// Reports a raw syscall's return: -1 is blocked with errno, anything else escaped.
static inline __attribute__((noreturn)) void adv_report(long rc, const char* what) {
  if (rc == -1) adv_blocked(errno, "%s", what);
  adv_escaped("%s returned %ld", what, rc);
}

static inline __attribute__((noreturn)) void adv_usage(char** argv, const char* usage) {
  fprintf(stderr, "usage: %s %s\n", argv[0], usage);
  exit(2);
}

// The mode argument (argv[1]), or a usage error (exit 2).
static inline const char* adv_mode(int argc, char** argv, const char* usage) {
  if (argc < 2) adv_usage(argv, usage);
  return argv[1];
}

// The attempt failed without an errno: `how` names the way (MASKED, EMPTY, NONE...); exit 0.
static inline __attribute__((noreturn)) void adv_blocked_as(const char* how, const char* fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline void adv_blocked_as(const char* how, const char* fmt, ...) {
  char tag[64];
  snprintf(tag, sizeof tag, "blocked %s", how);
  va_list ap;
  va_start(ap, fmt);
  adv_result_v(tag, 0, fmt, ap);
}

// Host-judged attempts (daemons, floods): the program did its part; the test checks the host.
static inline __attribute__((noreturn)) void adv_done(const char* fmt, ...)
    __attribute__((format(printf, 1, 2)));
static inline void adv_done(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  adv_result_v("done", 0, fmt, ap);
}

// Reads up to size-1 bytes of a file into buf (NUL-terminated); the count, or -errno.
static inline long adv_read_file(const char* path, char* buf, size_t size) {
  FILE* f = fopen(path, "re");
  if (f == NULL) return -errno;
  size_t n = fread(buf, 1, size - 1, f);
  int err = ferror(f) ? errno : 0;
  fclose(f);
  buf[n] = 0;
  if (n == 0 && err) return -err;
  return (long)n;
}
