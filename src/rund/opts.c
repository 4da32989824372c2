/* rund's flags. */
#include "rund/opts.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/authz.h"
#include "common/log.h"
#include "common/util.h"
#include "rund/config.h"
#include "rund/quota.h"

static int rund_parse_size(const char *s, uint64_t *ret) {
  char *end;
  errno = 0;
  if (!*s || *s == '-')
    return -1;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s)
    return -1;
  unsigned shift = 0;
  if (*end) {
    switch (*end) {
    case 'k':
    case 'K':
      shift = 10;
      break;
    case 'm':
    case 'M':
      shift = 20;
      break;
    case 'g':
    case 'G':
      shift = 30;
      break;
    default:
      return -1;
    }
    if (end[1] && !((end[1] == 'i' || end[1] == 'B') &&
                    (!end[2] || (end[1] == 'i' && end[2] == 'B' && !end[3]))))
      return -1;
  }
  if (v > (UINT64_MAX >> shift))
    return -1;
  *ret = (uint64_t)v << shift;
  return 0;
}

/* Every long flag of rund; each is also a key of the config file. */
enum {
  O_LISTEN = 256,
  O_STATE,
  O_MAXLOG,
  O_LOGLEVEL,
  O_FSYNC,
  O_CERT,
  O_KEY,
  O_CA,
  O_TLS12,
  O_TOKENS,
  O_INSECURE,
  O_ADMIN,
  O_SECRETS,
  O_NO_CGROUPS,
  O_RETENTION,
  O_IDLE,
  O_MAXCONN,
  O_PERPEER,
  O_QRUN,
  O_QJOBS,
  O_QFOLLOW,
  O_FDRES,
  O_DEFPROFILE,
  O_MINPROFILE,
  O_BINDALLOW,
  O_IMAGEROOTS,
  O_METRICS,
  O_AUDIT,
  O_CONFIG,
  O_HELP,
  O_VERSION,
};

typedef struct rund_key {
  const char *name;
  int id;
  bool value; /* takes a value (else a switch: true/false in the file) */
} rund_key;

static const rund_key rund_keys[] = {
    {"listen", O_LISTEN, true},
    {"state-dir", O_STATE, true},
    {"max-log-bytes", O_MAXLOG, true},
    {"log-level", O_LOGLEVEL, true},
    {"fsync", O_FSYNC, false},
    {"tls-cert", O_CERT, true},
    {"tls-key", O_KEY, true},
    {"client-ca", O_CA, true},
    {"tls12", O_TLS12, false},
    {"token-file", O_TOKENS, true},
    {"allow-insecure-tokens", O_INSECURE, false},
    {"admin", O_ADMIN, true},
    {"secrets-dir", O_SECRETS, true},
    {"no-cgroups", O_NO_CGROUPS, false},
    {"retention", O_RETENTION, true},
    {"idle-timeout", O_IDLE, true},
    {"max-connections", O_MAXCONN, true},
    {"max-conns-per-peer", O_PERPEER, true},
    {"quota-running", O_QRUN, true},
    {"quota-jobs", O_QJOBS, true},
    {"quota-followers", O_QFOLLOW, true},
    {"fd-reserve", O_FDRES, true},
    {"default-profile", O_DEFPROFILE, true},
    {"min-profile", O_MINPROFILE, true},
    {"bind-allow", O_BINDALLOW, true},
    {"image-roots", O_IMAGEROOTS, true},
    {"metrics", O_METRICS, true},
    {"audit-log", O_AUDIT, true},
};

/* The flag as its source spells it: "--listen" on the command line,
 * "listen" in the file. */
typedef struct opt_src {
  bool file;
  bool cmd_seen[3]; /* listen, admin, bind-allow given on the command line */
} opt_src;

static int opt_count(uint32_t *slot, const char *flag, const char *arg, rr_err *e) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(arg, &end, 10);
  if (!*arg || *arg == '-' || *arg == '+' || errno || *end || v > 1000000000ull)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s \"%s\" is not a count (0..1000000000)", flag,
                      arg);
  *slot = (uint32_t)v;
  return 0;
}

static int opt_switch(bool *slot, const char *flag, const char *arg, rr_err *e) {
  static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no", "off",
                                                                              "0"};
  for (size_t i = 0; i < RR_ARRAY_SIZE(yes); i++) {
    if (!strcmp(arg, yes[i]) || !strcmp(arg, no[i])) {
      *slot = !strcmp(arg, yes[i]);
      return 0;
    }
  }
  return rr_err_set(e, RR_INVALID_ARGUMENT, "%s \"%s\": want true or false", flag, arg);
}

