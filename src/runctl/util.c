/* runctl helpers: errors, flags, connection. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/util.h"
#include "runctl.h"

int runctl_usage_error(const runctl_ctx *ctx, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (ctx && ctx->verb)
    fprintf(stderr, "runctl: %s: %s (see 'runctl %s --help')\n", ctx->verb, msg, ctx->verb);
  else
    fprintf(stderr, "runctl: %s (see 'runctl --help')\n", msg);
  return RUNCTL_EXIT_USAGE;
}

int runctl_fail(const char *what, const runrpc_error *err, int exit_code) {
  /* keep it one line whatever the server put in its message */
  char msg[RUNRPC_ERROR_MAX];
  snprintf(msg, sizeof msg, "%s", err->message);
  for (char *p = msg; *p; p++)
    if (*p == '\n' || *p == '\r')
      *p = ' ';
  fprintf(stderr, "runctl: %s: %s: %s\n", what, runrpc_code_name(err->code), msg);
  return exit_code;
}

void runctl_print_help(const runctl_command *cmd) {
  printf("Usage: runctl [--addr ADDR] %s\n\n%s", cmd->usage, cmd->help);
}

/* $XDG_RUNTIME_DIR/runrpc/tls-sessions, else $HOME/.cache/runrpc/tls-sessions
 * (absolute paths only, as XDG says), into buf; NULL if neither is set. */
const char *runctl_session_cache_dir(char *buf, size_t len) {
  const char *xdg = getenv("XDG_RUNTIME_DIR"), *home = getenv("HOME");
  int n = -1;
  if (xdg && xdg[0] == '/')
    n = snprintf(buf, len, "%s/runrpc/tls-sessions", xdg);
  else if (home && home[0] == '/')
    n = snprintf(buf, len, "%s/.cache/runrpc/tls-sessions", home);
  return n > 0 && (size_t)n < len ? buf : NULL;
}

bool runctl_addr_is_tls(const char *addr) {
  return strncmp(addr, "unix:", 5) != 0 && strncmp(addr, "h2c:", 4) != 0;
}

static const char *runctl_state_dir(void) {
  const char *state = getenv("RUNRPC_STATE_DIR");
  return state && *state ? state : RUNRPC_DEFAULT_STATE_DIR;
}

/* STATE/tls/NAME into buf if readable by us, else NULL. */
static const char *runctl_default_file(const char *name, char *buf, size_t len) {
  if ((size_t)snprintf(buf, len, "%s/tls/%s", runctl_state_dir(), name) >= len)
    return NULL;
  return access(buf, R_OK) == 0 ? buf : NULL;
}

/* TLS files not given by flag or env: rund's embedded-default files, when
 * this user can read them. Only runctl chooses them, never the library. */
void runctl_tls_defaults(runctl_ctx *ctx) {
  static const char from[] = "default";
  if (!runctl_addr_is_tls(ctx->addr))
    return;
  if (!ctx->ca &&
      (ctx->ca = runctl_default_file("ca.pem", ctx->default_file[0], sizeof ctx->default_file[0])))
    ctx->ca_from = from;
  if (ctx->tls_cert || ctx->tls_key)
    return;
  const char *cert =
      runctl_default_file("client.pem", ctx->default_file[1], sizeof ctx->default_file[1]);
  const char *key =
      runctl_default_file("client.key", ctx->default_file[2], sizeof ctx->default_file[2]);
  if (cert && key) {
    ctx->tls_cert = cert;
    ctx->tls_key = key;
    ctx->tls_cert_from = ctx->tls_key_from = from;
  }
}

static void runctl_say_file(const char *what, const char *path, const char *from) {
  if (path)
    fprintf(stderr, "runctl: %s: %s (%s%s)\n", what, path, from,
            strcmp(from, "default") ? ""
                                    : ": $RUNRPC_STATE_DIR/tls or " RUNRPC_DEFAULT_STATE_DIR
                                      "/tls");
  else
    fprintf(stderr, "runctl: %s: none\n", what);
}

