#include "rpc/client/transport.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "common/util.h"
#include "rpc/client/resolve.h"

int rpc_address_parse(const char *addr, rpc_address *ret, rr_err *e) {
  memset(ret, 0, sizeof *ret);
  if (!addr || !*addr)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "empty address (want unix:PATH or HOST:PORT)");
  if (strncmp(addr, "unix:", 5) == 0) {
    const char *p = addr + 5;
    if (!*p)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "invalid address \"%s\": empty socket path", addr);
    if (strlen(p) >= sizeof ret->path)
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "invalid address \"%s\": socket path longer than %zu bytes", addr,
                        sizeof ret->path - 1);
    ret->kind = RPC_ADDRESS_UNIX;
    strcpy(ret->path, p);
    return 0;
  }
  ret->kind = RPC_ADDRESS_TCP;
  ret->tls = true;
  if (strncmp(addr, "h2c:", 4) == 0) {
    ret->tls = false;
    addr += 4;
  }
  const char *host = addr, *colon;
  size_t hostlen;
  if (addr[0] == '[') {
    const char *close = strchr(addr, ']');
    if (!close || close[1] != ':')
      return rr_err_set(e, RR_INVALID_ARGUMENT, "invalid address \"%s\": want [V6ADDR]:PORT", addr);
    host = addr + 1;
    hostlen = (size_t)(close - host);
    colon = close + 1;
  } else {
    colon = strrchr(addr, ':');
    if (!colon)
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "invalid address \"%s\": want unix:PATH or HOST:PORT", addr);
    hostlen = (size_t)(colon - addr);
    if (memchr(addr, ':', hostlen))
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "invalid address \"%s\": IPv6 literals need brackets, [::1]:PORT", addr);
  }
  if (hostlen == 0 || hostlen >= sizeof ret->host)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "invalid address \"%s\": bad host", addr);
  const char *port = colon + 1;
  size_t portlen = strlen(port);
  if (portlen == 0 || portlen > 5 || strspn(port, "0123456789") != portlen || atoi(port) < 1 ||
      atoi(port) > 65535)
    return rr_err_set(e, RR_INVALID_ARGUMENT,
                      "invalid address \"%s\": bad port \"%s\" (want 1..65535)", addr, port);
  memcpy(ret->host, host, hostlen);
  memcpy(ret->port, port, portlen);
  return 0;
}

static ssize_t plain_read(rpc_client_transport *t, void *buf, size_t len) {
  ssize_t n;
  do
    n = recv(t->fd, buf, len, 0);
  while (n < 0 && errno == EINTR);
  return n;
}

static ssize_t plain_write(rpc_client_transport *t, const void *buf, size_t len) {
  ssize_t n;
  do /* MSG_NOSIGNAL: a dead server must not SIGPIPE the caller's process */
    n = send(t->fd, buf, len, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  return n;
}

static void plain_close(rpc_client_transport *t) {
  if (t->fd >= 0)
    close(t->fd);
  t->fd = -1;
  free(t);
}

static const rpc_client_transport_ops plain_ops = {
    .read = plain_read,
    .write = plain_write,
    .close = plain_close,
    .pending = NULL,
};

void rpc_client_transport_free(rpc_client_transport *t) {
  if (t)
    t->ops->close(t);
}

/* Non-blocking connect bounded by deadline (0: none). Returns 0 or an errno. */
static int connect_wait(int fd, const struct sockaddr *sa, socklen_t salen, uint64_t deadline) {
  if (connect(fd, sa, salen) == 0)
    return 0;
  if (errno != EINPROGRESS && errno != EINTR)
    return errno;
  {
    int r = rpc_client_transport_wait_fd(fd, POLLOUT, deadline);
    if (r)
      return r;
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
      return errno;
    return soerr;
  }
}

static int transport_new(int fd, const char *addr, const char *authority,
                         rpc_client_transport **ret, rr_err *e) {
  rpc_client_transport *t = calloc(1, sizeof *t);
  if (!t) {
    close(fd);
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  }
  t->ops = &plain_ops;
  t->fd = fd;
  snprintf(t->address, sizeof t->address, "%s", addr);
  snprintf(t->authority, sizeof t->authority, "%s", authority);
  *ret = t;
  return 0;
}

int rpc_client_transport_from_fd(int fd, const char *label, rpc_client_transport **ret, rr_err *e) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
    int saved = errno;
    close(fd);
    return rr_err_sys(e, RR_INTERNAL, saved, "cannot make %s non-blocking", label);
  }
  return transport_new(fd, label, "localhost", ret, e);
}

