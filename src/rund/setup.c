/* Daemon set-up from the flags: who may call (token file, admins), the
 * secret store, and the listeners (TLS, h2c, unix) with the embedded
 * default's certificates. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/certs.h"
#include "common/log.h"
#include "common/util.h"
#include "rund.h"
#include "rund/opts.h"

int rund_security_load(rund_ctx *ctx, const rund_opts *o, rr_err *e) {
  ctx->authz.tokens = &ctx->tokens;
  ctx->authz.allow_insecure_tokens = o->allow_insecure_tokens;
  ctx->authz.admins = calloc(o->nadmins + 2, sizeof(char *));
  if (!ctx->authz.admins)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  for (size_t i = 0; i < o->nadmins; i++)
    ctx->authz.admins[ctx->authz.nadmins++] = (char *)o->admins[i];
  if (o->embedded)
    ctx->authz.admins[ctx->authz.nadmins++] = (char *)CERTS_ADMIN_PRINCIPAL;
  ctx->token_optional = !o->token_file;
  if (o->token_file)
    ctx->token_path = strdup(o->token_file);
  else if (asprintf(&ctx->token_path, "%s/tokens", o->state_dir) < 0)
    ctx->token_path = NULL;
  if (!ctx->token_path)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  if (rund_tokens_reload(ctx, e) < 0)
    return -1;
  /* a --secrets-dir must exist now; the default one may be made later */
  if (o->secrets_dir ? !(ctx->secrets_path = strdup(o->secrets_dir))
                     : asprintf(&ctx->secrets_path, "%s/secrets", o->state_dir) < 0)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  if (o->secrets_dir && access(o->secrets_dir, F_OK) < 0)
    return rr_err_sys(e, RR_FAILED_PRECONDITION, errno, "secret store \"%s\"", o->secrets_dir);
  if (rund_secrets_refresh(ctx, e) < 0)
    return -1;
  const char *sd = ctx->secrets ? ctx->secrets_path : "";
  char q[4200], q2[4200];
  rr_info("auth", "token_file=%s tokens=%zu secrets_dir=%s admins=%zu insecure_tokens=%s",
          rr_log_quote(q, sizeof q, ctx->token_path), ctx->tokens.n,
          rr_log_quote(q2, sizeof q2, sd ? sd : ""), ctx->authz.nadmins,
          o->allow_insecure_tokens ? "true" : "false");
  return 0;
}

void rund_security_free(rund_ctx *ctx) {
  tokens_free(&ctx->tokens);
  secrets_free(ctx->secrets);
  free(ctx->token_path);
  free(ctx->secrets_path);
  free(ctx->authz.admins);
  ctx->secrets = NULL;
  ctx->secrets_path = NULL;
  ctx->token_path = NULL;
  ctx->authz.admins = NULL;
}

int rund_cgroups_open(rund_ctx *ctx, const rund_opts *o, rr_err *e) {
  if (o->no_cgroups) {
    rr_info("cgroups", "version=none reason=%s", "\"--no-cgroups\"");
    return 0;
  }
  /* stable per state dir: "runrpc-" + 48 bits of FNV-1a of its real path */
  char real[PATH_MAX];
  if (rr_mkdirs(o->state_dir, e) < 0)
    return -1;
  if (!realpath(o->state_dir, real))
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot resolve state dir \"%s\"", o->state_dir);
  uint64_t h = 0xcbf29ce484222325ull;
  for (const unsigned char *p = (const unsigned char *)real; *p; p++)
    h = (h ^ *p) * 0x100000001b3ull;
  char name[32];
  snprintf(name, sizeof name, "runrpc-%012llx", (unsigned long long)(h & 0xffffffffffffull));
  char q[1024];
  rr_err ce = {0};
  if (cg_manager_new("/sys/fs/cgroup", name, &ctx->cgroups, &ce) < 0) {
    /* e.g. an unprivileged rund: jobs without limits still run */
    ctx->cgroups = NULL;
    rr_warn("cgroups unusable: commands with limits are refused", "error=%s",
            rr_log_quote(q, sizeof q, ce.msg));
    return 0;
  }
  rr_info("cgroups", "version=%s detail=%s",
          cg_manager_version(ctx->cgroups) == CG_V2   ? "v2"
          : cg_manager_version(ctx->cgroups) == CG_V1 ? "v1"
                                                      : "none",
          rr_log_quote(q, sizeof q, cg_manager_describe(ctx->cgroups)));
  return 0;
}

