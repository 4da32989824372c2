/* Server: method table, listeners (unix, loopback h2c, TLS), accept, the
 * loop hook that flushes dirty connections before the loop sleeps. */
#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <errno.h>
#include <malloc.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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

#define SERVER_ACCEPT_BATCH 64
#define SERVER_HOOK_ROUNDS 16

static void server_hook(loop *l, void *data);

#define SERVER_TRIM_CONNS 1024u
static int server_services_add(rpc_server *s, const char *path);

static void server_config_defaults(rpc_server_config *c) {
  if (!c->max_recv_message)
    c->max_recv_message = RPC_DEFAULT_MAX_MESSAGE;
  if (!c->max_send_message)
    c->max_send_message = 16u * 1024u * 1024u;
  if (!c->max_concurrent_streams)
    c->max_concurrent_streams = 256;
  if (!c->max_connections)
    c->max_connections = 4096;
  if (!c->keepalive_ms)
    c->keepalive_ms = 20000; /* a dead client noticed within 40 s (RPC_KEEPALIVE_TIMEOUT_MS) */
  if (!c->handshake_timeout_ms)
    c->handshake_timeout_ms = 10000;
  if (!c->max_conn_recv_buffer)
    c->max_conn_recv_buffer = 16u * 1024u * 1024u;
  if (c->max_conn_recv_buffer < 65536) /* below HTTP/2's initial window */
    c->max_conn_recv_buffer = 65536;
  if (c->max_conn_recv_buffer > INT32_MAX)
    c->max_conn_recv_buffer = INT32_MAX;
  if (!c->max_recv_buffer)
    c->max_recv_buffer = 256u * 1024u * 1024u;
  if (!c->max_connections_per_peer)
    c->max_connections_per_peer = c->max_connections;
  if (!c->admin_connections)
    c->admin_connections = 64;
  if (c->admin_connections >= c->max_connections)
    c->admin_connections = c->max_connections / 2;
  if (!c->idle_timeout_ms)
    c->idle_timeout_ms = 300000;
  /* a message must fit in what a connection may hold */
  if (c->max_recv_message > c->max_conn_recv_buffer - RPC_PREFIX_LEN)
    c->max_recv_message = c->max_conn_recv_buffer - RPC_PREFIX_LEN;
}

int rpc_server_new(rpc_server **ret, loop *l, const rpc_server_config *cfg, rr_err *e) {
  rpc_server *s = calloc(1, sizeof *s);
  if (!s)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory for the server");
  s->l = l;
  if (cfg)
    s->cfg = *cfg;
  server_config_defaults(&s->cfg);
  if (rpc_peer_table_new(&s->peers) < 0) {
    free(s);
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory for the server");
  }
  if (rpc_h2_callbacks_new(&s->cbs, e) < 0 || nghttp2_option_new(&s->opt) != 0) {
    rpc_server_free(s);
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "cannot set up nghttp2");
  }
  /* windows come back only when a call takes the data (rpc_call_pause_recv) */
  nghttp2_option_set_no_auto_window_update(s->opt, 1);
  /* CVE-2023-44487 ("rapid reset"): burst 1000, then 33 resets/s */
  nghttp2_option_set_stream_reset_rate_limit(s->opt, 1000, 33);
  s->hook_id = loop_hook_add(l, server_hook, s);
  if (!s->hook_id) {
    rpc_server_free(s);
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "cannot add loop hook");
  }
  *ret = s;
  return 0;
}

int rpc_server_add_method(rpc_server *s, const rpc_method *m, rr_err *e) {
  if (!m->path || m->path[0] != '/' || !strchr(m->path + 1, '/') || !m->request || !m->on_message)
    return rr_err_set(e, RR_INVALID_ARGUMENT,
                      "method \"%s\": need a \"/pkg.Service/Method\" path, a request type "
                      "and on_message",
                      m->path ? m->path : "");
  if (rpc_server_find_method(s, m->path))
    return rr_err_set(e, RR_ALREADY_EXISTS, "method \"%s\" registered twice", m->path);
  rpc_method **p = realloc(s->methods, (s->nmethods + 1) * sizeof *p);
  if (!p)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  s->methods = p;
  rpc_method *copy = malloc(sizeof *copy);
  char *path = strdup(m->path);
  if (!copy || !path) {
    free(copy);
    free(path);
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  }
  *copy = *m;
  copy->path = path;
  s->methods[s->nmethods++] = copy;
  if (server_services_add(s, path) < 0)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  return 0;
}

const rpc_method *rpc_server_find_method(const rpc_server *s, const char *path) {
  for (size_t i = 0; i < s->nmethods; i++)
    if (strcmp(s->methods[i]->path, path) == 0)
      return s->methods[i];
  return NULL;
}

