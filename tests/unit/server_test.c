/* The server driven in-process over a socketpair by a raw nghttp2 client:
 * call shapes, Trailers-Only, deadlines, cancellation, the on_close
 * contract, receive pause (flow control), header-size trimming, shutdown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/loop.h"
#include "common/util.h"
#include "rpc/server.h"
#include "rpc/wire.h"
#include "test/v1/echo.pb-c.h"

/* ---- a tiny HTTP/2 client ---- */

typedef struct cstream {
  char headers[4096]; /* "name: value\n" of every HEADERS frame */
  int nheaders_frames;
  uint8_t *data;
  size_t len;
  bool closed;
  uint32_t close_code;
} cstream;

typedef struct client {
  int fd;
  nghttp2_session *h2;
  cstream st[8]; /* index by (stream_id - 1) / 2 */
  const uint8_t *body;
  size_t body_len, body_off;
  bool body_eof;
} client;

static cstream *client_stream(client *cl, int32_t id) { return &cl->st[((id - 1) / 2) % 8]; }

static ssize_t cl_send(nghttp2_session *s, const uint8_t *d, size_t n, int flags, void *u) {
  client *cl = u;
  ssize_t w = send(cl->fd, d, n, MSG_NOSIGNAL);
  if (w < 0 && errno == EAGAIN)
    return NGHTTP2_ERR_WOULDBLOCK;
  return w < 0 ? NGHTTP2_ERR_CALLBACK_FAILURE : w;
}

static int cl_on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                        size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                        void *u) {
  cstream *st = client_stream(u, f->hd.stream_id);
  size_t used = strlen(st->headers);
  snprintf(st->headers + used, sizeof st->headers - used, "%.*s: %.*s\n", (int)namelen, name,
           (int)valuelen, value);
  return 0;
}

static int cl_on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *u) {
  if (f->hd.type == NGHTTP2_HEADERS)
    client_stream(u, f->hd.stream_id)->nheaders_frames++;
  return 0;
}

static int cl_on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *d, size_t n,
                      void *u) {
  cstream *st = client_stream(u, id);
  st->data = realloc(st->data, st->len + n);
  memcpy(st->data + st->len, d, n);
  st->len += n;
  return 0;
}

static int cl_on_close(nghttp2_session *s, int32_t id, uint32_t code, void *u) {
  cstream *st = client_stream(u, id);
  st->closed = true;
  st->close_code = code;
  return 0;
}

static ssize_t cl_body_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len,
                            uint32_t *flags, nghttp2_data_source *src, void *u) {
  client *cl = u;
  size_t n = cl->body_len - cl->body_off < len ? cl->body_len - cl->body_off : len;
  if (n)
    memcpy(buf, cl->body + cl->body_off, n);
  cl->body_off += n;
  if (cl->body_off == cl->body_len) {
    if (!cl->body_eof)
      return n ? (ssize_t)n : NGHTTP2_ERR_DEFERRED;
    *flags |= NGHTTP2_DATA_FLAG_EOF;
  }
  return (ssize_t)n;
}

static void client_init(client *cl, int fd, uint32_t max_header_list) {
  memset(cl, 0, sizeof *cl);
  cl->fd = fd;
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  nghttp2_session_callbacks *cbs;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_send_callback(cbs, cl_send);
  nghttp2_session_callbacks_set_on_header_callback(cbs, cl_on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, cl_on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, cl_on_data);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, cl_on_close);
  assert_int_equal(nghttp2_session_client_new(&cl->h2, cbs, cl), 0);
  nghttp2_session_callbacks_del(cbs);
  nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, max_header_list}};
  nghttp2_submit_settings(cl->h2, NGHTTP2_FLAG_NONE, iv, max_header_list ? 1 : 0);
}

static void client_free(client *cl) {
  nghttp2_session_del(cl->h2);
  for (size_t i = 0; i < 8; i++)
    free(cl->st[i].data);
  if (cl->fd >= 0)
    close(cl->fd);
}

/* Run loop and client until cond(arg) or ~5 s. */
static bool pump(loop *l, client *cl, bool (*cond)(void *), void *arg) {
  for (int i = 0; i < (cond ? 1000 : 40); i++) {
    if (cond && cond(arg))
      return true;
    if (cl && cl->fd >= 0) {
      nghttp2_session_send(cl->h2);
      uint8_t buf[65536];
      ssize_t n;
      while ((n = recv(cl->fd, buf, sizeof buf, 0)) > 0)
        nghttp2_session_mem_recv(cl->h2, buf, (size_t)n);
      nghttp2_session_send(cl->h2);
    }
    loop_run_once(l, 5, NULL);
  }
  return cond ? cond(arg) : true;
}

