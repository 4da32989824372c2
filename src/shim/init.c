/* Listeners and init: flags, admission, signal forwarding. */
#include "shim/init.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth/authz.h"
#include "auth/tokens.h"
#include "common/log.h"
#include "common/util.h"
#include "shim/shim.h"

struct shim_auth {
  token_file tokens;
  authz_config cfg;
};

static int shim_opt_value(int argc, char **argv, int *i, const char **ret) {
  const char *name = argv[*i];
  if (*i + 1 >= argc) {
    fprintf(stderr, SHIM_NAME ": %s needs a value\n", name);
    return -1;
  }
  *ret = argv[++*i];
  return 0;
}

static int shim_opt_listen(shim_init_opts *o, const char *addr) {
  if (o->nlisten == SHIM_MAX_LISTEN) {
    fprintf(stderr, SHIM_NAME ": more than %d listeners\n", SHIM_MAX_LISTEN);
    return -1;
  }
  o->listen[o->nlisten++] = addr;
  return 0;
}

static int shim_opts_env(shim_init_opts *o) {
  const char *v = getenv("RUNRPC_LISTEN");
  if (!o->nlisten && v && *v) {
    if (!(o->env_listen = strdup(v)))
      return -1;
    char *save = NULL;
    for (char *a = strtok_r(o->env_listen, ",", &save); a; a = strtok_r(NULL, ",", &save))
      if (shim_opt_listen(o, a) < 0)
        return -1;
  }
  if (!o->tls_cert)
    o->tls_cert = getenv("RUNRPC_TLS_CERT");
  if (!o->tls_key)
    o->tls_key = getenv("RUNRPC_TLS_KEY");
  if (!o->client_ca)
    o->client_ca = getenv("RUNRPC_CLIENT_CA");
  if (!o->token_file)
    o->token_file = getenv("RUNRPC_TOKEN_FILE");
  return 0;
}

int shim_init_opts_parse(int argc, char **argv, shim_init_opts *o) {
  int i = 1;
  for (; i < argc && !strncmp(argv[i], "--", 2); i++) {
    const char *a = argv[i], *v = NULL;
    if (!strcmp(a, "--")) {
      i++;
      break;
    }
    if (!strcmp(a, "--help") || !strcmp(a, "-h"))
      o->help = true;
    else if (!strcmp(a, "--init"))
      o->init = true;
    else if (!strcmp(a, "--listen")) {
      if (shim_opt_value(argc, argv, &i, &v) < 0 || shim_opt_listen(o, v) < 0)
        return -1;
    } else if (!strcmp(a, "--tls-cert")) {
      if (shim_opt_value(argc, argv, &i, &o->tls_cert) < 0)
        return -1;
    } else if (!strcmp(a, "--tls-key")) {
      if (shim_opt_value(argc, argv, &i, &o->tls_key) < 0)
        return -1;
    } else if (!strcmp(a, "--client-ca")) {
      if (shim_opt_value(argc, argv, &i, &o->client_ca) < 0)
        return -1;
    } else if (!strcmp(a, "--token-file")) {
      if (shim_opt_value(argc, argv, &i, &o->token_file) < 0)
        return -1;
    } else {
      fprintf(stderr,
              SHIM_NAME ": unknown option \"%s\" (runrpc --help; `runrpc -- CMD` runs "
                        "a command whose name starts with --)\n",
              a);
      return -1;
    }
  }
  if (i < argc && (o->init || o->nlisten)) {
    fprintf(stderr, SHIM_NAME ": --init and --listen take no command (\"%s\")\n", argv[i]);
    return -1;
  }
  if (shim_opts_env(o) < 0) {
    fprintf(stderr, SHIM_NAME ": RUNRPC_LISTEN: too many listeners or out of memory\n");
    return -1;
  }
  return i;
}

void shim_init_opts_free(shim_init_opts *o) { free(o->env_listen); }

/* The connection came on stdin (a pipe, or a socket without a name). */
static bool shim_peer_is_stdio(const rpc_peer *p) {
  return p->family == AF_UNSPEC || (p->family == AF_UNIX && !strcmp(p->addr, "unix:"));
}

static bool shim_path_is_public(const char *path) {
  return !strncmp(path, "/grpc.health.v1.Health/", 23) || !strncmp(path, "/grpc.reflection.", 17);
}

/* stdin's holder is trusted (ssh or kubectl authenticated it); unix peers
 * must be root or our uid (commands run as us); TCP needs a certificate
 * or a token (authz). */
static int shim_authorize(void *data, rpc_call *c, rr_err *e) {
  struct shim_auth *a = data;
  const rpc_peer *p = rpc_call_peer(c);
  if (shim_peer_is_stdio(p))
    return 0;
  authz_identity id = {0};
  int r = authz_identify(&a->cfg, p, rpc_call_metadata(c, "authorization", NULL), &id, e);
  authz_identity_clear(&id);
  if (r == 0 && p->family == AF_UNIX && p->uid != 0 && p->uid != geteuid())
    r = rr_err_set(e, RR_PERMISSION_DENIED, "uid %u may not use this runrpc (root or uid %u only)",
                   (unsigned)p->uid, (unsigned)geteuid());
  if (r < 0 && shim_path_is_public(rpc_call_path(c)))
    return 1;
  return r < 0 ? -1 : 0;
}

