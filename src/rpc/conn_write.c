/* A connection's write side: the fd transport, pooled output buffers, and
 * flushing what nghttp2 queued (small frames gathered, DATA payloads written
 * where they lie or spliced from a pipe). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/util.h"
#include "rpc/internal.h"

/* Most bytes written per service pass, so one busy connection cannot starve
 * the others; the rest goes out when the loop comes back. */
#define CONN_WRITE_BUDGET (1024u * 1024u)
#define CONN_STAGE (64u * 1024u)

static ssize_t fd_read(rpc_conn *conn, void *buf, size_t len) {
  return rr_read(conn->in_fd, buf, len);
}

/* A write to a pipe whose reader is gone raises SIGPIPE, whose default kills
 * the process: it is blocked around the write and the one raised is taken
 * back, so a gone peer is EPIPE whatever the process's disposition. */
static ssize_t fd_pipe_writev(int fd, const struct iovec *iov, int n) {
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  sigprocmask(SIG_BLOCK, &pipe_set, &old);
  ssize_t w;
  do
    w = writev(fd, iov, n);
  while (w < 0 && errno == EINTR);
  int err = errno;
  if (w < 0 && err == EPIPE && !sigismember(&old, SIGPIPE)) {
    static const struct timespec zero = {0, 0};
    while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
      ;
  }
  sigprocmask(SIG_SETMASK, &old, NULL);
  errno = err;
  return w;
}

static ssize_t fd_writev(rpc_conn *conn, const struct iovec *iov, int n) {
  if (!conn->out_sock)
    return fd_pipe_writev(conn->out_fd, iov, n);
  struct msghdr m = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n};
  ssize_t w;
  do
    w = sendmsg(conn->out_fd, &m, MSG_NOSIGNAL); /* a gone peer is EPIPE, not SIGPIPE */
  while (w < 0 && errno == EINTR);
  return w;
}

static ssize_t fd_write(rpc_conn *conn, const void *buf, size_t len) {
  struct iovec iov = {(void *)buf, len};
  return fd_writev(conn, &iov, 1);
}

static void fd_close(rpc_conn *conn) {
  close(conn->in_fd);
  if (conn->out_fd != conn->in_fd)
    close(conn->out_fd);
}

const rpc_transport_ops rpc_transport_fd = {"fd", fd_read, fd_write, fd_close, NULL, fd_writev};

rpc_buf *rpc_conn_buf_get(rpc_conn *conn) {
  rpc_buf *b = conn->pool;
  if (b) {
    conn->pool = b->next;
    conn->npool--;
  } else if (!(b = malloc(sizeof *b + RPC_BUF_POOLED_SIZE))) {
    return NULL;
  }
  *b = (rpc_buf){.pooled = true};
  return b;
}

void rpc_conn_buf_put(rpc_conn *conn, rpc_buf *b) {
  if (!b)
    return;
  if (b->spliced) {
    close(b->fd);
    free(b);
    return;
  }
  if (b->pooled && !conn->dead && conn->calls && conn->npool < RPC_CONN_POOL_MAX) {
    b->next = conn->pool;
    conn->pool = b;
    conn->npool++;
    return;
  }
  free(b);
}

void rpc_conn_pool_trim(rpc_conn *conn) {
  while (conn->pool) {
    rpc_buf *b = conn->pool;
    conn->pool = b->next;
    free(b);
  }
  conn->npool = 0;
}
bool rpc_conn_write_pending(const rpc_conn *conn) { return conn->woff < conn->wlen || conn->wpay; }

/* One loop thread: shared by every connection's flush, always emptied. */
static uint8_t conn_stage[CONN_STAGE];

/* Append p[0..n) to wbuf (unsent bytes, written before anything else). */
static int conn_keep(rpc_conn *conn, const uint8_t *p, size_t n) {
  size_t keep = conn->wlen - conn->woff;
  uint8_t *q = malloc(keep + n);
  if (!q)
    return -1;
  if (keep)
    memcpy(q, conn->wbuf + conn->woff, keep);
  memcpy(q + keep, p, n);
  free(conn->wbuf);
  conn->wbuf = q;
  conn->woff = 0;
  conn->wlen = keep + n;
  return 0;
}

/* Write iov[0..n) (nothing may be pending) or keep what the socket did not
 * take: copied into wbuf, except own's payload (own: a buffer we were given,
 * iov[n-1] points into it), which is kept as it is in wpay. -1 on a write
 * error or out of memory (own freed). */
