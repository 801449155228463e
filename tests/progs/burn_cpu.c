// Busy-loops until the process's CPU time (CLOCK_PROCESS_CPUTIME_ID) reaches argv[1] ms
// ("forever" or absent: never), then prints that CPU time in microseconds.
// argv[2]: number of threads burning (default 1; the main thread counts as one).
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t process_cpu_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t target_us = UINT64_MAX;
static volatile uint64_t sink;

static void* burn(void* arg) {
  (void)arg;
  while (process_cpu_us() < target_us) {
    for (int i = 0; i < 10000; ++i) sink += (uint64_t)i * 2654435761u;
  }
  return NULL;
}

int main(int argc, char** argv) {
  if (argc > 1 && strcmp(argv[1], "forever") != 0) target_us = strtoull(argv[1], NULL, 10) * 1000u;
  int threads = argc > 2 ? atoi(argv[2]) : 1;
  if (threads < 1) threads = 1;
  pthread_t tids[256];
  int started = 0;
  for (int i = 1; i < threads && i < 256; ++i) {
    if (pthread_create(&tids[started], NULL, burn, NULL) == 0) ++started;
  }
  burn(NULL);
  for (int i = 0; i < started; ++i) pthread_join(tids[i], NULL);
  printf("%llu\n", (unsigned long long)process_cpu_us());
  return 0;
}
