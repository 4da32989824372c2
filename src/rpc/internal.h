/* Private state of the gRPC server: server, connections (over a transport),
 * calls. Shared by server.c, conn.c, h2.c and call.c only. */
#pragma once
#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "rpc/server.h"
#include "rpc/wire.h"

typedef struct rpc_conn rpc_conn;

/* Byte transport under HTTP/2 (plain fds, TLS). read and write return >0
 * bytes, 0 on EOF (read), or -1 with errno (EAGAIN: retry when the loop says
 * the fd is ready). */
typedef struct rpc_transport_ops {
  const char *name;
  ssize_t (*read)(rpc_conn *conn, void *buf, size_t len);
  ssize_t (*write)(rpc_conn *conn, const void *buf, size_t len);
  void (*close)(rpc_conn *conn);
  /* Decrypted bytes buffered inside the transport (the fd will not say so);
   * NULL: never any. */
  bool (*pending)(const rpc_conn *conn);
  /* Gathered write (same returns); NULL: the transport has none, DATA is
   * copied into nghttp2's frames instead of sent in place. */
  ssize_t (*writev)(rpc_conn *conn, const struct iovec *iov, int n);
} rpc_transport_ops;

extern const rpc_transport_ops rpc_transport_fd;
extern const rpc_transport_ops rpc_transport_tls;

/* A message queued in or out of a call. */
struct rpc_buf {
  struct rpc_buf *next;
  size_t len, off;
  bool pooled; /* RPC_BUF_POOLED_SIZE bytes of data: reused by its connection */
  bool begun;  /* part of it went out: it must go out whole */
  /* spliced: data holds the message's first hdr_len bytes (prefix, tag,
   * length), the rest waits in the pipe fd (owned) */
  bool spliced;
  int fd;
  size_t hdr_len;
  uint8_t data[];
};

/* Room in front of an in-place message's payload: gRPC prefix, field tag
 * and length (5 bytes each at most). */
#define RPC_BUF_HEADROOM 16u
#define RPC_BUF_POOLED_SIZE (RPC_BUF_HEADROOM + RPC_CALL_BYTES_MAX)
/* Largest DATA frame written in place (a spliced message's payload and its
 * header). */
#define RPC_FRAME_IN_PLACE_MAX (RPC_BUF_HEADROOM + RPC_CALL_SPLICE_MAX)
/* Pooled buffers a connection keeps for reuse. */
#define RPC_CONN_POOL_MAX 4u

typedef struct rpc_md {
  char *key;
  char *value; /* NUL-terminated; -bin values decoded */
  size_t len;
} rpc_md;

/* Request limits the server applies itself (nghttp2 1.52 enforces neither). */
#define RPC_MAX_REQUEST_HEADERS (64u * 1024u)
#define RPC_STREAM_WINDOW (1024 * 1024)
#define RPC_KEEPALIVE_TIMEOUT_MS 20000u
/* Decoded header bytes a connection may make us process per second: past
 * it, GOAWAY (ENHANCE_YOUR_CALM). */
#define RPC_CONN_HEADER_RATE (4u * 1024u * 1024u)
/* Requests reset for too large headers before the connection goes. */
#define RPC_CONN_HEADER_REFUSALS 8u
/* Request messages of calls allowed without an identity (health probes). */
#define RPC_ANONYMOUS_MAX_MESSAGE (64u * 1024u)

struct rpc_call {
  rpc_conn *conn;
  rpc_call *next, *prev; /* conn->calls */
  int32_t stream_id;
  const rpc_method *method; /* NULL until resolved / when rejected */
  char *path;
  void *data;
  uint64_t start_us; /* CLOCK_MONOTONIC at the stream's first HEADERS */

  /* request headers, validated at end of HEADERS */
  bool begun; /* all of them arrived (rpc_call_begin ran) */
  bool saw_post, saw_te, saw_content_type;
  int reject_code; /* != 0: answer this status instead of calling a handler */
  int reject_http;
  char reject_msg[256];
  bool has_deadline;
  uint64_t deadline_ms, deadline_timer;
  rpc_md *md;
  size_t nmd, capmd, md_bytes;

