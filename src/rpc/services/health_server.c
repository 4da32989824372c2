/* grpc.health.v1.Health Check (unary) and Watch (server stream) on a rpc_server. */
#include <stdlib.h>

#include "common/util.h"
#include "grpc/health/v1/health.pb-c.h"
#include "health.h"

/* Per Watch call: the latest status to report and the last one sent, so a
 * client that does not read gets only the newest status, never a backlog. */
typedef struct health_watch_call {
  rpc_call *call;
  health_watch *watch;
  int pending;
  int sent; /* -1 before the first message */
} health_watch_call;

static int health_send(rpc_call *c, int status, rr_err *e) {
  Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
  resp.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)status;
  return rpc_call_send(c, &resp.base, e);
}

static void health_check_on_message(rpc_call *c, ProtobufCMessage *msg) {
  Grpc__Health__V1__HealthCheckRequest *req = (Grpc__Health__V1__HealthCheckRequest *)msg;
  const health *h = rpc_call_method_data(c);
  int status = health_get(h, req->service);
  rr_err e = {0};
  if (status < 0)
    rr_err_set(&e, RR_NOT_FOUND, "unknown service \"%.200s\"", req->service);
  else if (health_send(c, status, &e) == 0)
    rr_err_clear(&e);
  protobuf_c_message_free_unpacked(msg, NULL);
  rpc_call_finish_err(c, &e);
}

static void health_check_on_close(rpc_call *c, rpc_close_reason reason) {}

static void health_watch_flush(health_watch_call *wc) {
  if (wc->pending == wc->sent || rpc_call_finished(wc->call) ||
      rpc_call_queued(wc->call) > RPC_CALL_HIGH_WATER)
    return;
  rr_err e = {0};
  if (health_send(wc->call, wc->pending, &e) < 0) {
    rpc_call_finish_err(wc->call, &e);
    return;
  }
  wc->sent = wc->pending;
}

static void health_watch_changed(void *data, int serving_status) {
  health_watch_call *wc = data;
  wc->pending = serving_status;
  health_watch_flush(wc);
}

static void health_watch_on_message(rpc_call *c, ProtobufCMessage *msg) {
  Grpc__Health__V1__HealthCheckRequest *req = (Grpc__Health__V1__HealthCheckRequest *)msg;
  health *h = rpc_call_method_data(c);
  rr_err e = {0};
  health_watch_call *wc = calloc(1, sizeof *wc);
  if (!wc) {
    protobuf_c_message_free_unpacked(msg, NULL);
    rpc_call_finish(c, RR_RESOURCE_EXHAUSTED, "health: out of memory");
    return;
  }
  *wc = (health_watch_call){.call = c, .sent = -1, .pending = -1};
  rpc_call_set_data(c, wc);
  int rc = health_watch_add(h, req->service, health_watch_changed, wc, &wc->watch, &e);
  protobuf_c_message_free_unpacked(msg, NULL);
  if (rc < 0)
    rpc_call_finish_err(c, &e);
  /* else: runs until the client cancels or the server shuts down (on_close) */
}

static void health_watch_on_writable(rpc_call *c) {
  health_watch_call *wc = rpc_call_data(c);
  if (wc)
    health_watch_flush(wc);
}

static void health_watch_on_close(rpc_call *c, rpc_close_reason reason) {
  health_watch_call *wc = rpc_call_data(c);
  if (!wc)
    return;
  health_watch_remove(wc->watch);
  free(wc);
  rpc_call_set_data(c, NULL);
}

int health_register(rpc_server *s, health **ret, rr_err *e) {
  health *h;
  if (health_new(&h, e) < 0)
    return -1;
  rpc_method check = {
      .path = "/grpc.health.v1.Health/Check",
      .request = &grpc__health__v1__health_check_request__descriptor,
      .on_message = health_check_on_message,
      .on_close = health_check_on_close,
      .data = h,
  };
  rpc_method watch = {
      .path = "/grpc.health.v1.Health/Watch",
      .request = &grpc__health__v1__health_check_request__descriptor,
      .server_streaming = true,
      .on_message = health_watch_on_message,
      .on_writable = health_watch_on_writable,
      .on_close = health_watch_on_close,
      .data = h,
  };
  if (rpc_server_add_method(s, &check, e) < 0 || rpc_server_add_method(s, &watch, e) < 0) {
    health_free(h);
    return rr_err_wrap(e, "cannot register health");
  }
  *ret = h;
  return 0;
}