/* "/pkg.Svc/Method" -> length of "pkg.Svc". */
static size_t method_service_len(const char *path) {
  return (size_t)(strchr(path + 1, '/') - (path + 1));
}

bool rpc_server_has_service(const rpc_server *s, const char *service) {
  size_t n = strlen(service);
  for (size_t i = 0; i < s->nmethods; i++) {
    const char *p = s->methods[i]->path;
    if (method_service_len(p) == n && memcmp(p + 1, service, n) == 0)
      return true;
  }
  return false;
}

static int service_cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Keep s->services: distinct service names of the methods, sorted. */
static int server_services_add(rpc_server *s, const char *path) {
  size_t len = method_service_len(path);
  for (size_t i = 0; i < s->nservices; i++)
    if (strlen(s->services[i]) == len && memcmp(s->services[i], path + 1, len) == 0)
      return 0;
  char **p = realloc(s->services, (s->nservices + 1) * sizeof *p);
  if (!p)
    return -1;
  s->services = p;
  if (!(p[s->nservices] = strndup(path + 1, len)))
    return -1;
  s->nservices++;
  qsort(s->services, s->nservices, sizeof *s->services, service_cmp);
  return 0;
}

size_t rpc_server_service_names(const rpc_server *s, const char **out, size_t max) {
  size_t n = 0;
  for (; n < s->nservices && n < max; n++)
    out[n] = s->services[n];
  return n;
}

void rpc_server_mark_dirty(rpc_server *s, rpc_conn *conn) {
  if (conn->in_dirty || conn->dead)
    return;
  conn->in_dirty = true;
  conn->dirty_next = s->dirty;
  s->dirty = conn;
}

static void server_wake(loop *l, void *data) {}

static void server_hook(loop *l, void *data) {
  rpc_server *s = data;
  for (int round = 0; round < SERVER_HOOK_ROUNDS && s->dirty; round++) {
    rpc_conn *list = s->dirty;
    s->dirty = NULL;
    while (list) {
      rpc_conn *conn = list;
      list = conn->dirty_next;
      conn->dirty_next = NULL;
      conn->in_dirty = false;
      rpc_conn_service(conn); /* may close any connection, never frees one */
    }
  }
  /* work left (a handler keeps producing): come back without sleeping */
  rpc_conn **pp = &s->dirty;
  while (*pp) {
    if ((*pp)->dead)
      *pp = (*pp)->dirty_next;
    else
      pp = &(*pp)->dirty_next;
  }
  if (s->dirty)
    loop_timer_add(l, 0, server_wake, NULL);
  for (size_t i = 0; i < s->ndead; i++)
    rpc_conn_free(s->dead[i]);
  s->freed_since_trim += s->ndead;
  s->ndead = 0;
  /* many connections gone: glibc keeps their freed pages (10,000 idle ones
   * left ~135 MB, growing with each wave); give them back, a few ms at most
   * once per SERVER_TRIM_CONNS closed connections */
  if (s->freed_since_trim >= SERVER_TRIM_CONNS && !s->dirty) {
    s->freed_since_trim = 0;
    malloc_trim(0);
  }
}

static void server_listener_resume(loop *l, void *data) {
  rpc_server *s = data;
  s->accept_resume_timer = 0;
  for (size_t i = 0; i < s->nlisteners; i++)
    if (s->listeners[i].fd >= 0)
      loop_fd_mod(l, s->listeners[i].fd, EPOLLIN, NULL);
}

void rpc_server_set_config(rpc_server *s, const rpc_server_config *cfg) {
  s->cfg = cfg ? *cfg : (rpc_server_config){0};
  server_config_defaults(&s->cfg);
}

void rpc_server_set_auth(rpc_server *s, const rpc_server_auth *auth) {
  s->auth = auth ? *auth : (rpc_server_auth){0};
}

bool rpc_server_has_method(const rpc_server *s, const char *path) {
  return rpc_server_find_method(s, path) != NULL;
}

void rpc_server_set_call_end(rpc_server *s, rpc_call_end_fn fn, void *data) {
  s->call_end = fn;
  s->call_end_data = data;
}

void rpc_server_set_call_message(rpc_server *s, rpc_call_message_fn fn, void *data) {
  s->call_message = fn;
  s->call_message_data = data;
}

int rpc_call_note_append(rpc_call *c, const char *text, size_t len) {
  if (len > RPC_CALL_NOTE_MAX || c->note_len + len > RPC_CALL_NOTE_MAX)
    return -1;
  char *n = realloc(c->note, c->note_len + len + 1);
  if (!n)
    return -1;
  memcpy(n + c->note_len, text, len);
  c->note_len += len;
  n[c->note_len] = '\0';
  c->note = n;
  return 0;
}

const char *rpc_call_note(const rpc_call *c) { return c->note; }