/* A job cgroup stays when a running job (reopened by the table) owns it. */
int rund_waiter_find(const char *exe, char *buf, size_t n) {
  static const char *const rel[] = {"../libexec/runrpc/rund-waiter", "../waiter/rund-waiter"};
  const char *slash = strrchr(exe, '/');
  if (!slash)
    return -1;
  for (size_t i = 0; i < RR_ARRAY_SIZE(rel); i++) {
    if ((size_t)snprintf(buf, n, "%.*s/%s", (int)(slash - exe), exe, rel[i]) >= n)
      continue;
    if (access(buf, X_OK) == 0)
      return 0;
  }
  *buf = '\0';
  return -1;
}

static bool rund_cgroup_keep(const char *name, void *data) {
  job *j;
  rr_err e;
  return job_table_lookup(data, name, &j, &e) == 0 && j->state == JOB_RUNNING && j->cg;
}

void rund_cgroups_sweep(rund_ctx *ctx) {
  if (!ctx->cgroups)
    return;
  size_t n = 0;
  rr_err e = {0};
  char q[1024];
  if (cg_manager_sweep(ctx->cgroups, rund_cgroup_keep, ctx->jobs, &n, &e) < 0)
    rr_warn("cannot remove stale cgroups", "error=%s", rr_log_quote(q, sizeof q, e.msg));
  if (n)
    rr_info("stale cgroups removed", "count=%zu", n);
}

/* Refused handshakes and other connection events, one line each. */
static void rund_conn_log(void *data, const char *peer, const char *what) {
  static const char tls[] = "tls handshake refused: ";
  char qp[256], qw[1024];
  rr_log_quote(qp, sizeof qp, peer);
  rund_metrics_conn_event(data, !strncmp(what, tls, sizeof tls - 1));
  if (!strncmp(what, tls, sizeof tls - 1))
    rr_warn("tls handshake refused", "peer=%s reason=%s", qp,
            rr_log_quote(qw, sizeof qw, what + sizeof tls - 1));
  else
    rr_warn("connection refused", "peer=%s reason=%s", qp, rr_log_quote(qw, sizeof qw, what));
}

static bool addr_is_tcp_tls(const char *addr) {
  return strncmp(addr, "unix:", 5) != 0 && strncmp(addr, "h2c:", 4) != 0;
}

/* host of a TLS listen address ("HOST:PORT", "[V6]:PORT") as a SAN, when it
 * names one address (not a wildcard): "ip:V" or "dns:NAME". */
static void listen_host_san(const char *addr, certs_san_list *l) {
  const char *end = strrchr(addr, ':');
  const char *host = addr;
  if (*addr == '[') {
    host = addr + 1;
    end = strchr(host, ']');
  }
  if (!end || end == host || (size_t)(end - host) > 253)
    return;
  char h[254], san[CERTS_SAN_TEXT];
  snprintf(h, sizeof h, "%.*s", (int)(end - host), host);
  if (!strcmp(h, "0.0.0.0") || !strcmp(h, "::"))
    return;
  unsigned char buf[16];
  bool ip = inet_pton(AF_INET, h, buf) == 1 || inet_pton(AF_INET6, h, buf) == 1;
  snprintf(san, sizeof san, "%s:%s", ip ? "ip" : "dns", h);
  if (certs_san_check(san, NULL) == 0)
    certs_san_list_add(l, san, NULL);
}

/* The embedded CA's files, the server certificate naming this host and
 * every TLS listen address. */
static int listen_embedded_certs(const rund_opts *o, certs_paths *paths, rr_err *e) {
  certs_san_list names = {.n = 0};
  for (size_t i = 0; i < o->nlisten; i++)
    if (addr_is_tcp_tls(o->listen[i]))
      listen_host_san(o->listen[i], &names);
  char made[64], q[4200], q2[512];
  if (certs_host_sans(&names, e) < 0 ||
      certs_ensure_default(o->state_dir, &names, paths, made, sizeof made, e) < 0)
    return rr_err_wrap(e, "embedded TLS certificates");
  if (made[0])
    rr_info("made tls files", "dir=%s files=%s", rr_log_quote(q, sizeof q, paths->dir),
            rr_log_quote(q2, sizeof q2, made));
  return 0;
}

