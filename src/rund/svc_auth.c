/* Authentication and visibility glue between calls and the job table, and
 * secret resolution for Start and Exec. */
#include <string.h>

#include "rund.h"

int rund_call_identity(grpc_call *c, authz_identity *ret, rr_err *e) {
  rund_ctx *ctx = grpc_call_method_data(c);
  return authz_identify(&ctx->authz, grpc_call_peer(c),
                        grpc_call_metadata(c, "authorization", NULL), ret, e);
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

int rund_env_resolve(rund_ctx *ctx, const job_request *r, char ***ret, rr_err *e) {
  return secrets_resolve_env(ctx->secrets, (const char *const *)r->env_keys,
                             (const char *const *)r->env_values, r->nenv, ret, e);
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
