/* Unit tests of the server glue (health_server.c, reflection_server.c) over a
 * fake of the rpc_server API from rpc/server.h: registered methods are driven
 * by hand and sent messages are captured. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/util.h"
#include "grpc/health/v1/health.pb-c.h"
#include "grpc/reflection/v1/reflection.pb-c.h"
#include "rpc/server.h"
#include "rpc/services/health.h"
#include "rpc/services/reflection.h"

/* ---- the fake ---- */

struct rpc_server {
  rpc_method methods[8];
  size_t n_methods;
};

struct rpc_call {
  const rpc_method *m;
  void *data;
  ProtobufCMessage *sent[16];
  size_t n_sent;
  bool finished;
  int code;
  char message[RR_ERR_MSG_MAX];
  size_t queued; /* what rpc_call_queued reports */
  bool paused;
};

int rpc_server_add_method(rpc_server *s, const rpc_method *m, rr_err *e) {
  for (size_t i = 0; i < s->n_methods; i++)
    if (strcmp(s->methods[i].path, m->path) == 0)
      return rr_err_set(e, RR_ALREADY_EXISTS, "method %s exists", m->path);
  assert_true(s->n_methods < RR_ARRAY_SIZE(s->methods));
  s->methods[s->n_methods++] = *m;
  return 0;
}

size_t rpc_server_service_names(const rpc_server *s, const char **out, size_t max) {
  static char names[8][128];
  size_t n = 0;
  for (size_t i = 0; i < s->n_methods; i++) {
    const char *p = s->methods[i].path + 1;
    size_t len = (size_t)(strchr(p, '/') - p);
    bool dup = false;
    for (size_t j = 0; j < n; j++)
      dup |= strlen(names[j]) == len && strncmp(names[j], p, len) == 0;
    if (!dup && n < max) {
      snprintf(names[n], sizeof names[n], "%.*s", (int)len, p);
      out[n] = names[n];
      n++;
    }
  }
  return n;
}

int rpc_call_send(rpc_call *c, const ProtobufCMessage *msg, rr_err *e) {
  if (c->finished)
    return rr_err_set(e, RR_FAILED_PRECONDITION, "call finished");
  assert_true(c->n_sent < RR_ARRAY_SIZE(c->sent));
  /* round-trip through the wire, as the real server would */
  size_t n = protobuf_c_message_get_packed_size(msg);
  uint8_t *buf = malloc(n + 1);
  assert_non_null(buf);
  protobuf_c_message_pack(msg, buf);
  c->sent[c->n_sent] = protobuf_c_message_unpack(msg->descriptor, NULL, n, buf);
  assert_non_null(c->sent[c->n_sent]);
  c->n_sent++;
  free(buf);
  return 0;
}

size_t rpc_call_queued(const rpc_call *c) { return c->queued; }

void rpc_call_finish(rpc_call *c, int code, const char *message) {
  if (c->finished)
    return;
  c->finished = true;
  c->code = code;
  snprintf(c->message, sizeof c->message, "%.*s", (int)sizeof c->message - 1,
           message ? message : "");
}

void rpc_call_finish_err(rpc_call *c, const rr_err *e) { rpc_call_finish(c, e->code, e->msg); }
bool rpc_call_finished(const rpc_call *c) { return c->finished; }
void rpc_call_pause_recv(rpc_call *c, bool paused) { c->paused = paused; }
void rpc_call_set_data(rpc_call *c, void *data) { c->data = data; }
void *rpc_call_data(const rpc_call *c) { return c->data; }
void *rpc_call_method_data(const rpc_call *c) { return c->m->data; }

static const rpc_method *method(rpc_server *s, const char *path) {
  for (size_t i = 0; i < s->n_methods; i++)
    if (strcmp(s->methods[i].path, path) == 0)
      return &s->methods[i];
  fail_msg("method %s not registered", path);
  return NULL;
}

static rpc_call *call_new(rpc_server *s, const char *path) {
  rpc_call *c = calloc(1, sizeof *c);
  assert_non_null(c);
  c->m = method(s, path);
  return c;
}

