/* gRPC server on nghttp2: listeners, connections, calls. Single-threaded on
 * a loop. Handlers are asynchronous: they get callbacks and answer with
 * rpc_call_send / rpc_call_finish whenever they like (from any loop
 * callback), until on_close. */
#pragma once
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"
#include "common/loop.h"

typedef struct rpc_server rpc_server;
typedef struct rpc_call rpc_call;
typedef struct rpc_buf rpc_buf;

/* Who is on the other end of a connection. */
typedef struct rpc_peer {
  int family;    /* AF_UNIX, AF_INET, AF_INET6, or AF_UNSPEC for stdio */
  bool has_cred; /* SO_PEERCRED was read (unix sockets) */
  uid_t uid;
  gid_t gid;
  pid_t pid;
  bool tls;      /* connection is TLS (a client certificate, if any, verified) */
  bool tls_cert; /* TLS with a verified client certificate (not when optional and absent) */
  char addr[96]; /* printable: "unix:/run/x.sock" or "127.0.0.1:5555" */
  /* TLS: the verified client certificate's SANs as "uri:V", "dns:V",
   * "email:V", "ip:V" (owned by the connection; NULL/0 otherwise). */
  char **sans;
  size_t nsans;
} rpc_peer;

/* Why a call ended, passed to on_close. */
typedef enum rpc_close_reason {
  RPC_CLOSE_FINISHED = 0, /* trailers were sent after rpc_call_finish */
  RPC_CLOSE_CANCELLED,    /* client RST_STREAM or connection lost */
  RPC_CLOSE_DEADLINE,     /* grpc-timeout passed (server sent DEADLINE_EXCEEDED) */
  RPC_CLOSE_SHUTDOWN,     /* server shutting down */
} rpc_close_reason;

typedef struct rpc_method {
  const char *path;                          /* "/runrpc.v1.Jobs/Start" */
  const ProtobufCMessageDescriptor *request; /* how to decode requests */
  bool client_streaming;
  bool server_streaming;
  /* A decoded request. The handler owns msg (protobuf_c_message_free_unpacked
   * (msg, NULL)). Non-client-streaming methods get exactly one, once the
   * client half-closed; a request count other than one is answered by the
   * server itself (UNIMPLEMENTED) without calling the handler. */
  void (*on_message)(rpc_call *c, ProtobufCMessage *msg);
  /* Client half-closed (client-streaming methods only; may be NULL). */
  void (*on_half_close)(rpc_call *c);
  /* The send queue fell below RPC_CALL_LOW_WATER (may be NULL). */
  void (*on_writable)(rpc_call *c);
  /* The call is over; c is invalid after this returns. Free per-call state
   * and unregister anything that points at c. Always called exactly once. */
  void (*on_close)(rpc_call *c, rpc_close_reason reason);
  void *data; /* service context: rpc_call_method_data() */
} rpc_method;

/* Handlers producing a stream stop sending while rpc_call_queued() is above
 * HIGH and resume in on_writable (called when it falls below LOW). */
#define RPC_CALL_HIGH_WATER (1024u * 1024u)
#define RPC_CALL_LOW_WATER (256u * 1024u)

typedef struct rpc_server_config {
  size_t max_recv_message;         /* default RPC_DEFAULT_MAX_MESSAGE (4 MiB) */
  size_t max_send_message;         /* default 16 MiB */
  uint32_t max_concurrent_streams; /* per connection, default 256 */
  size_t max_connections;          /* default 4096; over it new ones are closed */
  uint64_t keepalive_ms;           /* server PING on idle connections; default 20000 */
  uint64_t handshake_timeout_ms;   /* preface/SETTINGS must arrive; default 10000 */
  /* Request bytes held (received, not yet handed to a handler): per
   * connection (also its HTTP/2 connection window) and for all together;
   * defaults 16 MiB and 256 MiB. A call that would pass them gets
   * RESOURCE_EXHAUSTED. */
  size_t max_conn_recv_buffer;
  size_t max_recv_buffer;
  /* Connections per peer (unix uid, remote IP address), default no limit
   * but max_connections; admins (rpc_server_auth.peer_is_admin) are exempt. */
  size_t max_connections_per_peer;
  /* Of max_connections, slots only admins may take; default 64. */
  size_t admin_connections;
  /* A connection with no call open and no new request for this long gets
   * GOAWAY and is closed (PINGs do not count); default 300000. */
  uint64_t idle_timeout_ms;
  /* Refuse (INVALID_ARGUMENT naming the field) a request whose string
   * fields hold a NUL byte or invalid UTF-8, before any handler sees it:
   * protobuf-c would cut the string at the NUL. Default off. */
  bool check_strings;
} rpc_server_config;

