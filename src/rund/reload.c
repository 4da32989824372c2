/* SIGHUP: the config file and the command line read again; the keys rund
 * can change while serving are applied, the others logged as needing a
 * restart (their old values stay in force). A bad file changes nothing. */
#include <stdlib.h>
#include <string.h>

#include "auth/certs.h"
#include "common/log.h"
#include "common/util.h"
#include "rund.h"
#include "rund/opts.h"

static bool str_same(const char *a, const char *b) { return a == b || (a && b && !strcmp(a, b)); }

static bool list_same(const char *const *a, size_t na, const char *const *b, size_t nb) {
  if (na != nb)
    return false;
  for (size_t i = 0; i < na; i++)
    if (!str_same(a[i], b[i]))
      return false;
  return true;
}

/* The admins of n (and the embedded CA's admin as before). */
static int reload_admins(rund_ctx *ctx, const rund_opts *cur, const rund_opts *n) {
  char **admins = calloc(n->nadmins + 2, sizeof *admins);
  if (!admins)
    return -1;
  size_t k = 0;
  for (size_t i = 0; i < n->nadmins; i++)
    admins[k++] = (char *)n->admins[i];
  if (cur->embedded)
    admins[k++] = (char *)CERTS_ADMIN_PRINCIPAL;
  free(ctx->authz.admins);
  ctx->authz.admins = admins;
  ctx->authz.nadmins = k;
  return 0;
}

/* Point ctx at n's token file; the old one stays when it cannot be read. */
static int reload_token_file(rund_ctx *ctx, const rund_opts *cur, const rund_opts *n, rr_err *e) {
  char *path = NULL;
  if (n->token_file ? !(path = strdup(n->token_file))
                    : asprintf(&path, "%s/tokens", cur->state_dir) < 0)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  char *old_path = ctx->token_path;
  bool old_optional = ctx->token_optional;
  rund_file_id old_seen = ctx->token_seen;
  ctx->token_path = path;
  ctx->token_optional = !n->token_file;
  if (rund_tokens_reload(ctx, e) < 0) {
    free(path);
    ctx->token_path = old_path;
    ctx->token_optional = old_optional;
    ctx->token_seen = old_seen;
    return -1;
  }
  free(old_path);
  return 0;
}

/* The key named changed but needs a restart: log it, keep the old value. */
#define RESTART(name, field)                                                                       \
  do {                                                                                             \
    rr_warn("config key changed: needs a restart", "key=%s", name);                                \
    n->field = cur->field;                                                                         \
  } while (0)

static void reload_restart_keys(const rund_opts *cur, rund_opts *n) {
  if (!list_same(cur->listen, cur->nlisten, n->listen, n->nlisten)) {
    rr_warn("config key changed: needs a restart", "key=%s", "listen");
    memcpy(n->listen, cur->listen, sizeof n->listen);
    n->nlisten = cur->nlisten;
    n->listen_given = cur->listen_given;
  }
  if (!str_same(cur->state_dir, n->state_dir))
    RESTART("state-dir", state_dir);
  if (cur->max_log_bytes != n->max_log_bytes)
    RESTART("max-log-bytes", max_log_bytes);
  if (cur->fsync != n->fsync)
    RESTART("fsync", fsync);
  if (!str_same(cur->tls_cert, n->tls_cert))
    RESTART("tls-cert", tls_cert);
  if (!str_same(cur->tls_key, n->tls_key))
    RESTART("tls-key", tls_key);
  if (!str_same(cur->client_ca, n->client_ca))
    RESTART("client-ca", client_ca);
  n->embedded = cur->embedded;
  if (cur->tls12 != n->tls12)
    RESTART("tls12", tls12);
  if (cur->allow_insecure_tokens != n->allow_insecure_tokens)
    RESTART("allow-insecure-tokens", allow_insecure_tokens);
  if (!str_same(cur->secrets_dir, n->secrets_dir))
    RESTART("secrets-dir", secrets_dir);
  if (cur->no_cgroups != n->no_cgroups)
    RESTART("no-cgroups", no_cgroups);
  if (cur->retention_ms != n->retention_ms)
    RESTART("retention", retention_ms);
  if (cur->idle_timeout_ms != n->idle_timeout_ms)
    RESTART("idle-timeout", idle_timeout_ms);
  if (cur->max_connections != n->max_connections)
    RESTART("max-connections", max_connections);
  if (cur->max_connections_per_peer != n->max_connections_per_peer)
    RESTART("max-conns-per-peer", max_connections_per_peer);
  if (cur->fd_reserve != n->fd_reserve)
    RESTART("fd-reserve", fd_reserve);
  if (cur->image_roots != n->image_roots)
    RESTART("image-roots", image_roots);
  if (!str_same(cur->metrics, n->metrics))
    RESTART("metrics", metrics);
}

