// Raising a hard resource limit above what jailpool set. Modes: nofile | fsize | cpu | stack.
#define _GNU_SOURCE

#include <sys/resource.h>

#include "adv.h"

int main(int argc, char** argv) {
  const char* mode = adv_mode(argc, argv, "nofile|fsize|cpu|stack");
  int resource;
  if (strcmp(mode, "nofile") == 0) {
    resource = RLIMIT_NOFILE;
  } else if (strcmp(mode, "fsize") == 0) {
    resource = RLIMIT_FSIZE;
  } else if (strcmp(mode, "cpu") == 0) {
    resource = RLIMIT_CPU;
  } else if (strcmp(mode, "stack") == 0) {
    resource = RLIMIT_STACK;
  } else {
    adv_usage(argv, "nofile|fsize|cpu|stack");
  }
  struct rlimit lim;
  getrlimit(resource, &lim);
  if (lim.rlim_max == RLIM_INFINITY) adv_escaped("%s has no hard limit", mode);
  struct rlimit raised = {lim.rlim_max * 2 + 1, lim.rlim_max * 2 + 1};
  adv_attempt("raise %s from %llu to %llu", mode, (unsigned long long)lim.rlim_max,
              (unsigned long long)raised.rlim_max);
  if (setrlimit(resource, &raised) != 0) adv_blocked(errno, "%s", mode);
  adv_escaped("%s raised", mode);
}