/* A repeatable flag: the command line's replace the file's. */
static int opt_append(const char **v, size_t *n, size_t max, bool *cmd_seen, const opt_src *src,
                      const char *flag, const char *arg, rr_err *e) {
  if (!src->file && !*cmd_seen) {
    *cmd_seen = true;
    *n = 0;
  }
  if (*n == max)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "too many %s (max %zu)", flag, max);
  v[(*n)++] = arg;
  return 0;
}

/* Set the key id from arg (a switch: arg NULL on the command line). */
static int opt_set(rund_opts *o, opt_src *src, int id, const char *flag, const char *arg,
                   rr_err *e) {
  if (arg == NULL) /* a switch on the command line */
    arg = "true";
  switch (id) {
  case O_LISTEN:
    if (!*arg)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s needs an address", flag);
    return opt_append(o->listen, &o->nlisten, RUND_MAX_LISTEN, &src->cmd_seen[0], src, flag, arg,
                      e);
  case O_STATE:
    if (!*arg)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s needs a directory", flag);
    o->state_dir = arg;
    return 0;
  case O_MAXLOG:
    if (rund_parse_size(arg, &o->max_log_bytes) < 0 || o->max_log_bytes == 0)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s \"%s\" is not a size (e.g. 65536, 64K, 1G)",
                        flag, arg);
    return 0;
  case O_LOGLEVEL: {
    static const struct {
      const char *name;
      int level;
    } levels[] = {{"debug", RR_LOG_DEBUG},
                  {"info", RR_LOG_INFO},
                  {"warn", RR_LOG_WARN},
                  {"error", RR_LOG_ERROR}};
    for (size_t i = 0; i < RR_ARRAY_SIZE(levels); i++) {
      if (!strcmp(arg, levels[i].name)) {
        o->log_level = levels[i].level;
        return 0;
      }
    }
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s \"%s\" is not debug, info, warn or error", flag,
                      arg);
  }
  case O_FSYNC:
    return opt_switch(&o->fsync, flag, arg, e);
  case O_TLS12:
    return opt_switch(&o->tls12, flag, arg, e);
  case O_INSECURE:
    return opt_switch(&o->allow_insecure_tokens, flag, arg, e);
  case O_NO_CGROUPS:
    return opt_switch(&o->no_cgroups, flag, arg, e);
  case O_CERT:
  case O_KEY:
  case O_CA:
  case O_TOKENS: {
    if (!*arg)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s needs a file", flag);
    const char **slot = id == O_CERT  ? &o->tls_cert
                        : id == O_KEY ? &o->tls_key
                        : id == O_CA  ? &o->client_ca
                                      : &o->token_file;
    *slot = arg;
    return 0;
  }
  case O_ADMIN:
    if (authz_principal_check(arg, e) < 0)
      return rr_err_wrap(e, "%s", flag);
    return opt_append(o->admins, &o->nadmins, RUND_MAX_ADMINS, &src->cmd_seen[1], src, flag, arg,
                      e);
  case O_SECRETS:
    if (!*arg)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s needs a directory", flag);
    o->secrets_dir = arg;
    return 0;
  case O_IMAGEROOTS:
    if (!strcmp(arg, "auto"))
      o->image_roots = RUND_IMAGE_ROOTS_AUTO;
    else if (!strcmp(arg, "overlay"))
      o->image_roots = RUND_IMAGE_ROOTS_OVERLAY;
    else if (!strcmp(arg, "copy"))
      o->image_roots = RUND_IMAGE_ROOTS_COPY;
    else
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s \"%s\": want auto, overlay or copy", flag, arg);
    return 0;
  case O_DEFPROFILE:
    return sb_profile_from_name(arg, flag, &o->default_profile, e);
  case O_MINPROFILE:
    return sb_profile_from_name(arg, flag, &o->min_profile, e);
  case O_BINDALLOW:
    if (arg[0] != '/')
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s \"%s\": must be an absolute path", flag, arg);
    return opt_append(o->bind_allow, &o->nbind_allow, RUND_MAX_BIND_ALLOW, &src->cmd_seen[2], src,
                      flag, arg, e);
  case O_RETENTION:
  case O_IDLE: {
    uint64_t *slot = id == O_RETENTION ? &o->retention_ms : &o->idle_timeout_ms;
    if (rr_parse_duration_ms(arg, slot) < 0 || *slot == 0)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s \"%s\" is not a duration (e.g. 30s, 12h, 7d)",
                        flag, arg);
    return 0;
  }
  case O_MAXCONN:
  case O_PERPEER: {
    uint64_t v;
    if (rund_parse_size(arg, &v) < 0 || v == 0 || v > 1000000)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s \"%s\" is not a count (1..1000000)", flag, arg);
    *(id == O_MAXCONN ? &o->max_connections : &o->max_connections_per_peer) = (uint32_t)v;
    return 0;
  }
  case O_METRICS:
    o->metrics = arg;
    return 0;
  case O_AUDIT:
    if (!*arg || (strcmp(arg, "stderr") != 0 && arg[0] != '/'))
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "%s \"%s\": want an absolute file path or \"stderr\"", flag, arg);
    o->audit_log = arg;
    return 0;
  case O_QRUN:
    return opt_count(&o->quota_running, flag, arg, e);
  case O_QJOBS:
    return opt_count(&o->quota_jobs, flag, arg, e);
  case O_QFOLLOW:
    return opt_count(&o->quota_followers, flag, arg, e);
  case O_FDRES: {
    uint32_t v;
    if (opt_count(&v, flag, arg, e) < 0)
      return -1;
    if (v == 0)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s \"%s\" must be at least 1", flag, arg);
    o->fd_reserve = v;
    return 0;
  }
  }
  return rr_err_set(e, RR_INTERNAL, "%s: no such key", flag);
}

