/* Client transports: a byte pipe to the server behind an ops struct (plain
 * sockets, TLS). Addresses are "unix:PATH" and "h2c:HOST:PORT" (plaintext),
 * "HOST:PORT" or "[V6]:PORT" (TLS), as in docs/dev/SECURITY.md. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

typedef struct rpc_client_transport rpc_client_transport;

/* I/O on a non-blocking transport. read/write return bytes moved, -1 with
 * errno (EAGAIN when it would block); read returns 0 at end of stream. */
typedef struct rpc_client_transport_ops {
  ssize_t (*read)(rpc_client_transport *t, void *buf, size_t len);
  ssize_t (*write)(rpc_client_transport *t, const void *buf, size_t len);
  /* Release everything, including the fd. */
  void (*close)(rpc_client_transport *t);
  /* Bytes already decrypted inside the transport, which poll() cannot see
   * (NULL: never any). */
  bool (*pending)(rpc_client_transport *t);
} rpc_client_transport_ops;

struct rpc_client_transport {
  const rpc_client_transport_ops *ops;
  int fd;                /* what to poll(): readable/writable drive read/write */
  char address[256];     /* as given by the user, for error messages */
  char authority[256];   /* :authority to send */
  bool tls;              /* encrypted, server verified */
  bool want_write;       /* TLS: a read needs the fd writable first */
  void *ssl;             /* SSL * when tls */
  char error[256];       /* TLS: why the last read/write failed (else "") */
  uint64_t handshake_us; /* TLS handshake time */
  bool resumed;          /* TLS session resumed from an earlier connection */
};

/* Parsed address. */
typedef struct rpc_address {
  enum { RPC_ADDRESS_UNIX, RPC_ADDRESS_TCP } kind;
  bool tls;       /* TCP without "h2c:" */
  char path[108]; /* unix */
  char host[256]; /* tcp: host name or literal, without brackets */
  char port[16];
} rpc_address;

/* Parse "unix:PATH", "h2c:HOST:PORT", "HOST:PORT", "[V6]:PORT". */
int rpc_address_parse(const char *addr, rpc_address *ret, rr_err *e);

/* TLS client settings (files PEM). */
typedef struct rpc_tls_client_config {
  const char *ca_file;   /* required: CAs the server must chain to */
  const char *cert_file; /* client certificate (optional, with key_file) */
  const char *key_file;
  const char *server_name; /* name to verify (DNS or IP); NULL: the address's host */
  /* Directory keeping TLS sessions between processes (created 0700; one 0600
   * file per address, name and files); NULL: sessions kept in memory only. */
  const char *session_cache_dir;
} rpc_tls_client_config;

/* Connect to addr within timeout_ms (0: no limit): unix: and h2c: plaintext,
 * HOST:PORT over TLS 1.3 with tls (required for those). Handshake failures
 * are RR_UNAVAILABLE "TLS handshake with ADDR failed: REASON". */
int rpc_client_transport_connect(const char *addr, const rpc_tls_client_config *tls,
                                 uint64_t timeout_ms, rpc_client_transport **ret, rr_err *e);
/* Load and check the TLS files now (before connecting); cached for the
 * connection that follows. */
int rpc_client_transport_tls_check(const rpc_tls_client_config *tls, rr_err *e);
/* TLS over an already connected non-blocking fd (taken, even on failure). */
int rpc_client_transport_tls_start(int fd, const char *addr, const char *host,
                                   const rpc_tls_client_config *tls, uint64_t deadline_ms,
                                   rpc_client_transport **ret, rr_err *e);

/* Connect a plain transport within timeout_ms (0: no limit), whatever the
 * address form says about TLS. The fd is non-blocking, CLOEXEC, TCP_NODELAY
 * for TCP. Connection failures are RR_UNAVAILABLE naming the address and the
 * reason. */
int rpc_client_transport_connect_plain(const char *addr, uint64_t timeout_ms,
                                       rpc_client_transport **ret, rr_err *e);

/* Wait (poll) until fd has events or deadline (monotonic ms, 0: none)
 * passes. Returns 0, or ETIMEDOUT / an errno. */
int rpc_client_transport_wait_fd(int fd, short events, uint64_t deadline);
/* Wrap an already connected fd (takes ownership), e.g. one end of a socketpair. */
int rpc_client_transport_from_fd(int fd, const char *label, rpc_client_transport **ret, rr_err *e);

/* Close and free (NULL ok). */
void rpc_client_transport_free(rpc_client_transport *t);