/* -v: what this connection uses (never the token itself). */
static void runctl_say_connect(const runctl_ctx *ctx) {
  bool tls = runctl_addr_is_tls(ctx->addr);
  fprintf(stderr, "runctl: address: %s (%s)\n", ctx->addr,
          tls                                   ? "TLS"
          : strncmp(ctx->addr, "unix:", 5) == 0 ? "unix socket, plaintext"
                                                : "h2c, plaintext");
  if (tls) {
    runctl_say_file("CA file", ctx->ca, ctx->ca_from);
    runctl_say_file("client certificate", ctx->tls_cert, ctx->tls_cert_from);
    runctl_say_file("client key", ctx->tls_key, ctx->tls_key_from);
    if (ctx->server_name)
      fprintf(stderr, "runctl: server name: %s (--server-name)\n", ctx->server_name);
  }
  if (ctx->token)
    fprintf(stderr, "runctl: bearer token: given (not shown)\n");
}

int runctl_connect(runctl_ctx *ctx, int exit_code) {
  char cache[4096];
  runrpc_error err;
  runrpc_options o;
  runctl_tls_defaults(ctx);
  if (runctl_addr_is_tls(ctx->addr) && !ctx->ca) {
    err = (runrpc_error){.code = RUNRPC_INVALID_ARGUMENT};
    snprintf(err.message, sizeof err.message,
             "%s is a TLS address: give the CA that signed the server certificate (--ca or "
             "RUNRPC_CA); no readable default %s/tls/ca.pem",
             ctx->addr, runctl_state_dir());
    return runctl_fail("connect", &err, exit_code);
  }
  if (ctx->verbose)
    runctl_say_connect(ctx);
  runrpc_options_init(&o);
  o.tls_cert_file = ctx->tls_cert;
  o.tls_key_file = ctx->tls_key;
  o.tls_ca_file = ctx->ca;
  o.tls_server_name = ctx->server_name;
  o.token = ctx->token;
  o.allow_insecure = ctx->allow_insecure;
  o.compress = ctx->compress;
  if (!ctx->no_session_cache)
    o.tls_session_cache_dir = runctl_session_cache_dir(cache, sizeof cache);
  if (runrpc_connect(ctx->addr, &o, &ctx->client, &err) < 0)
    return runctl_fail("connect", &err, exit_code);
  if (ctx->verbose && runctl_addr_is_tls(ctx->addr)) {
    runrpc_conn_info info;
    runrpc_conn_info_get(ctx->client, &info);
    fprintf(stderr, "runctl: connected: TLS 1.3, %s, handshake %llu us\n",
            info.resumed ? "session resumed" : "full handshake",
            (unsigned long long)info.handshake_us);
  }
  return 0;
}

void runctl_getopt_reset(void) {
  optind = 0; /* glibc: full re-initialisation */
  opterr = 0;
}

int runctl_getopt_error(const runctl_ctx *ctx, int c, char **argv) {
  const char *arg = argv[optind - 1];
  if (c == ':')
    return runctl_usage_error(ctx, "option '%s' needs a value", arg);
  if (optopt && strncmp(arg, "--", 2) != 0)
    return runctl_usage_error(ctx, "unknown option '-%c'", optopt);
  return runctl_usage_error(ctx, "unknown option '%s'", arg);
}

int runctl_parse_duration(const runctl_ctx *ctx, const char *flag, const char *s,
                          uint64_t *ret_ms) {
  /* DUR: 1.5 (seconds), 500ms, 10s, 2m, 1h, 1d */
  if (rr_parse_duration_ms(s, ret_ms) == 0)
    return 0;
  runctl_usage_error(ctx, "invalid duration \"%s\" for %s (want e.g. 1.5, 500ms, 10s, 2m, 1h, 1d)",
                     s, flag);
  return -1;
}

int runctl_parse_env(const runctl_ctx *ctx, const char *s) {
  const char *eq = strchr(s, '=');
  if (!eq || eq == s) {
    runctl_usage_error(ctx, "invalid --env \"%s\" (want KEY=VALUE)", s);
    return -1;
  }
  return 0;
}

int runctl_parse_job_id(const runctl_ctx *ctx, const char *s, char out[RUNRPC_JOB_ID_SIZE]) {
  if (!runrpc_job_id_valid(s)) {
    runctl_usage_error(ctx, "invalid job ID \"%.64s\" (want a 26-character ULID, Crockford base32)",
                       s);
    return -1;
  }
  for (size_t i = 0; i < 26; i++)
    out[i] = (char)toupper((unsigned char)s[i]);
  out[26] = '\0';
  return 0;
}

