/* Call send side: response headers, queued messages through an nghttp2 data
 * provider, trailers (or Trailers-Only), response metadata. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/util.h"
#include "rpc/compress.h"
#include "rpc/internal.h"

/* Header list under construction; strings nghttp2 copies at submit time. */
typedef struct rpc_headers {
  nghttp2_nv *nv;
  size_t n, cap;
  char **owned;
  size_t nowned;
  size_t bytes; /* RFC 9113 size: name + value + 32 per field */
} rpc_headers;

static int headers_init(rpc_headers *h, size_t cap) {
  *h = (rpc_headers){.cap = cap};
  h->nv = calloc(cap, sizeof *h->nv);
  h->owned = calloc(cap, sizeof *h->owned);
  return h->nv && h->owned ? 0 : -1;
}

static void headers_free(rpc_headers *h) {
  for (size_t i = 0; i < h->nowned; i++)
    free(h->owned[i]);
  free(h->owned);
  free(h->nv);
}

static void headers_add(rpc_headers *h, const char *name, const char *value, size_t len) {
  if (h->n == h->cap)
    return;
  h->nv[h->n++] =
      (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, strlen(name), len, NGHTTP2_NV_FLAG_NONE};
  h->bytes += strlen(name) + len + 32;
}

static bool key_is_bin(const char *k) {
  size_t n = strlen(k);
  return n > 4 && strcmp(k + n - 4, "-bin") == 0;
}

static void headers_add_md(rpc_headers *h, const rpc_md *md, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (!key_is_bin(md[i].key)) {
      headers_add(h, md[i].key, md[i].value, md[i].len);
      continue;
    }
    size_t sz = md[i].len / 3 * 4 + 5;
    char *b64 = malloc(sz);
    if (!b64)
      continue;
    long len = rpc_base64_encode((const uint8_t *)md[i].value, md[i].len, b64, sz);
    h->owned[h->nowned++] = b64;
    headers_add(h, md[i].key, b64, len < 0 ? 0 : (size_t)len);
  }
}

size_t rpc_call_header_budget(const rpc_call *c) {
  uint32_t peer =
      nghttp2_session_get_remote_settings(c->conn->h2, NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE);
  return peer < 16384 ? peer : 16384;
}

/* grpc-status and grpc-message (trimmed to what the peer accepts) + trailing md. */
static void headers_add_status(rpc_headers *h, rpc_call *c, char *code_buf, size_t code_sz) {
  snprintf(code_buf, code_sz, "%d", c->status);
  headers_add(h, "grpc-status", code_buf, strlen(code_buf));
  headers_add_md(h, c->trail_md, c->ntrail_md);
  const char *msg = c->status_msg ? c->status_msg : "";
  size_t budget = rpc_call_header_budget(c);
  size_t need = h->bytes + 32 + strlen("grpc-message");
  if (!msg[0] || need >= budget)
    return;
  size_t room = budget - need + 1;
  char *enc = malloc(room);
  if (!enc)
    return;
  size_t n = rpc_percent_encode(msg, strlen(msg), enc, room);
  h->owned[h->nowned++] = enc;
  headers_add(h, "grpc-message", enc, n);
}

static int call_submit_trailers_only(rpc_call *c) {
  rpc_headers h;
  char http[8], code[16];
  int r = -1;
  if (headers_init(&h, 8 + c->nout_md + c->ntrail_md) == 0) {
    snprintf(http, sizeof http, "%d", c->reject_http ? c->reject_http : 200);
    headers_add(&h, ":status", http, strlen(http));
    headers_add(&h, "content-type", "application/grpc", 16);
    headers_add_md(&h, c->out_md, c->nout_md);
    headers_add_status(&h, c, code, sizeof code);
    r = nghttp2_submit_response(c->conn->h2, c->stream_id, h.nv, h.n, NULL);
  }
  headers_free(&h);
  return r;
}

