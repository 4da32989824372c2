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

typedef struct grpc_client grpc_client;
typedef struct grpc_call grpc_call;

typedef struct grpc_client_options {
  uint64_t connect_timeout_ms;       /* 0: 10 s (TCP connect + TLS handshake) */
  size_t max_recv_message;           /* 0: GRPC_DEFAULT_MAX_MESSAGE (4 MiB) */
  const char *user_agent;            /* NULL: "runrpc-c/VERSION" */
  const grpc_tls_client_config *tls; /* for TLS addresses (HOST:PORT) */
  const char *authorization;         /* "authorization" metadata on every call, or NULL */
} grpc_client_options;

/* Results of grpc_call_recv / grpc_call_try_recv. */
enum {
  GRPC_CALL_END = 0,     /* stream finished with status OK */
  GRPC_CALL_MESSAGE = 1, /* *ret_msg holds a message */
  GRPC_CALL_AGAIN = 2,   /* try_recv only: nothing yet */
};

/* Connect to addr (see transport.h: unix:, h2c:, TLS HOST:PORT) and start
 * HTTP/2 with prior knowledge. */
int grpc_client_connect(const char *addr, const grpc_client_options *o, grpc_client **ret,
                        rr_err *e);
/* Start HTTP/2 over an already connected transport (taken, even on failure). */
int grpc_client_new(grpc_transport *t, const grpc_client_options *o, grpc_client **ret, rr_err *e);
/* Close the connection. Calls still alive fail with UNAVAILABLE; free them after. */
void grpc_client_free(grpc_client *c);
/* The address the client was connected to, for messages. */
const char *grpc_client_address(const grpc_client *c);
/* The transport under the client (TLS facts: handshake time, resumption). */
const grpc_transport *grpc_client_transport(const grpc_client *c);

/* Open a call on method path "/pkg.Service/Method"; timeout_ms 0 = no
 * deadline, else sent as grpc-timeout and enforced locally. */
int grpc_call_start(grpc_client *c, const char *path, uint64_t timeout_ms, grpc_call **ret,
                    rr_err *e);
/* Queue one message; blocks (driving the connection) only while more than
 * the send high-water mark is buffered. Fails with the call's status if it ended
 * with an error; dropped (returns 0) if it already ended with OK. */
int grpc_call_send(grpc_call *call, const void *msg, size_t len, rr_err *e);
/* Half-close: no more messages from us (END_STREAM after what is queued). */
int grpc_call_close_send(grpc_call *call, rr_err *e);
/* Bytes queued but not yet handed to HTTP/2. */
size_t grpc_call_send_buffered(const grpc_call *call);
/* True once more should not be queued without waiting (above high water). */
bool grpc_call_send_full(const grpc_call *call);
/* Next message: GRPC_CALL_MESSAGE (caller frees *ret_msg, NULL if empty),
 * GRPC_CALL_END on status OK, -1 with the call's status in e. Blocks. */
int grpc_call_recv(grpc_call *call, uint8_t **ret_msg, size_t *ret_len, rr_err *e);
/* Same without blocking: GRPC_CALL_AGAIN when nothing is ready. */
int grpc_call_try_recv(grpc_call *call, uint8_t **ret_msg, size_t *ret_len, rr_err *e);
/* Drive the connection until the call has something to report (a message,
 * its end, or room to send again after being full), one of the caller fds has
 * revents, or timeout_ms passes
 * (-1: no limit besides the call's deadline). Returns 1 if a caller fd fired,
 * 0 otherwise, -1 if poll() failed. */
int grpc_call_wait(grpc_call *call, struct pollfd *fds, size_t nfds, int timeout_ms, rr_err *e);
/* True once the call's status is known. */
bool grpc_call_done(const grpc_call *call);
/* Cancel (RST_STREAM CANCEL); the status becomes CANCELLED unless known. */
void grpc_call_cancel(grpc_call *call);
/* Cancel if still running and free (NULL ok). */
void grpc_call_free(grpc_call *call);

/* One request, one response. *ret_resp is malloc'd (NULL if empty). */
int grpc_client_unary(grpc_client *c, const char *path, const void *req, size_t req_len,
                      uint64_t timeout_ms, uint8_t **ret_resp, size_t *ret_len, rr_err *e);
