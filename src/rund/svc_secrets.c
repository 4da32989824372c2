/* Secrets at the RPC edge: resolution of secret:// env values for the
 * caller's identity, and rund's log of each use and refusal (names and
 * identities, never a value). */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "rund.h"

/* The caller's principals, comma-separated and quoted for the log. */
static const char *secrets_log_identity(const authz_identity *id, char *buf, size_t size) {
  char joined[2048];
  size_t o = 0;
  joined[0] = '\0';
  for (size_t i = 0; i < id->n && o + 1 < sizeof joined; i++) {
    int n = snprintf(joined + o, sizeof joined - o, "%s%s", i ? "," : "", id->principals[i]);
    if (n < 0)
      break;
    o += (size_t)n;
  }
  return rr_log_quote(buf, size, joined);
}

int rund_env_resolve(rund_ctx *ctx, const authz_identity *id, const job_request *r, char ***ret,
                     rr_err *e) {
  size_t other = strlen(r->path) + 1;
  for (size_t i = 0; i < r->nargs; i++)
    other += strlen(r->args[i]) + 1;
  secrets_resolution res = {.caller = id,
                            .keys = (const char *const *)r->env_keys,
                            .values = (const char *const *)r->env_values,
                            .n = r->nenv,
                            .item_max = REQUEST_MAX_ITEM,
                            .total_max = REQUEST_MAX_TOTAL,
                            .other_bytes = other};
  bool refs = false;
  for (size_t i = 0; i < r->nenv && !refs; i++)
    refs = secrets_is_ref(r->env_values[i]);
  if (refs && rund_secrets_refresh(ctx, e) < 0)
    res.store_error = true;
  else if (secrets_resolve_env(ctx->secrets, &res, ret, e) == 0)
    return 0;
  char qi[2200], qs[300], qk[300], qe[1100];
  if (res.store_error) {
    rr_warn("secret store unusable: secret:// references refused", "identity=%s error=%s",
            secrets_log_identity(id, qi, sizeof qi), rr_log_quote(qe, sizeof qe, e->msg));
    return rr_err_set(e, RR_FAILED_PRECONDITION,
                      "the secret store cannot be used now (rund's log says why)");
  }
  if (res.failed < r->nenv && e->code == RR_NOT_FOUND)
    rr_warn("secret refused", "identity=%s secret=%s env=%s reason=%s",
            secrets_log_identity(id, qi, sizeof qi),
            rr_log_quote(qs, sizeof qs, r->env_values[res.failed] + sizeof SECRETS_PREFIX - 1),
            rr_log_quote(qk, sizeof qk, r->env_keys[res.failed]),
            res.refused ? "not-an-owner" : "missing");
  return -1;
}

void rund_secrets_log_use(const authz_identity *id, const job_request *r, const char *job_id) {
  char qi[2200], qs[300], qk[300], qj[64];
  for (size_t i = 0; i < r->nenv; i++) {
    if (!secrets_is_ref(r->env_values[i]))
      continue;
    rr_info("secret used", "identity=%s admin=%s job=%s secret=%s env=%s",
            secrets_log_identity(id, qi, sizeof qi), id->admin ? "true" : "false",
            rr_log_quote(qj, sizeof qj, job_id),
            rr_log_quote(qs, sizeof qs, r->env_values[i] + sizeof SECRETS_PREFIX - 1),
            rr_log_quote(qk, sizeof qk, r->env_keys[i]));
  }
}