static int shim_listen_one(shim_ctx *ctx, const shim_init_opts *o, const char *addr, rr_err *e) {
  if (!strncmp(addr, "unix:", 5))
    return rpc_server_listen(ctx->server, addr, e);
  if (!strncmp(addr, "h2c:", 4)) {
    if (!o->token_file)
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "%s: plaintext TCP needs --token-file (runrpc never serves TCP without "
                        "authentication)",
                        addr);
    return rpc_server_listen(ctx->server, addr, e);
  }
  if (!o->tls_cert || !o->tls_key || !o->client_ca)
    return rr_err_set(e, RR_INVALID_ARGUMENT,
                      "%s needs TLS: give --tls-cert, --tls-key and --client-ca (or "
                      "h2c:HOST:PORT on loopback with --token-file)",
                      addr);
  rpc_tls_config tls = {
      .cert_file = o->tls_cert, .key_file = o->tls_key, .client_ca_file = o->client_ca};
  return rpc_server_listen_tls(ctx->server, addr, &tls, e);
}

static int shim_auth_setup(shim_ctx *ctx, const shim_init_opts *o, rr_err *e) {
  struct shim_auth *a = calloc(1, sizeof *a);
  if (!a)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  ctx->auth = a;
  if (o->token_file && tokens_load(o->token_file, &a->tokens, e) < 0)
    return rr_err_wrap(e, "token file");
  a->cfg.tokens = &a->tokens;
  a->cfg.allow_insecure_tokens = true; /* h2c is loopback only */
  rpc_server_set_auth(ctx->server, &(rpc_server_auth){.authorize = shim_authorize, .data = a});
  return 0;
}

/* Every child of ours gets sig (its whole group when it leads one). */
static void shim_forward(int sig) {
  DIR *d = opendir("/proc");
  if (!d)
    return;
  pid_t self = getpid();
  struct dirent *de;
  while ((de = readdir(d))) {
    char path[64], buf[512];
    long pid = strtol(de->d_name, NULL, 10);
    if (pid <= 0 || pid == self)
      continue;
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : rr_read(fd, buf, sizeof buf - 1);
    if (n <= 0)
      continue;
    buf[n] = '\0';
    char *s = strrchr(buf, ')');
    int ppid = 0, pgrp = 0;
    if (!s || sscanf(s + 1, " %*c %d %d", &ppid, &pgrp) != 2 || ppid != self)
      continue;
    kill(pgrp == pid ? -(pid_t)pid : (pid_t)pid, sig);
  }
  closedir(d);
}

static void shim_wake(loop *l, void *data) {}

static void shim_on_signal(loop *l, int fd, uint32_t events, void *data) {
  shim_ctx *ctx = data;
  struct signalfd_siginfo si;
  while (read(fd, &si, sizeof si) == (ssize_t)sizeof si) {
    char q[64];
    rr_log_quote(q, sizeof q, sigabbrev_np((int)si.ssi_signo));
    if (!ctx->init) { /* the client's side is going (ssh hangs up, socat ends): clean up */
      rr_debug("stopping", "signal=%s", q);
      loop_stop(l);
      loop_timer_add(l, 0, shim_wake, NULL);
      continue;
    }
    rr_info("forwarding signal", "signal=%s", q);
    shim_forward((int)si.ssi_signo);
  }
}

/* Signals an init forwards; SIGCHLD is the reaper's, the rest (synchronous
 * ones, SIGKILL/SIGSTOP) are not ours to take. A server that is not init
 * stops on the first three, killing what it started. */
static const int shim_forwarded[] = {SIGTERM, SIGINT,   SIGHUP,  SIGQUIT, SIGUSR1,
                                     SIGUSR2, SIGWINCH, SIGCONT, SIGTSTP, SIGPWR};

int shim_signals_setup(shim_ctx *ctx, rr_err *e) {
  sigset_t set;
  sigemptyset(&set);
  for (size_t i = 0; i < (ctx->init ? RR_ARRAY_SIZE(shim_forwarded) : 3); i++)
    sigaddset(&set, shim_forwarded[i]);
  if (sigprocmask(SIG_BLOCK, &set, NULL) < 0 ||
      (ctx->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK)) < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot watch signals");
  return loop_fd_add(ctx->l, ctx->sigfd, EPOLLIN, "signals", shim_on_signal, ctx, e);
}

int shim_init_setup(shim_ctx *ctx, const shim_init_opts *o, rr_err *e) {
  if (shim_auth_setup(ctx, o, e) < 0)
    return -1;
  for (size_t i = 0; i < o->nlisten; i++) {
    if (shim_listen_one(ctx, o, o->listen[i], e) < 0)
      return -1;
    char q[256];
    rr_info("listening", "addr=%s",
            rr_log_quote(q, sizeof q, rpc_server_listen_address(ctx->server, i)));
  }
  return 0;
}

void shim_init_free(shim_ctx *ctx) {
  if (ctx->sigfd >= 0)
    close(ctx->sigfd);
  ctx->sigfd = -1;
  if (ctx->auth) {
    tokens_free(&ctx->auth->tokens);
    free(ctx->auth);
    ctx->auth = NULL;
  }
}
