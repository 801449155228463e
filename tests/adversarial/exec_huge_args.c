// Re-executes itself with a huge argument list: one string above MAX_ARG_STRLEN (128 KiB), or
// a total above the kernel's limit (a quarter of the stack limit). Must fail cleanly (E2BIG),
// not crash anything. Modes: one_long | total.
#include "adv.h"

int main(int argc, char** argv) {
  const char* mode = adv_mode(argc, argv, "one_long|total|child");
  if (strcmp(mode, "child") == 0) adv_escaped("exec'd with %d arguments", argc);
  static char* args[1024];
  int n = 0;
  args[n++] = argv[0];
  args[n++] = (char*)"child";
  size_t each;
  int count;
  if (strcmp(mode, "one_long") == 0) {
    each = 256 * 1024, count = 1;
  } else if (strcmp(mode, "total") == 0) {
    each = 120 * 1024, count = 600;  // 70 MiB: above stack/4 for any stack up to 280 MiB
  } else {
    adv_usage(argv, "one_long|total");
  }
  char* big = malloc(each + 1);
  if (big == NULL) adv_blocked(errno, "malloc");
  memset(big, 'A', each);
  big[each] = 0;
  for (int i = 0; i < count; ++i) args[n++] = big;
  args[n] = NULL;
  char* env[] = {NULL};
  adv_attempt("execve with %d x %zu bytes", count, each);
  execve(argv[0], args, env);
  adv_blocked(errno, "execve");
}
