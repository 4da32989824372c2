#include "input.h"

#include <termios.h>

#include "sys.h"

void input_init(input *x, int in, int lfd, bool tty, char *buf) {
  *x = (input){.lfd = lfd, .cfd = -1, .in = in, .tty = tty, .buf = buf};
  if (in >= 0) /* a write the command does not take must not stop the keeper */
    ws_fcntl(in, F_SETFL, O_NONBLOCK | O_WRONLY);
  if (lfd >= 0)
    ws_fcntl(lfd, F_SETFL, O_NONBLOCK | O_RDWR);
}

unsigned long input_poll_fill(const input *x, struct pollfd *p) {
  unsigned long n = 0;
  if (x->lfd >= 0)
    p[n++] = (struct pollfd){.fd = x->lfd, .events = POLLIN};
  if (x->cfd >= 0 && !x->pend_len)
    p[n++] = (struct pollfd){.fd = x->cfd, .events = POLLIN};
  if (x->in >= 0 && x->pend_len)
    p[n++] = (struct pollfd){.fd = x->in, .events = POLLOUT};
  return n;
}

static void input_drop_conn(input *x) {
  ws_close(x->cfd);
  x->cfd = -1;
  x->hdr_len = 0; /* a half-sent frame of a rund that went is dropped */
  x->left = 0;
}

static void input_close_stdin(input *x) {
  if (x->in < 0)
    return;
  if (x->tty) { /* the terminal stays (it is the output too): end of file is VEOF */
    struct termios t;
    char veof = 4;
    if (ws_ioctl(x->in, TCGETS, &t) == 0 && t.c_cc[VEOF])
      veof = (char)t.c_cc[VEOF];
    ws_write(x->in, &veof, 1);
    return;
  }
  ws_close(x->in);
  x->in = -1;
  x->pend_len = 0;
}

/* Write what is pending to the job's stdin. */
static void input_flush(input *x) {
  while (x->pend_len && x->in >= 0) {
    long w = ws_write(x->in, x->buf + x->pend_off, x->pend_len);
    if (w == -EINTR)
      continue;
    if (w == -EAGAIN)
      return;
    if (w <= 0) { /* the command closed its stdin: what it does not read is gone */
      x->pend_len = 0;
      return;
    }
    x->pend_off += (unsigned)w;
    x->pend_len -= (unsigned)w;
  }
  x->pend_off = 0;
}

static unsigned input_u16(const unsigned char *p) { return p[0] | (unsigned)p[1] << 8; }

/* A whole header came: act on it. */
static void input_frame(input *x) {
  const unsigned char *h = x->hdr;
  x->hdr_len = 0;
  if (h[0] == 'D')
    x->left =
        h[1] | (unsigned long)h[2] << 8 | (unsigned long)h[3] << 16 | (unsigned long)h[4] << 24;
  else if (h[0] == 'C')
    input_close_stdin(x);
  else if (h[0] == 'W' && x->tty && x->in >= 0) {
    struct winsize ws = {.ws_row = (unsigned short)input_u16(h + 1),
                         .ws_col = (unsigned short)input_u16(h + 3)};
    ws_ioctl(x->in, TIOCSWINSZ, &ws);
  } else if (h[0] != 'W') /* not our protocol: whoever it is goes */
    input_drop_conn(x);
}

/* Read from rund while nothing waits for the job's stdin. */
static void input_read(input *x) {
  while (x->cfd >= 0 && !x->pend_len) {
    long n;
    if (x->left) {
      unsigned long want = x->left < INPUT_BUF ? x->left : INPUT_BUF;
      n = ws_read(x->cfd, x->buf, want);
      if (n > 0) {
        x->left -= (unsigned long)n;
        if (x->in >= 0) { /* after a close, bytes are dropped */
          x->pend_len = (unsigned)n;
          x->pend_off = 0;
          input_flush(x);
        }
        continue;
      }
    } else {
      n = ws_read(x->cfd, x->hdr + x->hdr_len, INPUT_FRAME - x->hdr_len);
      if (n > 0) {
        x->hdr_len += (unsigned)n;
        if (x->hdr_len == INPUT_FRAME)
          input_frame(x);
        continue;
      }
    }
    if (n == -EINTR)
      continue;
    if (n != -EAGAIN)
      input_drop_conn(x); /* rund went (EOF) or the connection failed */
    return;
  }
}

void input_poll_done(input *x, const struct pollfd *p, unsigned long n) {
  for (unsigned long i = 0; i < n; i++) {
    if (!p[i].revents)
      continue;
    if (p[i].fd == x->lfd) {
      int c = ws_accept(x->lfd);
      if (c >= 0) {
        if (x->cfd >= 0)
          input_drop_conn(x);
        x->cfd = c;
      }
    } else if (p[i].fd == x->in) {
      input_flush(x);
      if (p[i].revents & (POLLERR | POLLHUP) && !x->tty)
        x->pend_len = 0; /* nobody reads stdin any more */
    }
  }
  input_read(x);
}
