/* rpc-testserver: serves test.v1.Echo (grpc interop TestService shapes) for
 * tests/integration/test_rpc_interop.py.
 *   rpc-testserver --listen unix:PATH|h2c:HOST:PORT|HOST:PORT [--listen ...]
 *                  [--max-connections N] [--keepalive-ms MS] [--handshake-ms MS]
 *                  [--tls-cert F --tls-key F --client-ca F [--tls12] [--client-cert-optional]]
 *                  [--probe-method PATH]
 * With the TLS files, HOST:PORT listeners serve TLS (h2c: and unix: stay
 * plaintext); without them HOST:PORT is plaintext loopback. Every call gets
 * initial metadata x-runrpc-peer-tls (0/1), x-runrpc-peer-cert (0/1: a client
 * certificate) and x-runrpc-peer-sans (SANs of the client certificate,
 * comma-separated). Connection-level events are
 * printed on stderr as "conn-log peer=ADDR what=...".
 * --probe-method PATH (e.g. /runrpc.v1.Jobs/List, for runctl) answers any
 * unary request on PATH with UNIMPLEMENTED "tls probe: resumed=0|1" and
 * prints "tls-call path=PATH resumed=0|1" on stderr: whether the caller's
 * TLS session was resumed, for the session cache tests.
 * Prints "listening ADDR" per listener, then "ready"; SIGTERM/SIGINT exit 0. */
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>

#include "common/loop.h"
#include "common/util.h"
#include "rpc/internal.h" /* the connection's SSL, for --probe-method */
#include "rpc/server.h"
#include "test/v1/echo.pb-c.h"

typedef struct echo_call {
  rpc_call *call;
  loop *l;
  uint64_t timer;
  int32_t *sizes, *intervals; /* responses still to send */
  size_t n, idx;
  bool waited, half_closed, streaming_out_only;
  int code;
  char *msg;
  int64_t aggregated;
  Test__V1__SimpleRequest *unary; /* held while sleeping */
} echo_call;

static echo_call *echo_state(rpc_call *c) {
  echo_call *ec = rpc_call_data(c);
  if (ec)
    return ec;
  ec = calloc(1, sizeof *ec);
  if (!ec)
    return NULL;
  ec->call = c;
  ec->l = rpc_call_loop(c);
  rpc_call_set_data(c, ec);
  const rpc_peer *peer = rpc_call_peer(c);
  char sans[2048] = "";
  for (size_t i = 0; i < peer->nsans; i++) {
    size_t used = strlen(sans);
    snprintf(sans + used, sizeof sans - used, "%s%s", i ? "," : "", peer->sans[i]);
  }
  rpc_call_add_metadata(c, false, "x-runrpc-peer-tls", peer->tls ? "1" : "0", 1, NULL);
  rpc_call_add_metadata(c, false, "x-runrpc-peer-sans", sans, strlen(sans), NULL);
  rpc_call_add_metadata(c, false, "x-runrpc-peer-cert", peer->tls_cert ? "1" : "0", 1, NULL);
  /* custom_metadata: echo these back, initial and trailing */
  size_t len;
  const char *v = rpc_call_metadata(c, "x-grpc-test-echo-initial", &len);
  if (v)
    rpc_call_add_metadata(c, false, "x-grpc-test-echo-initial", v, len, NULL);
  v = rpc_call_metadata(c, "x-grpc-test-echo-trailing-bin", &len);
  if (v)
    rpc_call_add_metadata(c, true, "x-grpc-test-echo-trailing-bin", v, len, NULL);
  return ec;
}

static void echo_on_close(rpc_call *c, rpc_close_reason reason) {
  echo_call *ec = rpc_call_data(c);
  if (!ec)
    return;
  loop_timer_cancel(ec->l, ec->timer);
  if (ec->unary)
    protobuf_c_message_free_unpacked(&ec->unary->base, NULL);
  free(ec->sizes);
  free(ec->intervals);
  free(ec->msg);
  free(ec);
}

static void echo_set_status(echo_call *ec, const Test__V1__EchoStatus *st) {
  if (!st || st->code == 0)
    return;
  ec->code = st->code;
  free(ec->msg);
  ec->msg = strdup(st->message ? st->message : "");
}

static int echo_send_payload(rpc_call *c, size_t size, bool simple, rr_err *e) {
  uint8_t *body = calloc(1, size ? size : 1);
  if (!body)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory for a %zu-byte payload", size);
  Test__V1__Payload p = TEST__V1__PAYLOAD__INIT;
  p.body.data = body;
  p.body.len = size;
  int r;
  if (simple) {
    Test__V1__SimpleResponse resp = TEST__V1__SIMPLE_RESPONSE__INIT;
    resp.payload = &p;
    r = rpc_call_send(c, &resp.base, e);
  } else {
    Test__V1__StreamingOutputCallResponse resp = TEST__V1__STREAMING_OUTPUT_CALL_RESPONSE__INIT;
    resp.payload = &p;
    r = rpc_call_send(c, &resp.base, e);
  }
  free(body);
  return r;
}

