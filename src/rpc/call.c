/* Call lifecycle: request headers, request messages, handler dispatch. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "rpc/compress.h"
#include "rpc/internal.h"

rpc_call *rpc_call_new(rpc_conn *conn, int32_t stream_id) {
  rpc_call *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  c->conn = conn;
  c->stream_id = stream_id;
  c->low_water = RPC_CALL_LOW_WATER;
  c->start_us = rr_mono_us();
  rpc_deframer_init(&c->deframer, conn->srv->cfg.max_recv_message);
  c->next = conn->calls;
  if (conn->calls)
    conn->calls->prev = c;
  conn->calls = c;
  return c;
}

static void call_drop_input(rpc_call *c) {
  while (c->in_head) {
    rpc_buf *b = c->in_head;
    c->in_head = b->next;
    free(b);
  }
  c->in_tail = NULL;
  rpc_deframer_free(&c->deframer);
  rpc_conn_release(c->conn, c->held);
  c->held = 0;
}

void rpc_call_destroy(rpc_call *c) {
  rpc_conn *conn = c->conn;
  rpc_server *s = conn->srv;
  if (s->call_end && c->path)
    s->call_end(s->call_end_data, c, c->finished ? c->status : RR_CANCELLED,
                rr_mono_us() - c->start_us);
  if (c->prev)
    c->prev->next = c->next;
  else if (conn->calls == c)
    conn->calls = c->next;
  if (c->next)
    c->next->prev = c->prev;
  if (c->deadline_timer)
    loop_timer_cancel(conn->srv->l, c->deadline_timer);
  call_drop_input(c);
  c->finished = true;
  rpc_call_drop_output(c);
  while (c->out_head) { /* a partly sent message, kept by drop_output */
    rpc_buf *b = c->out_head;
    c->out_head = b->next;
    rpc_conn_buf_put(conn, b);
  }
  rpc_conn_buf_put(conn, c->fill);
  if (!conn->calls)
    rpc_conn_pool_trim(conn);
  rpc_md_free(c->md, c->nmd);
  rpc_md_free(c->out_md, c->nout_md);
  rpc_md_free(c->trail_md, c->ntrail_md);
  free(c->status_msg);
  free(c->note);
  free(c->path);
  free(c);
}

static void call_reject(rpc_call *c, int http, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void call_reject(rpc_call *c, int http, int code, const char *fmt, ...) {
  if (c->reject_code)
    return; /* the first problem is the one reported */
  c->reject_code = code;
  c->reject_http = http;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->reject_msg, sizeof c->reject_msg, fmt, ap);
  va_end(ap);
}

/* Append to an array grown by doubling (cap: its capacity), so n headers
 * cost O(n) and not one realloc each. */
static int md_append(rpc_md **arr, size_t *n, size_t *cap, const char *key, size_t keylen,
                     const char *value, size_t len) {
  if (*n == *cap) {
    size_t want = *cap ? *cap * 2 : 8;
    rpc_md *q = realloc(*arr, want * sizeof *q);
    if (!q)
      return -1;
    *arr = q;
    *cap = want;
  }
  rpc_md *p = *arr;
  char *k = strndup(key, keylen);
  char *v = malloc(len + 1);
  if (!k || !v) {
    free(k);
    free(v);
    return -1;
  }
  if (len)
    memcpy(v, value, len);
  v[len] = '\0';
  p[(*n)++] = (rpc_md){.key = k, .value = v, .len = len};
  return 0;
}

static bool content_type_is_grpc(const uint8_t *v, size_t len) {
  static const char ct[] = "application/grpc";
  size_t n = sizeof ct - 1;
  if (len < n || strncasecmp((const char *)v, ct, n) != 0)
    return false;
  return len == n || v[n] == '+' || v[n] == ';';
}

static bool name_is(const uint8_t *name, size_t len, const char *s) {
  return len == strlen(s) && memcmp(name, s, len) == 0;
}

