/* The program the phase benchmarks spawn: does nothing, statically linked. */
int main(void) { return 0; }
