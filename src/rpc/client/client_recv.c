/* gRPC client, receive side of a call: DATA bytes into whole messages for
 * the caller's queue, or, for the one-field messages a sink takes, straight
 * from the receive buffer to the sink piece by piece (no copy). */
#include <string.h>

#include "rpc/client/client_internal.h"

void rpc_client_call_set_sink(rpc_client_call *call, uint32_t fields, rpc_client_sink_fn fn,
                              void *ud) {
  call->sink = fields ? fn : NULL;
  call->sink_fields = fn ? fields : 0;
  call->sink_ud = ud;
}

/* Bytes into the deframer up to the end of one message, which is queued;
 * how many it took, -1 when the call failed. */
static long call_feed(rpc_client_call *call, const uint8_t *data, size_t len) {
  size_t used = 0;
  uint8_t *msg = NULL;
  size_t mlen = 0;
  rr_err e;
  int r = rpc_deframer_feed(&call->deframer, data, len, &used, &msg, &mlen, &e);
  if (r < 0) {
    rr_client_call_finish(call, e.code, "%s: %s", call->path, e.msg);
    call->need_rst = true;
    return -1;
  }
  if (r == 0)
    return (long)len;
  call_msg *m = malloc(sizeof *m);
  if (!m) {
    free(msg);
    rr_client_call_finish(call, RR_RESOURCE_EXHAUSTED, "%s: out of memory", call->path);
    call->need_rst = true;
    return -1;
  }
  *m = (call_msg){.data = msg, .len = mlen};
  if (call->tail)
    call->tail->next = m;
  else
    call->head = m;
  call->tail = m;
  call->queued_bytes += mlen + RPC_PREFIX_LEN;
  return (long)used;
}

enum { PEEK_MORE, PEEK_SINK, PEEK_QUEUE };

/* What the message whose first npeek bytes are in call->peek is: one field
 * of the sink's, exactly the rest of the message (its payload length in
 * *left), not one, or too early to say. Never looks past the message. */
static int call_peek_decide(rpc_client_call *call, size_t *left) {
  const uint8_t *p = call->peek;
  size_t n = call->npeek;
  if (n < RPC_PREFIX_LEN)
    return PEEK_MORE;
  size_t mlen = (size_t)p[1] << 24 | (size_t)p[2] << 16 | (size_t)p[3] << 8 | p[4];
  if (p[0] != 0 || mlen < 2 || mlen > call->deframer.max) /* the deframer says what is wrong */
    return PEEK_QUEUE;
  if (n == RPC_PREFIX_LEN)
    return PEEK_MORE;
  uint8_t tag = p[RPC_PREFIX_LEN]; /* fields 1-15: a one-byte tag */
  if ((tag & 0x87) != 2 || !(call->sink_fields & 1u << (tag >> 3)))
    return PEEK_QUEUE;
  uint64_t v = 0;
  for (size_t i = RPC_PREFIX_LEN + 1; i < n; i++) {
    size_t vlen = i - RPC_PREFIX_LEN; /* varint bytes so far */
    v |= (uint64_t)(p[i] & 0x7f) << (7 * (vlen - 1));
    if (p[i] & 0x80) {
      if (vlen == 5 || 1 + vlen >= mlen)
        return PEEK_QUEUE;
      continue;
    }
    if (1 + vlen + v != mlen)
      return PEEK_QUEUE;
    call->sink_field = tag >> 3;
    *left = (size_t)v;
    return PEEK_SINK;
  }
  return PEEK_MORE;
}

/* Piece of the current sink message to the sink; false if it refused. */
static bool call_sink_give(rpc_client_call *call, const uint8_t *data, size_t len) {
  if (len == 0 || call->sink(call->sink_ud, call->sink_field, data, len) == 0)
    return true;
  rr_client_call_finish(call, RR_CANCELLED, "%s: stopped by the receiver", call->path);
  call->need_rst = true;
  return false;
}

void rr_client_call_data(rpc_client_call *call, const uint8_t *data, size_t len) {
  while (len > 0 && !call->done) {
    if (call->sink_left > 0) {
      size_t k = len < call->sink_left ? len : call->sink_left;
      call->sink_left -= k;
      if (!call_sink_give(call, data, k))
        return;
      data += k;
      len -= k;
      continue;
    }
    /* a message's start with nothing queued before it: the sink's? */
    if (call->npeek == 0 && (!call->sink || call->head || rpc_deframer_partial(&call->deframer))) {
      long k = call_feed(call, data, len);
      if (k < 0)
        return;
      data += k;
      len -= (size_t)k;
      continue;
    }
    int d = PEEK_MORE;
    size_t left = 0;
    while (d == PEEK_MORE && len > 0) {
      call->peek[call->npeek++] = *data++;
      len--;
      d = call_peek_decide(call, &left);
    }
    if (d == PEEK_MORE)
      return; /* the rest of its head comes in the next piece */
    size_t np = call->npeek;
    call->npeek = 0;
    if (d == PEEK_SINK)
      call->sink_left = left;
    else if (call_feed(call, call->peek, np) < 0) /* within one message: takes all */
      return;
  }
}

bool rr_client_call_partial(const rpc_client_call *call) {
  return call->sink_left > 0 || call->npeek > 0 || rpc_deframer_partial(&call->deframer);
}
