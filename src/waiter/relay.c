#include "relay.h"

#include "sys.h"

#define RELAY_SPLICE_MAX (1ul << 20)

static long long relay_now_ms(void) {
  struct timespec ts = {0, 0};
  ws_clock_monotonic(&ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Decimal digits of v at p; returns the end. */
static char *relay_put_num(char *p, unsigned long long v) {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v > 0);
  while (n > 0)
    *p++ = tmp[--n];
  return p;
}

void relay_init(relay *r, const int in[RELAY_STREAMS], const int out[RELAY_STREAMS], int status_fd,
                char *buf) {
  for (int i = 0; i < RELAY_STREAMS; i++) {
    r->s[i] = (relay_stream){.in = in[i], .out = out[i]};
    if (in[i] >= 0)
      ws_fcntl(in[i], F_SETFL, O_NONBLOCK | O_RDONLY);
  }
  r->status_fd = status_fd;
  r->lost_dirty = false;
  r->lost_said_ms = 0;
  r->buf = buf;
  /* best effort: on a disk that is already full the records may be lost
   * (as they were before the relay) */
  if (status_fd >= 0)
    ws_fallocate(status_fd, FALLOC_FL_KEEP_SIZE, 0, RELAY_FILE_SIZE);
}

bool relay_open(const relay *r) {
  for (int i = 0; i < RELAY_STREAMS; i++)
    if (r->s[i].in >= 0)
      return true;
  return false;
}

static void relay_lose(relay *r, relay_stream *s, unsigned long long n, long err) {
  s->lost += n;
  s->err = (int)-err;
  r->lost_dirty = true;
}

static void relay_eof(relay_stream *s) {
  ws_close(s->in);
  s->in = -1;
}

/* Store what was read into buf (no splice): what the file refuses is lost. */
static void relay_store(relay *r, relay_stream *s, long n) {
  long done = 0;
  while (done < n) {
    long w = ws_write(s->out, r->buf + done, (unsigned long)(n - done));
    if (w == -EINTR)
      continue;
    if (w <= 0) {
      relay_lose(r, s, (unsigned long long)(n - done), w < 0 ? w : -EIO);
      return;
    }
    done += w;
  }
}

/* One chunk of stream s; 1 when something moved (or the stream ended). */
static int relay_pump(relay *r, relay_stream *s) {
  long n = -EINVAL;
  if (!s->no_splice) {
    n = ws_splice(s->in, s->out, RELAY_SPLICE_MAX, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n == -EINVAL || n == -ENOSYS)
      s->no_splice = true; /* e.g. a log file system without splice: copy */
  }
  if (n > 0)
    return 1;
  if (n == 0) {
    relay_eof(s);
    return 1;
  }
  if (n == -EAGAIN || n == -EINTR)
    return 0;
  /* copy (no splice), or drain what the file refused: the job goes on */
  long got = ws_read(s->in, r->buf, RELAY_BUF);
  if (got == 0 || (got < 0 && got != -EAGAIN && got != -EINTR)) {
    relay_eof(s);
    return 1;
  }
  if (got < 0)
    return 0;
  if (s->no_splice && n == -EINVAL)
    relay_store(r, s, got);
  else
    relay_lose(r, s, (unsigned long long)got, n);
  return 1;
}

void relay_flush(relay *r) {
  if (!r->lost_dirty)
    return;
  r->lost_dirty = false;
  r->lost_said_ms = relay_now_ms();
  if (r->status_fd < 0)
    return;
  char line[RELAY_LINE];
  char *p = line;
  *p++ = 'l', *p++ = 'o', *p++ = 's', *p++ = 't';
  for (int i = 0; i < RELAY_STREAMS; i++) {
    *p++ = ' ';
    p = relay_put_num(p, r->s[i].lost);
  }
  for (int i = 0; i < RELAY_STREAMS; i++) {
    *p++ = ' ';
    p = relay_put_num(p, (unsigned)r->s[i].err);
  }
  while (p < line + RELAY_LINE - 1)
    *p++ = ' ';
  *p = '\n';
  /* in place, in space allocated at the start: works on a full disk */
  while (ws_pwrite(r->status_fd, line, RELAY_LINE, RELAY_LOST_AT) == -EINTR)
    ;
}

/* Until the lost line is due (-1: nothing to say). */
static int relay_flush_in(const relay *r) {
  if (!r->lost_dirty)
    return -1;
  long long left = r->lost_said_ms + RELAY_SAY_MS - relay_now_ms();
  return left < 0 ? 0 : (int)left;
}

void relay_wait(relay *r, struct pollfd *extra, unsigned long nextra, int timeout_ms) {
  struct pollfd p[RELAY_STREAMS + RELAY_MAX_EXTRA];
  relay_stream *by[RELAY_STREAMS];
  unsigned long n = 0;
  for (int i = 0; i < RELAY_STREAMS; i++)
    if (r->s[i].in >= 0) {
      by[n] = &r->s[i];
      p[n++] = (struct pollfd){.fd = r->s[i].in, .events = POLLIN};
    }
  unsigned long first = n;
  for (unsigned long i = 0; i < nextra && i < RELAY_MAX_EXTRA; i++)
    p[n++] = extra[i];
  int due = relay_flush_in(r);
  if (due >= 0 && (timeout_ms < 0 || due < timeout_ms))
    timeout_ms = due;
  long rc = ws_poll(p, n, timeout_ms);
  /* a few chunks per stream per round: fewer polls, and fair */
  for (unsigned long i = 0; rc > 0 && i < first; i++)
    for (int k = 0; p[i].revents && k < 8 && by[i]->in >= 0 && relay_pump(r, by[i]); k++)
      ;
  for (unsigned long i = 0; i < nextra && i < RELAY_MAX_EXTRA; i++)
    extra[i].revents = rc > 0 ? p[first + i].revents : 0;
  if (relay_flush_in(r) == 0)
    relay_flush(r);
}

void relay_drain(relay *r) {
  /* bounded: writers that never pause cannot keep us here */
  for (int i = 0; i < RELAY_STREAMS; i++)
    for (int k = 0; k < 1024 && r->s[i].in >= 0 && relay_pump(r, &r->s[i]); k++)
      ;
}

void relay_record_exit(int status_fd, bool signaled, int n) {
  if (status_fd < 0)
    return;
  struct timespec ts = {0, 0};
  ws_clock_realtime(&ts);
  char buf[64];
  char *p = buf;
  const char *word = signaled ? "signal " : "exit ";
  while (*word)
    *p++ = *word++;
  p = relay_put_num(p, (unsigned)n);
  *p++ = ' ';
  p = relay_put_num(p,
                    (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec);
  *p++ = '\n';
  long w;
  while ((w = ws_pwrite(status_fd, buf, (unsigned long)(p - buf), 0)) == -EINTR)
    ;
  if (w == -ESPIPE) /* a pipe (Exec sessions): one write all the same */
    while (ws_write(status_fd, buf, (unsigned long)(p - buf)) == -EINTR)
      ;
}