void rpc_server_set_conn_log(rpc_server *s, rpc_server_conn_log_fn fn, void *data) {
  s->conn_log = fn;
  s->conn_log_data = data;
}

void rpc_server_conn_log(rpc_server *s, const char *peer, const char *fmt, ...) {
  if (!s->conn_log)
    return;
  char what[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  s->conn_log(s->conn_log_data, peer, what);
}

static rpc_listener *server_listener_find(rpc_server *s, int fd) {
  for (size_t i = 0; i < s->nlisteners; i++)
    if (s->listeners[i].fd == fd)
      return &s->listeners[i];
  return NULL;
}

static bool server_peer_is_admin(rpc_server *s, const rpc_peer *peer) {
  return s->auth.peer_is_admin && s->auth.peer_is_admin(s->auth.data, peer);
}

/* May this new connection stay? Admins may use every slot; others share
 * max_connections - admin_connections, at most max_connections_per_peer
 * each. A TLS peer over its share may still prove to be an admin in the
 * handshake: it comes in on probation (*probation), within the admin room. */
static int server_admit(rpc_server *s, const rpc_peer *peer, bool tls, bool *probation) {
  const rpc_server_config *c = &s->cfg;
  bool admin = server_peer_is_admin(s, peer);
  char key[sizeof((rpc_conn *)0)->peer_key];
  rpc_conn_peer_key(peer, key, sizeof key);
  size_t mine = key[0] ? rpc_peer_table_count(s->peers, key) : 0;
  if (s->nconns >= c->max_connections) {
    rpc_server_conn_log(s, peer->addr, "connection refused: limit of %zu connections reached",
                        c->max_connections);
    return -1;
  }
  if (admin)
    return 0;
  bool over_all = s->nconns >= c->max_connections - c->admin_connections;
  bool over_peer = mine >= c->max_connections_per_peer;
  if (!over_all && !over_peer)
    return 0;
  if (tls && s->nprobation < c->admin_connections) {
    *probation = true;
    return 0;
  }
  if (over_peer)
    rpc_server_conn_log(s, peer->addr,
                        "connection refused: %s has %zu connections (limit %zu per peer)", key,
                        mine, c->max_connections_per_peer);
  else
    rpc_server_conn_log(s, peer->addr,
                        "connection refused: %zu connections, the other %zu are kept for admins",
                        s->nconns, c->admin_connections);
  return -1;
}

/* A TLS connection's identity (its certificate's first SAN) has its share
 * too, so one client certificate cannot take every slot from many
 * addresses. */
static int server_admit_identity(rpc_server *s, rpc_conn *conn) {
  if (conn->admin || !conn->peer.nsans || !s->cfg.max_connections_per_peer)
    return 0;
  size_t n = strlen(conn->peer.sans[0]) + sizeof "san:";
  char *key = malloc(n);
  if (!key)
    return 0; /* not counted: better than refusing on ENOMEM */
  snprintf(key, n, "san:%s", conn->peer.sans[0]);
  size_t mine = rpc_peer_table_count(s->peers, key);
  if (mine >= s->cfg.max_connections_per_peer) {
    rpc_server_conn_log(s, conn->peer.addr,
                        "connection refused: %s has %zu connections (limit %zu per peer)", key,
                        mine, s->cfg.max_connections_per_peer);
    free(key);
    rpc_conn_close(conn, RPC_CLOSE_CANCELLED);
    return -1;
  }
  if (rpc_peer_table_add(s->peers, key) < 0) {
    free(key);
    return 0;
  }
  conn->ident_key = key;
  return 0;
}

int rpc_server_probation_end(rpc_server *s, rpc_conn *conn) {
  if (!conn->probation) {
    if (!conn->admin && server_peer_is_admin(s, &conn->peer))
      conn->admin = true;
    return server_admit_identity(s, conn);
  }
  conn->probation = false;
  s->nprobation--;
  if (server_peer_is_admin(s, &conn->peer)) {
    conn->admin = true;
    return 0;
  }
  rpc_server_conn_log(s, conn->peer.addr,
                      "connection refused: %s is over its share of connections (limit %zu per "
                      "peer, %zu kept for admins) and is not an admin",
                      conn->peer_key, s->cfg.max_connections_per_peer, s->cfg.admin_connections);
  rpc_conn_close(conn, RPC_CLOSE_CANCELLED);
  return -1;
}

void rpc_server_conn_forget(rpc_server *s, rpc_conn *conn) {
  if (conn->probation) {
    conn->probation = false;
    s->nprobation--;
  }
  if (conn->peer_key[0])
    rpc_peer_table_remove(s->peers, conn->peer_key);
  conn->peer_key[0] = '\0';
  if (conn->ident_key) {
    rpc_peer_table_remove(s->peers, conn->ident_key);
    free(conn->ident_key);
    conn->ident_key = NULL;
  }
}

void rpc_server_accept(loop *l, int fd, uint32_t events, void *data) {
  rpc_server *s = data;
  rpc_listener *ls = server_listener_find(s, fd);
  if (!ls)
    return;
  for (int i = 0; i < SERVER_ACCEPT_BATCH; i++) {
    int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (cfd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        /* out of fds: pause accepting briefly instead of spinning on a ready listener */
        for (size_t j = 0; j < s->nlisteners; j++)
          if (s->listeners[j].fd >= 0)
            loop_fd_mod(l, s->listeners[j].fd, 0, NULL);
        if (!s->accept_resume_timer)
          s->accept_resume_timer = loop_timer_add(l, 100, server_listener_resume, s);
      }
      return;
    }
    rpc_peer peer;
    rpc_conn_peer_fill(&peer, cfd);
    bool probation = false;
    if (server_admit(s, &peer, ls->tls != NULL, &probation) < 0) {
      close(cfd);
      continue;
    }
    if (peer.family == AF_INET || peer.family == AF_INET6) {
      int one = 1;
      setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    int r = ls->tls ? rpc_conn_new_tls(s, cfd, &peer, ls->tls, NULL)
                    : rpc_conn_new(s, cfd, cfd, &peer, NULL);
    if (r == 0 && probation) {
      s->conns->probation = true; /* the connection just made */
      s->nprobation++;
    }
  }
}

const char *rpc_server_listen_address(const rpc_server *s, size_t i) {
  return i < s->nlisteners ? s->listeners[i].addr : NULL;
}

int rpc_server_add_fds(rpc_server *s, int in_fd, int out_fd, rr_err *e) {
  rpc_peer peer;
  rpc_conn_peer_fill(&peer, in_fd);
  int fl_in = fcntl(in_fd, F_GETFL), fl_out = fcntl(out_fd, F_GETFL);
  if (fl_in < 0 || fl_out < 0 || fcntl(in_fd, F_SETFL, fl_in | O_NONBLOCK) < 0 ||
      fcntl(out_fd, F_SETFL, fl_out | O_NONBLOCK) < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot make fds %d/%d non-blocking", in_fd, out_fd);
  return rpc_conn_new(s, in_fd, out_fd, &peer, e);
}

int rpc_server_add_fds_head(rpc_server *s, int in_fd, int out_fd, const void *head, size_t len,
                            rr_err *e) {
  if (rpc_server_add_fds(s, in_fd, out_fd, e) < 0)
    return -1;
  /* rpc_conn_new put the connection first in s->conns */
  if (len && rpc_conn_feed(s->conns, head, len) < 0)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "fds %d/%d: the first bytes are not HTTP/2", in_fd,
                      out_fd);
  return 0;
}

size_t rpc_server_connection_count(const rpc_server *s) { return s->nconns; }

void rpc_server_shutdown(rpc_server *s) {
  if (!s || s->shutting_down)
    return;
  s->shutting_down = true;
  loop_timer_cancel(s->l, s->accept_resume_timer);
  s->accept_resume_timer = 0;
  for (size_t i = 0; i < s->nlisteners; i++) {
    rpc_listener *ls = &s->listeners[i];
    if (ls->fd < 0)
      continue;
    loop_fd_del(s->l, ls->fd);
    close(ls->fd);
    ls->fd = -1;
    if (ls->unix_path)
      unlink(ls->unix_path);
  }
  while (s->conns) {
    rpc_conn *conn = s->conns;
    nghttp2_submit_goaway(conn->h2, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(conn->h2), NGHTTP2_NO_ERROR, NULL,
                          0);
    rpc_conn_service(conn); /* best effort: the GOAWAY if the socket takes it */
    rpc_conn_close(conn, RPC_CLOSE_SHUTDOWN);
  }
}

void rpc_server_free(rpc_server *s) {
  if (!s)
    return;
  rpc_server_shutdown(s);
  s->dirty = NULL;
  for (size_t i = 0; i < s->ndead; i++)
    rpc_conn_free(s->dead[i]);
  free(s->dead);
  if (s->hook_id)
    loop_hook_del(s->l, s->hook_id);
  for (size_t i = 0; i < s->nmethods; i++) {
    free((char *)s->methods[i]->path);
    free(s->methods[i]);
  }
  free(s->methods);
  for (size_t i = 0; i < s->nservices; i++)
    free(s->services[i]);
  free(s->services);
  for (size_t i = 0; i < s->nlisteners; i++) {
    free(s->listeners[i].unix_path);
    SSL_CTX_free(s->listeners[i].tls); /* connections hold their own reference */
  }
  free(s->listeners);
  if (s->cbs)
    nghttp2_session_callbacks_del(s->cbs);
  if (s->opt)
    nghttp2_option_del(s->opt);
  rpc_peer_table_free(s->peers);
  free(s);
}
