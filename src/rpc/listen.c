/* Listeners of the gRPC server: unix and TCP sockets it binds, with or
 * without TLS, and sockets handed to it listening already (systemd socket
 * activation). Accepting is server.c's (rpc_server_accept). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/util.h"
#include "rpc/internal.h"
#include "rpc/tls.h"

static int server_listener_add(rpc_server *s, int fd, const char *unix_path, const char *addr,
                               SSL_CTX *tls, rr_err *e) {
  rpc_listener *p = realloc(s->listeners, (s->nlisteners + 1) * sizeof *p);
  if (!p)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  s->listeners = p;
  rpc_listener *ls = &p[s->nlisteners];
  *ls = (rpc_listener){.fd = fd, .tls = tls};
  snprintf(ls->addr, sizeof ls->addr, "%s", addr);
  if (unix_path && !(ls->unix_path = strdup(unix_path)))
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  if (loop_fd_add(s->l, fd, EPOLLIN, "listener", rpc_server_accept, s, e) < 0) {
    free(ls->unix_path);
    return rr_err_wrap(e, "listen on %s", addr);
  }
  s->nlisteners++;
  return 0;
}

static int mkdir_parents(char *path, rr_err *e) {
  for (char *p = path + 1; *p; p++) {
    if (*p != '/')
      continue;
    *p = '\0';
    int r = mkdir(path, 0755);
    int saved = errno;
    *p = '/';
    if (r < 0 && saved != EEXIST)
      return rr_err_sys(e, RR_FAILED_PRECONDITION, saved,
                        "cannot create directory of socket \"%s\"", path);
  }
  return 0;
}

static int server_listen_unix(rpc_server *s, const char *path, const char *addr, rr_err *e) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (!path[0] || strlen(path) >= sizeof sa.sun_path)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "invalid unix socket path \"%s\" (empty or too long)",
                      path);
  memcpy(sa.sun_path, path, strlen(path));
  _cleanup_free_ char *tmp = strdup(path);
  if (!tmp || mkdir_parents(tmp, e) < 0)
    return tmp ? -1 : rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  struct stat st;
  if (lstat(path, &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      return rr_err_set(e, RR_FAILED_PRECONDITION,
                        "cannot listen on \"%s\": exists and is not a socket", path);
    _cleanup_close_ int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe < 0)
      return rr_err_sys(e, RR_INTERNAL, errno, "socket");
    if (connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0 || errno != ECONNREFUSED)
      return rr_err_set(e, RR_ALREADY_EXISTS,
                        "cannot listen on \"%s\": another server is running there", path);
    unlink(path); /* stale socket of a server that died */
  }
  _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "socket");
  /* access control is by peer credentials (SO_PEERCRED), not file mode: the
   * socket is made 0666 by bind itself (a chmod of the path afterwards would
   * follow a symlink put in its place) */
  mode_t old_mask = umask(0111);
  int b = bind(fd, (struct sockaddr *)&sa, sizeof sa);
  int bind_errno = errno;
  umask(old_mask);
  if (b < 0)
    return rr_err_sys(e, RR_FAILED_PRECONDITION, bind_errno, "cannot bind \"%s\"", path);
  if (listen(fd, SOMAXCONN) < 0) {
    int saved = errno;
    unlink(path);
    return rr_err_sys(e, RR_INTERNAL, saved, "cannot listen on \"%s\"", path);
  }
  if (server_listener_add(s, fd, path, addr, NULL, e) < 0) {
    unlink(path);
    return -1;
  }
  TAKE_FD(fd);
  return 0;
}

/* prefix: "" or "h2c:" (kept in the printed address); tls: NULL for plaintext,
 * which is allowed on loopback only. */
static int server_listener_add_tcp(rpc_server *s, int fd, const char *prefix, SSL_CTX *tls,
                                   rr_err *e);

static int server_listen_tcp(rpc_server *s, const char *prefix, const char *addr, SSL_CTX *tls,
                             rr_err *e) {
  char host[256];
  const char *port;
  if (rr_host_port_split(addr, host, sizeof host, &port) < 0)
    return rr_err_set(e, RR_INVALID_ARGUMENT,
                      addr[0] == '[' ? "invalid address \"%s\" (want [v6]:port)"
                                     : "invalid address \"%s\" (want unix:PATH or HOST:PORT)",
                      addr);
  if (!port[0])
    return rr_err_set(e, RR_INVALID_ARGUMENT, "invalid address \"%s\": missing port", addr);
  struct addrinfo hints = {
      .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
  struct addrinfo *res = NULL;
  int r = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
  if (r != 0)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "cannot resolve \"%s\": %s", addr, gai_strerror(r));
  struct addrinfo *ai = res;
  if (!tls && !rr_sockaddr_is_loopback(ai->ai_addr)) {
    freeaddrinfo(res);
    return rr_err_set(e, RR_FAILED_PRECONDITION,
                      "cannot listen on \"%s\": TLS is required for non-loopback addresses", addr);
  }
  _cleanup_close_ int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd >= 0) {
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ai->ai_family == AF_INET6)
      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  }
  if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, SOMAXCONN) < 0) {
    int saved = errno;
    freeaddrinfo(res);
    return rr_err_sys(e, RR_FAILED_PRECONDITION, saved, "cannot listen on \"%s\"", addr);
  }
  freeaddrinfo(res);
  if (server_listener_add_tcp(s, fd, prefix, tls, e) < 0)
    return -1;
  TAKE_FD(fd);
  return 0;
}

