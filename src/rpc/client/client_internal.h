/* Private to the gRPC client: the structures and the few functions shared
 * by client.c (connection: nghttp2 callbacks, driving, connect/close) and
 * client_call.c (the per-call API). Not installed, not for other modules. */
#pragma once
#include <nghttp2/nghttp2.h>

#include "rpc/client/client.h"
#include "rpc/wire.h"

/* a whole output message of rund's (up to 1 MiB) per read */
#define CLIENT_READ_CHUNK (1u << 20)
/* per-stream receive window: several output messages in flight */
#define CLIENT_STREAM_WINDOW (4u << 20)
#define CLIENT_CONN_WINDOW (16u << 20) /* whole-connection receive window */
#define CLIENT_MAX_FRAME (1u << 20)
#define CLIENT_GATHER_MAX 4096u /* frames up to this size are gathered into one write */
#define CLIENT_GATHER_BUF 16384u
#define CLIENT_SEND_HIGH_WATER (256u * 1024u)
/* Received bytes are credited back while the caller's backlog of whole
 * messages is below this; above it the server waits for the caller. */
#define CLIENT_RECV_LOW_WATER (256u * 1024u)
#define CLIENT_DEFAULT_CONNECT_MS 10000u

typedef struct call_msg {
  struct call_msg *next;
  uint8_t *data;
  size_t len;
} call_msg;

struct rpc_client_call {
  rpc_client *client;
  rpc_client_call *prev, *next; /* client's live calls */
  int32_t stream_id;            /* 0 once the stream is gone */
  uint64_t deadline;            /* monotonic ms; 0 = none */
  uint64_t timeout_ms;
  char path[128];

  /* send side */
  uint8_t *sbuf;
  size_t sbuf_off, sbuf_len, sbuf_cap;
  bool send_closed;       /* half-close requested */
  unsigned compress_skip; /* messages sent as they are since one did not shrink */
  bool deferred;          /* data provider returned DEFERRED */
  bool need_rst;          /* reset after the status arrived while we still send */

  /* receive side */
  rpc_deframer deframer;
  rpc_client_sink_fn sink; /* NULL: every message is queued */
  void *sink_ud;
  uint32_t sink_fields; /* bit n: field n's messages go to the sink */
  uint32_t sink_field;  /* field of the message passing to the sink */
  size_t sink_left;     /* its payload bytes still to come */
  uint8_t peek[16];     /* head of the next message while it is told apart */
  size_t npeek;
  call_msg *head, *tail;
  size_t queued_bytes;    /* wire bytes of whole messages waiting for the caller */
  size_t pending_consume; /* received bytes not yet credited to the server */
  int http_status;
  bool got_headers;
  bool rpc_ct;    /* content-type application/grpc* */
  int rpc_status; /* -1: none received */
  char rpc_message[RR_ERR_MSG_MAX];

  /* outcome */
  bool done;
  rr_err status;
};

struct rpc_client {
  rpc_client_transport *t;
  nghttp2_session *session;
  const uint8_t *out; /* bytes from mem_send (or wbuf) not yet written */
  size_t out_len;
  const uint8_t *held; /* a large frame of mem_send's to write after out */
  size_t held_len;
  uint8_t wbuf[CLIENT_GATHER_BUF]; /* small frames gathered for one write */
  bool dead;
  rr_err dead_err;
  size_t orphan_consume; /* bytes of gone streams to credit to the connection */
  size_t max_recv;
  rpc_client_call *calls;
  uint8_t rbuf[CLIENT_READ_CHUNK];
  char user_agent[64];
  char *authorization; /* NULL: none */
  /* keepalive: a silent server is pinged, one that does not answer is dead */
  uint64_t keepalive_ms, last_recv_ms, ping_sent_ms;
  bool ping_outstanding;
  int compression; /* rpc_encoding of requests; 0: none */
};

/* Settle the call's status once (later outcomes are ignored). */
void rr_client_call_finish(rpc_client_call *call, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* DATA bytes of the call: to its sink or into whole queued messages. */
void rr_client_call_data(rpc_client_call *call, const uint8_t *data, size_t len);
/* True while a message is partly received. */
bool rr_client_call_partial(const rpc_client_call *call);
/* Write what nghttp2 has to send until the socket would block. */
void rr_client_flush(rpc_client *c);
/* Per-call bookkeeping after I/O: credit windows, resets, deadlines. */
void rr_client_settle(rpc_client *c);
/* One round: flush, poll (socket + caller fds), read. Returns 1 when a
 * caller fd fired, 0 otherwise, -1 on poll failure. */
int rr_client_drive(rpc_client *c, struct pollfd *fds, size_t nfds, int timeout_ms, rr_err *e);
