/* Unit tests of the gRPC client (src/rpc/client): address parsing, and
 * calls against a scripted HTTP/2 server (raw nghttp2, in a child process on
 * a socketpair) for the cases a stock gRPC server never produces: HTTP errors
 * without grpc-status, resets, missing trailers, oversized messages, streams
 * answered out of order, a peer that hangs or vanishes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <nghttp2/nghttp2.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "rpc/client/client.h"
#include "rpc/wire.h"

/* ---- address parsing ---- */

static void test_address_parse(void **state) {
  rpc_address a;
  rr_err e;
  assert_int_equal(rpc_address_parse("unix:/run/x.sock", &a, &e), 0);
  assert_int_equal(a.kind, RPC_ADDRESS_UNIX);
  assert_string_equal(a.path, "/run/x.sock");
  assert_int_equal(rpc_address_parse("127.0.0.1:8080", &a, &e), 0);
  assert_int_equal(a.kind, RPC_ADDRESS_TCP);
  assert_string_equal(a.host, "127.0.0.1");
  assert_string_equal(a.port, "8080");
  assert_int_equal(rpc_address_parse("[::1]:9", &a, &e), 0);
  assert_string_equal(a.host, "::1");
  assert_string_equal(a.port, "9");
  assert_int_equal(rpc_address_parse("localhost:65535", &a, &e), 0);
  const char *bad[] = {"",           "unix:",   "localhost", "host:",   "host:0",
                       "host:65536", "host:x1", "::1:80",    "[::1]80", ":80"};
  for (size_t i = 0; i < RR_ARRAY_SIZE(bad); i++) {
    assert_int_equal(rpc_address_parse(bad[i], &a, &e), -1);
    assert_int_equal(e.code, RR_INVALID_ARGUMENT);
  }
}

static void test_connect_refused(void **state) {
  rpc_client *c;
  rr_err e;
  assert_int_equal(rpc_client_connect("unix:/nonexistent/dir/x.sock", NULL, &c, &e), -1);
  assert_int_equal(e.code, RR_UNAVAILABLE);
  assert_non_null(strstr(e.msg, "unix:/nonexistent/dir/x.sock"));
  assert_non_null(strstr(e.msg, "No such file or directory"));
}

/* ---- scripted server (child process) ---- */

typedef struct srv_stream {
  int32_t id;
  char path[64];
  uint8_t *out; /* response body */
  size_t out_len, out_off, out_cap;
  int status; /* grpc-status for trailers, -1: no trailers */
  bool done;
} srv_stream;

typedef struct srv {
  nghttp2_session *s;
  int fd;
  srv_stream *gather[3];
  int ngather;
} srv;

static ssize_t srv_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                        nghttp2_data_source *src, void *ud) {
  srv_stream *st = src->ptr;
  size_t n = st->out_len - st->out_off;
  if (n > len)
    n = len;
  memcpy(buf, st->out + st->out_off, n);
  st->out_off += n;
  if (st->out_off == st->out_len) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (st->status >= 0) {
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      char code[8];
      snprintf(code, sizeof code, "%d", st->status);
      nghttp2_nv t[] = {{(uint8_t *)"grpc-status", (uint8_t *)code, 11, strlen(code), 0}};
      nghttp2_submit_trailer(s, id, t, 1);
    }
  }
  return (ssize_t)n;
}