static int call_submit_trailers(nghttp2_session *h2, rpc_call *c) {
  rpc_headers h;
  char code[16];
  int r = -1;
  if (headers_init(&h, 4 + c->ntrail_md) == 0) {
    headers_add_status(&h, c, code, sizeof code);
    r = nghttp2_submit_trailer(h2, c->stream_id, h.nv, h.n);
  }
  headers_free(&h);
  return r;
}

/* The queue shrank by n bytes: on_writable is owed once below low water. */
static void call_out_dequeued(rpc_call *c, size_t n) {
  c->queued -= n;
  if (c->was_above_low && c->queued < c->low_water) {
    c->was_above_low = false;
    c->writable_pending = true; /* delivered by rpc_conn_service after sending */
  }
}

rpc_buf *rpc_call_out_take(rpc_call *c, size_t len) {
  rpc_buf *b = c->out_head;
  b->off += len;
  b->begun = true;
  call_out_dequeued(c, len);
  if (b->off < b->len)
    return NULL;
  if (b->spliced)
    c->writable_pending = true; /* its caller reads the pipe again from on_writable */
  c->out_head = b->next;
  if (!c->out_head)
    c->out_tail = NULL;
  b->next = NULL;
  return b;
}

/* Trailers after the last byte: flags for the DATA frame that carries it. */
static int call_data_last(nghttp2_session *h2, rpc_call *c, uint32_t *flags) {
  *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
  if (call_submit_trailers(h2, c) != 0)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
  c->trailers_submitted = true;
  return 0;
}

static ssize_t call_data_read(nghttp2_session *h2, int32_t stream_id, uint8_t *buf, size_t length,
                              uint32_t *flags, nghttp2_data_source *source, void *user_data) {
  rpc_call *c = source->ptr;
  size_t n = 0;
  if (c->conn->ops->writev && c->out_head) {
    /* in place: rpc_conn_send_data writes the head buffer's bytes itself */
    rpc_buf *b = c->out_head;
    n = b->len - b->off < length ? b->len - b->off : length;
    *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    if (c->finished && !b->next && b->off + n == b->len && call_data_last(h2, c, flags) < 0)
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return (ssize_t)n;
  }
  while (n < length && c->out_head) {
    rpc_buf *b = c->out_head;
    size_t k = b->len - b->off;
    if (k > length - n)
      k = length - n;
    memcpy(buf + n, b->data + b->off, k);
    n += k;
    rpc_conn_buf_put(c->conn, rpc_call_out_take(c, k));
  }
  if (!c->out_head && c->finished) {
    if (call_data_last(h2, c, flags) < 0)
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return (ssize_t)n;
  }
  if (n == 0) {
    c->deferred = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  return (ssize_t)n;
}

static bool call_stream_usable(const rpc_call *c) { return !c->stream_closed && !c->conn->dead; }

static void call_kick(rpc_call *c) {
  if (c->deferred) {
    c->deferred = false;
    nghttp2_session_resume_data(c->conn->h2, c->stream_id);
  }
  rpc_server_mark_dirty(c->conn->srv, c->conn);
}

static int call_submit_response(rpc_call *c) {
  rpc_headers h;
  int r = -1;
  if (headers_init(&h, 4 + c->nout_md) == 0) {
    headers_add(&h, ":status", "200", 3);
    headers_add(&h, "content-type", "application/grpc", 16);
    if (c->send_encoding) {
      const char *enc = rpc_encoding_name(c->send_encoding);
      headers_add(&h, "grpc-encoding", enc, strlen(enc));
    }
    headers_add_md(&h, c->out_md, c->nout_md);
    nghttp2_data_provider prd = {.source.ptr = c, .read_callback = call_data_read};
    r = nghttp2_submit_response(c->conn->h2, c->stream_id, h.nv, h.n, &prd);
  }
  headers_free(&h);
  return r;
}

void rpc_call_finish_status(rpc_call *c, int code, const char *msg) {
  if (c->finished)
    return;
  c->finished = true;
  c->status = code;
  free(c->status_msg);
  c->status_msg = strdup(msg ? msg : "");
  if (!call_stream_usable(c))
    return;
  if (!c->response_submitted) {
    c->response_submitted = true;
    c->trailers_submitted = true;
    if (call_submit_trailers_only(c) != 0)
      nghttp2_submit_rst_stream(c->conn->h2, NGHTTP2_FLAG_NONE, c->stream_id,
                                NGHTTP2_INTERNAL_ERROR);
  }
  call_kick(c);
}

void rpc_call_drop_output(rpc_call *c) {
  /* a message already partly handed to nghttp2 must finish, or the framing breaks */
  rpc_buf *keep = c->out_head && c->out_head->begun ? c->out_head : NULL;
  rpc_buf *b = keep ? keep->next : c->out_head;
  while (b) {
    rpc_buf *next = b->next;
    rpc_conn_buf_put(c->conn, b);
    b = next;
  }
  if (keep)
    keep->next = NULL;
  c->out_head = c->out_tail = keep;
  c->queued = keep ? keep->len - keep->off : 0;
}

void rpc_md_free(rpc_md *md, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(md[i].key);
    free(md[i].value);
  }
  free(md);
}