static int32_t client_call(client *cl, const char *path, const char *timeout, bool te,
                           const uint8_t *body, size_t len, bool eof) {
  nghttp2_nv nva[8];
  size_t n = 0;
#define NV(k, v) nva[n++] = (nghttp2_nv){(uint8_t *)k, (uint8_t *)v, strlen(k), strlen(v), 0}
  NV(":method", "POST");
  NV(":scheme", "http");
  NV(":authority", "test");
  NV(":path", path);
  NV("content-type", "application/grpc");
  if (te)
    NV("te", "trailers");
  if (timeout)
    NV("grpc-timeout", timeout);
#undef NV
  cl->body = body;
  cl->body_len = len;
  cl->body_off = 0;
  cl->body_eof = eof;
  nghttp2_data_provider prd = {.read_callback = cl_body_read};
  return nghttp2_submit_request(cl->h2, NULL, nva, n, &prd, NULL);
}

/* ---- a test service ---- */

typedef struct counters {
  int messages, half_closes, closes, writables;
  rpc_close_reason last_reason;
  rpc_call *call;
  bool answer; /* unary: reply at once */
  bool pause_first;
  const char *finish_msg;
} counters;

static counters ctr;

static void t_on_message(rpc_call *c, ProtobufCMessage *msg) {
  Test__V1__SimpleRequest *req = (Test__V1__SimpleRequest *)msg;
  ctr.messages++;
  ctr.call = c;
  if (ctr.pause_first && ctr.messages == 1)
    rpc_call_pause_recv(c, true);
  if (ctr.answer) {
    Test__V1__SimpleResponse resp = TEST__V1__SIMPLE_RESPONSE__INIT;
    Test__V1__Payload p = TEST__V1__PAYLOAD__INIT;
    p.body = req->payload ? req->payload->body : p.body;
    resp.payload = &p;
    assert_int_equal(rpc_call_send(c, &resp.base, NULL), 0);
    rpc_call_finish(c, ctr.finish_msg ? RR_ABORTED : RR_OK, ctr.finish_msg);
    rpc_call_finish(c, RR_INTERNAL, "ignored: finish is idempotent");
    assert_int_equal(rpc_call_send(c, &resp.base, NULL), -1);
  }
  protobuf_c_message_free_unpacked(msg, NULL);
}

static void t_on_half_close(rpc_call *c) { ctr.half_closes++; }
static void t_on_writable(rpc_call *c) { ctr.writables++; }

static void t_on_close(rpc_call *c, rpc_close_reason reason) {
  ctr.closes++;
  ctr.last_reason = reason;
  ctr.call = NULL;
}

typedef struct fixture {
  loop *l;
  rpc_server *srv;
  client cl;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  memset(&ctr, 0, sizeof ctr);
  assert_int_equal(loop_new(&f->l, NULL), 0);
  assert_int_equal(rpc_server_new(&f->srv, f->l, NULL, NULL), 0);
  rpc_method m[] = {
      {"/test.v1.Echo/UnaryCall", &test__v1__simple_request__descriptor, false, false, t_on_message,
       NULL, NULL, t_on_close, NULL},
      {"/test.v1.Echo/FullDuplexCall", &test__v1__simple_request__descriptor, true, true,
       t_on_message, t_on_half_close, t_on_writable, t_on_close, NULL},
  };
  for (size_t i = 0; i < RR_ARRAY_SIZE(m); i++)
    assert_int_equal(rpc_server_add_method(f->srv, &m[i], NULL), 0);
  rr_err e;
  assert_int_equal(rpc_server_add_method(f->srv, &m[0], &e), -1);
  assert_int_equal(e.code, RR_ALREADY_EXISTS);
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  assert_int_equal(rpc_server_add_fds(f->srv, sv[0], sv[0], NULL), 0);
  client_init(&f->cl, sv[1], 0);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  client_free(&f->cl);
  rpc_server_free(f->srv);
  loop_run_once(f->l, 0, NULL);
  loop_free(f->l);
  free(f);
  return 0;
}

