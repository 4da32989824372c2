/* runner.Runner/Batch: every spawn run to its end, at most `concurrency`
 * at once, started in request order; one answer with the results in
 * request order. A spawn that fails is a result with its error; the batch
 * goes on. The call ending early kills what still runs. */
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>

#include "common/util.h"
#include "shim/runner.pb-c.h"
#include "shim/spawn_req.h"

#define BATCH_MAX_SPAWNS 4096
#define BATCH_DEFAULT_CONCURRENCY 4
#define BATCH_MAX_CONCURRENCY 256

typedef struct batch batch;

typedef struct batch_item {
  batch *b;
  reaper_watch *rw;
  Runner__BatchResult result;
  char error[RR_ERR_MSG_MAX];
} batch_item;

struct batch {
  rpc_call *c;
  shim_ctx *ctx;
  Runner__BatchRequest *req;
  batch_item *items;
  size_t next, running, done, concurrency;
};

static void batch_start_more(batch *b);

static void batch_free(batch *b) {
  for (size_t i = 0; b->items && i < b->req->n_spawns; i++) {
    batch_item *it = &b->items[i];
    if (it->rw) { /* still running: the call went away */
      kill(-(pid_t)it->result.pid, SIGKILL);
      reaper_watch_forget(it->rw);
    }
  }
  free(b->items);
  protobuf_c_message_free_unpacked(&b->req->base, NULL);
  free(b);
}

static void batch_answer(batch *b) {
  size_t n = b->req->n_spawns;
  _cleanup_free_ Runner__BatchResult **v = calloc(n ? n : 1, sizeof *v);
  if (!v) {
    rpc_call_finish(b->c, RR_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  for (size_t i = 0; i < n; i++)
    v[i] = &b->items[i].result;
  Runner__BatchResponse resp = RUNNER__BATCH_RESPONSE__INIT;
  resp.n_results = n;
  resp.results = v;
  rr_err e = {0};
  if (rpc_call_send(b->c, &resp.base, &e) < 0)
    rpc_call_finish(b->c, e.code, e.msg);
  else
    rpc_call_finish(b->c, RR_OK, NULL);
}

static void batch_on_exit(void *data, pid_t pid, const siginfo_t *si, const struct rusage *ru) {
  batch_item *it = data;
  batch *b = it->b;
  it->rw = NULL;
  if (si && si->si_code == CLD_EXITED) {
    it->result.code = si->si_status;
  } else if (si) {
    it->result.signal = si->si_status;
    it->result.code = 128 + si->si_status;
  }
  b->running--;
  b->done++;
  batch_start_more(b);
}

static void batch_item_fail(batch_item *it, const rr_err *e) {
  snprintf(it->error, sizeof it->error, "%s", e->msg);
  it->result.error_code = e->code ? e->code : RR_UNKNOWN;
  it->result.error = it->error;
  it->b->done++;
}

static void batch_item_start(batch *b, size_t i) {
  batch_item *it = &b->items[i];
  char field[32];
  snprintf(field, sizeof field, "spawns[%zu].", i);
  shim_spawn s;
  spawn_result sr;
  rr_err e = {0};
  if (shim_spawn_prepare(b->req->spawns[i], field, &s, &e) < 0) {
    batch_item_fail(it, &e);
    return;
  }
  int rc = shim_spawn_start(&s, &sr, &e);
  shim_spawn_clear(&s);
  if (rc < 0) {
    batch_item_fail(it, &e);
    return;
  }
  it->result.pid = (uint32_t)sr.pid;
  if (reaper_watch_add(b->ctx->reaper, sr.pid, sr.pidfd, batch_on_exit, it, &it->rw, &e) < 0) {
    kill(-sr.pid, SIGKILL);
    batch_item_fail(it, &e);
    return;
  }
  b->running++;
}

static void batch_start_more(batch *b) {
  while (b->running < b->concurrency && b->next < b->req->n_spawns)
    batch_item_start(b, b->next++);
  if (b->done == b->req->n_spawns)
    batch_answer(b);
}

static void batch_on_message(rpc_call *c, ProtobufCMessage *msg) {
  Runner__BatchRequest *r = (Runner__BatchRequest *)msg;
  if (r->n_spawns > BATCH_MAX_SPAWNS || r->concurrency > BATCH_MAX_CONCURRENCY) {
    char m[128];
    snprintf(m, sizeof m, "%s (max %d)",
             r->n_spawns > BATCH_MAX_SPAWNS ? "too many spawns" : "concurrency too high",
             r->n_spawns > BATCH_MAX_SPAWNS ? BATCH_MAX_SPAWNS : BATCH_MAX_CONCURRENCY);
    rpc_call_finish(c, RR_INVALID_ARGUMENT, m);
    protobuf_c_message_free_unpacked(msg, NULL);
    return;
  }
  batch *b = calloc(1, sizeof *b);
  if (!b || (r->n_spawns && !(b->items = calloc(r->n_spawns, sizeof *b->items)))) {
    free(b);
    rpc_call_finish(c, RR_RESOURCE_EXHAUSTED, "out of memory");
    protobuf_c_message_free_unpacked(msg, NULL);
    return;
  }
  b->c = c;
  b->ctx = rpc_call_method_data(c);
  b->req = r;
  b->concurrency = r->concurrency ? r->concurrency : BATCH_DEFAULT_CONCURRENCY;
  for (size_t i = 0; i < r->n_spawns; i++) {
    runner__batch_result__init(&b->items[i].result);
    b->items[i].b = b;
  }
  rpc_call_set_data(c, b);
  batch_start_more(b);
}

static void batch_on_close(rpc_call *c, rpc_close_reason reason) {
  batch *b = rpc_call_data(c);
  if (b)
    batch_free(b);
}

int svc_batch_register(shim_ctx *ctx, rr_err *e) {
  const rpc_method m = {.path = "/runner.Runner/Batch",
                        .request = &runner__batch_request__descriptor,
                        .on_message = batch_on_message,
                        .on_close = batch_on_close,
                        .data = ctx};
  return rpc_server_add_method(ctx->server, &m, e);
}