int rpc_call_add_request_md(rpc_call *c, const uint8_t *name, size_t namelen, const uint8_t *value,
                            size_t valuelen) {
  c->md_bytes += namelen + valuelen + 32;
  if (c->md_bytes > RPC_MAX_REQUEST_HEADERS)
    return -1; /* over our SETTINGS_MAX_HEADER_LIST_SIZE: the stream is reset */
  if (name_is(name, namelen, ":method")) {
    c->saw_post = name_is(value, valuelen, "POST");
  } else if (name_is(name, namelen, ":path")) {
    free(c->path);
    c->path = strndup((const char *)value, valuelen);
    if (!c->path)
      return -1;
  } else if (namelen > 0 && name[0] == ':') {
    /* :scheme and :authority: checked by nghttp2, not needed here */
  } else if (name_is(name, namelen, "content-type")) {
    c->saw_content_type = true;
    if (!content_type_is_grpc(value, valuelen))
      call_reject(c, 415, RR_INVALID_ARGUMENT, "invalid gRPC request content-type \"%.*s\"",
                  (int)(valuelen < 64 ? valuelen : 64), (const char *)value);
  } else if (name_is(name, namelen, "te")) {
    c->saw_te = true; /* nghttp2 already insists on "trailers" */
  } else if (name_is(name, namelen, "grpc-timeout")) {
    uint64_t ms;
    if (rpc_timeout_parse((const char *)value, valuelen, &ms) < 0) {
      call_reject(c, 400, RR_INTERNAL, "malformed grpc-timeout \"%.*s\"",
                  (int)(valuelen < 32 ? valuelen : 32), (const char *)value);
    } else {
      c->has_deadline = true;
      c->deadline_ms = loop_now_ms(c->conn->srv->l) + ms;
    }
  } else if (name_is(name, namelen, "grpc-encoding")) {
    int enc = rpc_encoding_parse((const char *)value, valuelen);
    if (enc < 0) {
      call_reject(c, 200, RR_UNIMPLEMENTED,
                  "grpc-encoding \"%.*s\" is not supported (only " RPC_ACCEPT_ENCODING ")",
                  (int)(valuelen < 32 ? valuelen : 32), (const char *)value);
      size_t cap = c->nout_md; /* out_md is grown one by one (call_send.c) */
      md_append(&c->out_md, &c->nout_md, &cap, "grpc-accept-encoding", 20, RPC_ACCEPT_ENCODING,
                sizeof RPC_ACCEPT_ENCODING - 1);
    } else {
      c->deframer.encoding = enc;
    }
  } else if (name_is(name, namelen, "grpc-accept-encoding")) {
    for (int enc = RPC_ENCODING_GZIP; enc <= RPC_ENCODING_DEFLATE; enc++)
      if (rpc_accept_encoding_has((const char *)value, valuelen, enc))
        c->accept_mask |= 1u << enc;
  } else if (namelen > 4 && memcmp(name + namelen - 4, "-bin", 4) == 0) {
    /* several values may be joined with ',': keep the first */
    const uint8_t *comma = memchr(value, ',', valuelen);
    size_t vlen = comma ? (size_t)(comma - value) : valuelen;
    _cleanup_free_ uint8_t *raw = malloc(vlen / 4 * 3 + 3);
    if (!raw)
      return -1;
    long n = rpc_base64_decode((const char *)value, vlen, raw, vlen / 4 * 3 + 3);
    if (n < 0) {
      call_reject(c, 200, RR_INVALID_ARGUMENT, "metadata \"%.*s\": invalid base64 value",
                  (int)(namelen < 64 ? namelen : 64), (const char *)name);
      return 0;
    }
    return md_append(&c->md, &c->nmd, &c->capmd, (const char *)name, namelen, (const char *)raw,
                     (size_t)n);
  } else {
    return md_append(&c->md, &c->nmd, &c->capmd, (const char *)name, namelen, (const char *)value,
                     valuelen);
  }
  return 0;
}

static void call_deadline_fire(loop *l, void *data) {
  rpc_call *c = data;
  c->deadline_timer = 0;
  if (c->finished || c->stream_closed || c->closed)
    return;
  rpc_call_drop_output(c);
  call_drop_input(c);
  rpc_call_finish_status(c, RR_DEADLINE_EXCEEDED, "deadline exceeded");
  bool owed = c->engaged;
  c->closed = true; /* no handler callback after this one */
  if (owed && c->method->on_close)
    c->method->on_close(c, RPC_CLOSE_DEADLINE);
}

/* The application's authorize hook, before any message byte is kept. */
static void call_authorize(rpc_call *c) {
  rpc_server *s = c->conn->srv;
  int r = 0;
  if (s->auth.authorize) {
    rr_err e = {0};
    r = s->auth.authorize(s->auth.data, c, &e);
    if (r < 0) {
      call_reject(c, 200, e.code ? e.code : RR_UNAUTHENTICATED, "%s",
                  e.msg[0] ? e.msg : "caller not authenticated");
      return;
    }
  }
  if (r > 0) { /* anonymous: small messages, and no window beyond HTTP/2's initial one */
    if (c->deframer.max > RPC_ANONYMOUS_MAX_MESSAGE)
      c->deframer.max = RPC_ANONYMOUS_MAX_MESSAGE;
    return;
  }
  rpc_conn_grant_window(c->conn);
}