static size_t frame_request(uint8_t *out, size_t size, const char *body) {
  Test__V1__SimpleRequest req = TEST__V1__SIMPLE_REQUEST__INIT;
  Test__V1__Payload p = TEST__V1__PAYLOAD__INIT;
  p.body.data = (uint8_t *)body;
  p.body.len = strlen(body);
  req.payload = &p;
  size_t n = protobuf_c_message_get_packed_size(&req.base);
  assert_true(n + 5 <= size);
  rpc_wire_put_prefix(out, false, (uint32_t)n);
  protobuf_c_message_pack(&req.base, out + 5);
  return n + 5;
}

static bool stream_closed(void *arg) { return ((cstream *)arg)->closed; }
static bool closes_seen(void *arg) { return ctr.closes >= *(int *)arg; }
static bool have_message(void *arg) { return ctr.messages >= *(int *)arg; }

static void test_unary_round_trip(void **state) {
  fixture *f = *state;
  ctr.answer = true;
  uint8_t body[256];
  size_t n = frame_request(body, sizeof body, "hello");
  int32_t id = client_call(&f->cl, "/test.v1.Echo/UnaryCall", NULL, true, body, n, true);
  cstream *st = client_stream(&f->cl, id);
  assert_true(pump(f->l, &f->cl, stream_closed, st));
  int one = 1;
  assert_true(pump(f->l, &f->cl, closes_seen, &one));
  assert_int_equal(ctr.messages, 1);
  assert_int_equal(ctr.closes, 1);
  assert_int_equal(ctr.last_reason, RPC_CLOSE_FINISHED);
  assert_non_null(strstr(st->headers, ":status: 200"));
  assert_non_null(strstr(st->headers, "grpc-status: 0"));
  assert_int_equal(st->nheaders_frames, 2); /* headers, then trailers */
  /* one message echoing "hello" */
  assert_true(st->len > 5);
  Test__V1__SimpleResponse *resp =
      test__v1__simple_response__unpack(NULL, st->len - 5, st->data + 5);
  assert_non_null(resp);
  assert_memory_equal(resp->payload->body.data, "hello", 5);
  test__v1__simple_response__free_unpacked(resp, NULL);
}

static void test_unknown_method_trailers_only(void **state) {
  fixture *f = *state;
  int32_t id = client_call(&f->cl, "/test.v1.Echo/Nope", NULL, true, NULL, 0, true);
  cstream *st = client_stream(&f->cl, id);
  assert_true(pump(f->l, &f->cl, stream_closed, st));
  assert_int_equal(st->nheaders_frames, 1);
  assert_non_null(strstr(st->headers, "grpc-status: 12"));
  assert_non_null(strstr(st->headers, "unknown method"));
  assert_int_equal(st->len, 0);
  id = client_call(&f->cl, "/no.Such/Nope", NULL, true, NULL, 0, true);
  st = client_stream(&f->cl, id);
  assert_true(pump(f->l, &f->cl, stream_closed, st));
  assert_non_null(strstr(st->headers, "unknown service no.Such"));
  assert_int_equal(ctr.closes, 0); /* no handler ever saw these */
}

static void test_missing_te_and_bad_timeout(void **state) {
  fixture *f = *state;
  int32_t id = client_call(&f->cl, "/test.v1.Echo/UnaryCall", NULL, false, NULL, 0, true);
  cstream *st = client_stream(&f->cl, id);
  assert_true(pump(f->l, &f->cl, stream_closed, st));
  assert_non_null(strstr(st->headers, ":status: 400"));
  assert_non_null(strstr(st->headers, "grpc-status: 3"));
  id = client_call(&f->cl, "/test.v1.Echo/UnaryCall", "12x", true, NULL, 0, true);
  st = client_stream(&f->cl, id);
  assert_true(pump(f->l, &f->cl, stream_closed, st));
  assert_non_null(strstr(st->headers, "grpc-status: 13"));
  assert_non_null(strstr(st->headers, "grpc-timeout"));
}

static void test_unary_without_message(void **state) {
  fixture *f = *state;
  int32_t id = client_call(&f->cl, "/test.v1.Echo/UnaryCall", NULL, true, NULL, 0, true);
  cstream *st = client_stream(&f->cl, id);
  assert_true(pump(f->l, &f->cl, stream_closed, st));
  assert_non_null(strstr(st->headers, "grpc-status: 12"));
  assert_int_equal(ctr.messages, 0);
}

