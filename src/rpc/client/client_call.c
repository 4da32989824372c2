/* gRPC client, per-call side: start, send, receive, wait, cancel, free, and
 * the unary helper. The connection side is in client.c. */
#include "rpc/client/client.h"

#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"
#include "rpc/client/client_internal.h"
#include "rpc/compress.h"
#include "rpc/wire.h"

/* ---- calls ---- */

static void call_unlink(rpc_client_call *call) {
  rpc_client *c = call->client;
  if (!c)
    return;
  if (call->prev)
    call->prev->next = call->next;
  else
    c->calls = call->next;
  if (call->next)
    call->next->prev = call->prev;
  call->prev = call->next = NULL;
}

static int call_error(rpc_client_call *call, rr_err *e) {
  if (e) {
    *e = call->status;
    if (e->code == RR_OK)
      e->code = RR_UNKNOWN;
  }
  return -1;
}

/* nghttp2 data source of every request body (called inside mem_send). */
static ssize_t call_data_read(nghttp2_session *s, int32_t stream_id, uint8_t *buf, size_t length,
                              uint32_t *data_flags, nghttp2_data_source *src, void *ud) {
  /* Looked up by stream, not src->ptr: a freed call has cleared its entry. */
  rpc_client_call *call = nghttp2_session_get_stream_user_data(s, stream_id);
  if (!call) {
    *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return 0;
  }
  size_t avail = call->sbuf_len - call->sbuf_off;
  if (avail == 0) {
    if (call->send_closed) {
      *data_flags |= NGHTTP2_DATA_FLAG_EOF;
      return 0;
    }
    call->deferred = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  size_t n = avail < length ? avail : length;
  memcpy(buf, call->sbuf + call->sbuf_off, n);
  call->sbuf_off += n;
  if (call->sbuf_off == call->sbuf_len) {
    call->sbuf_off = call->sbuf_len = 0;
    if (call->send_closed)
      *data_flags |= NGHTTP2_DATA_FLAG_EOF;
  }
  return (ssize_t)n;
}

int rpc_client_call_start(rpc_client *c, const char *path, uint64_t timeout_ms,
                          rpc_client_call **ret, rr_err *e) {
  if (c->dead)
    return rr_err_set(e, c->dead_err.code, "%s", c->dead_err.msg);
  rpc_client_call *call = calloc(1, sizeof *call);
  if (!call)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  call->client = c;
  call->rpc_status = -1;
  call->timeout_ms = timeout_ms;
  call->deadline = timeout_ms ? rr_now_mono_ms() + timeout_ms : 0;
  snprintf(call->path, sizeof call->path, "%s", path);
  rpc_deframer_init(&call->deframer, c->max_recv);

  char tmo[32] = "";
  if (timeout_ms)
    rpc_timeout_format(timeout_ms, tmo, sizeof tmo);
#define NV(n, v) {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE}
  nghttp2_nv nva[] = {
      NV(":method", "POST"),
      NV(":scheme", c->t->tls ? "https" : "http"),
      NV(":path", call->path),
      NV(":authority", c->t->authority),
      NV("te", "trailers"),
      NV("content-type", "application/grpc"),
      NV("user-agent", c->user_agent),
      NV("authorization", c->authorization ? c->authorization : ""),
      NV("grpc-timeout", tmo),
      NV("grpc-encoding", rpc_encoding_name(c->compression)),
      NV("grpc-accept-encoding", RPC_ACCEPT_ENCODING),
  };
#undef NV
  size_t nnv = RR_ARRAY_SIZE(nva) - 4;
  if (c->authorization)
    nnv++;
  if (timeout_ms) /* grpc-timeout takes the slot authorization left free */
    nva[nnv++] = nva[RR_ARRAY_SIZE(nva) - 3];
  if (c->compression) {
    nva[nnv++] = nva[RR_ARRAY_SIZE(nva) - 2];
    nva[nnv++] = nva[RR_ARRAY_SIZE(nva) - 1];
  }
  nghttp2_data_provider prd = {.source.ptr = NULL, .read_callback = call_data_read};
  int32_t id = nghttp2_submit_request(c->session, NULL, nva, nnv, &prd, call);
  if (id < 0) {
    rpc_deframer_free(&call->deframer);
    free(call);
    if (id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE || id == NGHTTP2_ERR_START_STREAM_NOT_ALLOWED)
      return rr_err_set(e, RR_UNAVAILABLE, "%s: connection to %s is going away", path,
                        c->t->address);
    return rr_err_set(e, RR_INTERNAL, "%s: cannot start stream: %s", path, nghttp2_strerror(id));
  }
  call->stream_id = id;
  call->next = c->calls;
  if (c->calls)
    c->calls->prev = call;
  c->calls = call;
  /* no flush: the HEADERS go out in one write with the first message (send,
   * close_send, wait and free all flush) */
  *ret = call;
  return 0;
}

static void call_resume(rpc_client_call *call) {
  if (call->deferred && call->stream_id && call->client) {
    call->deferred = false;
    nghttp2_session_resume_data(call->client->session, call->stream_id);
  }
}

size_t rpc_client_call_send_buffered(const rpc_client_call *call) {
  return call->sbuf_len - call->sbuf_off;
}

bool rpc_client_call_send_full(const rpc_client_call *call) {
  return rpc_client_call_send_buffered(call) >= CLIENT_SEND_HIGH_WATER;
}

bool rpc_client_call_done(const rpc_client_call *call) { return call->done; }

int rpc_client_call_send(rpc_client_call *call, const void *msg, size_t len, rr_err *e) {
  if (call->done) /* after an OK status the server wants nothing more: drop it */
    return call->status.code == RR_OK ? 0 : call_error(call, e);
  if (call->send_closed)
    return rr_err_set(e, RR_INTERNAL, "%s: send after half-close", call->path);
  if (len > UINT32_MAX)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "%s: message of %zu bytes too large", call->path,
                      len);
  if (call->sbuf_off > 0 && call->sbuf_off == call->sbuf_len)
    call->sbuf_off = call->sbuf_len = 0;
  int enc = len >= RPC_COMPRESS_MIN ? call->client->compression : 0;
  if (enc && call->compress_skip) { /* the last try did not pay: a rest */
    call->compress_skip--;
    enc = 0;
  }
  size_t room = enc ? rpc_compress_bound(len) : len;
  size_t need = call->sbuf_len + RPC_PREFIX_LEN + room;
  if (need > call->sbuf_cap) {
    if (call->sbuf_off > 0) { /* compact before growing */
      memmove(call->sbuf, call->sbuf + call->sbuf_off, call->sbuf_len - call->sbuf_off);
      call->sbuf_len -= call->sbuf_off;
      call->sbuf_off = 0;
      need = call->sbuf_len + RPC_PREFIX_LEN + room;
    }
    if (need > call->sbuf_cap) {
      size_t cap = call->sbuf_cap ? call->sbuf_cap : 4096;
      while (cap < need)
        cap *= 2;
      uint8_t *p = realloc(call->sbuf, cap);
      if (!p)
        return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "%s: out of memory", call->path);
      call->sbuf = p;
      call->sbuf_cap = cap;
    }
  }
  uint8_t *at = call->sbuf + call->sbuf_len;
  size_t z = enc ? rpc_compress(enc, msg, len, at + RPC_PREFIX_LEN, room) : 0;
  if (z > 0 && z < len - len / 8) {
    rpc_wire_put_prefix(at, true, (uint32_t)z);
    call->sbuf_len += RPC_PREFIX_LEN + z;
  } else { /* not asked for, or it did not pay (then not for the next 32) */
    if (enc)
      call->compress_skip = 32;
    rpc_wire_put_prefix(at, false, (uint32_t)len);
    if (len)
      memcpy(at + RPC_PREFIX_LEN, msg, len);
    call->sbuf_len += RPC_PREFIX_LEN + len;
  }
  call_resume(call);
  rr_client_flush(call->client);
  while (!call->done && rpc_client_call_send_full(call)) {
    if (rr_client_drive(call->client, NULL, 0, -1, e) < 0)
      return -1;
  }
  if (call->done && call->status.code != RR_OK)
    return call_error(call, e);
  return 0;
}