/* Deliver a request built from fields, as the server decodes it. */
static void deliver(rpc_call *c, const ProtobufCMessage *req) {
  size_t n = protobuf_c_message_get_packed_size(req);
  uint8_t *buf = malloc(n + 1);
  protobuf_c_message_pack(req, buf);
  ProtobufCMessage *m = protobuf_c_message_unpack(c->m->request, NULL, n, buf);
  free(buf);
  assert_non_null(m);
  c->m->on_message(c, m);
}

static void call_close(rpc_call *c, rpc_close_reason why) {
  c->m->on_close(c, why);
  for (size_t i = 0; i < c->n_sent; i++)
    protobuf_c_message_free_unpacked(c->sent[i], NULL);
  free(c);
}

static int health_status(const rpc_call *c, size_t i) {
  assert_true(i < c->n_sent);
  return ((Grpc__Health__V1__HealthCheckResponse *)c->sent[i])->status;
}

static void health_request(rpc_call *c, const char *service) {
  Grpc__Health__V1__HealthCheckRequest r = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  r.service = (char *)service;
  deliver(c, &r.base);
}

/* ---- health ---- */

static void test_health_check(void **state) {
  rpc_server s = {0};
  health *h = NULL;
  rr_err e = {0};
  assert_int_equal(health_register(&s, &h, &e), 0);
  assert_int_equal(s.n_methods, 2);
  assert_false(method(&s, "/grpc.health.v1.Health/Check")->server_streaming);
  assert_true(method(&s, "/grpc.health.v1.Health/Watch")->server_streaming);

  rpc_call *c = call_new(&s, "/grpc.health.v1.Health/Check");
  health_request(c, "");
  assert_true(c->finished);
  assert_int_equal(c->code, RR_OK);
  assert_int_equal(c->n_sent, 1);
  assert_int_equal(health_status(c, 0), HEALTH_SERVING);
  call_close(c, RPC_CLOSE_FINISHED);

  c = call_new(&s, "/grpc.health.v1.Health/Check");
  health_request(c, "nope");
  assert_true(c->finished);
  assert_int_equal(c->code, RR_NOT_FOUND);
  assert_int_equal(c->n_sent, 0);
  assert_non_null(strstr(c->message, "\"nope\""));
  call_close(c, RPC_CLOSE_FINISHED);

  assert_int_equal(health_set(h, "runrpc.v1.Jobs", HEALTH_NOT_SERVING, &e), 0);
  c = call_new(&s, "/grpc.health.v1.Health/Check");
  health_request(c, "runrpc.v1.Jobs");
  assert_int_equal(c->code, RR_OK);
  assert_int_equal(health_status(c, 0), HEALTH_NOT_SERVING);
  call_close(c, RPC_CLOSE_FINISHED);

  /* a second registration on the same server fails cleanly */
  health *h2 = NULL;
  assert_int_equal(health_register(&s, &h2, &e), -1);
  assert_null(h2);
  health_free(h);
}

static void test_health_watch(void **state) {
  rpc_server s = {0};
  health *h = NULL;
  rr_err e = {0};
  assert_int_equal(health_register(&s, &h, &e), 0);

  rpc_call *w = call_new(&s, "/grpc.health.v1.Health/Watch");
  health_request(w, "svc");
  assert_false(w->finished); /* unknown is not an error for Watch */
  assert_int_equal(w->n_sent, 1);
  assert_int_equal(health_status(w, 0), HEALTH_SERVICE_UNKNOWN);

  assert_int_equal(health_set(h, "svc", HEALTH_SERVING, &e), 0);
  assert_int_equal(w->n_sent, 2);
  assert_int_equal(health_status(w, 1), HEALTH_SERVING);

  /* a client that does not read: changes coalesce to the newest status */
  w->queued = RPC_CALL_HIGH_WATER + 1;
  assert_int_equal(health_set(h, "svc", HEALTH_NOT_SERVING, &e), 0);
  assert_int_equal(health_set(h, "svc", HEALTH_UNKNOWN, &e), 0);
  assert_int_equal(w->n_sent, 2);
  w->queued = 0;
  w->m->on_writable(w);
  assert_int_equal(w->n_sent, 3);
  assert_int_equal(health_status(w, 2), HEALTH_UNKNOWN);
  w->m->on_writable(w); /* nothing new */
  assert_int_equal(w->n_sent, 3);
  /* back and forth while blocked: nothing to send at all */
  w->queued = RPC_CALL_HIGH_WATER + 1;
  assert_int_equal(health_set(h, "svc", HEALTH_SERVING, &e), 0);
  assert_int_equal(health_set(h, "svc", HEALTH_UNKNOWN, &e), 0);
  w->queued = 0;
  w->m->on_writable(w);
  assert_int_equal(w->n_sent, 3);

  /* client cancels: the watch is gone (ASan would see a use after free) */
  call_close(w, RPC_CLOSE_CANCELLED);
  assert_int_equal(health_set(h, "svc", HEALTH_SERVING, &e), 0);

  /* server shutdown: watchers hear NOT_SERVING, then the server closes them */
  rpc_call *w2 = call_new(&s, "/grpc.health.v1.Health/Watch");
  health_request(w2, "");
  health_shutdown(h);
  assert_int_equal(w2->n_sent, 2);
  assert_int_equal(health_status(w2, 1), HEALTH_NOT_SERVING);
  call_close(w2, RPC_CLOSE_SHUTDOWN);
  health_free(h);
}