static void echo_pump(echo_call *ec);

static void echo_timer_fire(loop *l, void *data) {
  echo_call *ec = data;
  ec->timer = 0;
  echo_pump(ec);
}

/* Send the queued responses, honouring intervals and back-pressure. */
static void echo_pump(echo_call *ec) {
  rpc_call *c = ec->call;
  while (ec->idx < ec->n && !ec->timer) {
    if (rpc_call_queued(c) > RPC_CALL_HIGH_WATER)
      return; /* on_writable brings us back */
    int32_t us = ec->intervals[ec->idx];
    if (us > 0 && !ec->waited) {
      ec->waited = true;
      ec->timer = loop_timer_add(ec->l, (uint64_t)(us + 999) / 1000, echo_timer_fire, ec);
      return;
    }
    ec->waited = false;
    rr_err e;
    if (echo_send_payload(c, (size_t)(ec->sizes[ec->idx] > 0 ? ec->sizes[ec->idx] : 0), false, &e) <
        0) {
      rpc_call_finish_err(c, &e);
      return;
    }
    ec->idx++;
  }
  if (ec->idx == ec->n && (ec->streaming_out_only || ec->half_closed))
    rpc_call_finish(c, ec->code, ec->msg);
}

static int echo_queue(echo_call *ec, Test__V1__ResponseParameters **params, size_t n) {
  size_t total = ec->n + n;
  int32_t *s = realloc(ec->sizes, (total ? total : 1) * sizeof *s);
  if (s)
    ec->sizes = s;
  int32_t *iv = realloc(ec->intervals, (total ? total : 1) * sizeof *iv);
  if (iv)
    ec->intervals = iv;
  if (!s || !iv)
    return -1;
  for (size_t i = 0; i < n; i++) {
    ec->sizes[ec->n + i] = params[i]->size;
    ec->intervals[ec->n + i] = params[i]->interval_us;
  }
  ec->n = total;
  return 0;
}

static void empty_on_message(rpc_call *c, ProtobufCMessage *msg) {
  protobuf_c_message_free_unpacked(msg, NULL);
  echo_state(c);
  Test__V1__Empty out = TEST__V1__EMPTY__INIT;
  rr_err e;
  if (rpc_call_send(c, &out.base, &e) < 0)
    rpc_call_finish_err(c, &e);
  else
    rpc_call_finish(c, RR_OK, NULL);
}

static void unary_answer(echo_call *ec) {
  Test__V1__SimpleRequest *req = ec->unary;
  rpc_call *c = ec->call;
  echo_set_status(ec, req->response_status);
  rr_err e;
  if (ec->code)
    rpc_call_finish(c, ec->code, ec->msg);
  else if (echo_send_payload(c, (size_t)(req->response_size > 0 ? req->response_size : 0), true,
                             &e) < 0)
    rpc_call_finish_err(c, &e);
  else
    rpc_call_finish(c, RR_OK, NULL);
}

static void unary_sleep_fire(loop *l, void *data) {
  echo_call *ec = data;
  ec->timer = 0;
  unary_answer(ec);
}

