/* rund internals: the daemon context and the runrpc.v1.Jobs service glue
 * (one file per group of methods) that maps RPCs onto the job engine. */
#pragma once
#include <stdint.h>

#include "common/err.h"
#include "common/loop.h"
#include "jobs/job.h"
#include "jobs/reaper.h"
#include "rpc/server.h"
#include "rund_wire.pb-c.h"
#include "runrpc/v1/jobs.pb-c.h"

typedef struct rund_ctx {
  loop *l;
  grpc_server *server;
  reaper *reaper;
  job_table *jobs;
} rund_ctx;

/* Register every runrpc.v1.Jobs method on s. */
int jobs_service_register(grpc_server *s, rund_ctx *ctx, rr_err *e);
/* Per group of methods (svc_jobs.c, svc_logs.c, svc_exec.c). */
int svc_jobs_register(grpc_server *s, rund_ctx *ctx, rr_err *e);
int svc_logs_register(grpc_server *s, rund_ctx *ctx, rr_err *e);
int svc_exec_register(grpc_server *s, rund_ctx *ctx, rr_err *e);

/* convert.c: wire request -> engine, engine -> API messages. */
int convert_command(const Rundwire__Command *c, job_request *ret, rr_err *e);
/* A job id field: NUL/UTF-8 checked, then looked up. */
int convert_job_lookup(rund_ctx *ctx, const ProtobufCBinaryData *id, job **ret, rr_err *e);
/* JobStatus for j; free with convert_status_clear. */
typedef struct status_msg {
  Runrpc__V1__JobStatus status;
  Runrpc__V1__StartRequest request;
  Runrpc__V1__Command command;
  Runrpc__V1__Command__EnvEntry *env;
  Runrpc__V1__Command__EnvEntry **env_ptrs;
} status_msg;
int convert_status(const job *j, status_msg *m, rr_err *e);
void convert_status_clear(status_msg *m);
/* Finish c with the error's code and message. */
void rund_call_fail(grpc_call *c, const rr_err *e);
