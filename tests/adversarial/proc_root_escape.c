// Escaping the jail's root through /proc: /proc/PID/root and /proc/PID/cwd of every visible
// process, "/.." chains, and chdir out of /proc/1/root. argv[1] is a host path holding a
// secret (the test's); none of these must reach it.
#define _GNU_SOURCE

#include <dirent.h>
#include <fcntl.h>

#include "adv.h"

static int last_err = ENOENT;

static void try_path(const char* path) {
  char buf[256];
  long n = adv_read_file(path, buf, sizeof buf);
  if (n > 0) adv_escaped("read %ld bytes of the host file through %s", n, path);
  if (n < 0) last_err = (int)-n;
}

int main(int argc, char** argv) {
  if (argc < 2) adv_usage(argv, "HOST_PATH");
  const char* host = argv[1];
  char path[4096];
  adv_attempt("reach %s through /proc", host);
  try_path(host);
  snprintf(path, sizeof path, "/proc/self/root/../../../..%s", host);
  try_path(path);
  DIR* d = opendir("/proc");
  if (d == NULL) adv_blocked(errno, "opendir /proc");
  struct dirent* e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    snprintf(path, sizeof path, "/proc/%s/root%s", e->d_name, host);
    try_path(path);
    snprintf(path, sizeof path, "/proc/%s/root/..%s", e->d_name, host);
    try_path(path);
    snprintf(path, sizeof path, "/proc/%s/cwd/../../../..%s", e->d_name, host);
    try_path(path);
  }
  closedir(d);
  // chdir into /proc/1/root, then up as far as it goes, then the path relative to there.
  if (chdir("/proc/1/root") == 0) {
    for (int i = 0; i < 32; ++i) chdir("..");
    try_path(host + 1);
  } else {
    last_err = errno;
  }
  // The jail's init's root must be the jail's: no /etc/shadow there either.
  try_path("/proc/1/root/etc/shadow");
  adv_blocked(last_err, "host path not reachable");
}
