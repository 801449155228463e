// abort()s: ends with SIGABRT.
#include <stdlib.h>

int main(void) { abort(); }