/* cfg may be NULL for defaults. */
int rpc_server_new(rpc_server **ret, loop *l, const rpc_server_config *cfg, rr_err *e);
/* Replace the configuration (zero fields: defaults); before listening. */
void rpc_server_set_config(rpc_server *s, const rpc_server_config *cfg);

/* The application's say on who may use the server. */
typedef struct rpc_server_auth {
  /* Is this peer (unix peer at accept, TLS peer after the handshake) an
   * admin? Admins are exempt from the per-peer limit and may use the slots
   * kept for them. NULL: nobody is. */
  bool (*peer_is_admin)(void *data, const rpc_peer *peer);
  /* Request headers of c are in (path, metadata, peer), no message byte is
   * buffered yet. Return 0 to let the call through, 1 to let it through
   * without an identity (its messages are limited to 64 KiB and the
   * connection gets no more flow-control window for it), or -1 with e set
   * (e.g. UNAUTHENTICATED) to answer with that status. NULL: all pass. */
  int (*authorize)(void *data, rpc_call *c, rr_err *e);
  void *data;
} rpc_server_auth;
void rpc_server_set_auth(rpc_server *s, const rpc_server_auth *auth);
/* Register a method (path must be unique). The struct is copied. */
int rpc_server_add_method(rpc_server *s, const rpc_method *m, rr_err *e);
/* Listen on "unix:/path" (stale socket replaced, mode 0666; parent dir
 * created 0755) or "host:port" / "[v6]:port" (TCP; non-loopback refused
 * until TLS exists). */
int rpc_server_listen(rpc_server *s, const char *addr, rr_err *e);
/* Printable address of the i-th listener ("127.0.0.1:40123" with the port
 * the kernel chose for port 0, "unix:/path"), NULL past the end. */
const char *rpc_server_listen_address(const rpc_server *s, size_t i);
/* TLS for TCP listeners (docs/dev/SECURITY.md): TLS 1.3 (1.2 only if
 * allow_tls12), ALPN h2, client certificate verified, and required unless
 * client_cert_optional (then rpc_peer.tls_cert says whether there was one). */
typedef struct rpc_tls_config {
  const char *cert_file;      /* server certificate chain, PEM */
  const char *key_file;       /* its private key, PEM */
  const char *client_ca_file; /* CA(s) that client certificates must chain to */
  bool allow_tls12;
  bool client_cert_optional; /* token-only clients: authorize checks them */
} rpc_tls_config;
/* Listen on TCP "host:port" / "[v6]:port" serving gRPC over TLS. The files
 * are loaded (and checked) now. */
int rpc_server_listen_tls(rpc_server *s, const char *addr, const rpc_tls_config *tls, rr_err *e);
/* Serve a socket that is listening already (systemd socket activation): a
 * unix one in plaintext (its file is not ours: never unlinked), a TCP one
 * with TLS per tls, or plaintext ("h2c:") when tls is NULL, on loopback
 * only. Made non-blocking and close-on-exec; the server owns fd on success,
 * the caller keeps it on error. */
int rpc_server_listen_fd(rpc_server *s, int fd, const rpc_tls_config *tls, rr_err *e);
/* Whether path names a registered method. */
bool rpc_server_has_method(const rpc_server *s, const char *path);
/* Told of every call that had a path, as it goes away: the status it
 * ended with (CANCELLED when it never finished: reset, connection lost) and
 * how long it lasted since its headers arrived. For metrics; c is still
 * valid (path, peer, data) but nothing may be sent on it. */
typedef void (*rpc_call_end_fn)(void *data, const rpc_call *c, int code, uint64_t duration_us);
void rpc_server_set_call_end(rpc_server *s, rpc_call_end_fn fn, void *data);
/* Told of each request message as it is decoded, before its handler gets
 * it, and of each message rpc_call_send queues (response true); not of
 * rpc_call_send_bytes' output. For an audit log: msg is only lent. */
typedef void (*rpc_call_message_fn)(void *data, rpc_call *c, const ProtobufCMessage *msg,
                                    bool response);
void rpc_server_set_call_message(rpc_server *s, rpc_call_message_fn fn, void *data);
/* Text an observer keeps with a call until call_end has seen it (then it
 * is freed): appended, at most RPC_CALL_NOTE_MAX bytes in all (-1 past it
 * or out of memory, the note unchanged). rpc_call_note is NULL until set. */
#define RPC_CALL_NOTE_MAX (64u * 1024u)
int rpc_call_note_append(rpc_call *c, const char *text, size_t len);
const char *rpc_call_note(const rpc_call *c);
/* Connection-level events the daemon should log (TLS handshake refused,
 * connection limit hit...): peer is printable, what is one sentence. */
