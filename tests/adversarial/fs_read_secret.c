// Reading a host secret: argv[1] (/etc/shadow, /root/..., ssh host keys, a host file of the
// test's). Absent from the jail's root, or unreadable.
#include "adv.h"

int main(int argc, char** argv) {
  if (argc < 2) adv_usage(argv, "PATH");
  adv_attempt("read %s", argv[1]);
  char buf[256];
  long n = adv_read_file(argv[1], buf, sizeof buf);
  if (n < 0) adv_blocked((int)-n, "%s", argv[1]);
  if (n == 0) adv_blocked_as("EMPTY", "%s", argv[1]);
  adv_escaped("read %ld bytes of %s", n, argv[1]);
}