/* Checks across flags once all are read. */
static int rund_opts_finish(rund_opts *o, rr_err *e) {
  int tls = !!o->tls_cert + !!o->tls_key + !!o->client_ca;
  if (tls != 0 && tls != 3)
    return rr_err_set(e, RR_INVALID_ARGUMENT,
                      "--tls-cert, --tls-key and --client-ca go together: give all three or none");
  /* without TLS flags, TLS listeners use the embedded CA */
  o->embedded = tls == 0;
  o->listen_given = o->nlisten > 0;
  if (!o->nlisten) {
    o->listen[o->nlisten++] = RUND_DEFAULT_ADDR;
    o->listen[o->nlisten++] = RUND_DEFAULT_TLS_ADDR;
  }
  return 0;
}

typedef struct file_ctx {
  rund_opts *o;
  opt_src *src;
} file_ctx;

static int opts_file_key(void *data, const char *key, const char *value, rr_err *e) {
  file_ctx *f = data;
  const rund_key *k = NULL;
  for (size_t i = 0; i < RR_ARRAY_SIZE(rund_keys) && !k; i++)
    if (!strcmp(rund_keys[i].name, key))
      k = &rund_keys[i];
  if (!k)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "unknown key \"%s\"%s", key,
                      !strcmp(key, "config") ? " (a config file cannot name another)"
                                             : " (keys are rund's long flags, see rund --help)");
  char **grown = realloc(f->o->owned, (f->o->nowned + 1) * sizeof *grown);
  if (!grown)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  f->o->owned = grown;
  char *copy = strdup(value);
  if (!copy)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  f->o->owned[f->o->nowned++] = copy;
  return opt_set(f->o, f->src, k->id, key, copy, e);
}

static const struct option *rund_longopts(void) {
  static struct option longs[RR_ARRAY_SIZE(rund_keys) + 4];
  if (!longs[0].name) {
    size_t n = 0;
    for (size_t i = 0; i < RR_ARRAY_SIZE(rund_keys); i++)
      longs[n++] =
          (struct option){rund_keys[i].name, rund_keys[i].value ? required_argument : no_argument,
                          NULL, rund_keys[i].id};
    longs[n++] = (struct option){"config", required_argument, NULL, O_CONFIG};
    longs[n++] = (struct option){"help", no_argument, NULL, O_HELP};
    longs[n++] = (struct option){"version", no_argument, NULL, O_VERSION};
  }
  return longs;
}

/* The flag getopt stopped at, for its messages: "-addr" whole, not argv[0]. */
static const char *opts_bad_word(char **argv, int cur, int argc) {
  return cur < argc ? argv[cur] : argv[argc - 1];
}

/* One pass over the command line: into o (NULL: only --config and
 * --help/--version looked at, the rest checked). */