int rpc_client_call_close_send(rpc_client_call *call, rr_err *e) {
  if (call->send_closed)
    return 0;
  call->send_closed = true;
  if (call->done)
    return 0; /* the status is reported by recv */
  call_resume(call);
  rr_client_flush(call->client);
  return 0;
}

static int call_pop(rpc_client_call *call, uint8_t **ret_msg, size_t *ret_len) {
  call_msg *m = call->head;
  call->head = m->next;
  if (!call->head)
    call->tail = NULL;
  call->queued_bytes -= m->len + RPC_PREFIX_LEN;
  *ret_msg = m->data;
  *ret_len = m->len;
  free(m);
  if (call->client && call->stream_id && call->pending_consume &&
      call->queued_bytes <= CLIENT_RECV_LOW_WATER) {
    nghttp2_session_consume(call->client->session, call->stream_id, call->pending_consume);
    call->pending_consume = 0;
  }
  return RPC_CLIENT_CALL_MESSAGE;
}

int rpc_client_call_try_recv(rpc_client_call *call, uint8_t **ret_msg, size_t *ret_len, rr_err *e) {
  *ret_msg = NULL;
  *ret_len = 0;
  if (call->head)
    return call_pop(call, ret_msg, ret_len);
  if (call->done) {
    if (call->status.code == RR_OK)
      return RPC_CLIENT_CALL_END;
    return call_error(call, e);
  }
  return RPC_CLIENT_CALL_AGAIN;
}