#define SNV(n, v)                                                                                  \
  { (uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE }

static void srv_respond(srv *sv, srv_stream *st) {
  nghttp2_nv h[] = {SNV(":status", "200"), SNV("content-type", "application/grpc")};
  nghttp2_data_provider p = {.source.ptr = st, .read_callback = srv_read};
  nghttp2_submit_response(sv->s, st->id, h, 2, &p);
}

/* Append n messages of size sz with byte pattern (i + seed). */
static void srv_add_messages(srv_stream *st, int n, size_t sz, uint32_t announced) {
  for (int m = 0; m < n; m++) {
    st->out = realloc(st->out, st->out_len + RPC_PREFIX_LEN + sz);
    st->out_cap = st->out_len + RPC_PREFIX_LEN + sz;
    rpc_wire_put_prefix(st->out + st->out_len, false, announced ? announced : (uint32_t)sz);
    for (size_t i = 0; i < sz; i++)
      st->out[st->out_len + RPC_PREFIX_LEN + i] = (uint8_t)(i + (size_t)m);
    st->out_len += RPC_PREFIX_LEN + sz;
  }
}

/* The client finished its request: act on the path. */
static void srv_on_request(srv *sv, srv_stream *st) {
  const char *m = strrchr(st->path, '/') + 1;
  if (strcmp(m, "Echo") != 0 && strcmp(m, "Gather") != 0)
    st->out_len = 0; /* the request body is only echoed by those two */
  if (strcmp(m, "TrailersOnly") == 0) {
    nghttp2_nv h[] = {SNV(":status", "200"), SNV("content-type", "application/grpc"),
                      SNV("grpc-status", "9"), SNV("grpc-message", "caf%C3%A9 100%25 %E2%98%BA")};
    nghttp2_submit_response(sv->s, st->id, h, 4, NULL);
  } else if (strcmp(m, "Http404") == 0) {
    nghttp2_nv h[] = {SNV(":status", "404"), SNV("content-type", "text/plain")};
    nghttp2_submit_response(sv->s, st->id, h, 2, NULL);
  } else if (strcmp(m, "Http503") == 0) {
    nghttp2_nv h[] = {SNV(":status", "503")};
    nghttp2_submit_response(sv->s, st->id, h, 1, NULL);
  } else if (strcmp(m, "Refused") == 0) {
    nghttp2_submit_rst_stream(sv->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_REFUSED_STREAM);
  } else if (strcmp(m, "Cancel") == 0) {
    nghttp2_submit_rst_stream(sv->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
  } else if (strcmp(m, "NoStatus") == 0) {
    srv_add_messages(st, 1, 10, 0);
    st->status = -1;
    srv_respond(sv, st);
  } else if (strcmp(m, "Big") == 0) { /* 64 x 64 KiB, then one 3 MiB message */
    srv_add_messages(st, 64, 65536, 0);
    srv_add_messages(st, 1, 3u << 20, 0);
    st->status = 0;
    srv_respond(sv, st);
  } else if (strcmp(m, "TooBig") == 0) {
    srv_add_messages(st, 1, 16, 5u << 20);
    st->status = 0;
    srv_respond(sv, st);
  } else if (strcmp(m, "Gather") == 0) { /* answer 3 calls in reverse order */
    sv->gather[sv->ngather++] = st;
    if (sv->ngather == 3)
      for (int i = 2; i >= 0; i--)
        srv_respond(sv, sv->gather[i]);
  } else if (strcmp(m, "Close") == 0) {
    _exit(0);
  } else if (strcmp(m, "Silent") != 0) { /* Echo: the request body back */
    st->status = 0;
    srv_respond(sv, st);
  }
}

static int srv_on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
  srv_stream *st = calloc(1, sizeof *st);
  st->id = f->hd.stream_id;
  nghttp2_session_set_stream_user_data(s, f->hd.stream_id, st);
  return 0;
}

static int srv_on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                         size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                         void *ud) {
  srv_stream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
  if (st && namelen == 5 && memcmp(name, ":path", 5) == 0)
    snprintf(st->path, sizeof st->path, "%.*s", (int)valuelen, value);
  return 0;
}

static int srv_on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data,
                       size_t len, void *ud) {
  srv_stream *st = nghttp2_session_get_stream_user_data(s, id);
  if (st) {
    if (st->out_len + len > st->out_cap) { /* doubling: megabytes arrive in 16 KiB frames */
      st->out_cap = st->out_cap ? st->out_cap * 2 : 65536;
      if (st->out_cap < st->out_len + len)
        st->out_cap = st->out_len + len;
      st->out = realloc(st->out, st->out_cap);
    }
    memcpy(st->out + st->out_len, data, len);
    st->out_len += len;
  }
  return 0;
}

