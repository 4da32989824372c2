/* Client transports: a byte pipe to the server behind an ops struct, so TLS
 * can slot in beside plain sockets. Addresses are "unix:PATH", "HOST:PORT"
 * or "[V6]:PORT". */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

typedef struct grpc_transport grpc_transport;

/* I/O on a non-blocking transport. read/write return bytes moved, -1 with
 * errno (EAGAIN when it would block); read returns 0 at end of stream. */
typedef struct grpc_transport_ops {
  ssize_t (*read)(grpc_transport *t, void *buf, size_t len);
  ssize_t (*write)(grpc_transport *t, const void *buf, size_t len);
  /* Release everything, including the fd. */
  void (*close)(grpc_transport *t);
} grpc_transport_ops;

struct grpc_transport {
  const grpc_transport_ops *ops;
  int fd;              /* what to poll(): readable/writable drive read/write */
  char address[256];   /* as given by the user, for error messages */
  char authority[256]; /* :authority to send */
};

/* Parsed address. */
typedef struct grpc_address {
  enum { GRPC_ADDRESS_UNIX, GRPC_ADDRESS_TCP } kind;
  char path[108]; /* unix */
  char host[256]; /* tcp: host name or literal, without brackets */
  char port[16];
} grpc_address;

/* Parse "unix:PATH", "HOST:PORT", "[V6]:PORT". */
int grpc_address_parse(const char *addr, grpc_address *ret, rr_err *e);

/* Connect a plain (h2c) transport within timeout_ms (0: no limit). The fd is
 * non-blocking, CLOEXEC, TCP_NODELAY for TCP. Connection failures are
 * RR_UNAVAILABLE naming the address and the reason. */
int grpc_transport_connect_plain(const char *addr, uint64_t timeout_ms, grpc_transport **ret,
                                 rr_err *e);

/* Wrap an already connected fd (takes ownership), e.g. one end of a socketpair. */
int grpc_transport_from_fd(int fd, const char *label, grpc_transport **ret, rr_err *e);

/* Close and free (NULL ok). */
void grpc_transport_free(grpc_transport *t);
