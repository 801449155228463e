// bpf(BPF_MAP_CREATE): eBPF is a large kernel attack surface.
#define _GNU_SOURCE

#include <linux/bpf.h>
#include <sys/syscall.h>

#include "adv.h"

int main(void) {
  union bpf_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.map_type = BPF_MAP_TYPE_ARRAY;
  attr.key_size = 4;
  attr.value_size = 8;
  attr.max_entries = 1;
  adv_attempt("bpf BPF_MAP_CREATE");
  adv_report(syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr), "bpf");
}