static int opts_cmdline(int argc, char **argv, rund_opts *o, opt_src *src, const char **config,
                        rr_err *e, bool *exit0) {
  const struct option *longs = rund_longopts();
  opterr = 0;
  optind = 1;
  for (;;) {
    int cur = optind;
    int c = getopt_long(argc, argv, "+:h", longs, NULL);
    if (c == -1)
      break;
    char flag[64];
    switch (c) {
    case O_CONFIG:
      if (!*optarg)
        return rr_err_set(e, RR_INVALID_ARGUMENT, "--config needs a file (or none)");
      *config = optarg;
      continue;
    case 'h':
    case O_HELP:
      if (exit0) {
        rund_usage(stdout);
        *exit0 = true;
      }
      return 0;
    case O_VERSION:
      if (exit0) {
        printf("rund %s\n", RUND_VERSION);
        *exit0 = true;
      }
      return 0;
    case ':':
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s needs a value", opts_bad_word(argv, cur, argc));
    case '?': {
      const char *w = opts_bad_word(argv, cur, argc);
      bool seed = w[0] == '-' && w[1] != '-' &&
                  (!strncmp(w, "-addr", 5) || !strncmp(w, "-ca", 3) || !strncmp(w, "-cert", 5) ||
                   !strncmp(w, "-key", 4));
      return rr_err_set(e, RR_INVALID_ARGUMENT, "unknown flag \"%s\"%s", w,
                        seed ? " (the seed's -addr, -ca, -cert and -key go after \"rund serve\"; "
                               "rund's own are --listen, --client-ca, --tls-cert and --tls-key)"
                             : "");
    }
    default:
      for (size_t i = 0; i < RR_ARRAY_SIZE(rund_keys); i++) {
        if (rund_keys[i].id != c)
          continue;
        snprintf(flag, sizeof flag, "--%s", rund_keys[i].name);
        if (o && opt_set(o, src, c, flag, rund_keys[i].value ? optarg : NULL, e) < 0)
          return -1;
      }
    }
  }
  if (optind < argc)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "unexpected argument \"%s\"", argv[optind]);
  return 0;
}

static void rund_opts_defaults(rund_opts *o) {
  *o = (rund_opts){.state_dir = RUND_DEFAULT_STATE,
                   .max_log_bytes = 1ull << 30,
                   .log_level = RR_LOG_INFO,
                   .quota_running = QUOTA_DEFAULT_RUNNING,
                   .quota_jobs = QUOTA_DEFAULT_JOBS,
                   .quota_followers = QUOTA_DEFAULT_FOLLOWERS};
}

int rund_opts_load(int argc, char **argv, rund_opts *o, bool *exit0, bool *in_file, rr_err *e) {
  const char *config = RUND_DEFAULT_CONFIG;
  bool config_default = true;
  rund_opts_defaults(o);
  *in_file = false;
  if (exit0)
    *exit0 = false;
  /* first the command line alone: its errors first, and --config */
  const char *given = NULL;
  if (opts_cmdline(argc, argv, NULL, NULL, &given, e, exit0) < 0)
    return -1;
  if (exit0 && *exit0)
    return 0;
  if (given) {
    config = given;
    config_default = false;
  }
  opt_src src = {.file = true};
  if (strcmp(config, "none") != 0) {
    file_ctx f = {.o = o, .src = &src};
    int r = rund_config_read(config, config_default, opts_file_key, &f, e);
    if (r < 0) {
      *in_file = true;
      return -1;
    }
    if (r > 0)
      o->config = config;
  }
  src.file = false;
  if (opts_cmdline(argc, argv, o, &src, &given, e, NULL) < 0)
    return -1;
  return rund_opts_finish(o, e);
}

int rund_opts_parse(int argc, char **argv, rund_opts *o) {
  rr_err e = {0};
  bool exit0 = false, in_file = false;
  if (rund_opts_load(argc, argv, o, &exit0, &in_file, &e) < 0) {
    if (in_file)
      fprintf(stderr, "rund: %s\n", e.msg);
    else
      rund_bad_flag("rund --help", "%s", e.msg);
    rund_opts_free(o);
    return 2;
  }
  if (exit0) {
    rund_opts_free(o);
    return -1;
  }
  return 0;
}

void rund_opts_free(rund_opts *o) {
  for (size_t i = 0; i < o->nowned; i++)
    free(o->owned[i]);
  free(o->owned);
  o->owned = NULL;
  o->nowned = 0;
}
