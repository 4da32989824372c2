/* rund's command line: flags of the daemon and the subcommand table. */
#pragma once
#include <stdio.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "sandbox/profile.h"

#define RUND_DEFAULT_ADDR "unix:/run/runrpc/rund.sock"
#define RUND_DEFAULT_TLS_ADDR "127.0.0.1:7734"
#define RUND_DEFAULT_STATE "/var/lib/runrpc"
#define RUND_MAX_LISTEN 16
#define RUND_MAX_ADMINS 32
#define RUND_MAX_BIND_ALLOW 32

/* How --image commands get their root (--image-roots). */
typedef enum rund_image_roots {
  RUND_IMAGE_ROOTS_AUTO = 0, /* overlayfs, a copy where the kernel has none */
  RUND_IMAGE_ROOTS_OVERLAY,
  RUND_IMAGE_ROOTS_COPY,
} rund_image_roots;

typedef struct rund_opts {
  const char *listen[RUND_MAX_LISTEN];
  size_t nlisten;
  bool listen_given; /* --listen on the command line (else the defaults) */
  const char *state_dir;
  uint64_t max_log_bytes;
  int log_level;
  bool fsync;
  const char *tls_cert, *tls_key, *client_ca;
  bool tls12;
  const char *token_file; /* NULL: STATE/tokens if it exists */
  bool allow_insecure_tokens;
  const char *admins[RUND_MAX_ADMINS];
  size_t nadmins;
  const char *secrets_dir; /* NULL: STATE/secrets if it exists */
  bool embedded;           /* no TLS flags: TLS listeners use the embedded CA */
  bool no_cgroups;         /* commands with limits are refused */
  uint64_t retention_ms;   /* finished jobs deleted this long after their end; 0: kept */
  /* connection limits of the gRPC server (0: its defaults) */
  uint64_t idle_timeout_ms;
  uint32_t max_connections, max_connections_per_peer;
  /* per-identity quotas (0: no limit) and the fd reserve (0: derived from
   * RLIMIT_NOFILE); see rund/quota.h */
  uint32_t quota_running, quota_jobs, quota_followers;
  uint64_t fd_reserve;
  /* sandbox: profile of requests naming none, the weakest allowed, and the
   * host directories requests may bind or use as their root */
  sb_profile default_profile, min_profile;
  const char *bind_allow[RUND_MAX_BIND_ALLOW];
  size_t nbind_allow;
  rund_image_roots image_roots;
  const char *config; /* the config file read (NULL: none) */
  char **owned;       /* the file's values (the fields above point at them) */
  size_t nowned;
  const char *metrics;   /* --metrics HOST:PORT (NULL: off) */
  const char *audit_log; /* --audit-log PATH|stderr (NULL: off) */
} rund_opts;

/* Defaults, then the config file (--config FILE, "none", else
 * /etc/runrpc/rund.conf if it exists), then the command line, whose flags
 * win (a repeatable flag given there replaces the file's). 0 when *o is set
 * (*exit0: --help/--version printed; exit0 NULL: they print nothing), else
 * -1 with the reason (*in_file: "FILE:LINE: reason" of the file). Free
 * with rund_opts_free. */
int rund_opts_load(int argc, char **argv, rund_opts *o, bool *exit0, bool *in_file, rr_err *e);
/* rund_opts_load printing its error: 0 to run, -1 to exit 0 (--help,
 * --version), else the exit code (2). */
int rund_opts_parse(int argc, char **argv, rund_opts *o);
/* The strings read from the config file. */
void rund_opts_free(rund_opts *o);
/* opts_usage.c: rund --help. */
void rund_usage(FILE *f);
/* cmd_flags.c: print "rund: MSG (see HELP)" on stderr; returns 2. */
int rund_bad_flag(const char *help, const char *fmt, const char *arg);
/* The flags of a `rund NOUN VERB` subcommand with one file or directory
 * flag (--PATH_FLAG X), --state-dir DIR and --help: 0 with optind at the
 * verb (missing: an error naming verbs), -1 after printing usage (exit 0),
 * else the exit code. */
int rund_subcmd_flags(int argc, char **argv, const char *path_flag, const char **path,
                      const char **state, void (*usage)(FILE *), const char *help,
                      const char *verbs);

/* reload.c: on SIGHUP, read the config file and argv again: the keys that
 * can change live are applied to ctx (log-level, token-file, admin,
 * quota-*, default-profile, min-profile, bind-allow), the others changed
 * are logged as needing a restart and keep their values in *cur. A bad
 * file: -1, nothing changed. */
struct rund_ctx;
int rund_config_reload(struct rund_ctx *ctx, int argc, char **argv, rund_opts *cur, rr_err *e);

/* seed.c: `rund serve ARGS` as rund's own flags (-addr/-ca/-cert/-key,
 * single or double dash, "=VALUE" or the next word; ":PORT" = every
 * address): 0 with a new vector (free each and it), else the exit code. */
int rund_seed_serve_args(int argc, char **argv, int *ret_argc, char ***ret_argv);
/* Free what rund_seed_serve_args made (nothing when v is orig). */
void rund_seed_args_free(char **v, char **orig);
/* `rund execute`: the seed's internal step; says what to use instead. */
int rund_seed_execute(int argc, char **argv);

/* Subcommands (one file each): argv[0] is the subcommand's name. */
int rund_cmd_certs(int argc, char **argv);
int rund_cmd_tokens(int argc, char **argv);
int rund_cmd_secrets(int argc, char **argv);
int rund_cmd_image(int argc, char **argv);
