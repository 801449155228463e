// A job that leaves a child for the test to freeze (cgroup-v1 freezer: a frozen task ignores
// SIGKILL until thawed), then exits 0.
//   freeze_child ns             prints its net namespace and exits
//   freeze_child leave MARKER   prints its net namespace, starts "child MARKER" (found by the
//                               test in the host's /proc by MARKER), waits until the child is
//                               frozen (state D) for up to 60 s, prints frozen=1|0, exits 0
//   freeze_child child MARKER   pauses forever
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void print_netns(void) {
  char link[128] = "";
  ssize_t n = readlink("/proc/self/ns/net", link, sizeof link - 1);
  if (n > 0) link[n] = 0;
  printf("netns=%s\n", link);
}

static char state_of(pid_t pid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE* f = fopen(path, "r");
  if (!f) return '?';
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char* close = strrchr(buf, ')');  // "pid (comm) S ..."
  return close && close[1] == ' ' ? close[2] : '?';
}

int main(int argc, char** argv) {
  if (argc >= 2 && strcmp(argv[1], "ns") == 0) {
    print_netns();
    return 0;
  }
  if (argc >= 3 && strcmp(argv[1], "child") == 0) {
    for (;;) pause();
  }
  if (argc < 3 || strcmp(argv[1], "leave") != 0) return 2;
  print_netns();
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) return 1;
  if (pid == 0) {
    execl(argv[0], argv[0], "child", argv[2], (char*)NULL);
    _exit(127);
  }
  int frozen = 0;
  for (int i = 0; i < 6000 && !frozen; ++i) {
    frozen = state_of(pid) == 'D';
    struct timespec ts = {0, 10000000};
    nanosleep(&ts, NULL);
  }
  printf("frozen=%d\n", frozen);
  return 0;
}