static void unary_on_message(rpc_call *c, ProtobufCMessage *msg) {
  echo_call *ec = echo_state(c);
  if (!ec) {
    protobuf_c_message_free_unpacked(msg, NULL);
    rpc_call_finish(c, RR_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  ec->unary = (Test__V1__SimpleRequest *)msg;
  if (ec->unary->sleep_ms > 0)
    ec->timer = loop_timer_add(ec->l, (uint64_t)ec->unary->sleep_ms, unary_sleep_fire, ec);
  else
    unary_answer(ec);
}

static void stream_out_on_message(rpc_call *c, ProtobufCMessage *msg) {
  Test__V1__StreamingOutputCallRequest *req = (Test__V1__StreamingOutputCallRequest *)msg;
  echo_call *ec = echo_state(c);
  if (!ec || echo_queue(ec, req->response_parameters, req->n_response_parameters) < 0) {
    protobuf_c_message_free_unpacked(msg, NULL);
    rpc_call_finish(c, RR_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  ec->streaming_out_only = true;
  echo_set_status(ec, req->response_status);
  protobuf_c_message_free_unpacked(msg, NULL);
  echo_pump(ec);
}

static void duplex_on_message(rpc_call *c, ProtobufCMessage *msg) {
  Test__V1__StreamingOutputCallRequest *req = (Test__V1__StreamingOutputCallRequest *)msg;
  echo_call *ec = echo_state(c);
  if (!ec || echo_queue(ec, req->response_parameters, req->n_response_parameters) < 0) {
    protobuf_c_message_free_unpacked(msg, NULL);
    rpc_call_finish(c, RR_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  bool fail = req->response_status && req->response_status->code != 0;
  echo_set_status(ec, req->response_status);
  protobuf_c_message_free_unpacked(msg, NULL);
  if (fail) /* status_code_and_message on a duplex call ends it at once */
    rpc_call_finish(c, ec->code, ec->msg);
  else
    echo_pump(ec);
}

static void duplex_on_half_close(rpc_call *c) {
  echo_call *ec = echo_state(c);
  if (!ec) {
    rpc_call_finish(c, RR_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  ec->half_closed = true;
  echo_pump(ec);
}

static void echo_on_writable(rpc_call *c) {
  echo_call *ec = rpc_call_data(c);
  if (ec)
    echo_pump(ec);
}

static void stream_in_on_message(rpc_call *c, ProtobufCMessage *msg) {
  Test__V1__StreamingInputCallRequest *req = (Test__V1__StreamingInputCallRequest *)msg;
  echo_call *ec = echo_state(c);
  if (ec && req->payload)
    ec->aggregated += (int64_t)req->payload->body.len;
  protobuf_c_message_free_unpacked(msg, NULL);
}

static void stream_in_on_half_close(rpc_call *c) {
  echo_call *ec = echo_state(c);
  Test__V1__StreamingInputCallResponse out = TEST__V1__STREAMING_INPUT_CALL_RESPONSE__INIT;
  out.aggregated_payload_size = ec ? (int32_t)ec->aggregated : 0;
  rr_err e;
  if (rpc_call_send(c, &out.base, &e) < 0)
    rpc_call_finish_err(c, &e);
  else
    rpc_call_finish(c, RR_OK, NULL);
}

typedef struct testserver {
  loop *l;
  rpc_server *srv;
  int sigfd;
} testserver;

/* --stdio: done when the stdin/stdout connection is gone. */
static void testserver_stdio_check(loop *l, void *data) {
  testserver *ts = data;
  if (rpc_server_connection_count(ts->srv) == 0)
    loop_stop(l);
  else
    loop_timer_add(l, 20, testserver_stdio_check, ts);
}

static void testserver_on_signal(loop *l, int fd, uint32_t events, void *data) {
  testserver *ts = data;
  struct signalfd_siginfo si;
  if (rr_read(fd, &si, sizeof si) != sizeof si)
    return;
  rpc_server_shutdown(ts->srv);
  loop_stop(l);
}

static int testserver_register(rpc_server *s, rr_err *e) {
  const rpc_method methods[] = {
      {"/test.v1.Echo/EmptyCall", &test__v1__empty__descriptor, false, false, empty_on_message,
       NULL, NULL, echo_on_close, NULL},
      {"/test.v1.Echo/UnaryCall", &test__v1__simple_request__descriptor, false, false,
       unary_on_message, NULL, NULL, echo_on_close, NULL},
      {"/test.v1.Echo/StreamingOutputCall", &test__v1__streaming_output_call_request__descriptor,
       false, true, stream_out_on_message, NULL, echo_on_writable, echo_on_close, NULL},
      {"/test.v1.Echo/StreamingInputCall", &test__v1__streaming_input_call_request__descriptor,
       true, false, stream_in_on_message, stream_in_on_half_close, NULL, echo_on_close, NULL},
      {"/test.v1.Echo/FullDuplexCall", &test__v1__streaming_output_call_request__descriptor, true,
       true, duplex_on_message, duplex_on_half_close, echo_on_writable, echo_on_close, NULL},
  };
  for (size_t i = 0; i < RR_ARRAY_SIZE(methods); i++)
    if (rpc_server_add_method(s, &methods[i], e) < 0)
      return -1;
  return 0;
}

static void probe_on_message(rpc_call *c, ProtobufCMessage *msg) {
  protobuf_c_message_free_unpacked(msg, NULL);
  SSL *ssl = c->conn->ssl;
  int resumed = ssl && SSL_session_reused(ssl);
  fprintf(stderr, "tls-call path=%s resumed=%d\n", rpc_call_path(c), resumed);
  char why[64];
  snprintf(why, sizeof why, "tls probe: resumed=%d", resumed);
  rpc_call_finish(c, RR_UNIMPLEMENTED, why);
}

static void probe_on_close(rpc_call *c, rpc_close_reason reason) {}

static void testserver_conn_log(void *data, const char *peer, const char *what) {
  fprintf(stderr, "conn-log peer=%s what=%s\n", peer, what);
}

int main(int argc, char **argv) {
  rpc_server_config cfg = {0};
  rpc_tls_config tls = {0};
  const char *listen[8];
  size_t nlisten = 0;
  const char *probe = NULL;
  bool stdio = false;
  for (int i = 1; i < argc; i++) {
    const char *val = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(argv[i], "--tls12") == 0) {
      tls.allow_tls12 = true;
      continue;
    }
    if (strcmp(argv[i], "--client-cert-optional") == 0) {
      tls.client_cert_optional = true;
      continue;
    }
    if (strcmp(argv[i], "--stdio") == 0) {
      stdio = true;
      continue;
    }
    if (strcmp(argv[i], "--listen") == 0 && val && nlisten < RR_ARRAY_SIZE(listen))
      listen[nlisten++] = val;
    else if (strcmp(argv[i], "--tls-cert") == 0 && val)
      tls.cert_file = val;
    else if (strcmp(argv[i], "--tls-key") == 0 && val)
      tls.key_file = val;
    else if (strcmp(argv[i], "--client-ca") == 0 && val)
      tls.client_ca_file = val;
    else if (strcmp(argv[i], "--probe-method") == 0 && val)
      probe = val;
    else if (strcmp(argv[i], "--max-connections") == 0 && val)
      cfg.max_connections = strtoull(val, NULL, 10);
    else if (strcmp(argv[i], "--keepalive-ms") == 0 && val)
      cfg.keepalive_ms = strtoull(val, NULL, 10);
    else if (strcmp(argv[i], "--handshake-ms") == 0 && val)
      cfg.handshake_timeout_ms = strtoull(val, NULL, 10);
    else {
      fprintf(stderr,
              "usage: %s --listen unix:PATH|h2c:HOST:PORT|HOST:PORT [--max-connections N] "
              "[--keepalive-ms MS] [--handshake-ms MS] [--tls-cert F --tls-key F "
              "--client-ca F [--tls12] [--client-cert-optional]] [--probe-method PATH]\n"
              "       %s --stdio   (one connection on stdin/stdout pipes; exits when it ends)\n",
              argv[0], argv[0]);
      return 2;
    }
    i++;
  }
  if (nlisten == 0 && !stdio) {
    fprintf(stderr, "rpc-testserver: at least one --listen is required\n");
    return 2;
  }
  /* over stdio SIGPIPE keeps its default: the library must never raise it */
  if (!stdio)
    signal(SIGPIPE, SIG_IGN);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigprocmask(SIG_BLOCK, &mask, NULL);

  testserver ts = {.sigfd = -1};
  rr_err e = {0};
  int rc = 1;
  if (loop_new(&ts.l, &e) < 0 || rpc_server_new(&ts.srv, ts.l, &cfg, &e) < 0 ||
      testserver_register(ts.srv, &e) < 0)
    goto out;
  rpc_method pm = {probe,
                   &test__v1__simple_request__descriptor,
                   false,
                   false,
                   probe_on_message,
                   NULL,
                   NULL,
                   probe_on_close,
                   NULL};
  if (probe && rpc_server_add_method(ts.srv, &pm, &e) < 0)
    goto out;
  rpc_server_set_conn_log(ts.srv, testserver_conn_log, NULL);
  bool use_tls = tls.cert_file || tls.key_file || tls.client_ca_file;
  for (size_t i = 0; i < nlisten; i++) {
    bool plain =
        !use_tls || strncmp(listen[i], "unix:", 5) == 0 || strncmp(listen[i], "h2c:", 4) == 0;
    if ((plain ? rpc_server_listen(ts.srv, listen[i], &e)
               : rpc_server_listen_tls(ts.srv, listen[i], &tls, &e)) < 0)
      goto out;
  }
  ts.sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (ts.sigfd < 0 ||
      loop_fd_add(ts.l, ts.sigfd, EPOLLIN, "signals", testserver_on_signal, &ts, &e) < 0)
    goto out;
  if (stdio) {
    if (rpc_server_add_fds(ts.srv, STDIN_FILENO, STDOUT_FILENO, &e) < 0)
      goto out;
    loop_timer_add(ts.l, 20, testserver_stdio_check, &ts);
  }
  for (size_t i = 0; !stdio && rpc_server_listen_address(ts.srv, i); i++)
    printf("listening %s\n", rpc_server_listen_address(ts.srv, i));
  if (!stdio) {
    printf("ready\n");
    fflush(stdout);
  }
  if (loop_run(ts.l, &e) == 0)
    rc = 0;
out:
  if (rc)
    fprintf(stderr, "rpc-testserver: %s\n", e.msg);
  rpc_server_free(ts.srv);
  if (ts.sigfd >= 0)
    close(ts.sigfd);
  loop_free(ts.l);
  return rc;
}