int rpc_client_call_wait(rpc_client_call *call, struct pollfd *fds, size_t nfds, int timeout_ms,
                         rr_err *e) {
  uint64_t until = timeout_ms >= 0 ? rr_now_mono_ms() + (uint64_t)timeout_ms : 0;
  bool was_full = rpc_client_call_send_full(call); /* wake the caller once it can send again */
  for (;;) {
    if (call->head || call->done || (was_full && !rpc_client_call_send_full(call)))
      return 0;
    if (!call->client) {
      rr_client_call_finish(call, RR_UNAVAILABLE, "%s: client closed", call->path);
      return 0;
    }
    int left = -1;
    if (until) {
      uint64_t now = rr_now_mono_ms();
      if (now >= until)
        return 0;
      left = (int)(until - now);
    }
    int r = rr_client_drive(call->client, fds, nfds, left, e);
    if (r != 0)
      return r;
  }
}

int rpc_client_call_recv(rpc_client_call *call, uint8_t **ret_msg, size_t *ret_len, rr_err *e) {
  for (;;) {
    int r = rpc_client_call_try_recv(call, ret_msg, ret_len, e);
    if (r != RPC_CLIENT_CALL_AGAIN)
      return r;
    if (rpc_client_call_wait(call, NULL, 0, -1, e) < 0) {
      rpc_client_call_cancel(call);
      return -1;
    }
  }
}

void rpc_client_call_cancel(rpc_client_call *call) {
  if (!call->done) {
    rr_client_call_finish(call, RR_CANCELLED, "%s: cancelled by the client", call->path);
    call->need_rst = true;
  }
  if (call->client && call->stream_id) {
    rr_client_settle(call->client);
    rr_client_flush(call->client);
  }
}

void rpc_client_call_free(rpc_client_call *call) {
  if (!call)
    return;
  rpc_client *c = call->client;
  if (c && call->stream_id) {
    if (!call->done || call->need_rst || !call->send_closed) {
      nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, call->stream_id, NGHTTP2_CANCEL);
    }
    c->orphan_consume += call->pending_consume;
    nghttp2_session_set_stream_user_data(c->session, call->stream_id, NULL);
  }
  call_unlink(call);
  while (call->head) {
    call_msg *m = call->head;
    call->head = m->next;
    free(m->data);
    free(m);
  }
  rpc_deframer_free(&call->deframer);
  free(call->sbuf);
  free(call);
  if (c) {
    rr_client_settle(c);
    rr_client_flush(c);
  }
}

int rpc_client_unary(rpc_client *c, const char *path, const void *req, size_t req_len,
                     uint64_t timeout_ms, uint8_t **ret_resp, size_t *ret_len, rr_err *e) {
  rpc_client_call *call;
  if (rpc_client_call_start(c, path, timeout_ms, &call, e) < 0)
    return -1;
  uint8_t *resp = NULL, *extra = NULL;
  size_t len = 0, extra_len = 0;
  int r = -1;
  if (rpc_client_call_send(call, req, req_len, e) < 0 || rpc_client_call_close_send(call, e) < 0)
    goto out;
  r = rpc_client_call_recv(call, &resp, &len, e);
  if (r == RPC_CLIENT_CALL_END) {
    r = rr_err_set(e, RR_INTERNAL, "%s: server sent status OK without a response message", path);
    goto out;
  }
  if (r < 0)
    goto out;
  r = rpc_client_call_recv(call, &extra, &extra_len, e);
  if (r == RPC_CLIENT_CALL_MESSAGE) {
    free(extra);
    r = rr_err_set(e, RR_INTERNAL, "%s: server sent more than one response message", path);
    goto out;
  }
  if (r < 0)
    goto out;
  *ret_resp = TAKE_PTR(resp);
  *ret_len = len;
  r = 0;
out:
  free(resp);
  rpc_client_call_free(call);
  return r;
}
