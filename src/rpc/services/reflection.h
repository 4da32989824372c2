/* grpc.reflection.v1 and v1alpha ServerReflection: a pure core that answers
 * one request from a serialized FileDescriptorSet (reflection.c), and the
 * glue that serves it on a rpc_server (reflection_server.c). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "grpc/reflection/v1/reflection.pb-c.h"
#include "rpc/server.h"

/* What answers are computed from. */
typedef struct reflection_source {
  const uint8_t *set; /* serialized FileDescriptorSet, dependencies included */
  size_t set_len;
  const char *const *services; /* names for list_services, e.g. "runrpc.v1.Jobs" */
  size_t n_services;
} reflection_source;

/* Files already sent on one stream (bit per file index in the set), so each
 * dependency goes out once per stream. Zero-initialise; reflection_stream_clear. */
typedef struct reflection_stream {
  uint64_t *sent;
  size_t words;
} reflection_stream;

/* One answer. `response` is what to send; it points into the request, the
 * source and the arrays below, so keep those alive until reflection_reply_clear. */
typedef struct reflection_reply {
  Grpc__Reflection__V1__ServerReflectionResponse response;
  Grpc__Reflection__V1__FileDescriptorResponse files;
  Grpc__Reflection__V1__ExtensionNumberResponse extensions;
  Grpc__Reflection__V1__ListServiceResponse services;
  Grpc__Reflection__V1__ErrorResponse error;
  ProtobufCBinaryData *file_data;
  Grpc__Reflection__V1__ServiceResponse *service_items;
  Grpc__Reflection__V1__ServiceResponse **service_ptrs;
  int32_t *numbers;
  char message[320];
} reflection_reply;

/* The embedded FileDescriptorSet of everything rund serves (generated). */
extern const uint8_t reflection_descriptor_set[];
extern const size_t reflection_descriptor_set_len;

/* Answer req into *out (one response per request; unknown names become an
 * in-stream error_response). -1 only on ENOMEM or a corrupt set. */
int reflection_answer(const reflection_source *src, reflection_stream *stream,
                      const Grpc__Reflection__V1__ServerReflectionRequest *req,
                      reflection_reply *out, rr_err *e);
/* Free what reflection_answer allocated in r (safe on a zeroed reply). */
void reflection_reply_clear(reflection_reply *r);
/* Free a stream's memory of sent files. */
void reflection_stream_clear(reflection_stream *s);

/* Serve /grpc.reflection.v1.ServerReflection/ServerReflectionInfo and the
 * v1alpha one on s, from the embedded set; list_services reports s's services. */
int reflection_register(rpc_server *s, rr_err *e);

/* Another program's services: its own set, and the server whose services
 * list_services reports. The caller keeps *cfg alive as long as s. */
typedef struct reflection_config {
  const rpc_server *server;
  const uint8_t *set;
  size_t set_len;
} reflection_config;
int reflection_register_config(rpc_server *s, const reflection_config *cfg, rr_err *e);
