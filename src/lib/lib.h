/* librunrpc internals shared by the files of src/lib (never installed). */
#pragma once
#include <protobuf-c/protobuf-c.h>

#include "common/err.h"
#include "rpc/client/client.h"
#include "runrpc/client.h"
#include "runrpc/v1/jobs.pb-c.h"

#define LIB_DEFAULT_CALL_TIMEOUT_MS 30000u
#define LIB_MAX_TOKEN 4096
#define LIB_JOBS_PATH(m) "/runrpc.v1.Jobs/" m

struct runrpc_client {
  rpc_client *grpc;
  uint64_t call_timeout_ms;
  char *profile; /* options.profile (NULL: none) */
};

/* rr_err -> runrpc_error; returns -1. */
int lib_err_out(const rr_err *e, runrpc_error *err);
/* Pack a message into a malloc'd buffer. */
int lib_pack(const ProtobufCMessage *m, uint8_t **ret_buf, size_t *ret_len, rr_err *e);
/* Unary call: pack req, unpack the response with desc (free with protobuf_c_message_free_unpacked).
 */
int lib_unary(runrpc_client *c, const char *path, const ProtobufCMessage *req,
              const ProtobufCMessageDescriptor *desc, uint64_t timeout_ms,
              ProtobufCMessage **ret_resp, rr_err *e);
/* Build a protobuf Command from the public one (pointers borrowed from cmd;
 * env entries allocated, free with lib_command_free). */
int lib_command_build(const runrpc_command *cmd, Runrpc__V1__Command *out, rr_err *e);
void lib_command_free(Runrpc__V1__Command *pc);
/* Deep copy of a protobuf status into the public struct. */
int lib_status_copy(const Runrpc__V1__JobStatus *in, runrpc_job_status *out, rr_err *e);
/* Client-side id check with a clear INVALID_ARGUMENT. */
int lib_job_id_check(const char *id, rr_err *e);
/* Write all of buf to fd, waiting with poll() if fd is non-blocking. */
int lib_write_fd(int fd, const void *buf, size_t len, rr_err *e);

/* Protobuf Limits built from the public struct, pointing into it (io
 * device strings borrowed); lives on the caller's stack. */
typedef struct lib_limits {
  Runrpc__V1__Limits msg;
  Runrpc__V1__CpuMax cpu;
  Runrpc__V1__IoMax io[RUNRPC_MAX_IO_LIMITS];
  Runrpc__V1__IoMax *io_ptrs[RUNRPC_MAX_IO_LIMITS];
} lib_limits;
/* Fill out from in: 1 if any limit is set (send &out->msg), 0 if none, -1 on error. */
int lib_limits_build(const runrpc_limits *in, lib_limits *out, rr_err *e);
/* Deep copy of received limits (in may be NULL: none); free with lib_limits_free
 * (also after a failure). */
int lib_limits_copy(const Runrpc__V1__Limits *in, runrpc_limits *out, rr_err *e);
void lib_limits_free(runrpc_limits *l);
/* Protobuf Sandbox built from the public struct (strings borrowed; profile
 * falls back to default_profile); lives on the caller's stack. */
typedef struct lib_sandbox {
  Runrpc__V1__Sandbox msg;
  Runrpc__V1__User user;
  Runrpc__V1__Bind binds[RUNRPC_MAX_BINDS];
  Runrpc__V1__Bind *bind_ptrs[RUNRPC_MAX_BINDS];
} lib_sandbox;
/* 1 if anything is set (send &out->msg), 0 if nothing, -1 on error. */
int lib_sandbox_build(const runrpc_sandbox *in, const char *default_profile, lib_sandbox *out,
                      rr_err *e);
void lib_usage_copy(const Runrpc__V1__Usage *in, runrpc_usage *out);
