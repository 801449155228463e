// The net namespace's cumulative counters, which no reset can set back.
//
// send: sends one UDP datagram to 127.0.0.1:9 (lo counts it, sent and received).
// noroute: sends one UDP datagram to 192.0.2.1 (TEST-NET-1): with only lo there is no route,
//   so the send fails (ENETUNREACH) and no packet exists, but Ip OutNoRoutes moves.
// read: sends nothing.
// Each prints "lo_packets=<lo's rx+tx packets from /proc/net/dev>", "outnoroutes=<Ip
// OutNoRoutes from /proc/net/snmp>" (as found at its start) and "netns=<its net namespace's
// id>". Exits 0.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static long lo_packets(void) {
  FILE* f = fopen("/proc/net/dev", "r");
  if (!f) return -1;
  char line[512];
  long total = -1;
  while (fgets(line, sizeof line, f)) {
    char* colon = strchr(line, ':');
    if (!colon) continue;
    *colon = 0;
    if (strcmp(line + strspn(line, " "), "lo") != 0) continue;
    unsigned long long v[16] = {0};
    if (sscanf(colon + 1, "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
               &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]) == 10) {
      total = (long)(v[1] + v[9]);  // rx packets, tx packets
    }
  }
  fclose(f);
  return total;
}

// The value under `name` in the "Ip:" rows of /proc/net/snmp (a row of names, then of values).
static long ip_mib(const char* name) {
  FILE* f = fopen("/proc/net/snmp", "r");
  if (!f) return -1;
  char names[4096], values[4096];
  long out = -1;
  while (fgets(names, sizeof names, f) && fgets(values, sizeof values, f)) {
    if (strncmp(names, "Ip:", 3) != 0) continue;
    char *sn, *sv;
    char* n = strtok_r(names, " \n", &sn);
    char* v = strtok_r(values, " \n", &sv);
    while (n && v) {
      if (strcmp(n, name) == 0) out = atol(v);
      n = strtok_r(NULL, " \n", &sn);
      v = strtok_r(NULL, " \n", &sv);
    }
    break;
  }
  fclose(f);
  return out;
}

static void send_to(const char* ip) {
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  if (s < 0) return;
  struct sockaddr_in to;
  memset(&to, 0, sizeof to);
  to.sin_family = AF_INET;
  to.sin_port = htons(9);
  inet_pton(AF_INET, ip, &to.sin_addr);
  sendto(s, "x", 1, 0, (struct sockaddr*)&to, sizeof to);
  close(s);
}

int main(int argc, char** argv) {
  const char* what = argc > 1 ? argv[1] : "read";
  printf("lo_packets=%ld\noutnoroutes=%ld\n", lo_packets(), ip_mib("OutNoRoutes"));
  struct stat st;
  if (stat("/proc/self/ns/net", &st) == 0) printf("netns=%llu\n", (unsigned long long)st.st_ino);
  if (strcmp(what, "send") == 0) send_to("127.0.0.1");
  if (strcmp(what, "noroute") == 0) send_to("192.0.2.1");
  return 0;
}