static int conn_out_iov(rpc_conn *conn, const struct iovec *iov, int n, rpc_buf *own) {
  struct iovec v[4];
  size_t total = 0, done = 0;
  for (int i = 0; i < n; i++)
    total += iov[i].iov_len;
  while (done < total) {
    int k = 0;
    size_t skip = done;
    for (int i = 0; i < n; i++) {
      if (skip >= iov[i].iov_len) {
        skip -= iov[i].iov_len;
        continue;
      }
      v[k++] = (struct iovec){(uint8_t *)iov[i].iov_base + skip, iov[i].iov_len - skip};
      skip = 0;
    }
    ssize_t w = k == 1 ? conn->ops->write(conn, v[0].iov_base, v[0].iov_len)
                       : conn->ops->writev(conn, v, k);
    if (w < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        break;
      rpc_conn_buf_put(conn, own);
      return -1;
    }
    done += (size_t)w;
  }
  size_t skip = done;
  for (int i = 0; i < n; i++) {
    const uint8_t *p = iov[i].iov_base;
    size_t len = iov[i].iov_len;
    if (skip >= len) {
      skip -= len;
      continue;
    }
    p += skip, len -= skip, skip = 0;
    if (own && i == n - 1) {
      own->off = (size_t)(p - own->data);
      conn->wpay = own;
      return 0;
    }
    if (conn_keep(conn, p, len) < 0) {
      rpc_conn_buf_put(conn, own);
      return -1;
    }
  }
  rpc_conn_buf_put(conn, own);
  return 0;
}

static int conn_out(rpc_conn *conn, const uint8_t *p, size_t n) {
  if (rpc_conn_write_pending(conn)) /* behind bytes already kept (never behind wpay) */
    return conn_keep(conn, p, n);
  struct iovec iov = {(void *)p, n};
  return conn_out_iov(conn, &iov, 1, NULL);
}

/* What an earlier flush could not write, in order: wbuf, then wpay. */
static int conn_drain(rpc_conn *conn) {
  while (conn->woff < conn->wlen) {
    ssize_t n = conn->ops->write(conn, conn->wbuf + conn->woff, conn->wlen - conn->woff);
    if (n < 0)
      return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    conn->woff += (size_t)n;
  }
  free(conn->wbuf);
  conn->wbuf = NULL;
  conn->woff = conn->wlen = 0;
  while (conn->wpay) {
    rpc_buf *b = conn->wpay;
    ssize_t n = conn->ops->write(conn, b->data + b->off, b->len - b->off);
    if (n < 0)
      return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    b->off += (size_t)n;
    if (b->off == b->len) {
      conn->wpay = NULL;
      rpc_conn_buf_put(conn, b);
    }
  }
  return 0;
}

static void conn_spend(rpc_conn *conn, size_t n) {
  conn->budget = n >= conn->budget ? 0 : conn->budget - n;
}

/* Read n bytes of the pipe fd into wbuf, after what is kept there: the part
 * of a spliced frame the socket did not take. */
static int conn_keep_fd(rpc_conn *conn, int fd, size_t n) {
  size_t keep = conn->wlen - conn->woff, got = 0;
  uint8_t *q = malloc(keep + n);
  if (!q)
    return -1;
  if (keep)
    memcpy(q, conn->wbuf + conn->woff, keep);
  while (got < n) {
    ssize_t r = read(fd, q + keep + got, n - got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0) { /* the bytes were counted in the pipe: only a bug gets here */
      free(q);
      return -1;
    }
    got += (size_t)r;
  }
  free(conn->wbuf);
  conn->wbuf = q;
  conn->woff = 0;
  conn->wlen = keep + n;
  return 0;
}

/* A DATA frame of a spliced message: the staged bytes, the frame header and
 * the part of the message header it covers in one write, then its payload
 * moved from the pipe to the socket (no copy in rund); what the socket does
 * not take now is read into wbuf, so no frame is ever left half in a pipe. */
static int conn_send_spliced(rpc_conn *conn, rpc_call *c, const uint8_t *framehd, size_t length) {
  rpc_buf *b = c->out_head;
  size_t mem = b->off < b->hdr_len ? b->hdr_len - b->off : 0;
  if (mem > length)
    mem = length;
  struct iovec iov[3];
  int n = 0;
  if (conn->stage_len)
    iov[n++] = (struct iovec){conn_stage, conn->stage_len};
  iov[n++] = (struct iovec){(void *)framehd, 9};
  if (mem)
    iov[n++] = (struct iovec){b->data + b->off, mem};
  conn->stage_len = 0;
  if (conn_out_iov(conn, iov, n, NULL) < 0)
    return -1;
  size_t left = length - mem;
  while (left && !rpc_conn_write_pending(conn)) {
    ssize_t k = splice(b->fd, NULL, conn->out_fd, NULL, left, SPLICE_F_NONBLOCK | SPLICE_F_MORE);
    if (k < 0 && errno == EINTR)
      continue;
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      break; /* the socket is full (the pipe holds the bytes) */
    if (k <= 0)
      return -1;
    left -= (size_t)k;
  }
  if (left && conn_keep_fd(conn, b->fd, left) < 0)
    return -1;
  rpc_conn_buf_put(conn, rpc_call_out_take(c, length));
  return 0;
}

/* Small frames go into the staging buffer (copied: one write for many);
 * larger payloads are written where they lie, after the staged bytes and
 * the frame header, in one gathered write. */
#define CONN_COPY_MAX (16u * 1024u)