int runctl_take_job_id(const runctl_ctx *ctx, int argc, char **argv, int nextra,
                       char out[RUNRPC_JOB_ID_SIZE]) {
  if (optind >= argc)
    return runctl_usage_error(ctx, "missing job ID");
  if (argc - optind > 1 + nextra)
    return runctl_usage_error(ctx, "unexpected argument \"%s\"", argv[optind + 1 + nextra]);
  if (runctl_parse_job_id(ctx, argv[optind], out) < 0)
    return RUNCTL_EXIT_USAGE;
  return 0;
}

int runctl_job_connect(runctl_ctx *ctx, int argc, char **argv, int nextra,
                       char out[RUNRPC_JOB_ID_SIZE], int fail_code) {
  int rc = runctl_take_job_id(ctx, argc, argv, nextra, out);
  return rc ? rc : runctl_connect(ctx, fail_code);
}

static const struct {
  int num;
  const char *name;
} signals[] = {
    {SIGHUP, "HUP"},   {SIGINT, "INT"},       {SIGQUIT, "QUIT"}, {SIGILL, "ILL"},
    {SIGTRAP, "TRAP"}, {SIGABRT, "ABRT"},     {SIGBUS, "BUS"},   {SIGFPE, "FPE"},
    {SIGKILL, "KILL"}, {SIGUSR1, "USR1"},     {SIGSEGV, "SEGV"}, {SIGUSR2, "USR2"},
    {SIGPIPE, "PIPE"}, {SIGALRM, "ALRM"},     {SIGTERM, "TERM"}, {SIGSTKFLT, "STKFLT"},
    {SIGCHLD, "CHLD"}, {SIGCONT, "CONT"},     {SIGSTOP, "STOP"}, {SIGTSTP, "TSTP"},
    {SIGTTIN, "TTIN"}, {SIGTTOU, "TTOU"},     {SIGURG, "URG"},   {SIGXCPU, "XCPU"},
    {SIGXFSZ, "XFSZ"}, {SIGVTALRM, "VTALRM"}, {SIGPROF, "PROF"}, {SIGWINCH, "WINCH"},
    {SIGIO, "IO"},     {SIGPWR, "PWR"},       {SIGSYS, "SYS"},   {SIGIOT, "IOT"},
    {SIGCHLD, "CLD"},  {SIGIO, "POLL"},
};

const char *runctl_signal_name(int sig) {
  for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++)
    if (signals[i].num == sig)
      return signals[i].name;
  return NULL;
}

int runctl_parse_signal(const runctl_ctx *ctx, const char *s, int *ret_sig) {
  if (isdigit((unsigned char)s[0])) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*end || errno || v < 1 || v > 64)
      goto bad;
    *ret_sig = (int)v;
    return 0;
  }
  const char *n = strncasecmp(s, "SIG", 3) == 0 ? s + 3 : s;
  for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++) {
    if (strcasecmp(n, signals[i].name) == 0) {
      *ret_sig = signals[i].num;
      return 0;
    }
  }
  /* RTMIN, RTMIN+N, RTMAX, RTMAX-N */
  int base = 0, sign = 0;
  if (strncasecmp(n, "RTMIN", 5) == 0)
    base = SIGRTMIN, sign = 1;
  else if (strncasecmp(n, "RTMAX", 5) == 0)
    base = SIGRTMAX, sign = -1;
  if (base) {
    const char *p = n + 5;
    long off = 0;
    if (*p) {
      char *end;
      if ((sign > 0 && *p != '+') || (sign < 0 && *p != '-') || !isdigit((unsigned char)p[1]))
        goto bad;
      off = strtol(p + 1, &end, 10);
      if (*end)
        goto bad;
    }
    long v = base + sign * off;
    if (v < SIGRTMIN || v > SIGRTMAX)
      goto bad;
    *ret_sig = (int)v;
    return 0;
  }
bad:
  runctl_usage_error(ctx,
                     "invalid signal \"%s\" (want a number 1..64 or a name like TERM, "
                     "SIGKILL, hup)",
                     s);
  return -1;
}

void runctl_strv_push(runctl_strv *s, const char *str) {
  if (s->n == s->cap) {
    s->cap = s->cap ? 2 * s->cap : 8;
    s->v = realloc(s->v, s->cap * sizeof *s->v);
    if (!s->v) {
      fprintf(stderr, "runctl: out of memory\n");
      exit(RUNCTL_EXIT_FAILURE);
    }
  }
  s->v[s->n++] = str;
}

void runctl_strv_free(runctl_strv *s) {
  free(s->v);
  *s = (runctl_strv){0};
}

#define RUNCTL_OPT_LIMIT 1000 /* getopt values of the --max-* flags: this + runctl_limit_flag */

