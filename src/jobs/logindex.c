#include "jobs/logindex.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "jobs/job_internal.h"
#include "jobs/logstore.h"
#include "waiter/relay.h"

#define LOGINDEX_BATCH 256 /* records per pread */

int logindex_open(const char *dir, rr_err *e) {
  char p[PATH_MAX];
  if ((size_t)snprintf(p, sizeof p, "%s/" JOB_EXIT_FILE, dir) >= sizeof p)
    return rr_err_set(e, RR_INTERNAL, "path too long under \"%s\"", dir);
  int fd = open(p, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
  if (fd < 0)
    return rr_err_sys(e, errno == ENOENT ? RR_NOT_FOUND : RR_INTERNAL, errno, "cannot open \"%s\"",
                      p);
  return fd;
}

bool logindex_present(int fd) {
  char m[RELAY_REC_SIZE];
  ssize_t n;
  while ((n = pread(fd, m, sizeof m, RELAY_INDEX_AT)) < 0 && errno == EINTR)
    ;
  return n == (ssize_t)sizeof m && memcmp(m, RELAY_INDEX_MAGIC, sizeof m) == 0;
}

ssize_t logindex_read(int fd, uint64_t first, logindex_rec *out, size_t n, rr_err *e) {
  relay_rec raw[LOGINDEX_BATCH];
  if (n > LOGINDEX_BATCH)
    n = LOGINDEX_BATCH;
  off_t at = (off_t)(RELAY_INDEX_AT + RELAY_REC_SIZE + first * RELAY_REC_SIZE);
  ssize_t got;
  while ((got = pread(fd, raw, n * sizeof *raw, at)) < 0 && errno == EINTR)
    ;
  if (got < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot read the logs' index");
  size_t k = (size_t)got / sizeof *raw; /* a record being written is read next time */
  for (size_t i = 0; i < k; i++) {
    /* not a record (torn, or damaged): the index ends here, and readers
     * take the rest of the logs stream by stream */
    if (raw[i].len == 0 || raw[i].kind > (RELAY_REC_STDERR | RELAY_REC_LOST))
      return (ssize_t)i;
    out[i] = (logindex_rec){.stream = raw[i].kind & RELAY_REC_STDERR ? LOG_STDERR : LOG_STDOUT,
                            .lost = raw[i].kind & RELAY_REC_LOST,
                            .len = raw[i].len,
                            .time_ns = (int64_t)raw[i].time_ns};
  }
  return (ssize_t)k;
}
