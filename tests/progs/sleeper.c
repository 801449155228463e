// Sleeps argv[1] milliseconds, or forever when no argument is given.
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc < 2) {
    for (;;) pause();
  }
  long ms = atol(argv[1]);
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
  return 0;
}