typedef void (*rpc_server_conn_log_fn)(void *data, const char *peer, const char *what);
void rpc_server_set_conn_log(rpc_server *s, rpc_server_conn_log_fn fn, void *data);
/* Serve one connection over already-open fds (e.g. stdin/stdout). */
int rpc_server_add_fds(rpc_server *s, int in_fd, int out_fd, rr_err *e);
/* Same, when the first len bytes of in_fd were read already (e.g. to see
 * the HTTP/2 preface on a pipe): they are fed to the connection first. */
int rpc_server_add_fds_head(rpc_server *s, int in_fd, int out_fd, const void *head, size_t len,
                            rr_err *e);
/* Connections open now (listeners' and added fds'). */
size_t rpc_server_connection_count(const rpc_server *s);
/* Stop accepting, GOAWAY to every connection, cancel calls (on_close with
 * RPC_CLOSE_SHUTDOWN), close listeners (unix socket files unlinked). */
void rpc_server_shutdown(rpc_server *s);
void rpc_server_free(rpc_server *s);
/* Distinct service names ("runrpc.v1.Jobs") of registered methods, sorted. */
size_t rpc_server_service_names(const rpc_server *s, const char **out, size_t max);
bool rpc_server_has_service(const rpc_server *s, const char *service);

/* Queue a response message. Fails (-1, e set) if the call is finished or
 * closed, or the message exceeds max_send_message (RESOURCE_EXHAUSTED).
 * Never blocks; the caller watches rpc_call_queued for back-pressure. */
int rpc_call_send(rpc_call *c, const ProtobufCMessage *msg, rr_err *e);
/* Output without copies: a response message made of one bytes field whose
 * payload the handler writes (e.g. reads from a pipe) straight into the
 * buffer that goes out; buffers are reused. rpc_call_bytes_buf gives room
 * for RPC_CALL_BYTES_MAX bytes, the same buffer until it is sent (NULL: out
 * of memory, or the call is over). */
#define RPC_CALL_BYTES_MAX (256u * 1024u)
uint8_t *rpc_call_bytes_buf(rpc_call *c);
/* Queue the message {field: the first len bytes of rpc_call_bytes_buf}, as
 * rpc_call_send would. */
int rpc_call_send_bytes(rpc_call *c, uint32_t field, size_t len, rr_err *e);
/* Output without any copy in rund: a message {field: len bytes waiting in
 * the pipe fd} whose payload moves from the pipe to the socket with
 * splice(2) when it goes out (fd is dup'ed). Only where
 * rpc_call_can_splice says so (a plain socket); len at most
 * RPC_CALL_SPLICE_MAX. Until rpc_call_splice_pending turns false the caller
 * must not read fd (those bytes are the message's); on_writable fires once
 * the message is out. */
#define RPC_CALL_SPLICE_MAX (1024u * 1024u)
bool rpc_call_can_splice(const rpc_call *c);
int rpc_call_send_spliced(rpc_call *c, uint32_t field, int fd, size_t len, rr_err *e);
bool rpc_call_splice_pending(const rpc_call *c);
/* Bytes queued on this call and not yet handed to the socket. */
size_t rpc_call_queued(const rpc_call *c);
/* on_writable fires when rpc_call_queued falls below low (default
 * RPC_CALL_LOW_WATER); for handlers that keep their queue short. */
void rpc_call_set_low_water(rpc_call *c, size_t low);
/* End the call: trailers (grpc-status, percent-encoded grpc-message, trimmed
 * to the peer's header limit) go out after every queued message. A call with
 * nothing sent gets a Trailers-Only response. Further sends fail. Idempotent. */
void rpc_call_finish(rpc_call *c, int code, const char *message);
/* Same, from an error object. */
void rpc_call_finish_err(rpc_call *c, const rr_err *e);
/* First value of request metadata key (lower case), or NULL. -bin values are
 * returned decoded with *len set (len may be NULL). */
const char *rpc_call_metadata(const rpc_call *c, const char *key, size_t *len);
/* Add initial metadata (before the first send) or trailing metadata. */
int rpc_call_add_metadata(rpc_call *c, bool trailing, const char *key, const char *value,
                          size_t len, rr_err *e);
const rpc_peer *rpc_call_peer(const rpc_call *c);
const char *rpc_call_path(const rpc_call *c);
/* Monotonic ms when the deadline passes, 0 if none. */
uint64_t rpc_call_deadline(const rpc_call *c);
bool rpc_call_finished(const rpc_call *c);
/* Stop (true) or resume delivering request messages. While paused the
 * server stops returning HTTP/2 flow-control window for this stream, so a
 * fast client is held back instead of growing our buffers. */
void rpc_call_pause_recv(rpc_call *c, bool paused);
void rpc_call_set_data(rpc_call *c, void *data);
void *rpc_call_data(const rpc_call *c);
void *rpc_call_method_data(const rpc_call *c);
loop *rpc_call_loop(const rpc_call *c);
