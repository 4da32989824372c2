/* runctl --hosts output: each host's stream as "NAME: line" lines on
 * runctl's own stdout or stderr (whole lines, one writer at a time, so
 * hosts never interleave inside a line), or raw into a file of its own. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "fanout.h"

void fanout_sink_init(fanout_sink *s, pthread_mutex_t *lock, const char *name, int fd,
                      bool prefix) {
  *s = (fanout_sink){.lock = lock, .name = name, .fd = fd, .prefix = prefix};
}

void fanout_sink_free(fanout_sink *s) {
  free(s->line);
  s->line = NULL;
  s->len = s->cap = 0;
}

/* "NAME: " + the line + "\n" in one write. */
static void sink_emit(fanout_sink *s, const char *data, size_t len) {
  size_t nlen = strlen(s->name);
  size_t total = nlen + 2 + len + 1;
  char stackbuf[4096];
  char *buf = total <= sizeof stackbuf ? stackbuf : malloc(total);
  if (!buf) { /* three writes then, still under the lock */
    pthread_mutex_lock(s->lock);
    runctl_write_or_die(s->fd, s->name, nlen);
    runctl_write_or_die(s->fd, ": ", 2);
    runctl_write_or_die(s->fd, data, len);
    runctl_write_or_die(s->fd, "\n", 1);
    pthread_mutex_unlock(s->lock);
    return;
  }
  memcpy(buf, s->name, nlen);
  memcpy(buf + nlen, ": ", 2);
  memcpy(buf + nlen + 2, data, len);
  buf[total - 1] = '\n';
  pthread_mutex_lock(s->lock);
  runctl_write_or_die(s->fd, buf, total);
  pthread_mutex_unlock(s->lock);
  if (buf != stackbuf)
    free(buf);
}

static int sink_keep(fanout_sink *s, const char *data, size_t len) {
  if (s->len + len > s->cap) {
    size_t ncap = s->cap ? s->cap : 256;
    while (ncap < s->len + len)
      ncap *= 2;
    char *n = realloc(s->line, ncap);
    if (!n) {
      s->write_errno = ENOMEM;
      return -1;
    }
    s->line = n;
    s->cap = ncap;
  }
  memcpy(s->line + s->len, data, len);
  s->len += len;
  return 0;
}

int fanout_sink_write(fanout_sink *s, const void *data, size_t len) {
  if (!s->prefix) {
    if (rr_write_all(s->fd, data, len) < 0) {
      s->write_errno = errno;
      return -1;
    }
    return 0;
  }
  const char *p = data, *end = p + len;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t room = FANOUT_MAX_LINE - s->len;
    size_t take = nl ? (size_t)(nl - p) : (size_t)(end - p);
    if (take >= room) { /* an overlong line goes out in pieces of the maximum */
      if (sink_keep(s, p, room) < 0)
        return -1;
      sink_emit(s, s->line, s->len);
      s->len = 0;
      p += room;
      continue;
    }
    if (!nl)
      return sink_keep(s, p, take);
    if (s->len) {
      if (sink_keep(s, p, take) < 0)
        return -1;
      sink_emit(s, s->line, s->len);
      s->len = 0;
    } else {
      sink_emit(s, p, take);
    }
    p = nl + 1;
  }
  return 0;
}

int fanout_sink_finish(fanout_sink *s) {
  if (s->prefix && s->len) {
    sink_emit(s, s->line, s->len);
    s->len = 0;
  }
  return 0;
}
