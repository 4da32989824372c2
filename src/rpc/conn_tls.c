/* TLS transport of server connections: a non-blocking handshake driven by
 * the loop (refusals reported through the connection log), then SSL_read /
 * SSL_write under HTTP/2, close_notify on close. */
#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rpc/internal.h"
#include "rpc/tls.h"

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

static ssize_t tls_read(rpc_conn *conn, void *buf, size_t len) {
  SSL *ssl = conn->ssl;
  size_t got = 0;
  if (len > INT_MAX)
    len = INT_MAX;
  /* fill buf while records are there, so a short read means "socket drained" */
  while (got < len) {
    ERR_clear_error();
    int n = SSL_read(ssl, (char *)buf + got, (int)(len - got));
    if (n > 0) {
      got += (size_t)n;
      continue;
    }
    int err = SSL_get_error(ssl, n);
    if (err == SSL_ERROR_WANT_WRITE)
      conn->read_wants_write = true;
    if (got > 0)
      break; /* report the bytes; an error repeats on the next call */
    switch (err) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
      errno = EAGAIN;
      return -1;
    case SSL_ERROR_ZERO_RETURN: /* close_notify */
      return 0;
    case SSL_ERROR_SYSCALL:
      if (errno == 0 || errno == EAGAIN)
        errno = ECONNRESET;
      return -1;
    default:
      ERR_clear_error();
      errno = EPROTO;
      return -1;
    }
  }
  ERR_clear_error();
  return (ssize_t)got;
}

static ssize_t tls_write(rpc_conn *conn, const void *buf, size_t len) {
  ERR_clear_error();
  int n = SSL_write(conn->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
  if (n > 0)
    return n;
  switch (SSL_get_error(conn->ssl, n)) {
  case SSL_ERROR_WANT_READ:
    conn->write_wants_read = true;
    errno = EAGAIN;
    return -1;
  case SSL_ERROR_WANT_WRITE:
    errno = EAGAIN;
    return -1;
  case SSL_ERROR_SYSCALL:
    if (errno == 0 || errno == EAGAIN)
      errno = EPIPE;
    return -1;
  default:
    ERR_clear_error();
    errno = EPROTO;
    return -1;
  }
}

static void tls_close(rpc_conn *conn) {
  SSL *ssl = conn->ssl;
  if (ssl) {
    if (conn->handshake_done) /* close_notify, best effort: never waits for the peer's */
      SSL_shutdown(ssl);
    ERR_clear_error();
    SSL_free(ssl);
    conn->ssl = NULL;
  }
  close(conn->in_fd);
  if (conn->out_fd != conn->in_fd)
    close(conn->out_fd);
}

static bool tls_pending(const rpc_conn *conn) { return conn->ssl && SSL_pending(conn->ssl) > 0; }

const rpc_transport_ops rpc_transport_tls = {"tls",     tls_read,    tls_write,
                                             tls_close, tls_pending, NULL};

int rpc_conn_new_tls(rpc_server *s, int fd, const rpc_peer *peer, void *ssl_ctx, rr_err *e) {
  SSL *ssl = SSL_new(ssl_ctx);
  if (!ssl || SSL_set_fd(ssl, fd) != 1) {
    SSL_free(ssl);
    close(fd);
    ERR_clear_error();
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "cannot set up TLS for %s", peer->addr);
  }
  SSL_set_accept_state(ssl);
  return rpc_conn_new_ops(s, fd, fd, peer, &rpc_transport_tls, ssl, e);
}

static void tls_refuse(rpc_conn *conn, const char *reason) {
  rpc_server_conn_log(conn->srv, conn->peer.addr, "tls handshake refused: %s", reason);
  rpc_conn_close(conn, RPC_CLOSE_CANCELLED);
}

/* Before the first TLS byte is parsed: a client speaking plaintext gets a
 * clear reason instead of OpenSSL's "wrong version number". Returns 1 to go
 * on with the handshake, 0 to wait, -1 if the connection was refused. */
static int tls_peek_first_bytes(rpc_conn *conn) {
  unsigned char buf[sizeof h2_preface - 1];
  ssize_t n = recv(conn->in_fd, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    return 0;
  if (n <= 0) {
    tls_refuse(conn, n == 0 ? "connection closed before the handshake" : strerror(errno));
    return -1;
  }
  if (buf[0] == 0x16) /* TLS handshake record */
    return 1;
  char why[64];
  if (memcmp(buf, h2_preface, (size_t)n) == 0)
    snprintf(why, sizeof why, "not TLS (plaintext HTTP/2 preface)");
  else if (n >= 4 && (memcmp(buf, "GET ", 4) == 0 || memcmp(buf, "POST", 4) == 0))
    snprintf(why, sizeof why, "not TLS (plaintext HTTP/1 request)");
  else
    snprintf(why, sizeof why, "not TLS (first byte 0x%02x)", buf[0]);
  tls_refuse(conn, why);
  return -1;
}

/* Handshake done: check ALPN, take the client's identity, start HTTP/2. */
static void tls_established(rpc_conn *conn) {
  SSL *ssl = conn->ssl;
  if (!rpc_tls_alpn_is_h2(ssl)) { /* a client without any ALPN never reached the callback */
    tls_refuse(conn, "client offered no h2 ALPN");
    return;
  }
  /* no certificate at all passes only where the context made it optional */
  X509 *cert = SSL_get0_peer_certificate(ssl);
  if (cert && SSL_get_verify_result(ssl) != X509_V_OK) { /* cannot happen with our verify mode */
    tls_refuse(conn, "no verified client certificate");
    return;
  }
  /* a resumed session was verified earlier: it must not outlive the certificate */
  if (cert && SSL_session_reused(ssl) && X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0) {
    tls_refuse(conn, rpc_tls_verify_reason(X509_V_ERR_CERT_HAS_EXPIRED));
    return;
  }
  rr_err e = {0};
  if (cert && rpc_tls_cert_sans(cert, &conn->peer.sans, &conn->peer.nsans, &e) < 0) {
    tls_refuse(conn, e.msg);
    return;
  }
  conn->peer.tls = true;
  conn->peer.tls_cert = cert != NULL;
  conn->handshaking = false;
  conn->handshake_done = true;
  if (rpc_server_probation_end(conn->srv, conn) < 0)
    return; /* over its peer's share and not an admin: closed */
  rpc_conn_watch(conn, true, false);
  rpc_server_mark_dirty(conn->srv, conn); /* our SETTINGS go out now */
}

void rpc_conn_tls_handshake(rpc_conn *conn) {
  SSL *ssl = conn->ssl;
  if (!conn->tls_started) {
    int r = tls_peek_first_bytes(conn);
    if (r <= 0) {
      if (r == 0)
        rpc_conn_watch(conn, true, false);
      return;
    }
    conn->tls_started = true;
  }
  ERR_clear_error();
  int r = SSL_do_handshake(ssl);
  if (r == 1) {
    tls_established(conn);
    return;
  }
  int err = SSL_get_error(ssl, r);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
    rpc_conn_watch(conn, err == SSL_ERROR_WANT_READ, err == SSL_ERROR_WANT_WRITE);
    return;
  }
  char why[256];
  rpc_tls_server_failure(ssl, why, sizeof why);
  tls_refuse(conn, why);
}