static int srv_on_frame(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
  srv_stream *st =
      f->hd.stream_id ? nghttp2_session_get_stream_user_data(s, f->hd.stream_id) : NULL;
  if (st && !st->done && (f->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
      (f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS)) {
    st->done = true;
    srv_on_request(ud, st);
  }
  return 0;
}

static void srv_run(int fd) {
  srv sv = {.fd = fd};
  nghttp2_session_callbacks *cb;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, srv_on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cb, srv_on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, srv_on_data);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, srv_on_frame);
  nghttp2_session_server_new(&sv.s, cb, &sv);
  nghttp2_submit_settings(sv.s, NGHTTP2_FLAG_NONE, NULL, 0);
  uint8_t buf[65536];
  for (;;) {
    const uint8_t *out;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(sv.s, &out)) > 0)
      if (rr_write_all(fd, out, (size_t)n) < 0)
        _exit(0);
    ssize_t r = rr_read(fd, buf, sizeof buf);
    if (r <= 0 || nghttp2_session_mem_recv(sv.s, buf, (size_t)r) < 0)
      _exit(0);
  }
}

typedef struct fixture {
  pid_t pid;
  rpc_client *c;
} fixture;

static int setup(void **state) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
    return -1;
  fixture *f = calloc(1, sizeof *f);
  f->pid = fork();
  if (f->pid == 0) {
    close(sv[0]);
    srv_run(sv[1]);
  }
  close(sv[1]);
  rpc_client_transport *t;
  rr_err e;
  if (rpc_client_transport_from_fd(sv[0], "socketpair", &t, &e) < 0 ||
      rpc_client_new(t, NULL, &f->c, &e) < 0)
    return -1;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  rpc_client_free(f->c);
  kill(f->pid, SIGKILL);
  waitpid(f->pid, NULL, 0);
  free(f);
  return 0;
}

/* The call's next message (true), or false at its end with status OK. */
static bool recv_next(rpc_client_call *call, uint8_t **m, size_t *n) {
  rr_err e;
  int r = rpc_client_call_recv(call, m, n, &e);
  if (r == RPC_CLIENT_CALL_END)
    return false;
  assert_int_equal(r, RPC_CLIENT_CALL_MESSAGE);
  return true;
}

/* Unary call to method; returns the result and fills e. */
static int unary(fixture *f, const char *method, uint64_t timeout_ms, rr_err *e) {
  char path[64];
  snprintf(path, sizeof path, "/t.S/%s", method);
  uint8_t *resp = NULL;
  size_t len = 0;
  int r = rpc_client_unary(f->c, path, "ping", 4, timeout_ms, &resp, &len, e);
  if (r == 0) {
    assert_int_equal(len, 4);
    assert_memory_equal(resp, "ping", 4);
  }
  free(resp);
  return r;
}

static void test_echo_and_reuse(void **state) {
  rr_err e;
  for (int i = 0; i < 50; i++)
    assert_int_equal(unary(*state, "Echo", 5000, &e), 0);
}

static void test_trailers_only_message_decoded(void **state) {
  rr_err e;
  assert_int_equal(unary(*state, "TrailersOnly", 5000, &e), -1);
  assert_int_equal(e.code, RR_FAILED_PRECONDITION);
  assert_string_equal(e.msg, "caf\xc3\xa9 100% \xe2\x98\xba");
  assert_int_equal(unary(*state, "Echo", 5000, &e), 0); /* connection still fine */
}

static void test_http_status_mapping(void **state) {
  rr_err e;
  assert_int_equal(unary(*state, "Http404", 5000, &e), -1);
  assert_int_equal(e.code, RR_UNIMPLEMENTED);
  assert_non_null(strstr(e.msg, "HTTP status 404"));
  assert_int_equal(unary(*state, "Http503", 5000, &e), -1);
  assert_int_equal(e.code, RR_UNAVAILABLE);
}

static void test_reset_mapping(void **state) {
  rr_err e;
  assert_int_equal(unary(*state, "Refused", 5000, &e), -1);
  assert_int_equal(e.code, RR_UNAVAILABLE);
  assert_int_equal(unary(*state, "Cancel", 5000, &e), -1);
  assert_int_equal(e.code, RR_CANCELLED);
  assert_int_equal(unary(*state, "Echo", 5000, &e), 0);
}

static void test_missing_trailers(void **state) {
  rr_err e;
  assert_int_equal(unary(*state, "NoStatus", 5000, &e), -1);
  assert_int_equal(e.code, RR_INTERNAL);
  assert_non_null(strstr(e.msg, "without sending a grpc-status"));
}