  /* receive side */
  rpc_deframer deframer;
  rpc_buf *in_head, *in_tail;
  size_t in_count;
  size_t held;       /* request bytes received and not handed over (prefixes too) */
  size_t unconsumed; /* bytes whose stream window we still owe (paused) */
  bool paused, remote_closed, half_close_delivered;

  /* send side */
  rpc_md *out_md, *trail_md;
  size_t nout_md, ntrail_md;
  rpc_buf *out_head, *out_tail;
  rpc_buf *fill; /* rpc_call_bytes_buf's buffer, not queued yet */
  size_t queued, low_water;
  bool was_above_low;
  bool response_submitted, deferred, trailers_submitted, trailers_sent;
  bool finished;
  int status;
  char *status_msg;

  /* lifecycle */
  bool engaged; /* a handler callback ran: it is owed on_close */
  bool closed;  /* handler detached (on_close delivered or never owed) */
  bool stream_closed;
  bool close_pending;
  rpc_close_reason close_reason;
  bool writable_pending;
  unsigned accept_mask;   /* 1 << rpc_encoding for each in grpc-accept-encoding */
  int send_encoding;      /* responses compressed with it (the request's, if accepted) */
  unsigned compress_skip; /* messages left uncompressed since one did not pay */
  char *note;             /* rpc_call_note_append: kept for call_end, freed after it */
  size_t note_len;
};

typedef struct rpc_listener {
  int fd;
  char *unix_path; /* unlinked on shutdown */
  char addr[96];
  void *tls; /* SSL_CTX * for TLS listeners, else NULL */
} rpc_listener;

struct rpc_conn {
  rpc_server *srv;
  rpc_conn *next, *prev; /* srv->conns */
  rpc_conn *dirty_next;  /* srv->dirty list */
  bool in_dirty;
  const rpc_transport_ops *ops;
  int in_fd, out_fd;
  uint32_t in_events, out_events;
  nghttp2_session *h2;
  rpc_peer peer;
  rpc_call *calls;
  uint8_t *wbuf; /* what mem_send gave us that the socket did not take */
  size_t wlen, woff;
  rpc_buf *wpay;      /* then: a DATA payload sent in place, partly written (owned) */
  size_t stage_len;   /* bytes in the flush's staging buffer (conn_flush only) */
  size_t budget;      /* bytes this flush may still write */
  bool sent_in_place; /* the last mem_send wrote a DATA frame itself */
  bool out_sock;      /* out_fd is a socket (else a pipe: SIGPIPE guarded) */
  bool sndbuf_raised; /* SO_SNDBUF raised for spliced output */
  rpc_buf *pool;      /* pooled buffers for reuse */
  unsigned npool;
  bool dead;
  bool settings_seen, ping_outstanding;
  uint64_t last_recv_ms, ping_sent_ms;
  uint64_t handshake_timer, keepalive_timer;
  /* limits (server.c, call.c) */
  char peer_key[64];   /* "uid:N", an IP address, or "" (not counted) */
  char *ident_key;     /* TLS: "san:" + the certificate's first SAN, counted too */
  bool admin;          /* the server's peer_is_admin said so */
  bool probation;      /* over its peer's share: TLS must prove an admin */
  bool window_granted; /* a call was authorised: full connection window */
  size_t held;         /* request bytes held by this connection's calls */
  uint64_t last_request_ms, idle_timer;
  uint64_t header_window_ms; /* start of the current second of header accounting */
  size_t header_bytes;       /* decoded header bytes in that second */
  unsigned header_refusals;  /* requests reset for too large headers */
  /* TLS transport (conn_tls.c) */
  void *ssl;             /* SSL * */
  bool handshaking;      /* no HTTP/2 I/O until the TLS handshake is done */
  bool tls_started;      /* first bytes looked like TLS */
  bool handshake_done;   /* close_notify is owed on close */
  bool read_wants_write; /* SSL_read needs the fd writable */
  bool write_wants_read; /* SSL_write needs the fd readable */
  uint64_t reread_timer; /* decrypted bytes left inside the TLS layer */
};

