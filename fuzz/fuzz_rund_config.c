/* rund.conf (inih through config.c, then opts.c's keys): any file is either
 * read, or refused with "PATH:LINE: reason" or a reason alone (the checks
 * across keys); never a crash, a leak or a read past a line. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "rund/opts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int fd = -1;
  static char path[64];
  if (fd < 0) {
    fd = memfd_create("rund.conf", MFD_CLOEXEC);
    if (fd < 0)
      abort();
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  }
  if (ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
    abort();
  char *argv[] = {"rund", "--config", path, NULL};
  rund_opts o;
  rr_err e = {0};
  bool exit0 = false, in_file = false;
  int r = rund_opts_load(3, argv, &o, &exit0, &in_file, &e);
  if (r < 0) {
    if (!e.code || !e.msg[0])
      abort();
    /* a file error names the file and the line */
    if (in_file && strncmp(e.msg, path, strlen(path)) != 0)
      abort();
  } else if (exit0 || o.config == NULL || o.nlisten == 0) {
    abort();
  }
  rund_opts_free(&o);
  return 0;
}
