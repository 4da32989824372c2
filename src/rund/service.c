/* runrpc.v1.Jobs: every method, registered from its own file; and rund's say
 * in the server's admission: who is an admin (exempt from the per-peer
 * connection limit) and who may call at all, checked when a request's
 * headers arrive, before any of its message bytes is kept. */
#include <string.h>

#include "rund.h"
#include "rund/opts.h"

/* Connections one unix uid or remote address may hold (admins: more). */
#define RUND_PEER_CONNECTIONS 256

static bool rund_peer_is_admin(void *data, const rpc_peer *peer) {
  rund_ctx *ctx = data;
  authz_identity id = {0};
  rr_err e = {0};
  if (authz_identify(&ctx->authz, peer, NULL, &id, &e) < 0)
    return false;
  bool admin = id.admin;
  authz_identity_clear(&id);
  return admin;
}

/* Health probes and reflection need no identity (load balancers, grpcurl). */
static bool rund_path_is_public(const char *path) {
  return strncmp(path, "/grpc.health.v1.Health/", 23) == 0 ||
         strncmp(path, "/grpc.reflection.", 17) == 0;
}

static int rund_authorize(void *data, rpc_call *c, rr_err *e) {
  rund_ctx *ctx = data;
  authz_identity id = {0};
  const char *auth = rpc_call_metadata(c, "authorization", NULL);
  if (auth)
    rund_tokens_refresh(ctx);
  int r = authz_identify(&ctx->authz, rpc_call_peer(c), auth, &id, e);
  authz_identity_clear(&id);
  if (r < 0 && rund_path_is_public(rpc_call_path(c)))
    return 1;
  return r < 0 ? -1 : 0;
}

int jobs_service_register(rpc_server *s, rund_ctx *ctx, rr_err *e) {
  if (svc_jobs_register(s, ctx, e) < 0 || svc_logs_register(s, ctx, e) < 0 ||
      svc_exec_register(s, ctx, e) < 0 || svc_attach_register(s, ctx, e) < 0)
    return rr_err_wrap(e, "cannot register runrpc.v1.Jobs");
  if (ctx->images && svc_images_register(s, ctx, e) < 0)
    return rr_err_wrap(e, "cannot register runrpc.v1.Images");
  rpc_server_set_auth(s, &(rpc_server_auth){.peer_is_admin = rund_peer_is_admin,
                                            .authorize = rund_authorize,
                                            .data = ctx});
  return 0;
}

void rund_server_configure(rund_ctx *ctx, const struct rund_opts *o) {
  rpc_server_set_config(ctx->server,
                        &(rpc_server_config){
                            .idle_timeout_ms = o->idle_timeout_ms,
                            .max_connections = o->max_connections,
                            .max_connections_per_peer = o->max_connections_per_peer
                                                            ? o->max_connections_per_peer
                                                            : RUND_PEER_CONNECTIONS,
                        });
}