/* A socket from systemd is served with TLS when it is TCP and not named
 * "h2c" (FileDescriptorName=h2c: plaintext, loopback only). */
static bool sd_fd_is_tls(const rund_sd_fds *f, size_t i) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  return getsockname(f->fd[i], (struct sockaddr *)&ss, &len) == 0 &&
         (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) && strcmp(f->names[i], "h2c") != 0;
}

static bool listen_any_tls(const rund_ctx *ctx, const rund_opts *o) {
  for (size_t i = 0; i < ctx->sd_fds.n; i++)
    if (sd_fd_is_tls(&ctx->sd_fds, i))
      return true;
  for (size_t i = 0; i < o->nlisten && !ctx->sd_fds.n; i++)
    if (addr_is_tcp_tls(o->listen[i]))
      return true;
  return false;
}

/* Serve the sockets systemd passed (instead of --listen). */
static int listen_sd_fds(rund_ctx *ctx, const rpc_tls_config *tls, rr_err *e) {
  char q[4200], qn[128];
  for (size_t i = 0; i < ctx->sd_fds.n; i++) {
    bool use_tls = sd_fd_is_tls(&ctx->sd_fds, i);
    if (use_tls && !tls->cert_file)
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "socket %d from systemd is TCP: give --tls-cert/--tls-key/--client-ca, "
                        "or name it h2c (FileDescriptorName=h2c) on loopback",
                        ctx->sd_fds.fd[i]);
    if (rpc_server_listen_fd(ctx->server, ctx->sd_fds.fd[i], use_tls ? tls : NULL, e) < 0)
      return rr_err_wrap(e, "socket %d from systemd (\"%s\")", ctx->sd_fds.fd[i],
                         ctx->sd_fds.names[i]);
    rr_info("listening", "addr=%s tls=%s fd=%d name=%s from=systemd",
            rr_log_quote(q, sizeof q, rpc_server_listen_address(ctx->server, i)),
            use_tls ? "true" : "false", ctx->sd_fds.fd[i],
            rr_log_quote(qn, sizeof qn, ctx->sd_fds.names[i]));
  }
  return 0;
}

int rund_listen_all(rund_ctx *ctx, const rund_opts *o, rr_err *e) {
  rpc_tls_config tls = {.cert_file = o->tls_cert,
                        .key_file = o->tls_key,
                        .client_ca_file = o->client_ca,
                        .allow_tls12 = o->tls12,
                        /* token-only clients: rund_authorize wants a token then */
                        .client_cert_optional = true};
  certs_paths paths;
  char q[4200];
  if (o->embedded && listen_any_tls(ctx, o)) {
    if (listen_embedded_certs(o, &paths, e) < 0)
      return -1;
    tls.cert_file = paths.server;
    tls.key_file = paths.server_key;
    tls.client_ca_file = paths.ca;
  }
  rund_server_configure(ctx, o);
  rpc_server_set_conn_log(ctx->server, rund_conn_log, ctx);
  if (ctx->sd_fds.n) {
    if (o->listen_given)
      rr_warn("sockets from systemd: --listen ignored", "sockets=%zu", ctx->sd_fds.n);
    return listen_sd_fds(ctx, &tls, e);
  }
  for (size_t i = 0; i < o->nlisten; i++) {
    const char *addr = o->listen[i];
    int rc;
    if (!addr_is_tcp_tls(addr))
      rc = rpc_server_listen(ctx->server, addr, e);
    else if (!tls.cert_file)
      rc = rr_err_set(e, RR_INVALID_ARGUMENT,
                      "%s needs TLS: give --tls-cert/--tls-key/--client-ca, or use "
                      "h2c:HOST:PORT on loopback",
                      addr);
    else
      rc = rpc_server_listen_tls(ctx->server, addr, &tls, e);
    if (rc < 0)
      return -1;
    const char *bound = rpc_server_listen_address(ctx->server, i);
    rr_info("listening", "addr=%s tls=%s", rr_log_quote(q, sizeof q, bound ? bound : addr),
            addr_is_tcp_tls(addr) ? "true" : "false");
  }
  return 0;
}