void rpc_call_begin(rpc_call *c) {
  rpc_server *s = c->conn->srv;
  c->begun = true;
  if (!c->reject_code) {
    if (!c->saw_post)
      call_reject(c, 405, RR_INTERNAL, "gRPC requires the POST method");
    else if (!c->saw_content_type)
      call_reject(c, 415, RR_INVALID_ARGUMENT, "missing content-type header");
    else if (!c->saw_te)
      call_reject(c, 400, RR_INVALID_ARGUMENT, "missing \"te: trailers\" header");
    else if (!c->path || c->path[0] != '/')
      call_reject(c, 400, RR_UNIMPLEMENTED, "missing or malformed :path");
  }
  if (!c->reject_code) {
    c->method = rpc_server_find_method(s, c->path);
    if (!c->method) {
      char service[256];
      const char *slash = strchr(c->path + 1, '/');
      size_t n = slash ? (size_t)(slash - c->path - 1) : strlen(c->path + 1);
      snprintf(service, sizeof service, "%.*s", (int)(n < 200 ? n : 200), c->path + 1);
      if (slash && rpc_server_has_service(s, service))
        call_reject(c, 200, RR_UNIMPLEMENTED, "unknown method %.100s", c->path);
      else
        call_reject(c, 200, RR_UNIMPLEMENTED, "unknown service %.100s", service);
    }
  }
  if (!c->reject_code)
    call_authorize(c);
  /* a client that compresses and accepts the same gets compressed answers */
  if (c->deframer.encoding && (c->accept_mask & 1u << c->deframer.encoding))
    c->send_encoding = c->deframer.encoding;
  if (c->reject_code) {
    rpc_call_finish_status(c, c->reject_code, c->reject_msg);
    return;
  }
  if (c->has_deadline) {
    uint64_t now = loop_now_ms(s->l);
    uint64_t wait = c->deadline_ms > now ? c->deadline_ms - now : 0;
    c->deadline_timer = loop_timer_add(s->l, wait, call_deadline_fire, c);
    if (!c->deadline_timer) /* a call with a deadline nobody watches: refuse it */
      rpc_call_finish_status(c, RR_RESOURCE_EXHAUSTED, "out of memory for the call's deadline");
  }
}

void rpc_call_fail(rpc_call *c, int code, const char *msg) {
  call_drop_input(c);
  rpc_call_finish_status(c, code, msg);
}

/* Can c keep len more request bytes within the connection's and the
 * server's budgets? If not, it is answered RESOURCE_EXHAUSTED. */
static bool call_hold(rpc_call *c, size_t len) {
  rpc_conn *conn = c->conn;
  rpc_server *s = conn->srv;
  char why[200];
  if (conn->held + len > s->cfg.max_conn_recv_buffer)
    snprintf(why, sizeof why,
             "request data held for this connection would exceed %zu bytes (%zu held by its "
             "other calls)",
             s->cfg.max_conn_recv_buffer, conn->held - c->held);
  else if (s->held + len > s->cfg.max_recv_buffer)
    snprintf(why, sizeof why,
             "the server holds %zu bytes of request data from all clients (limit %zu); retry later",
             s->held, s->cfg.max_recv_buffer);
  else {
    c->held += len;
    conn->held += len;
    s->held += len;
    return true;
  }
  rpc_call_fail(c, RR_RESOURCE_EXHAUSTED, why);
  return false;
}

void rpc_call_on_data(rpc_call *c, const uint8_t *data, size_t len) {
  nghttp2_session *h2 = c->conn->h2;
  size_t total = len;
  /* kept bytes return their connection window when handed over; the rest now */
  if (!c->method || c->finished || c->closed || !call_hold(c, len)) {
    nghttp2_session_consume(h2, c->stream_id, total);
    return;
  }
  while (len > 0 && c->method && !c->finished && !c->closed) {
    size_t used;
    uint8_t *msg;
    size_t msglen;
    rr_err e;
    int r = rpc_deframer_feed(&c->deframer, data, len, &used, &msg, &msglen, &e);
    if (r < 0) {
      rpc_call_fail(c, e.code, e.msg);
      break;
    }
    data += used;
    len -= used;
    if (r == 0)
      break;
    /* decompressed bytes count against the budgets like received ones */
    if (msglen > c->deframer.wire_len && !call_hold(c, msglen - c->deframer.wire_len)) {
      free(msg);
      break;
    }
    rpc_buf *b = malloc(sizeof *b + msglen);
    if (!b) {
      free(msg);
      rpc_call_fail(c, RR_RESOURCE_EXHAUSTED, "out of memory for a request message");
      break;
    }
    *b = (rpc_buf){.len = msglen};
    if (msglen)
      memcpy(b->data, msg, msglen);
    free(msg);
    if (c->in_tail)
      c->in_tail->next = b;
    else
      c->in_head = b;
    c->in_tail = b;
    if (++c->in_count > 1 && !c->method->client_streaming)
      rpc_call_fail(c, RR_UNIMPLEMENTED, "more than one request message for a unary method");
  }
  /* while paused, the stream window is withheld so the client slows down */
  if (c->paused && !c->finished && !c->closed)
    c->unconsumed += total;
  else
    nghttp2_session_consume_stream(h2, c->stream_id, total);
}

