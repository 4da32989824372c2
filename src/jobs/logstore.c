#include "jobs/logstore.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/util.h"

#define LOG_BLOCK 4096u

const char *logstore_stream_name(int stream) { return stream == LOG_STDERR ? "stderr" : "stdout"; }

int logstore_job_dir_create(const char *dir, rr_err *e) {
  if (mkdir(dir, 0700) < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot create job directory \"%s\"", dir);
  return 0;
}

static int logstore_path(char *out, size_t n, const char *dir, const char *name, rr_err *e) {
  if ((size_t)snprintf(out, n, "%s/%s", dir, name) >= n)
    return rr_err_set(e, RR_INTERNAL, "path too long under \"%s\"", dir);
  return 0;
}

int logstore_stream_open_append(const char *dir, int stream, rr_err *e) {
  char p[PATH_MAX];
  if (logstore_path(p, sizeof p, dir, logstore_stream_name(stream), e) < 0)
    return -1;
  int fd = open(p, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
  if (fd < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot open log \"%s\"", p);
  return fd;
}

int logstore_stream_create(const char *dir, int stream, rr_err *e) {
  char p[PATH_MAX];
  if (logstore_path(p, sizeof p, dir, logstore_stream_name(stream), e) < 0)
    return -1;
  int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW, 0600);
  if (fd < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot create log \"%s\"", p);
  return fd;
}

int logstore_stream_open_read(const char *dir, int stream, rr_err *e) {
  char p[PATH_MAX];
  if (logstore_path(p, sizeof p, dir, logstore_stream_name(stream), e) < 0)
    return -1;
  int fd = open(p, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return rr_err_sys(e, errno == ENOENT ? RR_NOT_FOUND : RR_INTERNAL, errno,
                      "cannot open log \"%s\"", p);
  return fd;
}

/* Overwrite an existing dst with one pwrite of s + "\n" padded with spaces
 * to the old size: 1 when done, 0 when it does not apply (no file, or either
 * version larger than a page), -1 on error. A write of at most one page at
 * offset 0 is copied in one piece, so a crash of rund sees the old or the new
 * text, never a mix; and unlike tmp + rename it allocates and frees no inode
 * (the dominant cost of a job start on ext4). */
static int logstore_json_overwrite(const char *dst, const char *s, size_t len, rr_err *e) {
  enum { ONE_PAGE = 4096 };
  if (len + 1 > ONE_PAGE)
    return 0;
  _cleanup_close_ int fd = open(dst, O_WRONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
  if (fd < 0)
    return errno == ENOENT ? 0 : rr_err_sys(e, RR_INTERNAL, errno, "cannot write \"%s\"", dst);
  struct stat st;
  if (fstat(fd, &st) < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot write \"%s\"", dst);
  if (!S_ISREG(st.st_mode) || st.st_size > ONE_PAGE)
    return 0;
  char buf[ONE_PAGE];
  size_t n = len + 1 > (size_t)st.st_size ? len + 1 : (size_t)st.st_size;
  memcpy(buf, s, len);
  buf[len] = '\n';
  memset(buf + len + 1, ' ', n - len - 1); /* JSON whitespace over the old tail */
  ssize_t w;
  while ((w = pwrite(fd, buf, n, 0)) < 0 && errno == EINTR)
    ;
  if (w != (ssize_t)n)
    return rr_err_sys(e, RR_INTERNAL, w < 0 ? errno : EIO, "cannot write \"%s\"", dst);
  return 1;
}

int logstore_json_write(const char *dir, json_object *obj, bool sync, rr_err *e) {
  char tmp[PATH_MAX], dst[PATH_MAX];
  if (logstore_path(tmp, sizeof tmp, dir, "job.json.tmp", e) < 0 ||
      logstore_path(dst, sizeof dst, dir, "job.json", e) < 0)
    return -1;
  size_t len;
  const char *s = json_object_to_json_string_length(obj, JSON_C_TO_STRING_PLAIN, &len);
  if (!sync) {
    int r = logstore_json_overwrite(dst, s, len, e);
    if (r != 0)
      return r < 0 ? -1 : 0;
  }
  _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot write \"%s\"", tmp);
  if (rr_write_all(fd, s, len) < 0 || rr_write_all(fd, "\n", 1) < 0 || (sync && fdatasync(fd) < 0))
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot write \"%s\"", tmp);
  if (rename(tmp, dst) < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot rename \"%s\"", tmp);
  if (!sync)
    return 0;
  /* make the rename itself durable */
  _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0)
    fsync(dfd);
  return 0;
}