/* Every string field of o, to tell which of the file's strings are in use. */
static bool opts_uses(const rund_opts *o, const char *s) {
  const char *one[] = {o->state_dir,  o->tls_cert,    o->tls_key, o->client_ca,
                       o->token_file, o->secrets_dir, o->metrics, o->audit_log};
  for (size_t i = 0; i < RR_ARRAY_SIZE(one); i++)
    if (one[i] == s)
      return true;
  for (size_t i = 0; i < o->nlisten; i++)
    if (o->listen[i] == s)
      return true;
  for (size_t i = 0; i < o->nadmins; i++)
    if (o->admins[i] == s)
      return true;
  for (size_t i = 0; i < o->nbind_allow; i++)
    if (o->bind_allow[i] == s)
      return true;
  return false;
}

int rund_config_reload(rund_ctx *ctx, int argc, char **argv, rund_opts *cur, rr_err *e) {
  rund_opts n;
  bool in_file = false;
  if (rund_opts_load(argc, argv, &n, NULL, &in_file, e) < 0) {
    rund_opts_free(&n);
    return -1;
  }
  char **keep = realloc(n.owned, (n.nowned + cur->nowned + 1) * sizeof *keep);
  if (!keep) {
    rund_opts_free(&n);
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  }
  n.owned = keep;
  reload_restart_keys(cur, &n);
  /* the live keys */
  if (!str_same(cur->token_file, n.token_file)) {
    rr_err te = {0};
    char q[RR_ERR_MSG_MAX + 16];
    if (reload_token_file(ctx, cur, &n, &te) < 0) {
      rr_warn("config key not applied: the old token file stays", "key=token-file error=%s",
              rr_log_quote(q, sizeof q, te.msg));
      n.token_file = cur->token_file;
    } else {
      rr_info("config key applied", "key=token-file tokens=%zu", ctx->tokens.n);
    }
  }
  if (!list_same(cur->admins, cur->nadmins, n.admins, n.nadmins)) {
    if (reload_admins(ctx, cur, &n) < 0) {
      rr_warn("config key not applied: out of memory", "key=admin");
      memcpy(n.admins, cur->admins, sizeof n.admins);
      n.nadmins = cur->nadmins;
    } else {
      rr_info("config key applied", "key=admin admins=%zu", ctx->authz.nadmins);
    }
  }
  if (cur->log_level != n.log_level) {
    rr_log_set_level(n.log_level);
    rr_info("config key applied", "key=log-level");
  }
  if (cur->quota_running != n.quota_running || cur->quota_jobs != n.quota_jobs ||
      cur->quota_followers != n.quota_followers) {
    quota_limits_set(ctx->quota, n.quota_running, n.quota_jobs, n.quota_followers);
    rr_info("config key applied", "key=quota running=%u jobs=%u followers=%u", n.quota_running,
            n.quota_jobs, n.quota_followers);
  }
  if (cur->default_profile != n.default_profile || cur->min_profile != n.min_profile ||
      !list_same(cur->bind_allow, cur->nbind_allow, n.bind_allow, n.nbind_allow)) {
    rr_info("config key applied", "key=sandbox default_profile=%s min_profile=%s bind_allow=%zu",
            sb_profile_name(n.default_profile), sb_profile_name(n.min_profile), n.nbind_allow);
  }
  /* the file's strings still in use move to n; ctx->sandbox points into cur */
  for (size_t i = 0; i < cur->nowned; i++) {
    if (opts_uses(&n, cur->owned[i]))
      n.owned[n.nowned++] = cur->owned[i];
    else
      free(cur->owned[i]);
  }
  free(cur->owned);
  *cur = n;
  ctx->sandbox = (rund_sandbox_policy){.default_profile = cur->default_profile,
                                       .min_profile = cur->min_profile,
                                       .bind_allow = cur->bind_allow,
                                       .nbind_allow = cur->nbind_allow};
  return 0;
}
