// Burns 200 ms of CPU and prints its own CLOCK_PROCESS_CPUTIME_ID in microseconds.
#include <stdint.h>
#include <stdio.h>
#include <time.h>

static uint64_t process_cpu_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int main(void) {
  volatile uint64_t sink = 0;
  while (process_cpu_us() < 200000) {
    for (int i = 0; i < 10000; ++i) sink += (uint64_t)i;
  }
  printf("%llu\n", (unsigned long long)process_cpu_us());
  return 0;
}