static void test_deadline(void **state) {
  fixture *f = *state;
  uint8_t body[64];
  size_t n = frame_request(body, sizeof body, "x");
  /* a duplex call that never half-closes and a handler that never answers */
  int32_t id = client_call(&f->cl, "/test.v1.Echo/FullDuplexCall", "50m", true, body, n, false);
  cstream *st = client_stream(&f->cl, id);
  assert_true(pump(f->l, &f->cl, stream_closed, st));
  assert_int_equal(ctr.messages, 1);
  assert_int_equal(ctr.closes, 1);
  assert_int_equal(ctr.last_reason, RPC_CLOSE_DEADLINE);
  assert_non_null(strstr(st->headers, "grpc-status: 4"));
  assert_int_equal(st->close_code, NGHTTP2_NO_ERROR); /* RST(NO_ERROR) after trailers */
  pump(f->l, &f->cl, NULL, NULL);
  assert_int_equal(ctr.closes, 1);
}

static void test_cancel(void **state) {
  fixture *f = *state;
  uint8_t body[64];
  size_t n = frame_request(body, sizeof body, "x");
  int32_t id = client_call(&f->cl, "/test.v1.Echo/FullDuplexCall", NULL, true, body, n, false);
  int one = 1;
  assert_true(pump(f->l, &f->cl, have_message, &one));
  nghttp2_submit_rst_stream(f->cl.h2, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
  assert_true(pump(f->l, &f->cl, closes_seen, &one));
  assert_int_equal(ctr.last_reason, RPC_CLOSE_CANCELLED);
  pump(f->l, &f->cl, NULL, NULL);
  assert_int_equal(ctr.closes, 1);
  assert_int_equal(ctr.half_closes, 0);
}

static void test_disconnect_closes_calls(void **state) {
  fixture *f = *state;
  uint8_t body[64];
  size_t n = frame_request(body, sizeof body, "x");
  client_call(&f->cl, "/test.v1.Echo/FullDuplexCall", NULL, true, body, n, false);
  int one = 1;
  assert_true(pump(f->l, &f->cl, have_message, &one));
  close(f->cl.fd);
  f->cl.fd = -1;
  assert_true(pump(f->l, NULL, closes_seen, &one));
  assert_int_equal(ctr.last_reason, RPC_CLOSE_CANCELLED);
}

static bool window_exhausted(void *arg) {
  client *cl = arg;
  return cl->body_off > 0 && nghttp2_session_get_stream_remote_window_size(cl->h2, 1) == 0;
}

static void test_pause_recv_holds_back_client(void **state) {
  fixture *f = *state;
  ctr.pause_first = true;
  /* 40 messages of ~100 KiB: 4 MiB, far more than the 1 MiB stream window */
  size_t one_len = 100 * 1024, count = 40;
  char *text = malloc(one_len + 1);
  memset(text, 'a', one_len);
  text[one_len] = '\0';
  uint8_t *body = malloc(count * (one_len + 16));
  size_t len = 0;
  for (size_t i = 0; i < count; i++)
    len += frame_request(body + len, one_len + 16, text);
  client_call(&f->cl, "/test.v1.Echo/FullDuplexCall", NULL, true, body, len, true);
  assert_true(pump(f->l, &f->cl, window_exhausted, &f->cl));
  pump(f->l, &f->cl, NULL, NULL);
  assert_int_equal(ctr.messages, 1);
  assert_true(f->cl.body_off < 2 * 1024 * 1024); /* the client was held back */
  assert_true(ctr.call != NULL);
  rpc_call_pause_recv(ctr.call, false);
  int all = (int)count;
  assert_true(pump(f->l, &f->cl, have_message, &all));
  assert_int_equal(f->cl.body_off, len);
  assert_true(pump(f->l, &f->cl, NULL, NULL));
  assert_int_equal(ctr.half_closes, 1);
  rpc_call_finish(ctr.call, RR_OK, NULL);
  int one = 1;
  assert_true(pump(f->l, &f->cl, closes_seen, &one));
  assert_int_equal(ctr.last_reason, RPC_CLOSE_FINISHED);
  free(text);
  free(body);
}

static void test_message_trimmed_to_peer_limit(void **state) {
  fixture *f = *state;
  /* a second client advertising a small header list limit */
  client_free(&f->cl);
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  assert_int_equal(rpc_server_add_fds(f->srv, sv[0], sv[0], NULL), 0);
  client_init(&f->cl, sv[1], 1024);
  char *big = malloc(5001);
  memset(big, '\n', 5000); /* each byte becomes 3 when percent-encoded */
  big[5000] = '\0';
  ctr.answer = true;
  ctr.finish_msg = big;
  uint8_t body[64];
  size_t n = frame_request(body, sizeof body, "x");
  int32_t id = client_call(&f->cl, "/test.v1.Echo/UnaryCall", NULL, true, body, n, true);
  cstream *st = client_stream(&f->cl, id);
  assert_true(pump(f->l, &f->cl, stream_closed, st));
  const char *m = strstr(st->headers, "grpc-message: ");
  assert_non_null(m);
  const char *end = strchr(m, '\n');
  assert_true(end - m < 1024);
  assert_true(end - m > 500);
  assert_non_null(strstr(st->headers, "grpc-status: 10"));
  free(big);
}

static void test_shutdown_closes_calls(void **state) {
  fixture *f = *state;
  uint8_t body[64];
  size_t n = frame_request(body, sizeof body, "x");
  client_call(&f->cl, "/test.v1.Echo/FullDuplexCall", NULL, true, body, n, false);
  int one = 1;
  assert_true(pump(f->l, &f->cl, have_message, &one));
  rpc_server_shutdown(f->srv);
  assert_int_equal(ctr.closes, 1);
  assert_int_equal(ctr.last_reason, RPC_CLOSE_SHUTDOWN);
  const char *names[4];
  assert_int_equal(rpc_server_service_names(f->srv, names, 4), 1);
  assert_string_equal(names[0], "test.v1.Echo");
  assert_true(rpc_server_has_service(f->srv, "test.v1.Echo"));
  assert_false(rpc_server_has_service(f->srv, "test.v1"));
}

static void test_listen_errors(void **state) {
  fixture *f = *state;
  rr_err e;
  assert_int_equal(rpc_server_listen(f->srv, "0.0.0.0:0", &e), -1);
  assert_non_null(strstr(e.msg, "TLS is required for non-loopback addresses"));
  assert_int_equal(rpc_server_listen(f->srv, "nonsense", &e), -1);
  assert_int_equal(rpc_server_listen(f->srv, "127.0.0.1:0", &e), 0);
  assert_non_null(strstr(rpc_server_listen_address(f->srv, 0), "127.0.0.1:"));
  assert_null(rpc_server_listen_address(f->srv, 1));
}

/* Bytes read before the server took the fds (runrpc peeks at the preface on
 * a pipe): fed first; a head that is not HTTP/2 closes the connection. */
static void test_add_fds_head(void **state) {
  fixture *f = *state;
  static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  int in[2], out[2];
  rr_err e;
  signal(SIGPIPE, SIG_IGN); /* a pipe (not a socket) whose reader left: EPIPE, as runrpc has it */
  assert_int_equal(rpc_server_connection_count(f->srv), 1); /* the fixture's */
  assert_int_equal(pipe2(in, O_CLOEXEC), 0);
  assert_int_equal(pipe2(out, O_CLOEXEC), 0);
  assert_int_equal(rpc_server_add_fds_head(f->srv, in[0], out[1], preface, 24, NULL), 0);
  assert_int_equal(rpc_server_connection_count(f->srv), 2);
  loop_run_once(f->l, 0, NULL);
  uint8_t buf[64];
  ssize_t n = read(out[0], buf, sizeof buf);
  assert_true(n >= 9);
  assert_int_equal(buf[3], 4); /* our SETTINGS frame */
  close(in[1]);
  close(out[0]);
  assert_int_equal(pipe2(in, O_CLOEXEC), 0);
  assert_int_equal(pipe2(out, O_CLOEXEC), 0);
  assert_int_equal(
      rpc_server_add_fds_head(f->srv, in[0], out[1], "GET / HTTP/1.1\r\n\r\n1234567", 24, &e), -1);
  assert_int_equal(e.code, RR_INVALID_ARGUMENT);
  close(in[1]);
  close(out[0]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_add_fds_head, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unary_round_trip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unknown_method_trailers_only, setup, teardown),
      cmocka_unit_test_setup_teardown(test_missing_te_and_bad_timeout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unary_without_message, setup, teardown),
      cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
      cmocka_unit_test_setup_teardown(test_disconnect_closes_calls, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pause_recv_holds_back_client, setup, teardown),
      cmocka_unit_test_setup_teardown(test_message_trimmed_to_peer_limit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_shutdown_closes_calls, setup, teardown),
      cmocka_unit_test_setup_teardown(test_listen_errors, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
