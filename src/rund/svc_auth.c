/* Authentication and visibility glue between calls and the job table, and
 * secret resolution for Start and Exec. */
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rund.h"

int rund_call_identity(grpc_call *c, authz_identity *ret, rr_err *e) {
  rund_ctx *ctx = grpc_call_method_data(c);
  return authz_identify(&ctx->authz, grpc_call_peer(c),
                        grpc_call_metadata(c, "authorization", NULL), ret, e);
}

int rund_call_run_as(grpc_call *c, spawn_ids *ids, bool *set, rr_err *e) {
  const grpc_peer *p = grpc_call_peer(c);
  *set = false;
  /* a local user must not gain rund's privileges through the socket */
  if (p->family != AF_UNIX || !p->has_cred || p->uid == geteuid())
    return 0;
  if (geteuid() != 0)
    return rr_err_set(e, RR_PERMISSION_DENIED,
                      "rund runs as uid %u and cannot run commands for uid %u", (unsigned)geteuid(),
                      (unsigned)p->uid);
  if (spawn_ids_for_user(p->uid, p->gid, ids, e) < 0)
    return -1;
  *set = true;
  return 0;
}

int rund_job_lookup_visible(rund_ctx *ctx, const authz_identity *id,
                            const ProtobufCBinaryData *job_id, job **ret, rr_err *e) {
  job *j;
  if (convert_job_lookup(ctx, job_id, &j, e) < 0)
    return -1;
  if (!authz_can_see(id, j->owner, j->nowner))
    return rr_err_set(e, RR_NOT_FOUND, "job %s not found", j->id);
  *ret = j;
  return 0;
}

void rund_spawn_error_scrub(const job_request *r, char *const *resolved, rr_err *e) {
  if (!resolved || !secrets_values_leak(e->msg, (const char *const *)r->env_values,
                                        (const char *const *)resolved, r->nenv))
    return;
  int code = e->code;
  rr_err_set(e, code,
             "command \"%.200s\" cannot be started (details withheld: they include a "
             "secret value)",
             r->path);
}