/* argv[optind] if it is a word of -t and -i: counted, skipped, 0; -1 if
 * it is something else; the usage exit code for start (no terminal yet). */
static int runctl_parse_tty_cluster(const runctl_ctx *ctx, int argc, char **argv, bool allow_tags,
                                    runctl_run_flags *f) {
  int i = optind;
  const char *a = i < argc ? argv[i] : NULL;
  if (!a || a[0] != '-' || !a[1] || strspn(a + 1, "it") != strlen(a + 1))
    return -1;
  for (const char *p = a + 1; *p; p++) {
    f->tty += *p == 't';
    f->interactive |= *p == 'i';
  }
  optind = i + 1;
  return 0;
}

int runctl_parse_run_flags(runctl_ctx *ctx, int argc, char **argv, bool allow_tags,
                           runctl_run_flags *f) {
#define L(flag) (RUNCTL_OPT_LIMIT + (flag))
  static const struct option opts_tags[] = {
      {"env", required_argument, NULL, 'e'},
      {"workdir", required_argument, NULL, 'w'},
      {"timeout", required_argument, NULL, 't'},
      {"timeout-grace", required_argument, NULL, 'g'},
      {"help", no_argument, NULL, 'h'},
      {"tag", required_argument, NULL, 'T'},
      {"profile", required_argument, NULL, RUNCTL_OPT_PROFILE},
      {"rootfs", required_argument, NULL, RUNCTL_OPT_ROOTFS},
      {"image", required_argument, NULL, RUNCTL_OPT_IMAGE},
      {"bind", required_argument, NULL, RUNCTL_OPT_BIND},
      {"net", required_argument, NULL, RUNCTL_OPT_NET},
      {"hostname", required_argument, NULL, RUNCTL_OPT_HOSTNAME},
      {"user", required_argument, NULL, RUNCTL_OPT_USER},
      {"max-cpu", required_argument, NULL, L(RUNCTL_LIMIT_CPU)},
      {"max-memory", required_argument, NULL, L(RUNCTL_LIMIT_MEMORY)},
      {"max-pids", required_argument, NULL, L(RUNCTL_LIMIT_PIDS)},
      {"max-rbps", required_argument, NULL, L(RUNCTL_LIMIT_RBPS)},
      {"max-wbps", required_argument, NULL, L(RUNCTL_LIMIT_WBPS)},
      {"max-riops", required_argument, NULL, L(RUNCTL_LIMIT_RIOPS)},
      {"max-wiops", required_argument, NULL, L(RUNCTL_LIMIT_WIOPS)},
      /* the seed rund's spellings (Go flags: one dash or two) */
      {"max_cpu_bandwidth", required_argument, NULL, L(RUNCTL_LIMIT_CPU_BANDWIDTH)},
      {"max_memory_usage", required_argument, NULL, L(RUNCTL_LIMIT_MEMORY)},
      {"max_rbps", required_argument, NULL, L(RUNCTL_LIMIT_RBPS)},
      {"max_wbps", required_argument, NULL, L(RUNCTL_LIMIT_WBPS)},
      {"max_riops", required_argument, NULL, L(RUNCTL_LIMIT_RIOPS)},
      {"max_wiops", required_argument, NULL, L(RUNCTL_LIMIT_WIOPS)},
      {"tty", no_argument, NULL, RUNCTL_OPT_TTY},
      {"interactive", no_argument, NULL, RUNCTL_OPT_INTERACTIVE},
      {"in", required_argument, NULL, RUNCTL_OPT_IN},
      {0},
  };
#undef L
  *f = (runctl_run_flags){0};
  runctl_getopt_reset();
  int c, idx = -1;
  bool boxed = false; /* a limit or sandbox flag given (refused with --in) */
  /* initialise getopt on argv[0] alone (optind 1 after): words it never
   * sees can then be skipped by moving optind */
  if (getopt_long_only(1, argv, "+:h", opts_tags, &idx) != -1)
    return runctl_usage_error(ctx, "cannot parse the options");
  /* '+': stop at CMD so its own flags are left alone; _only: "-max_rbps" is the long option */
  for (;;) {
    /* -t, -i, -it, -ti, -tt as docker and ssh users type them: one-dash
     * words getopt_long_only would take for long options (-ti: --timeout) */
    int r = runctl_parse_tty_cluster(ctx, argc, argv, allow_tags, f);
    if (r > 0)
      return r;
    if (r == 0)
      continue;
    if ((c = getopt_long_only(argc, argv, "+:h", opts_tags, &idx)) == -1)
      break;
    if (c >= RUNCTL_OPT_PROFILE && c <= RUNCTL_OPT_IMAGE) {
      idx = -1;
      boxed = true;
      if (runctl_sandbox_apply(ctx, &f->sandbox, c, optarg) != 0)
        return RUNCTL_EXIT_USAGE;
      continue;
    }
    if (c >= RUNCTL_OPT_LIMIT && c < RUNCTL_OPT_PROFILE && idx >= 0) {
      const char *name = opts_tags[idx].name;
      boxed = true;
      char spelled[64], msg[512];
      snprintf(spelled, sizeof spelled, "%s%s", strchr(name, '_') ? "-" : "--", name);
      if (runctl_limits_apply(&f->limits, (runctl_limit_flag)(c - RUNCTL_OPT_LIMIT), spelled,
                              optarg, msg, sizeof msg) < 0)
        return runctl_usage_error(ctx, "%s", msg);
      idx = -1;
      continue;
    }
    idx = -1;
    switch (c) {
    case 'e':
      if (runctl_parse_env(ctx, optarg) < 0)
        return RUNCTL_EXIT_USAGE;
      runctl_strv_push(&f->env, optarg);
      break;
    case 'w':
      if (!*optarg)
        return runctl_usage_error(ctx, "empty --workdir");
      f->workdir = optarg;
      break;
    case 't':
      if (runctl_parse_duration(ctx, "--timeout", optarg, &f->timeout_ms) < 0)
        return RUNCTL_EXIT_USAGE;
      if (f->timeout_ms == 0)
        return runctl_usage_error(ctx, "--timeout must be more than 0");
      f->has_timeout = true;
      break;
    case 'g':
      if (runctl_parse_duration(ctx, "--timeout-grace", optarg, &f->timeout_grace_ms) < 0)
        return RUNCTL_EXIT_USAGE;
      if (f->timeout_grace_ms == 0 || f->timeout_grace_ms > 3600000)
        return runctl_usage_error(ctx, "--timeout-grace \"%s\" must be more than 0 and at most 1h",
                                  optarg);
      break;
    case 'T':
      if (!allow_tags)
        return runctl_usage_error(ctx, "unknown option '--tag'");
      if (!*optarg)
        return runctl_usage_error(ctx, "empty --tag");
      runctl_strv_push(&f->tags, optarg);
      break;
    case RUNCTL_OPT_TTY:
    case RUNCTL_OPT_INTERACTIVE:
      f->tty += c == RUNCTL_OPT_TTY;
      f->interactive |= c == RUNCTL_OPT_INTERACTIVE;
      break;
    case RUNCTL_OPT_IN:
      if (allow_tags)
        return runctl_usage_error(ctx, "unknown option '--in'");
      if (!*optarg)
        return runctl_usage_error(ctx, "empty --in (want a job id)");
      f->in_job = optarg;
      break;
    case 'h':
      return -1; /* caller prints help */
    default:
      return runctl_getopt_error(ctx, c, argv);
    }
  }
  if (optind >= argc)
    return runctl_usage_error(ctx, "missing command to run");
  if (f->in_job && boxed)
    return runctl_usage_error(ctx, "--in: the command runs under the job's limits and in its "
                                   "sandbox (no --max-*, --profile, --rootfs, --image, --bind, "
                                   "--net, --hostname, --user)");
  if (f->timeout_grace_ms && !f->has_timeout)
    return runctl_usage_error(ctx, "--timeout-grace needs --timeout (the grace follows it)");
  f->cmd_index = optind;
  return 0;
}

void runctl_run_flags_free(runctl_run_flags *f) {
  runctl_strv_free(&f->env);
  runctl_strv_free(&f->tags);
  runctl_sandbox_flags_free(&f->sandbox);
}

void runctl_write_or_die(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      if (errno == EPIPE) {
        signal(SIGPIPE, SIG_DFL);
        raise(SIGPIPE);
      }
      exit(RUNCTL_EXIT_FAILURE);
    }
    p += n;
    len -= (size_t)n;
  }
}

void runctl_die_if_epipe(const runrpc_error *err) {
  if (err->sys_errno == EPIPE) {
    signal(SIGPIPE, SIG_DFL);
    raise(SIGPIPE);
    _exit(128 + SIGPIPE);
  }
}