/* ---- reflection ---- */

static void test_reflection_stream(void **state) {
  rpc_server s = {0};
  health *h = NULL;
  rr_err e = {0};
  assert_int_equal(reflection_register(&s, &e), 0);
  assert_int_equal(health_register(&s, &h, &e), 0);
  assert_int_equal(reflection_register(&s, &e), -1); /* paths are unique */

  static const char *const paths[] = {
      "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
      "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"};
  for (size_t p = 0; p < RR_ARRAY_SIZE(paths); p++) {
    rpc_call *c = call_new(&s, paths[p]);
    assert_true(c->m->client_streaming && c->m->server_streaming);
    Grpc__Reflection__V1__ServerReflectionRequest r =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
    r.message_request_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES;
    r.list_services = "";
    deliver(c, &r.base);
    r.message_request_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL;
    r.file_containing_symbol = "grpc.health.v1.Health";
    deliver(c, &r.base);
    c->queued = RPC_CALL_HIGH_WATER + 1; /* the client stopped reading */
    r.file_containing_symbol = "nope";
    deliver(c, &r.base);
    assert_true(c->paused);
    c->queued = 0;
    c->m->on_writable(c);
    assert_false(c->paused);
    assert_false(c->finished);
    c->m->on_half_close(c);
    assert_true(c->finished);
    assert_int_equal(c->code, RR_OK);

    assert_int_equal(c->n_sent, 3);
    Grpc__Reflection__V1__ServerReflectionResponse **out =
        (Grpc__Reflection__V1__ServerReflectionResponse **)c->sent;
    Grpc__Reflection__V1__ListServiceResponse *ls = out[0]->list_services_response;
    assert_int_equal(ls->n_service, 3);
    assert_string_equal(ls->service[0]->name, "grpc.reflection.v1.ServerReflection");
    assert_string_equal(ls->service[1]->name, "grpc.reflection.v1alpha.ServerReflection");
    assert_string_equal(ls->service[2]->name, "grpc.health.v1.Health");
    assert_int_equal(
        out[1]->message_response_case,
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE);
    assert_int_equal(out[1]->file_descriptor_response->n_file_descriptor_proto, 1);
    assert_string_equal(out[1]->original_request->file_containing_symbol, "grpc.health.v1.Health");
    assert_int_equal(out[2]->error_response->error_code, RR_NOT_FOUND);
    call_close(c, RPC_CLOSE_FINISHED);
  }

  /* cancelled mid-stream: per-call state freed (LeakSanitizer checks) */
  rpc_call *c = call_new(&s, paths[0]);
  Grpc__Reflection__V1__ServerReflectionRequest r =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
  r.message_request_case =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME;
  r.file_by_filename = "runrpc/v1/jobs.proto";
  deliver(c, &r.base);
  call_close(c, RPC_CLOSE_CANCELLED);
  /* closed before any message */
  c = call_new(&s, paths[1]);
  call_close(c, RPC_CLOSE_CANCELLED);
  health_free(h);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_health_check),
      cmocka_unit_test(test_health_watch),
      cmocka_unit_test(test_reflection_stream),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
