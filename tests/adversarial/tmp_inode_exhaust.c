// Creates empty files in argv[1] (default /tmp) until it cannot: the tmpfs inode limit must
// stop it (ENOSPC) well before the host notices.
#define _GNU_SOURCE

#include <fcntl.h>

#include "adv.h"

int main(int argc, char** argv) {
  const char* dir = argc > 1 ? argv[1] : "/tmp";
  adv_attempt("create files in %s until failure", dir);
  long created = 0;
  char path[4096];
  for (;;) {
    snprintf(path, sizeof path, "%s/i%ld", dir, created);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) break;
    close(fd);
    ++created;
    if (created > 10 * 1000 * 1000) adv_escaped("created %ld files", created);
  }
  adv_blocked(errno, "created=%ld", created);
}
