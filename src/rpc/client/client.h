/* gRPC client on nghttp2: one HTTP/2 connection, many calls (sequential or
 * concurrent streams), every call shape, driven by poll() inside blocking
 * calls with deadlines. Single-threaded: a client and its calls must be used
 * from one thread at a time.
 *
 * Flow control follows the caller: received bytes are only credited back to
 * the server (WINDOW_UPDATE) as the caller takes messages, so a slow consumer
 * back-pressures the server instead of growing memory. */
#pragma once
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "rpc/client/transport.h"

typedef struct rpc_client rpc_client;
typedef struct rpc_client_call rpc_client_call;

typedef struct rpc_client_options {
  uint64_t connect_timeout_ms;      /* 0: 10 s (TCP connect + TLS handshake) */
  size_t max_recv_message;          /* 0: RPC_DEFAULT_MAX_MESSAGE (4 MiB) */
  const char *user_agent;           /* NULL: "runrpc-c/VERSION" */
  const rpc_tls_client_config *tls; /* for TLS addresses (HOST:PORT) */
  const char *authorization;        /* "authorization" metadata on every call, or NULL */
  /* While a call is open and nothing came for this long, PING; no answer
   * within RPC_CLIENT_PING_TIMEOUT_MS fails the connection (UNAVAILABLE).
   * 0: RPC_CLIENT_KEEPALIVE_MS. */
  uint64_t keepalive_ms;
  /* rpc_encoding (rpc/compress.h) of request messages of RPC_COMPRESS_MIN
   * bytes or more (grpc-encoding sent, and grpc-accept-encoding asking for
   * the same back); 0: none. Compressed responses are read either way. */
  int compression;
} rpc_client_options;

#define RPC_CLIENT_KEEPALIVE_MS 20000u
#define RPC_CLIENT_PING_TIMEOUT_MS 20000u

/* Results of rpc_client_call_recv / rpc_client_call_try_recv. */
enum {
  RPC_CLIENT_CALL_END = 0,     /* stream finished with status OK */
  RPC_CLIENT_CALL_MESSAGE = 1, /* *ret_msg holds a message */
  RPC_CLIENT_CALL_AGAIN = 2,   /* try_recv only: nothing yet */
};

/* Connect to addr (see transport.h: unix:, h2c:, TLS HOST:PORT) and start
 * HTTP/2 with prior knowledge. */
int rpc_client_connect(const char *addr, const rpc_client_options *o, rpc_client **ret, rr_err *e);
/* Start HTTP/2 over an already connected transport (taken, even on failure). */
int rpc_client_new(rpc_client_transport *t, const rpc_client_options *o, rpc_client **ret,
                   rr_err *e);
/* Close the connection. Calls still alive fail with UNAVAILABLE; free them after. */
void rpc_client_free(rpc_client *c);
/* The address the client was connected to, for messages. */
const char *rpc_client_address(const rpc_client *c);
/* The transport under the client (TLS facts: handshake time, resumption). */
const rpc_client_transport *rpc_client_get_transport(const rpc_client *c);

/* Open a call on method path "/pkg.Service/Method"; timeout_ms 0 = no
 * deadline, else sent as grpc-timeout and enforced locally. */
int rpc_client_call_start(rpc_client *c, const char *path, uint64_t timeout_ms,
                          rpc_client_call **ret, rr_err *e);
/* Queue one message; blocks (driving the connection) only while more than
 * the send high-water mark is buffered. Fails with the call's status if it ended
 * with an error; dropped (returns 0) if it already ended with OK. */
int rpc_client_call_send(rpc_client_call *call, const void *msg, size_t len, rr_err *e);
/* Half-close: no more messages from us (END_STREAM after what is queued). */
int rpc_client_call_close_send(rpc_client_call *call, rr_err *e);
/* Bytes queued but not yet handed to HTTP/2. */
size_t rpc_client_call_send_buffered(const rpc_client_call *call);
/* True once more should not be queued without waiting (above high water). */
bool rpc_client_call_send_full(const rpc_client_call *call);
/* A sink of message bytes: piece by piece, straight from the receive buffer.
 * Nonzero stops the call (CANCELLED, the stream reset). */
typedef int (*rpc_client_sink_fn)(void *ud, uint32_t field, const uint8_t *data, size_t len);
/* Messages that are exactly one length-delimited field n (1-15) with bit n
 * set in fields go to fn as their payload arrives, instead of the queue
 * (no copy), when nothing is queued before them (the order holds); others,
 * compressed ones among them, are queued as always. fields 0: none. */
void rpc_client_call_set_sink(rpc_client_call *call, uint32_t fields, rpc_client_sink_fn fn,
                              void *ud);
/* Next message: RPC_CLIENT_CALL_MESSAGE (caller frees *ret_msg, NULL if empty),
 * RPC_CLIENT_CALL_END on status OK, -1 with the call's status in e. Blocks. */
int rpc_client_call_recv(rpc_client_call *call, uint8_t **ret_msg, size_t *ret_len, rr_err *e);
/* Same without blocking: RPC_CLIENT_CALL_AGAIN when nothing is ready. */
int rpc_client_call_try_recv(rpc_client_call *call, uint8_t **ret_msg, size_t *ret_len, rr_err *e);
/* Drive the connection until the call has something to report (a message,
 * its end, or room to send again after being full), one of the caller fds has
 * revents, or timeout_ms passes
 * (-1: no limit besides the call's deadline). Returns 1 if a caller fd fired,
 * 0 otherwise, -1 if poll() failed. */
int rpc_client_call_wait(rpc_client_call *call, struct pollfd *fds, size_t nfds, int timeout_ms,
                         rr_err *e);
/* True once the call's status is known. */
bool rpc_client_call_done(const rpc_client_call *call);
/* Cancel (RST_STREAM CANCEL); the status becomes CANCELLED unless known. */
void rpc_client_call_cancel(rpc_client_call *call);
/* Cancel if still running and free (NULL ok). */
void rpc_client_call_free(rpc_client_call *call);

/* One request, one response. *ret_resp is malloc'd (NULL if empty). */
int rpc_client_unary(rpc_client *c, const char *path, const void *req, size_t req_len,
                     uint64_t timeout_ms, uint8_t **ret_resp, size_t *ret_len, rr_err *e);
