// inotify on paths every job shares (the read-only binds: /progs, /etc/passwd): "watch MS"
// watches them for MS milliseconds and reports any event (another job opening or reading a
// shared file, a channel and a spy on other jobs); "poke MS" opens and reads them for MS
// milliseconds. Both print their CLOCK_MONOTONIC window ("window START END", ms).
#define _GNU_SOURCE

#include <poll.h>
#include <sys/inotify.h>
#include <time.h>

#include "adv.h"

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static const char* kShared[] = {"/progs", "/progs/exit_code", "/etc/passwd"};

static void watch(long ms) {
  int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (fd < 0) adv_blocked(errno, "inotify_init1");
  int watches = 0, last_err = 0;
  for (size_t i = 0; i < sizeof kShared / sizeof *kShared; ++i) {
    if (inotify_add_watch(fd, kShared[i], IN_OPEN | IN_ACCESS | IN_CLOSE) >= 0)
      ++watches;
    else
      last_err = errno;
  }
  if (watches == 0) adv_blocked(last_err, "inotify_add_watch");
  long long start = now_ms(), end = start + ms;
  printf("watching %d paths\n", watches);
  fflush(stdout);
  int events = 0;
  char name[256] = "";
  while (now_ms() < end) {
    struct pollfd p = {fd, POLLIN, 0};
    poll(&p, 1, (int)(end - now_ms()));
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n = read(fd, buf, sizeof buf);
    for (ssize_t off = 0; n > 0 && off < n;) {
      struct inotify_event* ev = (struct inotify_event*)(buf + off);
      if (events++ == 0)
        snprintf(name, sizeof name, "wd %d mask %#x %s", ev->wd, ev->mask, ev->len ? ev->name : "");
      off += (ssize_t)(sizeof *ev + ev->len);
    }
  }
  printf("window %lld %lld\n", start, now_ms());
  if (events > 0) adv_escaped("%d inotify events from outside the job, first: %s", events, name);
  adv_blocked_as("NONE", "no event on %d watched shared paths", watches);
}

static void poke(long ms) {
  long long start = now_ms(), end = start + ms;
  int rounds = 0;
  while (now_ms() < end) {
    for (size_t i = 1; i < sizeof kShared / sizeof *kShared; ++i) {
      char buf[64];
      adv_read_file(kShared[i], buf, sizeof buf);
    }
    ++rounds;
    struct timespec ts = {0, 10 * 1000000L};
    nanosleep(&ts, NULL);
  }
  printf("window %lld %lld\n", start, now_ms());
  adv_done("poked %d times", rounds);
}

int main(int argc, char** argv) {
  const char* mode = adv_mode(argc, argv, "watch MS|poke MS");
  long ms = argc > 2 ? atol(argv[2]) : 2000;
  adv_attempt("%s", mode);
  if (strcmp(mode, "watch") == 0) watch(ms);
  if (strcmp(mode, "poke") == 0) poke(ms);
  adv_usage(argv, "watch MS|poke MS");
}