/* Queue b (taken) after the response headers. */
static int call_queue(rpc_call *c, rpc_buf *b, rr_err *e) {
  if (!c->response_submitted) {
    if (call_submit_response(c) != 0) {
      rpc_conn_buf_put(c->conn, b);
      return rr_err_set(e, RR_INTERNAL, "cannot submit response headers for %s", c->path);
    }
    c->response_submitted = true;
  }
  if (c->out_tail)
    c->out_tail->next = b;
  else
    c->out_head = b;
  c->out_tail = b;
  c->queued += b->len - b->off;
  if (c->queued >= c->low_water)
    c->was_above_low = true;
  call_kick(c);
  return 0;
}

/* The message's bytes compressed into a new buffer (prefix with the flag
 * set), or NULL when it does not pay: short, incompressible, no memory. */
/* After a message that did not shrink by an eighth, this many go out as
 * they are (incompressible output costs deflate's CPU for nothing). */
#define CALL_COMPRESS_BACKOFF 32u

static rpc_buf *call_compress(rpc_call *c, const uint8_t *msg, size_t size) {
  if (!c->send_encoding || size < RPC_COMPRESS_MIN)
    return NULL;
  if (c->compress_skip) {
    c->compress_skip--;
    return NULL;
  }
  size_t cap = rpc_compress_bound(size);
  rpc_buf *b = malloc(sizeof *b + RPC_PREFIX_LEN + cap);
  if (!b)
    return NULL;
  /* the header first: its tail padding overlaps data[] */
  *b = (rpc_buf){0};
  size_t n = rpc_compress(c->send_encoding, msg, size, b->data + RPC_PREFIX_LEN, cap);
  if (n == 0 || n >= size - size / 8) {
    free(b);
    c->compress_skip = CALL_COMPRESS_BACKOFF;
    return NULL;
  }
  b->len = RPC_PREFIX_LEN + n;
  rpc_wire_put_prefix(b->data, true, (uint32_t)n);
  return b;
}