void rpc_call_remote_closed(rpc_call *c) {
  c->remote_closed = true;
  if (!c->method || c->finished || c->closed)
    return;
  if (rpc_deframer_partial(&c->deframer))
    rpc_call_fail(c, RR_INTERNAL, "request stream ended in the middle of a message");
  else if (!c->method->client_streaming && c->in_count != 1)
    rpc_call_fail(c, RR_UNIMPLEMENTED, "unary method called without a request message");
}

static void call_deliver_messages(rpc_call *c) {
  const rpc_method *m = c->method;
  while (!c->paused && c->in_head && !c->finished && !c->closed &&
         (m->client_streaming || c->remote_closed)) {
    rpc_buf *b = c->in_head;
    c->in_head = b->next;
    if (!c->in_head)
      c->in_tail = NULL;
    char bad[300] = "";
    ProtobufCMessage *msg =
        c->conn->srv->cfg.check_strings &&
                rpc_wire_check_strings(m->request, b->data, b->len, bad, sizeof bad) < 0
            ? NULL
            : protobuf_c_message_unpack(m->request, NULL, b->len, b->data);
    size_t released = b->len + RPC_PREFIX_LEN;
    free(b);
    released = released < c->held ? released : c->held;
    c->held -= released;
    rpc_conn_release(c->conn, released);
    if (!msg) {
      char why[400];
      if (bad[0])
        snprintf(why, sizeof why, "%s: %s", m->request->name, bad);
      else
        snprintf(why, sizeof why, "cannot decode request message as %s: invalid protobuf",
                 m->request->name);
      rpc_call_fail(c, RR_INVALID_ARGUMENT, why);
      return;
    }
    c->engaged = true;
    rpc_server *s = c->conn->srv;
    if (s->call_message)
      s->call_message(s->call_message_data, c, msg, false);
    m->on_message(c, msg);
  }
}

void rpc_call_dispatch(rpc_call *c) {
  const rpc_method *m = c->method;
  if (!c->closed && c->close_pending) {
    c->closed = true;
    call_drop_input(c);
    if (c->engaged && m->on_close)
      m->on_close(c, c->close_reason);
  }
  if (!c->closed && m) {
    call_deliver_messages(c);
    if (!c->closed && !c->finished && !c->paused && m->client_streaming && c->remote_closed &&
        !c->in_head && !c->half_close_delivered) {
      c->half_close_delivered = true;
      c->engaged = true;
      if (m->on_half_close)
        m->on_half_close(c);
    }
    if (!c->closed && c->writable_pending) {
      c->writable_pending = false;
      if (c->engaged && !c->finished && m->on_writable)
        m->on_writable(c);
    }
  }
  if (c->stream_closed && (c->closed || !m))
    rpc_call_destroy(c);
}

/* ---- public accessors ---- */

const char *rpc_call_metadata(const rpc_call *c, const char *key, size_t *len) {
  for (size_t i = 0; c && i < c->nmd; i++)
    if (strcmp(c->md[i].key, key) == 0) {
      if (len)
        *len = c->md[i].len;
      return c->md[i].value;
    }
  return NULL;
}

void rpc_call_pause_recv(rpc_call *c, bool paused) {
  if (!c || c->closed || c->paused == paused)
    return;
  c->paused = paused;
  if (paused || c->conn->dead)
    return;
  if (c->unconsumed && !c->stream_closed)
    nghttp2_session_consume_stream(c->conn->h2, c->stream_id, c->unconsumed);
  c->unconsumed = 0;
  rpc_server_mark_dirty(c->conn->srv, c->conn); /* deliver what queued up */
}

const rpc_peer *rpc_call_peer(const rpc_call *c) { return &c->conn->peer; }
const char *rpc_call_path(const rpc_call *c) { return c->path; }
uint64_t rpc_call_deadline(const rpc_call *c) { return c->has_deadline ? c->deadline_ms : 0; }
bool rpc_call_finished(const rpc_call *c) { return c->finished || c->closed; }
void rpc_call_set_data(rpc_call *c, void *data) { c->data = data; }
void *rpc_call_data(const rpc_call *c) { return c->data; }
void *rpc_call_method_data(const rpc_call *c) { return c->method ? c->method->data : NULL; }
loop *rpc_call_loop(const rpc_call *c) { return c->conn->srv->l; }
size_t rpc_call_queued(const rpc_call *c) { return c->queued; }
void rpc_call_set_low_water(rpc_call *c, size_t low) { c->low_water = low; }
