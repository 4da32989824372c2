/* A connection: transport bytes <-> nghttp2 session, back-pressure,
 * handshake timeout and keepalive. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>

#include "common/util.h"
#include "rpc/internal.h"
#include "rpc/tls.h"

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

void rpc_conn_peer_fill(rpc_peer *peer, int fd) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  memset(peer, 0, sizeof *peer);
  peer->family = AF_UNSPEC;
  snprintf(peer->addr, sizeof peer->addr, "fd:%d", fd);
  if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
    return;
  peer->family = ss.ss_family;
  if (ss.ss_family == AF_UNIX) {
    const struct sockaddr_un *un = (const struct sockaddr_un *)&ss;
    size_t n = len > offsetof(struct sockaddr_un, sun_path)
                   ? len - offsetof(struct sockaddr_un, sun_path)
                   : 0;
    snprintf(peer->addr, sizeof peer->addr, "unix:%.*s", (int)strnlen(un->sun_path, n),
             un->sun_path);
    struct ucred cred;
    socklen_t clen = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0) {
      peer->has_cred = true;
      peer->uid = cred.uid;
      peer->gid = cred.gid;
      peer->pid = cred.pid;
    }
    return;
  }
  len = sizeof ss;
  if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
    return;
  char ip[INET6_ADDRSTRLEN] = "";
  if (ss.ss_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
    inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
    snprintf(peer->addr, sizeof peer->addr, "%s:%u", ip, ntohs(in->sin_port));
  } else if (ss.ss_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
    inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
    snprintf(peer->addr, sizeof peer->addr, "[%s]:%u", ip, ntohs(in6->sin6_port));
  }
}

void rpc_conn_peer_key(const rpc_peer *peer, char *out, size_t outsz) {
  out[0] = '\0';
  if (peer->family == AF_UNIX) {
    if (peer->has_cred)
      snprintf(out, outsz, "uid:%u", (unsigned)peer->uid);
    else
      snprintf(out, outsz, "unix");
  } else if (peer->family == AF_INET || peer->family == AF_INET6) {
    /* "1.2.3.4:P" or "[v6]:P" without the port */
    const char *colon = strrchr(peer->addr, ':');
    size_t n = colon ? (size_t)(colon - peer->addr) : strlen(peer->addr);
    snprintf(out, outsz, "%.*s", (int)n, peer->addr);
  }
}

void rpc_conn_release(rpc_conn *conn, size_t n) {
  rpc_server *s = conn->srv;
  n = n < conn->held ? n : conn->held;
  conn->held -= n;
  s->held -= n < s->held ? n : s->held;
  if (n && !conn->dead)
    nghttp2_session_consume_connection(conn->h2, n);
}

void rpc_conn_grant_window(rpc_conn *conn) {
  if (conn->window_granted || conn->dead)
    return;
  conn->window_granted = true;
  nghttp2_session_set_local_window_size(conn->h2, NGHTTP2_FLAG_NONE, 0,
                                        (int32_t)conn->srv->cfg.max_conn_recv_buffer);
  rpc_server_mark_dirty(conn->srv, conn);
}

void rpc_conn_watch(rpc_conn *conn, bool want_in, bool want_out) {
  loop *l = conn->srv->l;
  /* TLS may need the other direction to make progress on this one */
  uint32_t in = want_in || conn->write_wants_read ? EPOLLIN : 0;
  uint32_t out = want_out || conn->read_wants_write ? EPOLLOUT : 0;
  if (conn->in_fd == conn->out_fd) {
    if (conn->in_events != (in | out))
      loop_fd_mod(l, conn->in_fd, in | out, NULL);
    conn->in_events = in | out;
    return;
  }
  if (conn->in_events != in)
    loop_fd_mod(l, conn->in_fd, in, NULL);
  if (conn->out_events != out)
    loop_fd_mod(l, conn->out_fd, out, NULL);
  conn->in_events = in;
  conn->out_events = out;
}

static bool conn_write_pending(const rpc_conn *conn) {
  return conn->woff < conn->wlen || conn->wpay;
}

static void conn_reread_fire(loop *l, void *data) {
  rpc_conn *conn = data;
  conn->reread_timer = 0;
  if (!conn->dead && !conn_write_pending(conn))
    rpc_conn_read(conn);
}

/* Bytes the TLS layer decrypted but we did not take: epoll will not report
 * them, so come back for them from the loop. */
