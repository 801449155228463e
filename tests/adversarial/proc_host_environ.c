// Reading the host's environment and command lines: every /proc/*/environ and cmdline visible.
// argv[1] is a secret the test put into a host process's environment and command line.
#define _GNU_SOURCE

#include <ctype.h>
#include <dirent.h>

#include "adv.h"

static int contains(const char* buf, long n, const char* needle) {
  size_t len = strlen(needle);
  for (long i = 0; i + (long)len <= n; ++i) {
    if (memcmp(buf + i, needle, len) == 0) return 1;
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc < 2) adv_usage(argv, "SECRET");
  adv_attempt("read /proc/*/environ and cmdline");
  static char buf[1 << 16];
  int readable = 0, processes = 0;
  DIR* d = opendir("/proc");
  if (d == NULL) adv_blocked(errno, "opendir /proc");
  struct dirent* e;
  while ((e = readdir(d)) != NULL) {
    if (!isdigit((unsigned char)e->d_name[0])) continue;
    if (atoi(e->d_name) == getpid()) continue;  // our own argv holds the secret
    ++processes;
    for (int i = 0; i < 2; ++i) {
      char path[300];
      snprintf(path, sizeof path, "/proc/%s/%s", e->d_name, i ? "cmdline" : "environ");
      long n = adv_read_file(path, buf, sizeof buf);
      if (n < 0) continue;
      ++readable;
      if (contains(buf, n, argv[1])) adv_escaped("the secret is in %s", path);
    }
  }
  closedir(d);
  long n = adv_read_file("/proc/1/environ", buf, sizeof buf);
  int err = n < 0 ? (int)-n : ENOENT;
  adv_blocked(err, "/proc/1/environ; secret not in %d files of %d processes", readable, processes);
}