struct rpc_server {
  loop *l;
  rpc_server_config cfg;
  rpc_call_end_fn call_end; /* rpc_server_set_call_end */
  void *call_end_data;
  rpc_call_message_fn call_message; /* rpc_server_set_call_message */
  void *call_message_data;
  rpc_method **methods;
  size_t nmethods;
  char **services; /* sorted, distinct */
  size_t nservices;
  rpc_listener *listeners;
  size_t nlisteners;
  rpc_conn *conns;
  size_t nconns;
  rpc_conn *dirty;
  rpc_conn **dead;
  size_t ndead, capdead;
  size_t freed_since_trim; /* connections freed since the last malloc_trim */
  uint64_t hook_id;
  uint64_t accept_resume_timer; /* listeners paused after EMFILE */
  bool shutting_down;
  rpc_server_conn_log_fn conn_log;
  void *conn_log_data;
  rpc_server_auth auth;
  struct rpc_peer_table *peers; /* connections per peer key */
  size_t nprobation;            /* connections on probation (admin room) */
  size_t held;                  /* request bytes held by every connection */
  nghttp2_session_callbacks *cbs;
  nghttp2_option *opt;
};

/* server.c */
const rpc_method *rpc_server_find_method(const rpc_server *s, const char *path);
void rpc_server_mark_dirty(rpc_server *s, rpc_conn *conn);

/* conn.c */
int rpc_conn_new(rpc_server *s, int in_fd, int out_fd, const rpc_peer *peer, rr_err *e);
/* Same with a transport; ssl (SSL *, taken) starts it in the TLS handshake. */
int rpc_conn_new_ops(rpc_server *s, int in_fd, int out_fd, const rpc_peer *peer,
                     const rpc_transport_ops *ops, void *ssl, rr_err *e);
/* Bytes read from the connection by someone else (e.g. a peeked preface):
 * fed to nghttp2 as if read. -1 if the connection closed. */
int rpc_conn_feed(rpc_conn *conn, const uint8_t *data, size_t len);
/* Tear down: handlers get on_close(reason), fds closed, memory freed later. */
void rpc_conn_close(rpc_conn *conn, rpc_close_reason reason);
void rpc_conn_free(rpc_conn *conn);
/* conn_write.c: write what nghttp2 has to send until the socket pushes back
 * or the budget is spent; -1 if the connection closed. */