/* Add the bound TCP socket fd, named by its address ("h2c:" prefix). */
static int server_listener_add_tcp(rpc_server *s, int fd, const char *prefix, SSL_CTX *tls,
                                   rr_err *e) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  char ip[INET6_ADDRSTRLEN] = "", bound[96];
  getsockname(fd, (struct sockaddr *)&ss, &len);
  if (ss.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, ip, sizeof ip);
    snprintf(bound, sizeof bound, "%s[%s]:%u", prefix, ip,
             ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
  } else {
    inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof ip);
    snprintf(bound, sizeof bound, "%s%s:%u", prefix, ip,
             ntohs(((struct sockaddr_in *)&ss)->sin_port));
  }
  return server_listener_add(s, fd, NULL, bound, tls, e);
}

int rpc_server_listen(rpc_server *s, const char *addr, rr_err *e) {
  if (s->shutting_down)
    return rr_err_set(e, RR_FAILED_PRECONDITION, "server is shutting down");
  if (strncmp(addr, "unix:", 5) == 0)
    return server_listen_unix(s, addr + 5, addr, e);
  /* a bare HOST:PORT stays plaintext here (tests); rund uses listen_tls for it */
  if (strncmp(addr, "h2c:", 4) == 0)
    return server_listen_tcp(s, "h2c:", addr + 4, NULL, e);
  return server_listen_tcp(s, "", addr, NULL, e);
}

static int server_tls_ctx(const rpc_tls_config *tls, SSL_CTX **ret, rr_err *e) {
  rpc_tls_server_files f = {
      .cert_file = tls ? tls->cert_file : NULL,
      .key_file = tls ? tls->key_file : NULL,
      .client_ca_file = tls ? tls->client_ca_file : NULL,
      .allow_tls12 = tls && tls->allow_tls12,
      .client_cert_optional = tls && tls->client_cert_optional,
  };
  return rpc_tls_server_ctx_new(ret, &f, e);
}

int rpc_server_listen_tls(rpc_server *s, const char *addr, const rpc_tls_config *tls, rr_err *e) {
  if (s->shutting_down)
    return rr_err_set(e, RR_FAILED_PRECONDITION, "server is shutting down");
  if (strncmp(addr, "unix:", 5) == 0 || strncmp(addr, "h2c:", 4) == 0)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "cannot serve TLS on \"%s\" (want HOST:PORT)", addr);
  SSL_CTX *ctx;
  if (server_tls_ctx(tls, &ctx, e) < 0)
    return rr_err_wrap(e, "listen on %s", addr);
  if (server_listen_tcp(s, "", addr, ctx, e) < 0) {
    SSL_CTX_free(ctx);
    return -1;
  }
  return 0;
}

int rpc_server_listen_fd(rpc_server *s, int fd, const rpc_tls_config *tls, rr_err *e) {
  if (s->shutting_down)
    return rr_err_set(e, RR_FAILED_PRECONDITION, "server is shutting down");
  int type = 0, accepting = 0;
  socklen_t tl = sizeof type, al = sizeof accepting;
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 ||
      getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &al) < 0 ||
      getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
    return rr_err_sys(e, RR_INVALID_ARGUMENT, errno, "fd %d is not a socket", fd);
  bool inet = ss.ss_family == AF_INET || ss.ss_family == AF_INET6;
  if (type != SOCK_STREAM || !accepting || (!inet && ss.ss_family != AF_UNIX))
    return rr_err_set(e, RR_INVALID_ARGUMENT, "fd %d is not a listening unix or TCP stream socket",
                      fd);
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "fcntl of fd %d", fd);
  if (!inet) { /* its file belongs to whoever made it: not unlinked */
    struct sockaddr_un *su = (struct sockaddr_un *)&ss;
    char addr[sizeof su->sun_path + 8];
    size_t plen = len > offsetof(struct sockaddr_un, sun_path)
                      ? len - offsetof(struct sockaddr_un, sun_path)
                      : 0;
    snprintf(addr, sizeof addr, "unix:%.*s", (int)strnlen(su->sun_path, plen),
             plen && su->sun_path[0] ? su->sun_path : "(unnamed)");
    return server_listener_add(s, fd, NULL, addr, NULL, e);
  }
  if (!tls) {
    if (!rr_sockaddr_is_loopback((struct sockaddr *)&ss))
      return rr_err_set(e, RR_FAILED_PRECONDITION,
                        "fd %d: TLS is required for non-loopback addresses", fd);
    return server_listener_add_tcp(s, fd, "h2c:", NULL, e);
  }
  SSL_CTX *ctx;
  if (server_tls_ctx(tls, &ctx, e) < 0)
    return rr_err_wrap(e, "listen on fd %d", fd);
  if (server_listener_add_tcp(s, fd, "", ctx, e) < 0) {
    SSL_CTX_free(ctx);
    return -1;
  }
  return 0;
}
