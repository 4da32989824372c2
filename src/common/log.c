#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int log_level = RR_LOG_INFO;

void rr_log_set_level(int level) { log_level = level; }

const char *rr_log_quote(char *buf, unsigned long size, const char *s) {
  size_t o = 0;
  if (size < 3) {
    if (size)
      buf[0] = '\0';
    return buf;
  }
  buf[o++] = '"';
  for (; s && *s && o + 5 < size; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      buf[o++] = '\\';
      buf[o++] = (char)c;
    } else if (c < 0x20 || c == 0x7f) {
      o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
    } else {
      buf[o++] = (char)c;
    }
  }
  buf[o++] = '"';
  buf[o] = '\0';
  return buf;
}

void rr_log(int level, const char *msg, const char *kv_fmt, ...) {
  static const char *const names[] = {"debug", "info", "warn", "error"};
  if (level < log_level)
    return;
  char line[2048], q[1024];
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  int n = snprintf(line, sizeof line, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s msg=%s",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                   ts.tv_nsec / 1000000, names[level & 3], rr_log_quote(q, sizeof q, msg));
  if (n < 0)
    return;
  if (kv_fmt && *kv_fmt && (size_t)n < sizeof line - 2) {
    line[n++] = ' ';
    va_list ap;
    va_start(ap, kv_fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n, kv_fmt, ap);
    va_end(ap);
    if (m > 0)
      n += m;
  }
  if ((size_t)n > sizeof line - 2)
    n = (int)sizeof line - 2;
  line[n++] = '\n';
  ssize_t w = write(STDERR_FILENO, line, (size_t)n); /* one write: lines never interleave */
  (void)w;
}