int logstore_json_write_fresh(int fd, int dir_fd, json_object *obj, bool sync, rr_err *e) {
  size_t len;
  const char *s = json_object_to_json_string_length(obj, JSON_C_TO_STRING_PLAIN, &len);
  for (size_t off = 0; off < len + 1;) { /* one call but for a short write (full disk) */
    struct iovec iov[2];
    int n = 0;
    if (off < len)
      iov[n++] = (struct iovec){(void *)(s + off), len - off};
    iov[n++] = (struct iovec){(void *)"\n", 1};
    ssize_t w = pwritev(fd, iov, n, (off_t)off);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return rr_err_sys(e, RR_INTERNAL, w < 0 ? errno : EIO, "cannot write job.json");
    off += (size_t)w;
  }
  if (sync && (fdatasync(fd) < 0 || fsync(dir_fd) < 0))
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot write job.json");
  return 0;
}

int logstore_json_read(const char *dir, json_object **ret, rr_err *e) {
  char p[PATH_MAX];
  if (logstore_path(p, sizeof p, dir, "job.json", e) < 0)
    return -1;
  _cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return rr_err_sys(e, errno == ENOENT ? RR_NOT_FOUND : RR_INTERNAL, errno, "cannot open \"%s\"",
                      p);
  struct stat st;
  if (fstat(fd, &st) < 0 || st.st_size > 16 * 1024 * 1024)
    return rr_err_set(e, RR_DATA_LOSS, "\"%s\" is unreadable or too large", p);
  _cleanup_free_ char *buf = malloc((size_t)st.st_size + 1);
  if (!buf)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory reading \"%s\"", p);
  size_t got = 0;
  while (got < (size_t)st.st_size) {
    ssize_t n = rr_read(fd, buf + got, (size_t)st.st_size - got);
    if (n < 0)
      return rr_err_sys(e, RR_INTERNAL, errno, "cannot read \"%s\"", p);
    if (n == 0)
      break;
    got += (size_t)n;
  }
  buf[got] = '\0';
  return logstore_json_parse(buf, got, p, ret, e);
}

int logstore_json_parse(const char *buf, size_t len, const char *origin, json_object **ret,
                        rr_err *e) {
  if (len > INT32_MAX)
    return rr_err_set(e, RR_DATA_LOSS, "\"%s\" is too large", origin);
  json_tokener *tok = json_tokener_new();
  if (!tok)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  json_object *obj = json_tokener_parse_ex(tok, buf, (int)len);
  enum json_tokener_error jerr = json_tokener_get_error(tok);
  json_tokener_free(tok);
  if (!obj || jerr != json_tokener_success || !json_object_is_type(obj, json_type_object)) {
    json_object_put(obj);
    return rr_err_set(e, RR_DATA_LOSS, "\"%s\" is not a JSON object", origin);
  }
  *ret = obj;
  return 0;
}

uint64_t logstore_first_kept(int fd, uint64_t size) {
  off_t o = lseek(fd, 0, SEEK_DATA);
  if (o < 0)
    return errno == ENXIO ? size : 0; /* ENXIO: only holes */
  return (uint64_t)o < size ? (uint64_t)o : size;
}

bool logstore_cap_plan(uint64_t size, uint64_t cap, uint64_t kept_from, uint64_t *to) {
  if (!cap || size <= cap)
    return false;
  *to = (size - cap) / LOG_BLOCK * LOG_BLOCK;
  return *to > kept_from;
}

int logstore_enforce_cap(int fd, uint64_t size, uint64_t cap, uint64_t *kept_from, rr_err *e) {
  uint64_t to;
  if (!logstore_cap_plan(size, cap, *kept_from, &to))
    return 0;
  if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)*kept_from,
                (off_t)(to - *kept_from)) < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot drop old log bytes");
  *kept_from = to;
  return 0;
}

ssize_t logstore_stream_read(int fd, uint64_t kept_from, uint64_t *offset, void *buf, size_t len,
                             uint64_t *dropped, rr_err *e) {
  *dropped = 0;
  if (*offset < kept_from) {
    *dropped = kept_from - *offset;
    *offset = kept_from;
  }
  ssize_t n;
  while ((n = pread(fd, buf, len, (off_t)*offset)) < 0 && errno == EINTR)
    ;
  if (n < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot read log");
  *offset += (uint64_t)n;
  return n;
}
