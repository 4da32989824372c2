/* nghttp2 callbacks: bytes already parsed into frames become call events.
 * Nothing here sends or receives: that happens in conn.c, outside nghttp2. */
#include <stdlib.h>

#include "rpc/internal.h"

static rpc_call *h2_call(nghttp2_session *h2, int32_t stream_id) {
  return nghttp2_session_get_stream_user_data(h2, stream_id);
}

static int h2_on_begin_headers(nghttp2_session *h2, const nghttp2_frame *frame, void *user_data) {
  rpc_conn *conn = user_data;
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
    return 0;
  conn->last_request_ms = loop_now_ms(conn->srv->l);
  rpc_call *c = rpc_call_new(conn, frame->hd.stream_id);
  if (!c)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets only this stream */
  nghttp2_session_set_stream_user_data(h2, frame->hd.stream_id, c);
  return 0;
}

/* Decoded header bytes per connection and second: HPACK lets a few wire
 * bytes name kilobytes, so past RPC_CONN_HEADER_RATE the connection goes. */
static bool h2_header_rate_ok(rpc_conn *conn, size_t n) {
  uint64_t now = loop_now_ms(conn->srv->l);
  if (now - conn->header_window_ms >= 1000) {
    conn->header_window_ms = now;
    conn->header_bytes = 0;
  }
  conn->header_bytes += n;
  return conn->header_bytes <= RPC_CONN_HEADER_RATE;
}

static int h2_on_header(nghttp2_session *h2, const nghttp2_frame *frame, const uint8_t *name,
                        size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                        void *user_data) {
  rpc_conn *conn = user_data;
  if (!h2_header_rate_ok(conn, namelen + valuelen + 32)) {
    rpc_server_conn_log(conn->srv, conn->peer.addr,
                        "connection closed: more than %u bytes of decoded headers in a second",
                        RPC_CONN_HEADER_RATE);
    nghttp2_session_terminate_session(h2, NGHTTP2_ENHANCE_YOUR_CALM);
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* the rest of the block is skipped */
  }
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
    return 0; /* request trailers carry nothing gRPC uses */
  rpc_call *c = h2_call(h2, frame->hd.stream_id);
  if (!c)
    return 0;
  if (rpc_call_add_request_md(c, name, namelen, value, valuelen) < 0) {
    /* too many bytes or no memory: reset now, so the rest of the header block
     * is skipped, not decoded and checked (ENHANCE_YOUR_CALM reads as
     * RESOURCE_EXHAUSTED in gRPC clients; nghttp2 adds its own reset after) */
    nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                              NGHTTP2_ENHANCE_YOUR_CALM);
    if (++conn->header_refusals >= RPC_CONN_HEADER_REFUSALS) {
      rpc_server_conn_log(conn->srv, conn->peer.addr,
                          "connection closed: %u requests with headers over %u bytes",
                          conn->header_refusals, RPC_MAX_REQUEST_HEADERS);
      nghttp2_session_terminate_session(h2, NGHTTP2_ENHANCE_YOUR_CALM);
    }
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  }
  return 0;
}

static int h2_on_frame_recv(nghttp2_session *h2, const nghttp2_frame *frame, void *user_data) {
  rpc_conn *conn = user_data;
  conn->last_recv_ms = loop_now_ms(conn->srv->l);
  rpc_call *c;
  switch (frame->hd.type) {
  case NGHTTP2_HEADERS:
    c = h2_call(h2, frame->hd.stream_id);
    if (!c)
      break;
    if (frame->headers.cat == NGHTTP2_HCAT_REQUEST)
      rpc_call_begin(c);
    if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
      rpc_call_remote_closed(c);
    break;
  case NGHTTP2_DATA:
    c = h2_call(h2, frame->hd.stream_id);
    if (c && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
      rpc_call_remote_closed(c);
    break;
  case NGHTTP2_SETTINGS:
    if (!(frame->hd.flags & NGHTTP2_FLAG_ACK) && !conn->settings_seen) {
      conn->settings_seen = true;
      loop_timer_cancel(conn->srv->l, conn->handshake_timer);
      conn->handshake_timer = 0;
    }
    break;
  case NGHTTP2_PING:
    if (frame->hd.flags & NGHTTP2_FLAG_ACK)
      conn->ping_outstanding = false;
    break;
  default:
    break;
  }
  return 0;
}

static int h2_on_data_chunk_recv(nghttp2_session *h2, uint8_t flags, int32_t stream_id,
                                 const uint8_t *data, size_t len, void *user_data) {
  /* the connection window comes back as calls hand their bytes over (or
   * drop them), so a connection holds at most max_conn_recv_buffer */
  rpc_call *c = h2_call(h2, stream_id);
  if (c)
    rpc_call_on_data(c, data, len);
  else
    nghttp2_session_consume(h2, stream_id, len);
  return 0;
}

static int h2_on_stream_close(nghttp2_session *h2, int32_t stream_id, uint32_t error_code,
                              void *user_data) {
  rpc_call *c = h2_call(h2, stream_id);
  if (!c)
    return 0;
  c->stream_closed = true;
  if (!c->closed && !c->close_pending) {
    c->close_pending = true;
    c->close_reason = c->trailers_sent ? RPC_CLOSE_FINISHED : RPC_CLOSE_CANCELLED;
  }
  return 0;
}

static int h2_on_frame_send(nghttp2_session *h2, const nghttp2_frame *frame, void *user_data) {
  if (frame->hd.type != NGHTTP2_HEADERS || !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
    return 0;
  rpc_call *c = h2_call(h2, frame->hd.stream_id);
  if (!c)
    return 0;
  c->trailers_sent = true;
  if (!c->closed && !c->close_pending) {
    c->close_pending = true;
    c->close_reason = RPC_CLOSE_FINISHED;
  }
  /* the client may still be sending: tell it we need no more (gRPC spec) */
  if (!c->remote_closed)
    nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_NO_ERROR);
  return 0;
}

/* DATA frames as large as the peer takes when they are sent in place (one
 * whole message each), else nghttp2's 16 KiB copied ones. */
static ssize_t h2_data_length(nghttp2_session *h2, uint8_t frame_type, int32_t stream_id,
                              int32_t session_window, int32_t stream_window,
                              uint32_t remote_max_frame, void *user_data) {
  rpc_conn *conn = user_data;
  if (!conn->ops->writev)
    return 16384; /* nghttp2's own frame buffer */
  return remote_max_frame < RPC_FRAME_IN_PLACE_MAX ? (ssize_t)remote_max_frame
                                                   : (ssize_t)RPC_FRAME_IN_PLACE_MAX;
}

int rpc_h2_callbacks_new(nghttp2_session_callbacks **ret, rr_err *e) {
  nghttp2_session_callbacks *cbs;
  if (nghttp2_session_callbacks_new(&cbs) != 0)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "cannot allocate nghttp2 callbacks");
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, h2_on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, h2_on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, h2_on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, h2_on_data_chunk_recv);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, h2_on_stream_close);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs, h2_on_frame_send);
  nghttp2_session_callbacks_set_send_data_callback(cbs, rpc_conn_send_data);
  nghttp2_session_callbacks_set_data_source_read_length_callback(cbs, h2_data_length);
  *ret = cbs;
  return 0;
}
