/* Exec commands while they run, for List: each is shown as a running job of
 * kind "exec" (its id names it only there: Status, Logs and Stop know jobs
 * only), so that a user sees what runs on the host. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "rund.h"

struct rund_exec_entry {
  rund_exec_entry *prev, *next;
  job j; /* only what convert_status reads: id, state, pid, start, request, owner */
};

/* A deep copy of a request, through its own JSON form (which is complete). */
static int exec_entry_request_copy(const job_request *r, job_request *ret, rr_err *e) {
  json_object *o = job_request_to_json(r);
  if (!o)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  int rc = job_request_from_json(o, ret, e);
  json_object_put(o);
  return rc;
}

int rund_exec_list_add(rund_ctx *ctx, const char *id, pid_t pid, const job_request *r,
                       const authz_identity *caller, rund_exec_entry **ret, rr_err *e) {
  rund_exec_entry *x = calloc(1, sizeof *x);
  if (!x)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  snprintf(x->j.id, sizeof x->j.id, "%s", id);
  x->j.state = JOB_RUNNING;
  x->j.pid = pid;
  x->j.start_ns = rr_now_unix_ns();
  x->j.detail = (char *)"an Exec: runs while its caller's stream is open";
  x->j.owner = calloc(caller->n ? caller->n : 1, sizeof(char *));
  if (!x->j.owner || exec_entry_request_copy(r, &x->j.req, e) < 0) {
    free(x->j.owner);
    free(x);
    return e->code ? -1 : rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  }
  for (size_t i = 0; i < caller->n; i++, x->j.nowner++)
    if (!(x->j.owner[i] = strdup(caller->principals[i]))) {
      rund_exec_list_remove(ctx, x);
      return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
    }
  x->next = ctx->execs;
  if (ctx->execs)
    ctx->execs->prev = x;
  ctx->execs = x;
  *ret = x;
  return 0;
}

void rund_exec_list_remove(rund_ctx *ctx, rund_exec_entry *x) {
  if (!x)
    return;
  if (x->prev)
    x->prev->next = x->next;
  else if (ctx->execs == x)
    ctx->execs = x->next;
  if (x->next)
    x->next->prev = x->prev;
  for (size_t i = 0; i < x->j.nowner; i++)
    free(x->j.owner[i]);
  free(x->j.owner);
  job_request_free(&x->j.req);
  free(x);
}

size_t rund_exec_list_visible(rund_ctx *ctx, const authz_identity *id, job_state state,
                              const char *tag, job **ret, size_t max) {
  size_t n = 0;
  if ((state != 0 && state != JOB_RUNNING) || (tag && *tag))
    return 0; /* exec commands run and carry no tags */
  /* the list holds the newest first */
  for (rund_exec_entry *x = ctx->execs; x && n < max; x = x->next)
    if (authz_can_see(id, x->j.owner, x->j.nowner))
      ret[n++] = &x->j;
  return n;
}