static void conn_pending_check(rpc_conn *conn) {
  if (conn->dead || conn->reread_timer || !conn->ops->pending || !conn->ops->pending(conn))
    return;
  conn->reread_timer = loop_timer_add(conn->srv->l, 0, conn_reread_fire, conn);
}

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
  if (conn_write_pending(conn)) /* behind bytes already kept (never behind wpay) */
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
  return conn_write_pending(conn) || !conn->budget ? NGHTTP2_ERR_PAUSE : 0;
}

/* Write what nghttp2 has queued until the socket pushes back or the budget
 * is spent. Small frames are gathered into one write, so a response (HEADERS,
 * DATA, trailers) wakes the peer once. Returns -1 if the connection closed. */
static int conn_flush(rpc_conn *conn) {
  conn->budget = CONN_WRITE_BUDGET;
  conn->stage_len = 0;
  /* leftovers of an earlier flush written: back to the loop before more goes
   * out, so what the peer sent meanwhile (a reset, WINDOW_UPDATEs) is read;
   * a peer taking all we write would otherwise never be heard */
  bool yield = conn_write_pending(conn);
  if (conn_drain(conn) < 0)
    goto fail;
  while (!yield && conn->budget > 0 && !conn_write_pending(conn) &&
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
    if ((size_t)n <= CONN_STAGE && !conn_write_pending(conn)) {
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
  bool pending = conn_write_pending(conn);
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
    conn_pending_check(conn);
  return 0;
fail:
  conn->stage_len = 0;
  rpc_conn_close(conn, RPC_CLOSE_CANCELLED);
  return -1;
}

static void conn_dispatch(rpc_conn *conn) {
  rpc_call *next;
  /* ends first: a call the client reset is closed before one it sent after
   * starts (per-caller counts, e.g. followers, are freed in time) */
  for (rpc_call *c = conn->calls; c && !conn->dead; c = next) {
    next = c->next;
    if (c->close_pending && !c->closed)
      rpc_call_dispatch(c);
  }
  for (rpc_call *c = conn->calls; c && !conn->dead; c = next) {
    next = c->next;
    rpc_call_dispatch(c);
  }
}

void rpc_conn_service(rpc_conn *conn) {
  if (conn->dead || conn->handshaking)
    return;
  conn_dispatch(conn);
  if (conn->dead || conn_flush(conn) < 0)
    return;
  conn_dispatch(conn); /* events the send produced: on_writable, on_close */
}

int rpc_conn_feed(rpc_conn *conn, const uint8_t *data, size_t len) {
  ssize_t r = nghttp2_session_mem_recv(conn->h2, data, len);
  if (r < 0) { /* protocol error: send nghttp2's GOAWAY if it can go now, then drop */
    if (conn_flush(conn) == 0)
      rpc_conn_close(conn, RPC_CLOSE_CANCELLED);
    return -1;
  }
  rpc_conn_service(conn);
  if (!conn->dead)
    rpc_server_mark_dirty(conn->srv, conn);
  return conn->dead ? -1 : 0;
}

void rpc_conn_read(rpc_conn *conn) {
  uint8_t buf[16384];
  for (int i = 0; i < 8 && !conn->dead && !conn_write_pending(conn); i++) {
    ssize_t n = conn->ops->read(conn, buf, sizeof buf);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      break;
    if (n <= 0) {
      rpc_conn_close(conn, RPC_CLOSE_CANCELLED);
      return;
    }
    ssize_t r = nghttp2_session_mem_recv(conn->h2, buf, (size_t)n);
    if (r < 0) { /* protocol error: send nghttp2's GOAWAY if it can go now, then drop */
      if (conn_flush(conn) == 0)
        rpc_conn_close(conn, RPC_CLOSE_CANCELLED);
      return;
    }
    rpc_conn_service(conn);
    if ((size_t)n < sizeof buf)
      break;
  }
  if (!conn->dead) {
    rpc_server_mark_dirty(conn->srv, conn);
    if (!conn_write_pending(conn))
      conn_pending_check(conn);
  }
}

static void conn_on_io(loop *l, int fd, uint32_t events, void *data) {
  rpc_conn *conn = data;
  if (conn->dead)
    return;
  if (conn->handshaking) {
    rpc_conn_tls_handshake(conn);
    return;
  }
  bool rd = fd == conn->in_fd && (events & (EPOLLIN | EPOLLHUP | EPOLLERR));
  bool wr = fd == conn->out_fd && (events & (EPOLLOUT | EPOLLHUP | EPOLLERR));
  if (rd && conn->write_wants_read) { /* TLS: the stalled write can go on now */
    conn->write_wants_read = false;
    rpc_conn_service(conn);
  }
  if (!conn->dead && (rd || (wr && conn->read_wants_write))) {
    conn->read_wants_write = false;
    rpc_conn_read(conn);
  }
  if (!conn->dead && wr)
    rpc_conn_service(conn);
}

static void conn_handshake_fire(loop *l, void *data) {
  rpc_conn *conn = data;
  conn->handshake_timer = 0;
  if (conn->handshaking)
    rpc_server_conn_log(conn->srv, conn->peer.addr,
                        "tls handshake refused: no handshake within %llu ms",
                        (unsigned long long)conn->srv->cfg.handshake_timeout_ms);
  if (!conn->settings_seen)
    rpc_conn_close(conn, RPC_CLOSE_CANCELLED);
}

static void conn_keepalive_fire(loop *l, void *data) {
  rpc_conn *conn = data;
  uint64_t now = loop_now_ms(l), every = conn->srv->cfg.keepalive_ms, next;
  conn->keepalive_timer = 0;
  if (conn->ping_outstanding && now - conn->ping_sent_ms >= RPC_KEEPALIVE_TIMEOUT_MS) {
    rpc_conn_close(conn, RPC_CLOSE_CANCELLED); /* peer gone silent */
    return;
  }
  if (!conn->ping_outstanding && now - conn->last_recv_ms >= every) {
    if (nghttp2_submit_ping(conn->h2, NGHTTP2_FLAG_NONE, NULL) == 0) {
      conn->ping_outstanding = true;
      conn->ping_sent_ms = now;
      rpc_server_mark_dirty(conn->srv, conn);
    }
  }
  if (conn->ping_outstanding)
    next = RPC_KEEPALIVE_TIMEOUT_MS - (now - conn->ping_sent_ms);
  else
    next = every - (now - conn->last_recv_ms < every ? now - conn->last_recv_ms : 0);
  conn->keepalive_timer = loop_timer_add(l, next ? next : 1, conn_keepalive_fire, conn);
}

/* No call open and no new request for idle_timeout_ms: PINGs alone do not
 * keep a connection. */
/* A call whose request headers all arrived: a request still trickling in
 * its headers (slowloris) does not keep a connection from being idle. */
static bool conn_has_call(const rpc_conn *conn) {
  for (const rpc_call *c = conn->calls; c; c = c->next)
    if (c->begun)
      return true;
  return false;
}

static void conn_idle_fire(loop *l, void *data) {
  rpc_conn *conn = data;
  uint64_t now = loop_now_ms(l), idle = conn->srv->cfg.idle_timeout_ms;
  conn->idle_timer = 0;
  if (conn_has_call(conn))
    conn->last_request_ms = now; /* busy: the idle time starts when the last call ends */
  if (now - conn->last_request_ms < idle) {
    conn->idle_timer =
        loop_timer_add(l, idle - (now - conn->last_request_ms), conn_idle_fire, conn);
    return;
  }
  rpc_server_conn_log(conn->srv, conn->peer.addr,
                      "connection closed: no request for %llu ms (idle timeout)",
                      (unsigned long long)idle);
  if (!conn->handshaking) {
    nghttp2_submit_goaway(conn->h2, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(conn->h2), NGHTTP2_NO_ERROR,
                          (const uint8_t *)"idle", 4);
    rpc_conn_service(conn); /* best effort: the GOAWAY if the socket takes it */
  }
  rpc_conn_close(conn, RPC_CLOSE_CANCELLED);
}

int rpc_conn_new(rpc_server *s, int in_fd, int out_fd, const rpc_peer *peer, rr_err *e) {
  return rpc_conn_new_ops(s, in_fd, out_fd, peer, &rpc_transport_fd, NULL, e);
}

int rpc_conn_new_ops(rpc_server *s, int in_fd, int out_fd, const rpc_peer *peer,
                     const rpc_transport_ops *ops, void *ssl, rr_err *e) {
  rpc_conn *conn = calloc(1, sizeof *conn);
  if (!conn) {
    rpc_conn tmp = {.in_fd = in_fd, .out_fd = out_fd, .ssl = ssl};
    ops->close(&tmp);
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory for a connection");
  }
  conn->srv = s;
  conn->ops = ops;
  conn->ssl = ssl;
  conn->handshaking = ssl != NULL;
  conn->in_fd = in_fd;
  conn->out_fd = out_fd;
  struct stat st;
  conn->out_sock = fstat(out_fd, &st) == 0 && S_ISSOCK(st.st_mode);
  conn->peer = *peer;
  conn->last_recv_ms = conn->last_request_ms = loop_now_ms(s->l);
  if (nghttp2_session_server_new2(&conn->h2, s->cbs, conn, s->opt) != 0) {
    conn->ops->close(conn);
    free(conn);
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "cannot create HTTP/2 session");
  }
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, s->cfg.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, RPC_STREAM_WINDOW},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, RPC_MAX_REQUEST_HEADERS},
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
  };
  nghttp2_submit_settings(conn->h2, NGHTTP2_FLAG_NONE, iv, RR_ARRAY_SIZE(iv));
  /* the connection window stays HTTP/2's initial 64 KiB until a call is
   * authorised (rpc_conn_grant_window) */
  conn->in_events = EPOLLIN;
  if (loop_fd_add(s->l, in_fd, EPOLLIN, "connection", conn_on_io, conn, e) < 0 ||
      (out_fd != in_fd && loop_fd_add(s->l, out_fd, 0, "connection", conn_on_io, conn, e) < 0)) {
    loop_fd_del(s->l, in_fd);
    nghttp2_session_del(conn->h2);
    conn->ops->close(conn);
    free(conn);
    return -1;
  }
  conn->handshake_timer =
      loop_timer_add(s->l, s->cfg.handshake_timeout_ms, conn_handshake_fire, conn);
  conn->keepalive_timer = loop_timer_add(s->l, s->cfg.keepalive_ms, conn_keepalive_fire, conn);
  conn->idle_timer = loop_timer_add(s->l, s->cfg.idle_timeout_ms, conn_idle_fire, conn);
  rpc_conn_peer_key(peer, conn->peer_key, sizeof conn->peer_key);
  if (conn->peer_key[0] && rpc_peer_table_add(s->peers, conn->peer_key) < 0)
    conn->peer_key[0] = '\0'; /* not counted: better than refusing on ENOMEM */
  conn->next = s->conns;
  if (s->conns)
    s->conns->prev = conn;
  s->conns = conn;
  s->nconns++;
  rpc_server_mark_dirty(s, conn); /* our SETTINGS go out first */
  return 0;
}

