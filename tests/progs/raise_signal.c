// raise()s the signal numbered argv[1] (default SIGSEGV, 11). Exits 0 if it returns.
#include <signal.h>
#include <stdlib.h>

int main(int argc, char** argv) {
  raise(argc > 1 ? atoi(argv[1]) : SIGSEGV);
  return 0;
}
