#include "relay.h"

#include "sys.h"

#define RELAY_SPLICE_MAX (1ul << 20)

_Static_assert(sizeof(relay_rec) == RELAY_REC_SIZE, "relay_rec is the on-disk record");
_Static_assert(sizeof RELAY_INDEX_MAGIC == RELAY_REC_SIZE + 1, "the magic fills a record");

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
  r->npend = 0;
  r->index_end = 0;
  r->index_off = status_fd < 0;
  r->round_ns = r->last_ns = 0;
  /* best effort: on a disk that is already full the records may be lost
   * (as they were before the relay) */
  if (status_fd >= 0)
    ws_fallocate(status_fd, FALLOC_FL_KEEP_SIZE, 0, RELAY_PREALLOC);
}

/* Merge neighbours of the same stream and kind whatever their times: room
 * for more while the file refuses them (the order stays exact). */
static void relay_index_squeeze(relay *r) {
  unsigned k = 0;
  for (unsigned i = 0; i < r->npend; i++) {
    relay_rec *p = k ? &r->pend[k - 1] : 0;
    if (p && p->kind == r->pend[i].kind && p->len <= (1u << 30) && r->pend[i].len <= (1u << 30))
      p->len += r->pend[i].len;
    else
      r->pend[k++] = r->pend[i];
  }
  r->npend = k;
}

/* Note n bytes of stream s moved (or lost) now. */
static void relay_index_add(relay *r, const relay_stream *s, unsigned long long n, bool lost) {
  if (r->index_off || n == 0)
    return;
  if (!r->round_ns) { /* one clock read per round: its chunks share the time */
    struct timespec ts = {0, 0};
    ws_clock_realtime(&ts);
    unsigned long long t =
        (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
    r->round_ns = r->last_ns = t > r->last_ns ? t : r->last_ns; /* never back */
  }
  unsigned kind = (s == &r->s[1] ? RELAY_REC_STDERR : 0) | (lost ? RELAY_REC_LOST : 0);
  while (n > 0) {
    unsigned len = n > (1u << 30) ? 1u << 30 : (unsigned)n;
    n -= len;
    relay_rec *last = r->npend ? &r->pend[r->npend - 1] : 0;
    if (last && last->kind == kind && last->time_ns == r->round_ns && last->len <= (1u << 30)) {
      last->len += len;
      continue;
    }
    if (r->npend == RELAY_PEND)
      relay_index_squeeze(r);
    if (r->npend == RELAY_PEND) {
      /* a record dropped would shift every later one: stop here (readers
       * take what follows stream by stream) */
      r->index_off = true;
      return;
    }
    r->pend[r->npend++] = (relay_rec){.time_ns = r->round_ns, .len = len, .kind = kind};
  }
}

/* Append the pending records (and the magic before the first), one pwrite;
 * what the file refuses stays pending for the next round. */
static void relay_index_write(relay *r) {
  r->round_ns = 0;
  if (r->index_off || r->npend == 0)
    return;
  char b[RELAY_REC_SIZE * (1 + RELAY_PEND)];
  unsigned long hdr = r->index_end ? 0 : RELAY_REC_SIZE;
  if (hdr)
    memcpy(b, RELAY_INDEX_MAGIC, RELAY_REC_SIZE);
  memcpy(b + hdr, r->pend, r->npend * sizeof(relay_rec));
  long long at = r->index_end ? r->index_end : RELAY_INDEX_AT;
  long w;
  while ((w = ws_pwrite(r->status_fd, b, hdr + r->npend * sizeof(relay_rec), at)) == -EINTR)
    ;
  if (w == -ESPIPE || w == -EBADF || w == -EINVAL) { /* not a file: no index */
    r->index_off = true;
    return;
  }
  if (w < (long)hdr)
    return; /* refused (full disk): tried again next round */
  unsigned k = (unsigned)(((unsigned long)w - hdr) / sizeof(relay_rec));
  r->index_end = at + (long long)hdr + (long long)k * RELAY_REC_SIZE;
  for (unsigned i = k; i < r->npend; i++)
    r->pend[i - k] = r->pend[i];
  r->npend -= k;
}

bool relay_open(const relay *r) {
  for (int i = 0; i < RELAY_STREAMS; i++)
    if (r->s[i].in >= 0)
      return true;
  return false;
}

static void relay_lose(relay *r, relay_stream *s, unsigned long long n, long err) {
  relay_index_add(r, s, n, true);
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
      relay_index_add(r, s, (unsigned long long)done, false);
      relay_lose(r, s, (unsigned long long)(n - done), w < 0 ? w : -EIO);
      return;
    }
    done += w;
  }
  relay_index_add(r, s, (unsigned long long)n, false);
}

/* One chunk of stream s; 1 when something moved (or the stream ended). */
static int relay_pump(relay *r, relay_stream *s) {
  long n = -EINVAL;
  if (!s->no_splice) {
    n = ws_splice(s->in, s->out, RELAY_SPLICE_MAX, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n == -EINVAL || n == -ENOSYS)
      s->no_splice = true; /* e.g. a log file system without splice: copy */
  }
  if (n > 0) {
    relay_index_add(r, s, (unsigned long long)n, false);
    return 1;
  }
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
  relay_index_write(r);
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
  relay_index_write(r);
  if (relay_flush_in(r) == 0)
    relay_flush(r);
}

void relay_drain(relay *r) {
  /* bounded: writers that never pause cannot keep us here */
  for (int i = 0; i < RELAY_STREAMS; i++)
    for (int k = 0; k < 1024 && r->s[i].in >= 0 && relay_pump(r, &r->s[i]); k++)
      ;
  relay_index_write(r);
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