int rpc_conn_send_data(nghttp2_session *h2, nghttp2_frame *frame, const uint8_t *framehd,
                       size_t length, nghttp2_data_source *source, void *user_data) {
  rpc_conn *conn = user_data;
  rpc_call *c = source->ptr;
  if (frame->data.padlen || !c->out_head || c->out_head->len - c->out_head->off < length)
    return NGHTTP2_ERR_CALLBACK_FAILURE; /* never padded; call_data_read sized it */
  const uint8_t *p = c->out_head->data + c->out_head->off;
  conn->sent_in_place = true;
  conn_spend(conn, length + 9);
  if (c->out_head->spliced) {
    if (conn_send_spliced(conn, c, framehd, length) < 0)
      return NGHTTP2_ERR_CALLBACK_FAILURE;
    return rpc_conn_write_pending(conn) || !conn->budget ? NGHTTP2_ERR_PAUSE : 0;
  }
  if (length <= CONN_COPY_MAX && conn->stage_len + 9 + length <= CONN_STAGE) {
    memcpy(conn_stage + conn->stage_len, framehd, 9);
    memcpy(conn_stage + conn->stage_len + 9, p, length);
    conn->stage_len += 9 + length;
    rpc_conn_buf_put(conn, rpc_call_out_take(c, length));
    return conn->budget ? 0 : NGHTTP2_ERR_PAUSE;
  }
  struct iovec iov[3];
  int n = 0;
  if (conn->stage_len)
    iov[n++] = (struct iovec){conn_stage, conn->stage_len};
  iov[n++] = (struct iovec){(void *)framehd, 9};
  iov[n++] = (struct iovec){(void *)p, length};
  conn->stage_len = 0;
  /* the whole head buffer: ours now; else p stays valid until this flush ends */
  rpc_buf *own = rpc_call_out_take(c, length);
  if (conn_out_iov(conn, iov, n, own) < 0)
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  return rpc_conn_write_pending(conn) || !conn->budget ? NGHTTP2_ERR_PAUSE : 0;
}

/* Write what nghttp2 has queued until the socket pushes back or the budget
 * is spent. Small frames are gathered into one write, so a response (HEADERS,
 * DATA, trailers) wakes the peer once. Returns -1 if the connection closed. */
int rpc_conn_flush(rpc_conn *conn) {
  conn->budget = CONN_WRITE_BUDGET;
  conn->stage_len = 0;
  /* leftovers of an earlier flush written: back to the loop before more goes
   * out, so what the peer sent meanwhile (a reset, WINDOW_UPDATEs) is read;
   * a peer taking all we write would otherwise never be heard */
  bool yield = rpc_conn_write_pending(conn);
  if (conn_drain(conn) < 0)
    goto fail;
  while (!yield && conn->budget > 0 && !rpc_conn_write_pending(conn) &&
         nghttp2_session_want_write(conn->h2)) {
    const uint8_t *data;
    conn->sent_in_place = false;
    ssize_t n = nghttp2_session_mem_send(conn->h2, &data);
    if (n < 0)
      goto fail;
    if (n == 0) {
      if (conn->sent_in_place)
        continue; /* rpc_conn_send_data paused it */
      break;
    }
    conn_spend(conn, (size_t)n);
    if (conn->stage_len + (size_t)n <=
        CONN_STAGE) { /* data is only valid until the next mem_send */
      memcpy(conn_stage + conn->stage_len, data, (size_t)n);
      conn->stage_len += (size_t)n;
      continue;
    }
    size_t slen = conn->stage_len;
    conn->stage_len = 0;
    if (slen && conn_out(conn, conn_stage, slen) < 0)
      goto fail;
    if ((size_t)n <= CONN_STAGE && !rpc_conn_write_pending(conn)) {
      memcpy(conn_stage, data, (size_t)n);
      conn->stage_len = (size_t)n;
    } else if (conn_out(conn, data, (size_t)n) < 0) {
      goto fail;
    }
  }
  if (conn->stage_len) {
    size_t slen = conn->stage_len;
    conn->stage_len = 0;
    if (conn_out(conn, conn_stage, slen) < 0)
      goto fail;
  }
  bool pending = rpc_conn_write_pending(conn);
  bool want_read = nghttp2_session_want_read(conn->h2);
  bool want_write = nghttp2_session_want_write(conn->h2);
  if (!pending && !want_read && !want_write) { /* GOAWAY exchanged, nothing left */
    rpc_conn_close(conn, RPC_CLOSE_CANCELLED);
    return -1;
  }
  /* while our output is stuck, stop reading: the peer cannot make us queue */
  rpc_conn_watch(conn, want_read && !pending,
                 pending || ((yield || conn->budget == 0) && want_write));
  if (want_read && !pending)
    rpc_conn_pending_check(conn);
  return 0;
fail:
  conn->stage_len = 0;
  rpc_conn_close(conn, RPC_CLOSE_CANCELLED);
  return -1;
}
