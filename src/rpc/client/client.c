/* gRPC client, connection side: nghttp2 callbacks, driving the socket
 * (flush, read, settle, poll), connect and close. Calls are in client_call.c. */
#include "rpc/client/client.h"

#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"
#include "rpc/client/client_internal.h"
#include "rpc/compress.h"
#include "rpc/wire.h"

void rr_client_call_finish(rpc_client_call *call, int code, const char *fmt, ...) {
  if (call->done)
    return;
  call->done = true;
  call->status.code = code;
  call->status.sys_errno = 0;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(call->status.msg, sizeof call->status.msg, fmt, ap);
  va_end(ap);
}

static void client_fail(rpc_client *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The connection is unusable: remember why and fail every live call. */
static void client_fail(rpc_client *c, int code, const char *fmt, ...) {
  if (!c->dead) {
    c->dead = true;
    char why[RR_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    rr_err_set(&c->dead_err, code, "connection to %s: %s", c->t->address, why);
  }
  for (rpc_client_call *call = c->calls; call; call = call->next) {
    rr_client_call_finish(call, c->dead_err.code, "%s", c->dead_err.msg);
    call->stream_id = 0;
  }
}

/* ---- nghttp2 callbacks (never send/recv from inside them) ---- */

static rpc_client_call *stream_call(nghttp2_session *s, int32_t stream_id) {
  return nghttp2_session_get_stream_user_data(s, stream_id);
}

static bool header_is(const uint8_t *name, size_t namelen, const char *want) {
  size_t n = strlen(want);
  return namelen == n && memcmp(name, want, n) == 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *ud) {
  if (frame->hd.type != NGHTTP2_HEADERS)
    return 0;
  rpc_client_call *call = stream_call(s, frame->hd.stream_id);
  if (!call)
    return 0;
  if (header_is(name, namelen, ":status")) {
    int st = 0;
    for (size_t i = 0; i < valuelen && i < 3; i++)
      st = st * 10 + (value[i] - '0');
    call->http_status = st;
  } else if (header_is(name, namelen, "content-type")) {
    call->rpc_ct = valuelen >= 16 && memcmp(value, "application/grpc", 16) == 0 &&
                   (valuelen == 16 || value[16] == '+' || value[16] == ';');
  } else if (header_is(name, namelen, "grpc-status")) {
    int st = 0;
    bool ok = valuelen > 0 && valuelen <= 3;
    for (size_t i = 0; ok && i < valuelen; i++) {
      if (value[i] < '0' || value[i] > '9')
        ok = false;
      else
        st = st * 10 + (value[i] - '0');
    }
    call->rpc_status = ok ? st : RR_UNKNOWN;
  } else if (header_is(name, namelen, "grpc-encoding")) {
    /* compressed responses are read in the encoding the server names */
    int enc = rpc_encoding_parse((const char *)value, valuelen);
    if (enc < 0)
      rr_client_call_finish(call, RR_INTERNAL, "%s: response grpc-encoding \"%.*s\" is unknown",
                            call->path, (int)(valuelen < 32 ? valuelen : 32), (const char *)value);
    else
      call->deframer.encoding = enc;
  } else if (header_is(name, namelen, "grpc-message")) {
    rpc_percent_decode((const char *)value, valuelen, call->rpc_message, sizeof call->rpc_message);
  }
  return 0;
}

/* The server ended its side: settle the status from what it sent. */
static void call_remote_end(rpc_client_call *call) {
  if (call->done)
    return;
  if (call->rpc_status >= 0) {
    if (call->rpc_status == RR_OK && rr_client_call_partial(call))
      rr_client_call_finish(call, RR_INTERNAL, "%s: stream ended in the middle of a message",
                            call->path);
    else
      rr_client_call_finish(call, call->rpc_status, "%s", call->rpc_message);
  } else if (call->got_headers && call->http_status != 200) {
    rr_client_call_finish(call, rpc_status_from_http(call->http_status),
                          "%s: HTTP status %d from server (not a gRPC response)", call->path,
                          call->http_status);
  } else {
    rr_client_call_finish(call, RR_INTERNAL,
                          "%s: server closed the stream without sending a grpc-status", call->path);
  }
  if (!call->send_closed || call->sbuf_len > call->sbuf_off)
    call->need_rst = true; /* nobody will read the rest of our stream */
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *frame, void *ud) {
  rpc_client *c = ud;
  if (frame->hd.type == NGHTTP2_GOAWAY)
    return 0;
  rpc_client_call *call = frame->hd.stream_id ? stream_call(s, frame->hd.stream_id) : NULL;
  if (!call)
    return 0;
  if (frame->hd.type == NGHTTP2_HEADERS) {
    if (frame->headers.cat == NGHTTP2_HCAT_RESPONSE) {
      call->got_headers = true;
      if (call->http_status == 200 && !call->rpc_ct && call->rpc_status < 0 &&
          !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        rr_client_call_finish(call, RR_UNKNOWN,
                              "%s: response from %s is not gRPC (no content-type "
                              "application/grpc)",
                              call->path, c->t->address);
        call->need_rst = true;
        return 0;
      }
    }
  }
  if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
      (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
    call_remote_end(call);
  return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t stream_id, const uint8_t *data,
                         size_t len, void *ud) {
  rpc_client *c = ud;
  rpc_client_call *call = stream_call(s, stream_id);
  if (!call || call->done) {
    c->orphan_consume += len;
    return 0;
  }
  call->pending_consume += len;
  rr_client_call_data(call, data, len);
  return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t stream_id, uint32_t error_code, void *ud) {
  rpc_client *c = ud;
  rpc_client_call *call = stream_call(s, stream_id);
  if (!call)
    return 0;
  if (!call->done) {
    if (error_code == NGHTTP2_NO_ERROR)
      call_remote_end(call);
    else
      rr_client_call_finish(call, rpc_status_from_h2_error(error_code),
                            "%s: stream reset by %s: %s (HTTP/2 error 0x%x)", call->path,
                            c->t->address, nghttp2_http2_strerror(error_code), error_code);
  }
  /* Data of a closed stream never needs a stream WINDOW_UPDATE; give the
   * connection window back now. */
  c->orphan_consume += call->pending_consume;
  call->pending_consume = 0;
  call->stream_id = 0;
  nghttp2_session_set_stream_user_data(s, stream_id, NULL);
  return 0;
}

/* ---- driving the connection ---- */

/* The next bytes to write: small frames (SETTINGS, HEADERS, a short
 * message, WINDOW_UPDATE) gathered into one write, a large one as nghttp2
 * has it (its bytes stay valid until the next mem_send). 0: nothing. */
static int client_next_out(rpc_client *c) {
  if (c->held_len) {
    c->out = c->held;
    c->out_len = c->held_len;
    c->held_len = 0;
    return 0;
  }
  size_t n = 0;
  for (;;) {
    const uint8_t *data;
    ssize_t k = nghttp2_session_mem_send(c->session, &data);
    if (k < 0) {
      client_fail(c, RR_INTERNAL, "HTTP/2 error: %s", nghttp2_strerror((int)k));
      return -1;
    }
    if (k == 0)
      break;
    if ((size_t)k <= CLIENT_GATHER_MAX && n + (size_t)k <= sizeof c->wbuf) {
      memcpy(c->wbuf + n, data, (size_t)k);
      n += (size_t)k;
      continue;
    }
    if (n == 0) {
      c->out = data;
      c->out_len = (size_t)k;
      return 0;
    }
    c->held = data; /* after the gathered bytes, before the next mem_send */
    c->held_len = (size_t)k;
    break;
  }
  c->out = c->wbuf;
  c->out_len = n;
  return 0;
}

/* Write what nghttp2 has to send until the socket would block. */
void rr_client_flush(rpc_client *c) {
  while (!c->dead) {
    if (c->out_len == 0 && (client_next_out(c) < 0 || c->out_len == 0))
      return;
    ssize_t w = c->t->ops->write(c->t, c->out, c->out_len);
    if (w < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return;
      client_fail(c, RR_UNAVAILABLE, "write failed: %s",
                  c->t->error[0] ? c->t->error : strerror(errno));
      return;
    }
    c->out += w;
    c->out_len -= (size_t)w;
  }
}

/* Per-call bookkeeping after I/O: credit windows, resets, deadlines. */
void rr_client_settle(rpc_client *c) {
  uint64_t now = rr_now_mono_ms();
  for (rpc_client_call *call = c->calls; call; call = call->next) {
    if (!call->done && call->deadline && now >= call->deadline) {
      rr_client_call_finish(call, RR_DEADLINE_EXCEEDED, "%s: deadline exceeded after %llu ms",
                            call->path, (unsigned long long)call->timeout_ms);
      call->need_rst = true;
    }
    if (call->stream_id && call->need_rst) {
      nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, call->stream_id,
                                call->done && call->status.code == RR_OK ? NGHTTP2_NO_ERROR
                                                                         : NGHTTP2_CANCEL);
      call->need_rst = false;
    }
    if (call->stream_id && call->pending_consume && call->queued_bytes <= CLIENT_RECV_LOW_WATER) {
      nghttp2_session_consume(c->session, call->stream_id, call->pending_consume);
      call->pending_consume = 0;
    }
  }
  if (c->orphan_consume) {
    nghttp2_session_consume_connection(c->session, c->orphan_consume);
    c->orphan_consume = 0;
  }
}

/* Read what the socket has and feed it to nghttp2. */
static void client_read(rpc_client *c) {
  for (int i = 0; i < 16 && !c->dead; i++) {
    ssize_t n = c->t->ops->read(c->t, c->rbuf, sizeof c->rbuf);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return;
      client_fail(c, RR_UNAVAILABLE, "read failed: %s",
                  c->t->error[0] ? c->t->error : strerror(errno));
      return;
    }
    if (n == 0) {
      client_fail(c, RR_UNAVAILABLE, "server closed the connection");
      return;
    }
    c->last_recv_ms = rr_now_mono_ms(); /* any byte answers a ping */
    c->ping_outstanding = false;
    ssize_t r = nghttp2_session_mem_recv(c->session, c->rbuf, (size_t)n);
    if (r < 0) {
      rr_client_flush(c); /* let a GOAWAY out */
      client_fail(c, RR_INTERNAL, "HTTP/2 protocol error: %s", nghttp2_strerror((int)r));
      return;
    }
    rr_client_settle(c);
    if ((size_t)n < sizeof c->rbuf)
      return;
  }
}

/* While a call is open: PING a server silent for keepalive_ms, fail the
 * connection when the PING goes unanswered. The ms until the next check;
 * -1: none due. */
static int64_t client_keepalive(rpc_client *c, uint64_t now) {
  bool open = false;
  for (rpc_client_call *call = c->calls; call && !open; call = call->next)
    open = !call->done;
  if (c->dead || !open)
    return -1;
  if (c->ping_outstanding) {
    uint64_t waited = now - c->ping_sent_ms;
    if (waited < RPC_CLIENT_PING_TIMEOUT_MS)
      return (int64_t)(RPC_CLIENT_PING_TIMEOUT_MS - waited);
    client_fail(c, RR_UNAVAILABLE, "the server did not answer a keepalive ping within %u s",
                RPC_CLIENT_PING_TIMEOUT_MS / 1000);
    return -1;
  }
  uint64_t idle = now - c->last_recv_ms;
  if (idle < c->keepalive_ms)
    return (int64_t)(c->keepalive_ms - idle);
  if (nghttp2_submit_ping(c->session, NGHTTP2_FLAG_NONE, NULL) != 0)
    return (int64_t)c->keepalive_ms; /* out of memory: try again later */
  c->ping_outstanding = true;
  c->ping_sent_ms = now;
  return RPC_CLIENT_PING_TIMEOUT_MS;
}

/* One round: flush, poll (socket + caller fds), read. Returns 1 when a
 * caller fd fired, 0 otherwise, -1 on poll failure. */
int rr_client_drive(rpc_client *c, struct pollfd *fds, size_t nfds, int timeout_ms, rr_err *e) {
  rr_client_settle(c);
  bool was_dead = c->dead;
  int64_t ping_in = client_keepalive(c, rr_now_mono_ms());
  if (c->dead && !was_dead)
    return 0; /* its calls just failed: theirs to see, not a poll to wait in */
  if (ping_in >= 0 && (timeout_ms < 0 || ping_in < timeout_ms))
    timeout_ms = (int)(ping_in > INT32_MAX ? INT32_MAX : ping_in);
  rr_client_flush(c);
  if (!c->dead && !nghttp2_session_want_read(c->session) &&
      !nghttp2_session_want_write(c->session) && c->out_len == 0)
    client_fail(c, RR_UNAVAILABLE, "HTTP/2 session ended (GOAWAY)");
  uint64_t now = rr_now_mono_ms();
  for (rpc_client_call *call = c->calls; call; call = call->next) {
    if (call->done || !call->deadline)
      continue;
    uint64_t left = call->deadline > now ? call->deadline - now : 0;
    if (timeout_ms < 0 || left < (uint64_t)timeout_ms)
      timeout_ms = (int)(left > INT32_MAX ? INT32_MAX : left);
  }
  struct pollfd stackfds[8];
  struct pollfd *pfd =
      nfds + 1 <= RR_ARRAY_SIZE(stackfds) ? stackfds : calloc(nfds + 1, sizeof *pfd);
  if (!pfd)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  pfd[0] = (struct pollfd){.fd = c->dead ? -1 : c->t->fd, .events = POLLIN};
  if (c->out_len > 0 || c->t->want_write)
    pfd[0].events |= POLLOUT;
  /* bytes decrypted inside TLS: poll() cannot see them, so do not sleep */
  bool buffered = !c->dead && c->t->ops->pending && c->t->ops->pending(c->t);
  if (buffered)
    timeout_ms = 0;
  for (size_t i = 0; i < nfds; i++) {
    pfd[i + 1] = fds[i];
    pfd[i + 1].revents = 0;
  }
  int r = poll(pfd, nfds + 1, timeout_ms);
  int saved = errno;
  int fired = 0;
  if (r > 0) {
    for (size_t i = 0; i < nfds; i++) {
      fds[i].revents = pfd[i + 1].revents;
      if (fds[i].revents)
        fired = 1;
    }
  }
  short rev = r > 0 ? pfd[0].revents : 0;
  if (pfd != stackfds)
    free(pfd);
  if (r < 0) {
    if (saved == EINTR)
      return 0;
    return rr_err_sys(e, RR_INTERNAL, saved, "poll");
  }
  if (buffered || (rev & (POLLIN | POLLHUP | POLLERR)) || (c->t->want_write && (rev & POLLOUT)))
    client_read(c);
  if (!c->dead)
    rr_client_flush(c);
  rr_client_settle(c);
  if (!c->dead)
    rr_client_flush(c);
  return fired;
}

/* ---- client ---- */

int rpc_client_new(rpc_client_transport *t, const rpc_client_options *o, rpc_client **ret,
                   rr_err *e) {
  rpc_client *c = calloc(1, sizeof *c);
  if (!c) {
    rpc_client_transport_free(t);
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  }
  c->t = t;
  c->max_recv = o && o->max_recv_message ? o->max_recv_message : RPC_DEFAULT_MAX_MESSAGE;
  c->keepalive_ms = o && o->keepalive_ms ? o->keepalive_ms : RPC_CLIENT_KEEPALIVE_MS;
  c->compression = o ? o->compression : 0;
  c->last_recv_ms = rr_now_mono_ms();
  snprintf(c->user_agent, sizeof c->user_agent, "%s",
           o && o->user_agent ? o->user_agent : "runrpc-c/0.1.0");
  if (o && o->authorization && !(c->authorization = strdup(o->authorization))) {
    free(c);
    rpc_client_transport_free(t);
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  }

  nghttp2_session_callbacks *cb;
  nghttp2_option *opt;
  if (nghttp2_session_callbacks_new(&cb) != 0 || nghttp2_option_new(&opt) != 0) {
    free(c->authorization);
    free(c);
    rpc_client_transport_free(t);
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  }
  nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
  nghttp2_option_set_no_auto_window_update(opt, 1);
  int rv = nghttp2_session_client_new2(&c->session, cb, c, opt);
  nghttp2_session_callbacks_del(cb);
  nghttp2_option_del(opt);
  if (rv != 0) {
    rpc_client_transport_free(t);
    free(c->authorization);
    free(c);
    return rr_err_set(e, RR_INTERNAL, "cannot create HTTP/2 session: %s", nghttp2_strerror(rv));
  }
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, CLIENT_STREAM_WINDOW},
      {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, CLIENT_MAX_FRAME},
  };
  rv = nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv, RR_ARRAY_SIZE(iv));
  if (rv == 0)
    rv =
        nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0, CLIENT_CONN_WINDOW);
  if (rv != 0) {
    rpc_client_free(c);
    return rr_err_set(e, RR_INTERNAL, "cannot start HTTP/2: %s", nghttp2_strerror(rv));
  }
  rr_client_flush(c); /* preface + SETTINGS go out now */
  if (c->dead) {
    rr_err_set(e, c->dead_err.code, "%s", c->dead_err.msg);
    rpc_client_free(c);
    return -1;
  }
  *ret = c;
  return 0;
}

int rpc_client_connect(const char *addr, const rpc_client_options *o, rpc_client **ret, rr_err *e) {
  rpc_client_transport *t;
  uint64_t ms = o && o->connect_timeout_ms ? o->connect_timeout_ms : CLIENT_DEFAULT_CONNECT_MS;
  if (rpc_client_transport_connect(addr, o ? o->tls : NULL, ms, &t, e) < 0)
    return -1;
  return rpc_client_new(t, o, ret, e);
}

void rpc_client_free(rpc_client *c) {
  if (!c)
    return;
  if (!c->dead) {
    nghttp2_session_terminate_session(c->session, NGHTTP2_NO_ERROR);
    rr_client_flush(c); /* best effort GOAWAY; never blocks */
  }
  client_fail(c, RR_UNAVAILABLE, "client closed");
  for (rpc_client_call *call = c->calls; call; call = call->next)
    call->client = NULL;
  nghttp2_session_del(c->session);
  rpc_client_transport_free(c->t);
  free(c->authorization);
  free(c);
}

const char *rpc_client_address(const rpc_client *c) { return c->t->address; }

const rpc_client_transport *rpc_client_get_transport(const rpc_client *c) { return c->t; }
