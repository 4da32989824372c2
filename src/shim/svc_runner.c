/* runner.Runner: Spawn, Stop, Wait and Info (Batch: svc_batch.c, Fork:
 * svc_fork.c). */
#include <stdlib.h>
#include <unistd.h>

#include "common/util.h"
#include "shim/runner.pb-c.h"
#include "shim/procs.h"
#include "shim/spawn_req.h"

static void runner_finish_err(rpc_call *c, const rr_err *e) {
  rpc_call_finish(c, e->code ? e->code : RR_UNKNOWN, e->msg);
}

static void runner_reply(rpc_call *c, const ProtobufCMessage *m) {
  rr_err e = {0};
  if (rpc_call_send(c, m, &e) < 0)
    runner_finish_err(c, &e);
  else
    rpc_call_finish(c, RR_OK, NULL);
}

static int runner_spawn(shim_ctx *ctx, const Runner__SpawnRequest *r, shim_proc **ret, rr_err *e) {
  if (ctx->nprocs >= SHIM_MAX_PROCS)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED,
                      "%d processes are kept already (Wait or Stop them to free their handles)",
                      SHIM_MAX_PROCS);
  shim_spawn s;
  spawn_result sr;
  if (shim_spawn_prepare(r, "", &s, e) < 0)
    return -1;
  int rc = shim_spawn_start(&s, &sr, e);
  shim_spawn_clear(&s);
  if (rc < 0)
    return -1;
  return shim_proc_add(ctx, sr.pid, sr.pidfd, sr.start_ticks, ret, e);
}

static void runner_on_spawn(rpc_call *c, ProtobufCMessage *msg) {
  shim_ctx *ctx = rpc_call_method_data(c);
  shim_proc *p;
  rr_err e = {0};
  if (runner_spawn(ctx, (Runner__SpawnRequest *)msg, &p, &e) < 0) {
    runner_finish_err(c, &e);
  } else {
    Runner__SpawnResponse resp = RUNNER__SPAWN_RESPONSE__INIT;
    resp.handle = (char *)shim_proc_handle(p);
    resp.pid = (uint32_t)p->pid;
    runner_reply(c, &resp.base);
  }
  protobuf_c_message_free_unpacked(msg, NULL);
}

#define RUNNER_DEFAULT_GRACE_MS 10000u
#define RUNNER_MAX_GRACE_MS (24u * 3600u * 1000u)

static void runner_on_stop(rpc_call *c, ProtobufCMessage *msg) {
  Runner__StopRequest *r = (Runner__StopRequest *)msg;
  shim_ctx *ctx = rpc_call_method_data(c);
  shim_proc *p;
  rr_err e = {0};
  bool has_grace = r->grace_case == RUNNER__STOP_REQUEST__GRACE_GRACE_MS;
  uint64_t grace = has_grace ? r->grace_ms : RUNNER_DEFAULT_GRACE_MS;
  if (grace > RUNNER_MAX_GRACE_MS)
    rr_err_set(&e, RR_INVALID_ARGUMENT, "grace_ms %llu is over %u (a day)",
               (unsigned long long)grace, RUNNER_MAX_GRACE_MS);
  else if (shim_proc_find(ctx, r->handle, &p, &e) == 0) {
    if (!p->ended)
      kill_ctl_stop(&p->kill, grace, KILL_CAUSE_STOP);
    shim_proc_wait(p, c, &e);
  }
  if (e.code)
    runner_finish_err(c, &e);
  protobuf_c_message_free_unpacked(msg, NULL);
}

static void runner_on_wait(rpc_call *c, ProtobufCMessage *msg) {
  Runner__WaitRequest *r = (Runner__WaitRequest *)msg;
  shim_ctx *ctx = rpc_call_method_data(c);
  shim_proc *p;
  rr_err e = {0};
  if (shim_proc_find(ctx, r->handle, &p, &e) < 0 || shim_proc_wait(p, c, &e) < 0)
    runner_finish_err(c, &e);
  protobuf_c_message_free_unpacked(msg, NULL);
}

static void runner_on_wait_close(rpc_call *c, rpc_close_reason reason) {
  shim_proc_waiter_close(c);
}

static void runner_on_info(rpc_call *c, ProtobufCMessage *msg) {
  shim_ctx *ctx = rpc_call_method_data(c);
  Runner__InfoResponse resp = RUNNER__INFO_RESPONSE__INIT;
  resp.pid = (uint32_t)getpid();
  resp.ppid = (uint32_t)getppid();
  resp.depth = ctx->depth;
  runner_reply(c, &resp.base);
  protobuf_c_message_free_unpacked(msg, NULL);
}

static void runner_on_close_nothing(rpc_call *c, rpc_close_reason reason) {}

int svc_runner_register(shim_ctx *ctx, rr_err *e) {
  const rpc_method methods[] = {
      {.path = "/runner.Runner/Spawn",
       .request = &runner__spawn_request__descriptor,
       .on_message = runner_on_spawn,
       .on_close = runner_on_close_nothing,
       .data = ctx},
      {.path = "/runner.Runner/Stop",
       .request = &runner__stop_request__descriptor,
       .on_message = runner_on_stop,
       .on_close = runner_on_wait_close,
       .data = ctx},
      {.path = "/runner.Runner/Wait",
       .request = &runner__wait_request__descriptor,
       .on_message = runner_on_wait,
       .on_close = runner_on_wait_close,
       .data = ctx},
      {.path = "/runner.Runner/Info",
       .request = &runner__info_request__descriptor,
       .on_message = runner_on_info,
       .on_close = runner_on_close_nothing,
       .data = ctx},
  };
  for (size_t i = 0; i < RR_ARRAY_SIZE(methods); i++)
    if (rpc_server_add_method(ctx->server, &methods[i], e) < 0)
      return -1;
  return svc_batch_register(ctx, e);
}