static void test_deadline_on_silent_server(void **state) {
  rr_err e;
  uint64_t t0 = rr_now_mono_ms();
  assert_int_equal(unary(*state, "Silent", 200, &e), -1);
  uint64_t took = rr_now_mono_ms() - t0;
  assert_int_equal(e.code, RR_DEADLINE_EXCEEDED);
  assert_true(took >= 200 && took < 30000);             /* ended by the deadline, not a hang */
  assert_int_equal(unary(*state, "Echo", 5000, &e), 0); /* the stream was reset, not the conn */
}

static void test_max_message(void **state) {
  rr_err e;
  fixture *f = *state;
  rpc_client_call *call;
  assert_int_equal(rpc_client_call_start(f->c, "/t.S/TooBig", 5000, &call, &e), 0);
  assert_int_equal(rpc_client_call_close_send(call, &e), 0);
  uint8_t *m;
  size_t n;
  assert_int_equal(rpc_client_call_recv(call, &m, &n, &e), -1);
  assert_int_equal(e.code, RR_RESOURCE_EXHAUSTED);
  rpc_client_call_free(call);
  assert_int_equal(unary(*state, "Echo", 5000, &e), 0);
}

static void test_streaming_big_messages(void **state) {
  /* 4 MiB in 64 KiB messages then a 3 MiB one: reassembly across frames and
   * window credit as we consume (without it this stalls at the window) */
  rr_err e;
  fixture *f = *state;
  rpc_client_call *call;
  assert_int_equal(rpc_client_call_start(f->c, "/t.S/Big", 10000, &call, &e), 0);
  assert_int_equal(rpc_client_call_close_send(call, &e), 0);
  int got = 0;
  uint8_t *m;
  size_t n;
  while (recv_next(call, &m, &n)) {
    assert_int_equal(n, got < 64 ? 65536 : 3u << 20);
    for (size_t i = 0; i < n; i += 4099)
      assert_int_equal(m[i], (uint8_t)(i + (size_t)(got < 64 ? got : 0)));
    free(m);
    got++;
  }
  assert_int_equal(got, 65);
  rpc_client_call_free(call);
}

static void test_concurrent_streams_out_of_order(void **state) {
  rr_err e;
  fixture *f = *state;
  rpc_client_call *calls[3];
  char body[3][8];
  for (int i = 0; i < 3; i++) {
    snprintf(body[i], sizeof body[i], "call-%d", i);
    assert_int_equal(rpc_client_call_start(f->c, "/t.S/Gather", 5000, &calls[i], &e), 0);
    assert_int_equal(rpc_client_call_send(calls[i], body[i], 6, &e), 0);
    assert_int_equal(rpc_client_call_close_send(calls[i], &e), 0);
  }
  for (int i = 0; i < 3; i++) { /* the server answers 2, 1, 0; we read 0, 1, 2 */
    uint8_t *m;
    size_t n;
    assert_int_equal(rpc_client_call_recv(calls[i], &m, &n, &e), RPC_CLIENT_CALL_MESSAGE);
    assert_int_equal(n, 6);
    assert_memory_equal(m, body[i], 6);
    free(m);
    assert_int_equal(rpc_client_call_recv(calls[i], &m, &n, &e), RPC_CLIENT_CALL_END);
  }
  for (int i = 0; i < 3; i++)
    rpc_client_call_free(calls[i]);
}

static void test_bidi_many_messages(void **state) {
  /* the Echo server answers after our half-close with everything we sent */
  rr_err e;
  fixture *f = *state;
  rpc_client_call *call;
  assert_int_equal(rpc_client_call_start(f->c, "/t.S/Echo", 10000, &call, &e), 0);
  uint8_t msg[1000];
  for (int i = 0; i < 2000; i++) {
    memset(msg, i & 0xff, sizeof msg);
    assert_int_equal(rpc_client_call_send(call, msg, (size_t)(i % 1000), &e), 0);
  }
  assert_int_equal(rpc_client_call_close_send(call, &e), 0);
  for (int i = 0; i < 2000; i++) {
    uint8_t *m;
    size_t n;
    assert_int_equal(rpc_client_call_recv(call, &m, &n, &e), RPC_CLIENT_CALL_MESSAGE);
    assert_int_equal(n, (size_t)(i % 1000));
    if (n)
      assert_int_equal(m[n - 1], i & 0xff);
    free(m);
  }
  uint8_t *m;
  size_t n;
  assert_int_equal(rpc_client_call_recv(call, &m, &n, &e), RPC_CLIENT_CALL_END);
  rpc_client_call_free(call);
}

