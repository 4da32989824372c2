/* A connection: transport bytes <-> nghttp2 session, back-pressure,
 * handshake timeout and keepalive. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "common/util.h"
#include "rpc/internal.h"
#include "rpc/tls.h"

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

static void conn_reread_fire(loop *l, void *data) {
  rpc_conn *conn = data;
  conn->reread_timer = 0;
  if (!conn->dead && !rpc_conn_write_pending(conn))
    rpc_conn_read(conn);
}

/* Bytes the TLS layer decrypted but we did not take: epoll will not report
 * them, so come back for them from the loop. */
void rpc_conn_pending_check(rpc_conn *conn) {
  if (conn->dead || conn->reread_timer || !conn->ops->pending || !conn->ops->pending(conn))
    return;
  conn->reread_timer = loop_timer_add(conn->srv->l, 0, conn_reread_fire, conn);
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
  if (conn->dead || rpc_conn_flush(conn) < 0)
    return;
  conn_dispatch(conn); /* events the send produced: on_writable, on_close */
}

int rpc_conn_feed(rpc_conn *conn, const uint8_t *data, size_t len) {
  ssize_t r = nghttp2_session_mem_recv(conn->h2, data, len);
  if (r < 0) { /* protocol error: send nghttp2's GOAWAY if it can go now, then drop */
    if (rpc_conn_flush(conn) == 0)
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
  for (int i = 0; i < 8 && !conn->dead && !rpc_conn_write_pending(conn); i++) {
    ssize_t n = conn->ops->read(conn, buf, sizeof buf);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      break;
    if (n <= 0) {
      rpc_conn_close(conn, RPC_CLOSE_CANCELLED);
      return;
    }
    ssize_t r = nghttp2_session_mem_recv(conn->h2, buf, (size_t)n);
    if (r < 0) { /* protocol error: send nghttp2's GOAWAY if it can go now, then drop */
      if (rpc_conn_flush(conn) == 0)
        rpc_conn_close(conn, RPC_CLOSE_CANCELLED);
      return;
    }
    rpc_conn_service(conn);
    if ((size_t)n < sizeof buf)
      break;
  }
  if (!conn->dead) {
    rpc_server_mark_dirty(conn->srv, conn);
    if (!rpc_conn_write_pending(conn))
      rpc_conn_pending_check(conn);
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
