// A fixed amount of CPU work for `jailpool bench --precision` (the CV of the reported CPU):
// argv[1] million iterations of a dependent integer chain, no memory traffic, no syscalls.
// Prints its own CLOCK_PROCESS_CPUTIME_ID in microseconds.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char** argv) {
  uint64_t millions = argc > 1 ? strtoull(argv[1], NULL, 10) : 100;
  volatile uint64_t sink;
  uint64_t x = 88172645463325252ull;
  for (uint64_t i = 0; i < millions * 1000000ull; ++i) {
    x ^= x << 13;  // xorshift: each step depends on the last
    x ^= x >> 7;
    x ^= x << 17;
  }
  sink = x;
  (void)sink;
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  printf("%llu\n", (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
  return 0;
}