static void test_server_vanishes(void **state) {
  rr_err e;
  fixture *f = *state;
  rpc_client_call *silent;
  assert_int_equal(rpc_client_call_start(f->c, "/t.S/Silent", 0, &silent, &e), 0);
  assert_int_equal(rpc_client_call_close_send(silent, &e), 0);
  assert_int_equal(unary(*state, "Close", 5000, &e), -1);
  assert_int_equal(e.code, RR_UNAVAILABLE);
  assert_non_null(strstr(e.msg, "socketpair"));
  uint8_t *m;
  size_t n;
  assert_int_equal(rpc_client_call_recv(silent, &m, &n, &e), -1); /* the other call fails too */
  assert_int_equal(e.code, RR_UNAVAILABLE);
  rpc_client_call_free(silent);
  assert_int_equal(unary(*state, "Echo", 5000, &e), -1); /* and new calls */
  assert_int_equal(e.code, RR_UNAVAILABLE);
}

static void test_cancel_then_reuse(void **state) {
  rr_err e;
  fixture *f = *state;
  rpc_client_call *call;
  assert_int_equal(rpc_client_call_start(f->c, "/t.S/Silent", 0, &call, &e), 0);
  rpc_client_call_cancel(call);
  uint8_t *m;
  size_t n;
  assert_int_equal(rpc_client_call_recv(call, &m, &n, &e), -1);
  assert_int_equal(e.code, RR_CANCELLED);
  rpc_client_call_free(call);
  assert_int_equal(unary(*state, "Echo", 5000, &e), 0);
}

/* ---- sink: one-field messages straight from the receive buffer ---- */

typedef struct sink_log {
  uint8_t *b;
  size_t n, sunk;    /* sunk: bytes the sink got */
  size_t stop_after; /* refuse once this many came (0: never) */
} sink_log;

static void log_add(sink_log *l, const void *p, size_t n) {
  l->b = realloc(l->b, l->n + n + 1);
  assert_non_null(l->b);
  if (n) /* an empty message comes as NULL, 0 */
    memcpy(l->b + l->n, p, n);
  l->n += n;
}

static int sink_fn(void *ud, uint32_t field, const uint8_t *data, size_t len) {
  sink_log *l = ud;
  assert_true(field == 2 || field == 3);
  assert_true(len > 0);
  log_add(l, data, len);
  l->sunk += len;
  return l->stop_after && l->sunk >= l->stop_after;
}

/* How the log holds message m: a sink field's payload as it is, any other
 * message marked and whole (so a wrong turn or order shows). */
