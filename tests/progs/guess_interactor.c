// The interactor of "guess the number": argv[1] the secret, argv[2] N (the range 1..N),
// argv[3] the most guesses allowed, argv[4] a mode:
//   normal     prints N, then answers each "? G" with "<", ">" or "=" (exit 0 when guessed)
//   crash      prints N, reads one guess, then aborts (SIGABRT)
//   stall      prints nothing and sleeps (the solution waits on its read)
//   read-first reads a line before printing N (with a solution that reads first: a deadlock)
//   deaf       prints N and sleeps without reading
// Exits 1 ("wrong answer" on stderr) on EOF, a malformed line or too many guesses.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc < 5) return 2;
  long secret = atol(argv[1]), n = atol(argv[2]), max_guesses = atol(argv[3]);
  const char* mode = argv[4];
  setvbuf(stdout, NULL, _IONBF, 0);
  char line[256];
  if (strcmp(mode, "stall") == 0) {
    for (;;) pause();
  }
  if (strcmp(mode, "read-first") == 0 && !fgets(line, sizeof line, stdin)) return 1;
  printf("%ld\n", n);
  if (strcmp(mode, "deaf") == 0) {
    for (;;) pause();
  }
  for (long guesses = 1;; ++guesses) {
    if (!fgets(line, sizeof line, stdin)) {
      fprintf(stderr, "wrong answer: EOF after %ld guesses\n", guesses - 1);
      return 1;
    }
    long g = 0;
    if (sscanf(line, "? %ld", &g) != 1) {
      fprintf(stderr, "wrong answer: malformed line\n");
      return 1;
    }
    if (strcmp(mode, "crash") == 0) abort();
    if (guesses > max_guesses) {
      fprintf(stderr, "wrong answer: more than %ld guesses\n", max_guesses);
      return 1;
    }
    if (g == secret) {
      printf("=\n");
      fprintf(stderr, "ok: %ld guesses\n", guesses);
      return 0;
    }
    printf(g > secret ? "<\n" : ">\n");
  }
}