/* Connect the socket of a: returns the fd, or -1 with e set. */
static int connect_socket(const char *addr, const rpc_address *a, uint64_t deadline, rr_err *e) {
  if (a->kind == RPC_ADDRESS_UNIX) {
    _cleanup_close_ int fd =
        rr_fd_above_stdio(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (fd < 0)
      return rr_err_sys(e, RR_UNAVAILABLE, errno, "cannot connect to %s: socket", addr);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    memcpy(sun.sun_path, a->path, strlen(a->path));
    int err = connect_wait(fd, (struct sockaddr *)&sun, sizeof sun, deadline);
    if (err)
      return rr_err_sys(e, RR_UNAVAILABLE, err, "cannot connect to %s", addr);
    return TAKE_FD(fd);
  }
  resolve_result res;
  if (resolve_host(addr, a->host, a->port, &res, e) < 0)
    return -1;
  int last = ECONNREFUSED;
  for (size_t i = 0; i < res.n; i++) {
    const struct sockaddr *sa = (const struct sockaddr *)&res.addr[i];
    int fd =
        rr_fd_above_stdio(socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (fd < 0) {
      last = errno;
      continue;
    }
    last = connect_wait(fd, sa, res.len[i], deadline);
    if (last) {
      close(fd);
      if (last == ETIMEDOUT)
        break;
      continue;
    }
    int one = 1; /* without it small frames wait ~40 ms for delayed ACKs */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
  }
  return rr_err_sys(e, RR_UNAVAILABLE, last, "cannot connect to %s", addr);
}

/* :authority is HOST:PORT (brackets kept), without an "h2c:" prefix. */
static const char *address_authority(const char *addr, const rpc_address *a) {
  if (a->kind == RPC_ADDRESS_UNIX)
    return "localhost";
  return strncmp(addr, "h2c:", 4) == 0 ? addr + 4 : addr;
}

int rpc_client_transport_connect_plain(const char *addr, uint64_t timeout_ms,
                                       rpc_client_transport **ret, rr_err *e) {
  rpc_address a;
  if (rpc_address_parse(addr, &a, e) < 0)
    return -1;
  uint64_t deadline = timeout_ms ? rr_now_mono_ms() + timeout_ms : 0;
  int fd = connect_socket(addr, &a, deadline, e);
  if (fd < 0)
    return -1;
  return transport_new(fd, addr, address_authority(addr, &a), ret, e);
}

int rpc_client_transport_connect(const char *addr, const rpc_tls_client_config *tls,
                                 uint64_t timeout_ms, rpc_client_transport **ret, rr_err *e) {
  rpc_address a;
  if (rpc_address_parse(addr, &a, e) < 0)
    return -1;
  if (a.kind == RPC_ADDRESS_UNIX || !a.tls)
    return rpc_client_transport_connect_plain(addr, timeout_ms, ret, e);
  if (!tls || !tls->ca_file)
    return rr_err_set(e, RR_INVALID_ARGUMENT,
                      "%s is a TLS address and no CA file was given to verify the server "
                      "(use h2c:%s for plaintext on loopback)",
                      addr, addr);
  if (rpc_client_transport_tls_check(tls, e) < 0) /* bad files: fail before touching the server */
    return -1;
  uint64_t deadline = timeout_ms ? rr_now_mono_ms() + timeout_ms : 0;
  int fd = connect_socket(addr, &a, deadline, e);
  if (fd < 0)
    return -1;
  if (rpc_client_transport_tls_start(fd, addr, a.host, tls, deadline, ret, e) < 0)
    return -1;
  snprintf((*ret)->authority, sizeof(*ret)->authority, "%s", addr);
  return 0;
}