static void log_message(sink_log *l, const uint8_t *m, size_t n) {
  uint64_t v = 0;
  size_t i = 1;
  if (n >= 2 && (m[0] == (2 << 3 | 2) || m[0] == (3 << 3 | 2))) {
    for (unsigned sh = 0; i < n; i++, sh += 7) {
      v |= (uint64_t)(m[i] & 0x7f) << sh;
      if (!(m[i] & 0x80))
        break;
    }
    if (i < n && v == n - i - 1) {
      log_add(l, m + i + 1, (size_t)v);
      return;
    }
  }
  uint8_t mark[5] = {'<', (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n, '>'};
  log_add(l, mark, sizeof mark);
  log_add(l, m, n);
}

static void test_sink_one_field_messages(void **state) {
  /* the Echo server sends back every message in 16 KiB DATA frames, so
   * message heads and payloads split at every place */
  rr_err e;
  fixture *f = *state;
  rpc_client_call *call;
  sink_log got = {0}, want = {0};
  assert_int_equal(rpc_client_call_start(f->c, "/t.S/Echo", 20000, &call, &e), 0);
  rpc_client_call_set_sink(call, 1u << 2 | 1u << 3, sink_fn, &got);
  static const size_t sizes[] = {1, 127, 128, 16383, 16384, 0, 70000, 5, 300, 16379, 9};
  uint8_t *msg = malloc(80000);
  unsigned seed = 7;
  for (int i = 0; i < 150; i++) {
    size_t len = sizes[i % RR_ARRAY_SIZE(sizes)] + (size_t)(i / 11), n = 0;
    int kind = i % 7; /* 0-3: field 2 or 3 alone, 4: field 4, 5: two fields, 6: empty */
    if (kind == 6 && i % 2) {
      n = 0;
    } else {
      msg[n++] = (uint8_t)((kind == 4 ? 4 : kind % 2 ? 3 : 2) << 3 | 2);
      n += rpc_wire_put_varint(msg + n, len);
      for (size_t k = 0; k < len; k++)
        msg[n++] = (uint8_t)(rand_r(&seed) >> 8);
      if (kind == 5) {
        msg[n++] = 3 << 3 | 2;
        msg[n++] = 1;
        msg[n++] = 'x';
      }
    }
    log_message(&want, msg, n);
    if (rpc_client_call_send(call, msg, n, &e) < 0)
      fail_msg("send %d: %s", i, e.msg);
  }
  free(msg);
  assert_int_equal(rpc_client_call_close_send(call, &e), 0);
  /* the connection driven through another call while nothing is taken
   * from this one's queue: what follows a queued message must queue too */
  rpc_client_call *idle;
  assert_int_equal(rpc_client_call_start(f->c, "/t.S/Silent", 0, &idle, &e), 0);
  assert_int_equal(rpc_client_call_close_send(idle, &e), 0);
  for (int k = 0; k < 5; k++)
    assert_true(rpc_client_call_wait(idle, NULL, 0, 100, &e) >= 0);
  rpc_client_call_free(idle);
  uint8_t *m;
  size_t n;
  while (recv_next(call, &m, &n)) {
    log_message(&got, m, n);
    free(m);
  }
  assert_true(got.sunk > 0); /* the first message at least went to the sink */
  assert_int_equal(got.n, want.n);
  assert_memory_equal(got.b, want.b, want.n);
  free(got.b);
  free(want.b);
  rpc_client_call_free(call);
}

static void test_sink_refuses(void **state) {
  rr_err e;
  fixture *f = *state;
  rpc_client_call *call;
  sink_log got = {.stop_after = 20000};
  assert_int_equal(rpc_client_call_start(f->c, "/t.S/Echo", 20000, &call, &e), 0);
  rpc_client_call_set_sink(call, 1u << 2, sink_fn, &got);
  uint8_t *msg = calloc(1, 60000);
  msg[0] = 2 << 3 | 2;
  size_t h = 1 + rpc_wire_put_varint(msg + 1, 50000);
  assert_int_equal(rpc_client_call_send(call, msg, h + 50000, &e), 0);
  assert_int_equal(rpc_client_call_send(call, msg, h + 50000, &e), 0);
  free(msg);
  assert_int_equal(rpc_client_call_close_send(call, &e), 0);
  uint8_t *m;
  size_t n;
  assert_int_equal(rpc_client_call_recv(call, &m, &n, &e), -1);
  assert_int_equal(e.code, RR_CANCELLED);
  assert_non_null(strstr(e.msg, "stopped by the receiver"));
  assert_true(got.sunk >= 20000 && got.sunk < 100000);
  free(got.b);
  rpc_client_call_free(call);
  assert_int_equal(unary(*state, "Echo", 5000, &e), 0); /* the stream was reset, not the conn */
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_address_parse),
      cmocka_unit_test(test_connect_refused),
      cmocka_unit_test_setup_teardown(test_echo_and_reuse, setup, teardown),
      cmocka_unit_test_setup_teardown(test_trailers_only_message_decoded, setup, teardown),
      cmocka_unit_test_setup_teardown(test_http_status_mapping, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reset_mapping, setup, teardown),
      cmocka_unit_test_setup_teardown(test_missing_trailers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_deadline_on_silent_server, setup, teardown),
      cmocka_unit_test_setup_teardown(test_max_message, setup, teardown),
      cmocka_unit_test_setup_teardown(test_streaming_big_messages, setup, teardown),
      cmocka_unit_test_setup_teardown(test_concurrent_streams_out_of_order, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bidi_many_messages, setup, teardown),
      cmocka_unit_test_setup_teardown(test_server_vanishes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_then_reuse, setup, teardown),
      cmocka_unit_test_setup_teardown(test_sink_one_field_messages, setup, teardown),
      cmocka_unit_test_setup_teardown(test_sink_refuses, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