void rpc_conn_close(rpc_conn *conn, rpc_close_reason reason) {
  rpc_server *s = conn->srv;
  if (conn->dead)
    return;
  conn->dead = true;
  loop_fd_del(s->l, conn->in_fd);
  if (conn->out_fd != conn->in_fd)
    loop_fd_del(s->l, conn->out_fd);
  loop_timer_cancel(s->l, conn->handshake_timer);
  loop_timer_cancel(s->l, conn->keepalive_timer);
  loop_timer_cancel(s->l, conn->reread_timer);
  loop_timer_cancel(s->l, conn->idle_timer);
  conn->handshake_timer = conn->keepalive_timer = conn->reread_timer = conn->idle_timer = 0;
  rpc_server_conn_forget(s, conn);
  conn->ops->close(conn);
  if (conn->prev)
    conn->prev->next = conn->next;
  else
    s->conns = conn->next;
  if (conn->next)
    conn->next->prev = conn->prev;
  conn->next = conn->prev = NULL;
  s->nconns--;
  /* freed by the server hook, once no callback can be on the stack */
  if (s->ndead == s->capdead) {
    size_t n = s->capdead ? s->capdead * 2 : 16;
    rpc_conn **p = realloc(s->dead, n * sizeof *p);
    if (p) {
      s->dead = p;
      s->capdead = n;
    }
  }
  if (s->ndead < s->capdead)
    s->dead[s->ndead++] = conn; /* else leaked: better than a use-after-free */
  for (rpc_call *c = conn->calls; c; c = c->next) {
    if (c->closed)
      continue;
    c->closed = true;
    if (c->engaged && c->method && c->method->on_close)
      c->method->on_close(c, reason);
  }
}

void rpc_conn_free(rpc_conn *conn) {
  nghttp2_session_del(conn->h2); /* first: it must not see freed stream data */
  while (conn->calls)
    rpc_call_destroy(conn->calls);
  free(conn->wbuf);
  free(conn->wpay);
  rpc_conn_pool_trim(conn);
  free(conn->ident_key); /* NULL once forgotten by the server */
  rpc_tls_sans_free(conn->peer.sans, conn->peer.nsans);
  free(conn);
}
