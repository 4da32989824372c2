/* ServerReflectionInfo on a rpc_server: a bidi stream, one answer per request. */
#include <errno.h>
#include <stdlib.h>

#include "common/util.h"
#include "reflection.h"

#define REFLECTION_MAX_SERVICES 256 /* list_services reports at most this many */

typedef struct reflection_call {
  reflection_stream stream;
} reflection_call;

static void reflection_answer_call(rpc_call *c, ProtobufCMessage *msg, const rpc_server *s,
                                   const uint8_t *set, size_t set_len) {
  Grpc__Reflection__V1__ServerReflectionRequest *req =
      (Grpc__Reflection__V1__ServerReflectionRequest *)msg;
  reflection_call *rc = rpc_call_data(c);
  if (!rc) {
    rc = calloc(1, sizeof *rc);
    if (!rc) {
      protobuf_c_message_free_unpacked(msg, NULL);
      rpc_call_finish(c, RR_RESOURCE_EXHAUSTED, "reflection: out of memory");
      return;
    }
    rpc_call_set_data(c, rc);
  }
  const char *names[REFLECTION_MAX_SERVICES];
  size_t n = rpc_server_service_names(s, names, RR_ARRAY_SIZE(names));
  reflection_source src = {set, set_len, names,
                           n < RR_ARRAY_SIZE(names) ? n : RR_ARRAY_SIZE(names)};
  reflection_reply reply;
  rr_err e = {0};
  if (reflection_answer(&src, &rc->stream, req, &reply, &e) < 0 ||
      rpc_call_send(c, &reply.response.base, &e) < 0) {
    reflection_reply_clear(&reply);
    protobuf_c_message_free_unpacked(msg, NULL);
    rpc_call_finish_err(c, &e);
    return;
  }
  reflection_reply_clear(&reply);
  protobuf_c_message_free_unpacked(msg, NULL);
  /* a client that sends faster than it reads is held back, not buffered */
  if (rpc_call_queued(c) > RPC_CALL_HIGH_WATER)
    rpc_call_pause_recv(c, true);
}

static void reflection_on_message(rpc_call *c, ProtobufCMessage *msg) {
  reflection_answer_call(c, msg, rpc_call_method_data(c), reflection_descriptor_set,
                         reflection_descriptor_set_len);
}

static void reflection_on_message_config(rpc_call *c, ProtobufCMessage *msg) {
  const reflection_config *cfg = rpc_call_method_data(c);
  reflection_answer_call(c, msg, cfg->server, cfg->set, cfg->set_len);
}

static void reflection_on_writable(rpc_call *c) { rpc_call_pause_recv(c, false); }

static void reflection_on_half_close(rpc_call *c) { rpc_call_finish(c, RR_OK, NULL); }

static void reflection_on_close(rpc_call *c, rpc_close_reason reason) {
  reflection_call *rc = rpc_call_data(c);
  if (!rc)
    return;
  reflection_stream_clear(&rc->stream);
  free(rc);
  rpc_call_set_data(c, NULL);
}

static int reflection_register_paths(rpc_server *s,
                                     void (*on_message)(rpc_call *, ProtobufCMessage *), void *data,
                                     rr_err *e) {
  /* v1alpha has v1's wire format: both decode with v1's descriptor */
  static const char *const paths[] = {
      "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
      "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
  };
  for (size_t i = 0; i < RR_ARRAY_SIZE(paths); i++) {
    rpc_method m = {
        .path = paths[i],
        .request = &grpc__reflection__v1__server_reflection_request__descriptor,
        .client_streaming = true,
        .server_streaming = true,
        .on_message = on_message,
        .on_half_close = reflection_on_half_close,
        .on_writable = reflection_on_writable,
        .on_close = reflection_on_close,
        .data = data,
    };
    if (rpc_server_add_method(s, &m, e) < 0)
      return rr_err_wrap(e, "cannot register reflection");
  }
  return 0;
}

int reflection_register(rpc_server *s, rr_err *e) {
  return reflection_register_paths(s, reflection_on_message, s, e);
}

int reflection_register_config(rpc_server *s, const reflection_config *cfg, rr_err *e) {
  return reflection_register_paths(s, reflection_on_message_config, (void *)cfg, e);
}
