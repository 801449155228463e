// Leaves something in its working directory for jailpool's copy-out to find:
//   files_trick upper IN OUT        OUT = IN in upper case (the honest job)
//   files_trick symlink OUT TARGET  OUT is a symlink to TARGET (e.g. /etc/shadow)
//   files_trick dirlink DIR TARGET  DIR is a symlink to the directory TARGET (e.g. /etc)
//   files_trick fifo OUT            OUT is a FIFO (a reader that opened it would block)
//   files_trick socket OUT          OUT is a bound unix socket
//   files_trick hardlink OUT        OUT is a second name of a file of the job
//   files_trick big OUT BYTES       OUT holds BYTES bytes
//   files_trick swap OUT TARGET     forever: OUT is a regular file, then a symlink to TARGET
//   files_trick write_then_sleep OUT  writes OUT, then sleeps until killed
// Exits 0 once the trick is in place (swap and write_then_sleep never end by themselves).
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int fail(const char* what) {
  fprintf(stderr, "files_trick: %s: %s\n", what, strerror(errno));
  return 1;
}

static int write_file(const char* path, const char* data, size_t len) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return fail(path);
  while (len > 0) {
    ssize_t n = write(fd, data, len);
    if (n <= 0) return fail("write");
    data += n;
    len -= (size_t)n;
  }
  close(fd);
  return 0;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: files_trick MODE PATH [ARG]\n");
    return 2;
  }
  const char* mode = argv[1];
  const char* out = argv[2];
  const char* arg = argc > 3 ? argv[3] : "";
  if (strcmp(mode, "upper") == 0) {
    FILE* in = fopen(out, "r");  // here `out` is IN, arg is OUT
    if (in == NULL) return fail(out);
    char buf[65536];
    size_t n = fread(buf, 1, sizeof buf, in);
    fclose(in);
    for (size_t i = 0; i < n; ++i) {
      if (buf[i] >= 'a' && buf[i] <= 'z') buf[i] = (char)(buf[i] - 'a' + 'A');
    }
    return write_file(arg, buf, n);
  }
  if (strcmp(mode, "symlink") == 0 || strcmp(mode, "dirlink") == 0) {
    return symlink(arg, out) == 0 ? 0 : fail("symlink");
  }
  if (strcmp(mode, "fifo") == 0) return mkfifo(out, 0666) == 0 ? 0 : fail("mkfifo");
  if (strcmp(mode, "socket") == 0) {
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", out);
    if (s < 0 || bind(s, (struct sockaddr*)&addr, sizeof addr) != 0) return fail("bind");
    return 0;
  }
  if (strcmp(mode, "hardlink") == 0) {
    if (write_file("original", "job data\n", 9) != 0) return 1;
    return link("original", out) == 0 ? 0 : fail("link");
  }
  if (strcmp(mode, "big") == 0) {
    size_t bytes = (size_t)atoll(arg);
    char* data = malloc(bytes ? bytes : 1);
    if (data == NULL) return fail("malloc");
    memset(data, 'x', bytes);
    return write_file(out, data, bytes);
  }
  if (strcmp(mode, "swap") == 0) {
    char tmp_file[4096], tmp_link[4096];
    snprintf(tmp_file, sizeof tmp_file, "%s.file", out);
    snprintf(tmp_link, sizeof tmp_link, "%s.link", out);
    for (;;) {
      if (write_file(tmp_file, "regular\n", 8) != 0) return 1;
      if (rename(tmp_file, out) != 0) return fail("rename");
      unlink(tmp_link);
      if (symlink(arg, tmp_link) != 0) return fail("symlink");
      if (rename(tmp_link, out) != 0) return fail("rename");
    }
  }
  if (strcmp(mode, "write_then_sleep") == 0) {
    if (write_file(out, "before the kill\n", 16) != 0) return 1;
    for (;;) pause();
  }
  fprintf(stderr, "files_trick: unknown mode %s\n", mode);
  return 2;
}