int rpc_call_send(rpc_call *c, const ProtobufCMessage *msg, rr_err *e) {
  if (!c)
    return rr_err_set(e, RR_INTERNAL, "rpc_call_send: no call");
  if (c->closed || !call_stream_usable(c))
    return rr_err_set(e, RR_CANCELLED, "call %s was cancelled", c->path ? c->path : "");
  if (c->finished)
    return rr_err_set(e, RR_FAILED_PRECONDITION, "call %s is already finished", c->path);
  size_t size = protobuf_c_message_get_packed_size(msg);
  size_t max = c->conn->srv->cfg.max_send_message;
  if (size > max || size > UINT32_MAX)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED,
                      "response message larger than max (%zu vs. %zu bytes)", size, max);
  rpc_buf *b = malloc(sizeof *b + RPC_PREFIX_LEN + size);
  if (!b)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory for a %zu-byte response", size);
  *b = (rpc_buf){.len = RPC_PREFIX_LEN + size};
  rpc_wire_put_prefix(b->data, false, (uint32_t)size);
  protobuf_c_message_pack(msg, b->data + RPC_PREFIX_LEN);
  rpc_server *s = c->conn->srv;
  if (s->call_message)
    s->call_message(s->call_message_data, c, msg, true);
  rpc_buf *z = call_compress(c, b->data + RPC_PREFIX_LEN, size);
  if (z) {
    free(b);
    b = z;
  }
  return call_queue(c, b, e);
}

uint8_t *rpc_call_bytes_buf(rpc_call *c) {
  if (!c || c->closed || c->finished || !call_stream_usable(c))
    return NULL;
  if (!c->fill)
    c->fill = rpc_conn_buf_get(c->conn);
  return c->fill ? c->fill->data + RPC_BUF_HEADROOM : NULL;
}

/* The field's tag and length varints into hdr (10 bytes); returns their
 * length, or -1 when the whole message would pass the send limit. */
static int call_bytes_header(rpc_call *c, uint32_t field, size_t len, uint8_t hdr[10], rr_err *e) {
  size_t h = rpc_wire_put_varint(hdr, (uint64_t)field << 3 | 2);
  h += rpc_wire_put_varint(hdr + h, len);
  size_t size = h + len, max = c->conn->srv->cfg.max_send_message;
  if (size > max)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED,
                      "response message larger than max (%zu vs. %zu bytes)", size, max);
  return (int)h;
}

int rpc_call_send_bytes(rpc_call *c, uint32_t field, size_t len, rr_err *e) {
  if (c && c->fill && (c->closed || !call_stream_usable(c)))
    return rr_err_set(e, RR_CANCELLED, "call %s was cancelled", c->path ? c->path : "");
  if (!c || !c->fill || c->finished || len > RPC_CALL_BYTES_MAX || !field || field >> 29)
    return rr_err_set(e, RR_INTERNAL, "rpc_call_send_bytes: no buffer, or a bad field or length");
  /* tag and length right before the payload, the prefix before them */
  uint8_t hdr[10];
  int hl = call_bytes_header(c, field, len, hdr, e);
  if (hl < 0)
    return -1;
  size_t h = (size_t)hl, size = h + len;
  rpc_buf *b = c->fill;
  c->fill = NULL;
  b->off = RPC_BUF_HEADROOM - h - RPC_PREFIX_LEN;
  b->len = RPC_BUF_HEADROOM + len;
  rpc_wire_put_prefix(b->data + b->off, false, (uint32_t)size);
  memcpy(b->data + b->off + RPC_PREFIX_LEN, hdr, h);
  if (c->send_encoding) { /* off: the in-place path is untouched */
    rpc_buf *z = call_compress(c, b->data + b->off + RPC_PREFIX_LEN, size);
    if (z) {
      rpc_conn_buf_put(c->conn, b);
      b = z;
    }
  }
  return call_queue(c, b, e);
}

/* not for a compressed call (what the kernel moves goes as it is); splice(2)
 * to a socket whose peer is gone raises SIGPIPE (it takes no MSG_NOSIGNAL):
 * only in a process that ignores it */
bool rpc_call_can_splice(const rpc_call *c) {
  struct sigaction sa;
  return c && !c->send_encoding && c->conn->out_sock && c->conn->ops == &rpc_transport_fd &&
         !c->conn->ssl && sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN;
}