int rpc_conn_flush(rpc_conn *conn);
/* Bytes an earlier flush could not write are waiting. */
bool rpc_conn_write_pending(const rpc_conn *conn);
/* conn.c: come back from the loop for bytes TLS decrypted but we did not take. */
void rpc_conn_pending_check(rpc_conn *conn);
/* Deliver pending call events, then write what nghttp2 has to send. */
void rpc_conn_service(rpc_conn *conn);
void rpc_conn_peer_fill(rpc_peer *peer, int fd);
/* Set which fd events the connection waits for (HTTP/2 phase). */
void rpc_conn_watch(rpc_conn *conn, bool want_in, bool want_out);
/* The fd is readable (or TLS asked for it): read and feed nghttp2. */
void rpc_conn_read(rpc_conn *conn);
/* Report a connection-level event to the server's log callback. */
void rpc_server_conn_log(rpc_server *s, const char *peer, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A buffer of RPC_BUF_POOLED_SIZE data bytes (pooled), NULL out of memory. */
rpc_buf *rpc_conn_buf_get(rpc_conn *conn);
/* Done with b: back to the pool if it came from there and there is room. */
void rpc_conn_buf_put(rpc_conn *conn, rpc_buf *b);
/* No call left: the pooled buffers go (an idle connection holds none). */
void rpc_conn_pool_trim(rpc_conn *conn);
/* nghttp2's send_data callback: a DATA frame whose payload is sent in place. */
int rpc_conn_send_data(nghttp2_session *h2, nghttp2_frame *frame, const uint8_t *framehd,
                       size_t length, nghttp2_data_source *source, void *user_data);

/* Request bytes a call no longer holds: counted down and their connection
 * window returned. */
void rpc_conn_release(rpc_conn *conn, size_t n);
/* The first authorised call: the connection gets its whole window. */
void rpc_conn_grant_window(rpc_conn *conn);
/* The key a peer's connections are counted under ("" for none). */
void rpc_conn_peer_key(const rpc_peer *peer, char *out, size_t outsz);

/* server.c: connection admission */
/* After the TLS handshake: a connection on probation stays only if its peer
 * is an admin; any other is counted under its certificate identity too
 * (max_connections_per_peer of them, whatever addresses they come from).
 * Returns -1 (connection closed) if not admitted. */
int rpc_server_probation_end(rpc_server *s, rpc_conn *conn);
/* A connection is gone: forget it in the per-peer counts. */
void rpc_server_conn_forget(rpc_server *s, rpc_conn *conn);

/* conn_tls.c */
/* Serve a TLS connection on fd (taken): handshake first, then HTTP/2. */
int rpc_conn_new_tls(rpc_server *s, int fd, const rpc_peer *peer, void *ssl_ctx, rr_err *e);
/* Drive the handshake one step (fd events arrived, or first call). */
void rpc_conn_tls_handshake(rpc_conn *conn);

/* peers.c: connections per peer key */
typedef struct rpc_peer_table rpc_peer_table;
int rpc_peer_table_new(rpc_peer_table **ret);
void rpc_peer_table_free(rpc_peer_table *t);
size_t rpc_peer_table_count(rpc_peer_table *t, const char *key);
/* Count one more connection of key; -1 out of memory. */
int rpc_peer_table_add(rpc_peer_table *t, const char *key);
void rpc_peer_table_remove(rpc_peer_table *t, const char *key);

/* h2.c */
int rpc_h2_callbacks_new(nghttp2_session_callbacks **ret, rr_err *e);

/* call.c */
rpc_call *rpc_call_new(rpc_conn *conn, int32_t stream_id);
void rpc_call_destroy(rpc_call *c);
/* Request headers are complete: resolve the method, start the deadline. */
void rpc_call_begin(rpc_call *c);
/* Request bytes for this call arrived. */
void rpc_call_on_data(rpc_call *c, const uint8_t *data, size_t len);
void rpc_call_remote_closed(rpc_call *c);
/* Run handler callbacks owed to c (never from inside nghttp2 callbacks).
 * May free c. */
void rpc_call_dispatch(rpc_call *c);
/* Answer with status/message without involving a handler. */
void rpc_call_fail(rpc_call *c, int code, const char *msg);
int rpc_call_add_request_md(rpc_call *c, const uint8_t *name, size_t namelen, const uint8_t *value,
                            size_t valuelen);

/* call_send.c */
/* Set the status and queue trailers (Trailers-Only if nothing was sent). */
void rpc_call_finish_status(rpc_call *c, int code, const char *msg);
/* The first len bytes of c's queue went out in place: dequeue them; the head
 * buffer is returned when they were all of it (else NULL, it stays). */
rpc_buf *rpc_call_out_take(rpc_call *c, size_t len);
/* Forget queued output that has not started going out (deadline). */
void rpc_call_drop_output(rpc_call *c);
void rpc_md_free(rpc_md *md, size_t n);
/* The peer's header-list limit as a budget for our headers. */
size_t rpc_call_header_budget(const rpc_call *c);

/* server.c: a listener's fd is readable: accept what is waiting. */
void rpc_server_accept(loop *l, int fd, uint32_t events, void *data);
