/* Authentication and visibility glue between calls and the job table, and
 * secret resolution for Start and Exec. */
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/util.h"
#include "rund.h"

int rund_call_identity(rpc_call *c, authz_identity *ret, rr_err *e) {
  rund_ctx *ctx = rpc_call_method_data(c);
  const char *auth = rpc_call_metadata(c, "authorization", NULL);
  if (auth)
    rund_tokens_refresh(ctx);
  return authz_identify(&ctx->authz, rpc_call_peer(c), auth, ret, e);
}

/* The user database is asked (NSS: files, or LDAP/sssd that may take
 * seconds) at most once every 10 s per local user, since each answer is
 * waited for on the event loop. */
#define RUNAS_CACHE_SIZE 64
#define RUNAS_CACHE_MS 10000
static struct runas_entry {
  uid_t uid;
  gid_t gid;
  uint64_t until_ms;
  spawn_ids ids;
} runas_cache[RUNAS_CACHE_SIZE];

static int rund_ids_for_user(uid_t uid, gid_t gid, spawn_ids *ids, rr_err *e) {
  uint64_t now = rr_now_mono_ms();
  struct runas_entry *oldest = &runas_cache[0];
  for (size_t i = 0; i < RUNAS_CACHE_SIZE; i++) {
    struct runas_entry *en = &runas_cache[i];
    if (en->until_ms > now && en->uid == uid && en->gid == gid) {
      *ids = en->ids;
      return 0;
    }
    if (en->until_ms < oldest->until_ms)
      oldest = en;
  }
  if (spawn_ids_for_user(uid, gid, ids, e) < 0)
    return -1;
  *oldest = (struct runas_entry){.uid = uid, .gid = gid, .until_ms = now + RUNAS_CACHE_MS};
  oldest->ids = *ids;
  return 0;
}

int rund_call_run_as(rpc_call *c, spawn_ids *ids, bool *set, rr_err *e) {
  const rpc_peer *p = rpc_call_peer(c);
  *set = false;
  /* a local user must not gain rund's privileges through the socket */
  if (p->family != AF_UNIX || !p->has_cred || p->uid == geteuid())
    return 0;
  if (geteuid() != 0)
    return rr_err_set(e, RR_PERMISSION_DENIED,
                      "rund runs as uid %u and cannot run commands for uid %u", (unsigned)geteuid(),
                      (unsigned)p->uid);
  if (rund_ids_for_user(p->uid, p->gid, ids, e) < 0)
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