int rpc_call_send_spliced(rpc_call *c, uint32_t field, int fd, size_t len, rr_err *e) {
  if (!c || c->closed || !call_stream_usable(c))
    return rr_err_set(e, RR_CANCELLED, "call %s was cancelled", c && c->path ? c->path : "");
  if (c->finished || !rpc_call_can_splice(c) || !len || len > RPC_CALL_SPLICE_MAX || !field ||
      field >> 29)
    return rr_err_set(e, RR_INTERNAL, "rpc_call_send_spliced: not here, or a bad field or length");
  uint8_t hdr[10];
  int hl = call_bytes_header(c, field, len, hdr, e);
  if (hl < 0)
    return -1;
  size_t h = (size_t)hl, size = h + len;
  rpc_buf *b = malloc(sizeof *b + RPC_PREFIX_LEN + h);
  if (!b)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory for a response");
  *b = (rpc_buf){.len = RPC_PREFIX_LEN + size, .spliced = true, .hdr_len = RPC_PREFIX_LEN + h};
  b->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (b->fd < 0) {
    int err = errno;
    free(b);
    return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, err, "cannot duplicate output fd %d", fd);
  }
  rpc_wire_put_prefix(b->data, false, (uint32_t)size);
  memcpy(b->data + RPC_PREFIX_LEN, hdr, h);
  if (!c->conn->sndbuf_raised) {
    /* a whole message per splice, not a fifth of one per wake-up (a unix
     * socket's default is ~208 KiB); best effort, capped by wmem_max */
    int sz = RPC_CALL_SPLICE_MAX * 2;
    (void)setsockopt(c->conn->out_fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    c->conn->sndbuf_raised = true;
  }
  return call_queue(c, b, e);
}

bool rpc_call_splice_pending(const rpc_call *c) {
  for (const rpc_buf *b = c ? c->out_head : NULL; b; b = b->next)
    if (b->spliced)
      return true;
  return false;
}

void rpc_call_finish(rpc_call *c, int code, const char *message) {
  if (!c || c->closed)
    return;
  rpc_call_finish_status(c, code, message);
}

void rpc_call_finish_err(rpc_call *c, const rr_err *e) {
  rpc_call_finish(c, e ? e->code : RR_UNKNOWN, e ? e->msg : "unknown error");
}

static bool md_key_reserved(const char *k) {
  return k[0] == ':' || strncmp(k, "grpc-", 5) == 0 || strcmp(k, "content-type") == 0 ||
         strcmp(k, "te") == 0 || strcmp(k, "user-agent") == 0 || strcmp(k, "content-length") == 0;
}

int rpc_call_add_metadata(rpc_call *c, bool trailing, const char *key, const char *value,
                          size_t len, rr_err *e) {
  if (!c || c->closed)
    return rr_err_set(e, RR_FAILED_PRECONDITION, "call is closed");
  if (!rpc_metadata_key_valid(key, strlen(key)) || md_key_reserved(key))
    return rr_err_set(e, RR_INVALID_ARGUMENT, "invalid or reserved metadata key \"%s\"", key);
  if (!key_is_bin(key) && !rpc_metadata_value_valid(value, len))
    return rr_err_set(e, RR_INVALID_ARGUMENT,
                      "metadata \"%s\": value must be printable ASCII (or use a -bin key)", key);
  if (trailing ? c->trailers_submitted : c->response_submitted)
    return rr_err_set(e, RR_FAILED_PRECONDITION, "%s metadata for %s already sent",
                      trailing ? "trailing" : "initial", c->path);
  rpc_md **arr = trailing ? &c->trail_md : &c->out_md;
  size_t *n = trailing ? &c->ntrail_md : &c->nout_md;
  rpc_md *p = realloc(*arr, (*n + 1) * sizeof *p);
  if (!p)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory for metadata");
  *arr = p;
  char *k = strdup(key), *v = malloc(len + 1);
  if (!k || !v) {
    free(k);
    free(v);
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory for metadata");
  }
  if (len)
    memcpy(v, value, len);
  v[len] = '\0';
  p[(*n)++] = (rpc_md){.key = k, .value = v, .len = len};
  return 0;
}
