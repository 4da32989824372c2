/* runctl --hosts FILE|ADDR,...: exec, start, status or stop on many rund
 * hosts at once through runrpc_fanout; output prefixed by host (or a
 * --out-dir), a row per host on stderr at the end, exit 0 only if every
 * host succeeded. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "fanout.h"

typedef enum { FANOUT_EXEC, FANOUT_START, FANOUT_STATUS, FANOUT_STOP } fanout_verb;

/* One host's output and outcome. */
typedef struct fanout_io {
  fanout_sink out, err;
  bool files;  /* its --out-dir files were made */
  bool exited; /* exec: the command ended (exit below) */
  runrpc_exit_status exit;
} fanout_io;

typedef struct fanout_run {
  runctl_ctx *ctx;
  fanout_verb verb;
  runctl_run_flags flags; /* exec, start */
  char **argv;
  int argc;
  bool json;     /* status --json */
  int64_t grace; /* stop --grace; -1: rund's */
  fanout_hosts hosts;
  fanout_io *io;
  pthread_mutex_t out_lock;
  const char *out_dir;
} fanout_run;

static int fanout_on_stdout(const void *data, size_t len, void *ud) {
  return fanout_sink_write(&((fanout_io *)ud)->out, data, len);
}

static int fanout_on_stderr(const void *data, size_t len, void *ud) {
  return fanout_sink_write(&((fanout_io *)ud)->err, data, len);
}

static int fanout_err(runrpc_error *err, int code, const char *fmt, const char *a, const char *b) {
  err->code = code;
  snprintf(err->message, sizeof err->message, fmt, a, b);
  return -1;
}

/* DIR/NAME.EXT opened for writing (truncated). */
static int fanout_file_open(const fanout_run *r, const fanout_host *h, const char *ext) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s.%s", r->out_dir, h->name, ext);
  return open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0666);
}

/* The host's sinks: its files under --out-dir, else runctl's stdout/stderr. */
static int fanout_io_open(fanout_run *r, size_t i, runrpc_error *err) {
  fanout_io *io = &r->io[i];
  const fanout_host *h = &r->hosts.v[i];
  if (!r->out_dir) {
    fanout_sink_init(&io->out, &r->out_lock, fanout_host_label(h), STDOUT_FILENO, true);
    fanout_sink_init(&io->err, &r->out_lock, fanout_host_label(h), STDERR_FILENO, true);
    return 0;
  }
  int out = fanout_file_open(r, h, "stdout");
  int errfd = out < 0 ? -1 : fanout_file_open(r, h, "stderr");
  if (errfd < 0) {
    int e = errno;
    if (out >= 0)
      close(out);
    err->sys_errno = e;
    return fanout_err(err, RUNRPC_UNKNOWN, "cannot create %s/%s.stdout or .stderr", r->out_dir,
                      h->name);
  }
  io->files = true;
  fanout_sink_init(&io->out, &r->out_lock, h->name, out, false);
  fanout_sink_init(&io->err, &r->out_lock, h->name, errfd, false);
  return 0;
}

static void fanout_io_close(fanout_run *r, size_t i) {
  fanout_io *io = &r->io[i];
  fanout_sink_finish(&io->out);
  fanout_sink_finish(&io->err);
  if (io->files) {
    close(io->out.fd);
    close(io->err.fd);
  }
  fanout_sink_free(&io->out);
  fanout_sink_free(&io->err);
}

/* The command line's command, as exec and start send it to every host. */
static runrpc_command fanout_command(const fanout_run *r) {
  const runctl_run_flags *f = &r->flags;
  return (runrpc_command){.path = r->argv[f->cmd_index],
                          .args = (const char *const *)r->argv + f->cmd_index + 1,
                          .nargs = (size_t)(r->argc - f->cmd_index - 1),
                          .env = f->env.v,
                          .nenv = f->env.n,
                          .workdir = f->workdir};
}

static int fanout_exec(fanout_run *r, size_t i, runrpc_client *c, uint64_t deadline,
                       runrpc_error *err) {
  const runctl_run_flags *f = &r->flags;
  runrpc_exec_request req = {
      .command = fanout_command(r),
      .has_timeout = f->has_timeout,
      .timeout_ms = f->timeout_ms,
      .timeout_grace_ms = (uint32_t)f->timeout_grace_ms,
      .limits = f->limits.limits,
      .sandbox = f->sandbox.sandbox,
      .stdin_fd = -1,
      .stdout_fd = -1,
      .stderr_fd = -1,
      .on_stdout = fanout_on_stdout,
      .on_stderr = fanout_on_stderr,
      .userdata = &r->io[i],
      .deadline_ms = deadline,
      .tty_size_fd = -1,
  };
  if (runrpc_exec(c, &req, &r->io[i].exit, err) < 0)
    return -1;
  r->io[i].exited = true;
  return 0;
}

static int fanout_say(fanout_run *r, size_t i, const char *line) {
  char buf[RUNRPC_ERROR_MAX + 64];
  int n = snprintf(buf, sizeof buf, "%s\n", line);
  return fanout_sink_write(&r->io[i].out, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

static int fanout_start(fanout_run *r, size_t i, runrpc_client *c, runrpc_error *err) {
  const runctl_run_flags *f = &r->flags;
  runrpc_start_request req = {
      .command = fanout_command(r),
      .tags = f->tags.v,
      .ntags = f->tags.n,
      .has_timeout = f->has_timeout,
      .timeout_ms = f->timeout_ms,
      .timeout_grace_ms = (uint32_t)f->timeout_grace_ms,
      .limits = f->limits.limits,
      .sandbox = f->sandbox.sandbox,
  };
  char id[RUNRPC_JOB_ID_SIZE];
  if (runrpc_start(c, &req, id, NULL, err) < 0)
    return -1;
  return fanout_say(r, i, id);
}

static int fanout_status(fanout_run *r, size_t i, runrpc_client *c, runrpc_error *err) {
  const fanout_host *h = &r->hosts.v[i];
  runrpc_job_status st;
  int rc = r->verb == FANOUT_STOP ? runrpc_stop(c, h->job_id, r->grace, &st, err)
                                  : runrpc_status(c, h->job_id, &st, err);
  if (rc < 0)
    return -1;
  if (r->json) {
    json_object *o = runctl_status_json(&st);
    const char *s =
        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    rc = fanout_sink_write(&r->io[i].out, s, strlen(s));
    if (rc == 0)
      rc = fanout_sink_write(&r->io[i].out, "\n", 1);
    json_object_put(o);
  } else {
    char line[256];
    runctl_status_line(&st, line, sizeof line);
    rc = fanout_say(r, i, line);
  }
  runrpc_job_status_free(&st);
  return rc;
}

/* runrpc_fanout's work for host i. */
static int fanout_work(size_t i, runrpc_client *c, uint64_t deadline, void *ud, runrpc_error *err) {
  fanout_run *r = ud;
  const fanout_host *h = &r->hosts.v[i];
  if ((r->verb == FANOUT_STATUS || r->verb == FANOUT_STOP) && !h->job_id[0])
    return fanout_err(err, RUNRPC_INVALID_ARGUMENT, "no job id for host %s%s", fanout_host_label(h),
                      " (none in the ids given)");
  if (fanout_io_open(r, i, err) < 0)
    return -1;
  int rc = r->verb == FANOUT_EXEC    ? fanout_exec(r, i, c, deadline, err)
           : r->verb == FANOUT_START ? fanout_start(r, i, c, err)
                                     : fanout_status(r, i, c, err);
  int werr = r->io[i].out.write_errno ? r->io[i].out.write_errno : r->io[i].err.write_errno;
  fanout_io_close(r, i);
  if (werr) { /* the call ended because its output could not be kept */
    err->code = RUNRPC_UNKNOWN;
    err->sys_errno = werr;
    snprintf(err->message, sizeof err->message, "cannot write %s/%s.stdout or .stderr: %s",
             r->out_dir ? r->out_dir : ".", h->name, strerror(werr));
    return -1;
  }
  return rc;
}

/* The row of host i ("exit 0", "error UNAVAILABLE: ...") into buf; true if it succeeded. */
static bool fanout_row(const fanout_run *r, size_t i, const runrpc_fanout_result *res, char *buf,
                       size_t len) {
  if (res->rc < 0) {
    char msg[RUNRPC_ERROR_MAX];
    snprintf(msg, sizeof msg, "%s", res->err.message);
    for (char *p = msg; *p; p++)
      if (*p == '\n' || *p == '\r')
        *p = ' ';
    snprintf(buf, len, "%s %s: %s", res->timed_out ? "timeout" : "error",
             runrpc_code_name(res->err.code), msg);
    return false;
  }
  if (r->verb != FANOUT_EXEC) {
    snprintf(buf, len, "ok");
    return true;
  }
  const runrpc_exit_status *st = &r->io[i].exit;
  int code = st->signal > 0                      ? 128 + st->signal
             : !strcmp(st->reason, "oom-killed") ? 128 + 9
                                                 : st->exit_code & 0xff;
  const char *sig = st->signal > 0 ? runctl_signal_name(st->signal) : NULL;
  char extra[96] = "";
  if (st->signal > 0)
    snprintf(extra, sizeof extra, " (signal %d%s%s)", st->signal, sig ? " SIG" : "",
             sig ? sig : "");
  if (strcmp(st->reason, "exited") && strcmp(st->reason, "signaled") && st->reason[0])
    snprintf(extra + strlen(extra), sizeof extra - strlen(extra), " (%.32s)", st->reason);
  snprintf(buf, len, "exit %d%s", code, extra);
  return code == 0;
}

/* The rows on stderr (and DIR/NAME.status); the exit status. */
static int fanout_report(fanout_run *r, const runrpc_fanout_result *res) {
  size_t ok = 0, width = 0;
  for (size_t i = 0; i < r->hosts.n; i++)
    width = strlen(fanout_host_label(&r->hosts.v[i])) > width
                ? strlen(fanout_host_label(&r->hosts.v[i]))
                : width;
  for (size_t i = 0; i < r->hosts.n; i++) {
    const fanout_host *h = &r->hosts.v[i];
    char row[RUNRPC_ERROR_MAX + 128];
    ok += fanout_row(r, i, &res[i], row, sizeof row);
    fprintf(stderr, "runctl: host %-*s %s\n", (int)width, fanout_host_label(h), row);
    if (!r->out_dir)
      continue;
    if (!r->io[i].files) { /* never connected: empty output files, for a uniform DIR */
      int fd = fanout_file_open(r, h, "stdout");
      if (fd >= 0)
        close(fd);
      if ((fd = fanout_file_open(r, h, "stderr")) >= 0)
        close(fd);
    }
    int fd = fanout_file_open(r, h, "status");
    if (fd < 0 || dprintf(fd, "%s\n", row) < 0) {
      fprintf(stderr, "runctl: cannot write %s/%s.status: %s\n", r->out_dir, h->name,
              strerror(errno));
      ok--; /* that host's outcome is not kept: not a success */
    }
    if (fd >= 0)
      close(fd);
  }
  fprintf(stderr, "runctl: %zu of %zu hosts succeeded\n", ok, r->hosts.n);
  return ok == r->hosts.n ? 0 : RUNCTL_EXIT_FAILURE;
}

/* The verb's own arguments under --hosts: 0, or the usage exit (printed). */
static int fanout_parse_verb(fanout_run *r, int argc, char **argv, bool *help) {
  runctl_ctx *ctx = r->ctx;
  if (r->verb == FANOUT_EXEC || r->verb == FANOUT_START) {
    int rc = runctl_parse_run_flags(ctx, argc, argv, r->verb == FANOUT_START, &r->flags);
    if (rc < 0)
      *help = true;
    if (rc)
      return rc < 0 ? 0 : rc == RUNCTL_EXIT_USAGE ? rc : RUNCTL_EXIT_FAILURE;
    if (r->flags.tty || r->flags.interactive)
      return runctl_usage_error(ctx, "-t and -i do not go with --hosts (stdin is not passed)");
    return 0;
  }
  static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
                                       {"grace", required_argument, NULL, 'g'},
                                       {"help", no_argument, NULL, 'h'},
                                       {0}};
  runctl_getopt_reset();
  int c;
  while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
    if (c == 'j' && r->verb == FANOUT_STATUS) {
      r->json = true;
    } else if (c == 'g' && r->verb == FANOUT_STOP) {
      uint64_t ms;
      if (runctl_parse_duration(ctx, "--grace", optarg, &ms) < 0)
        return RUNCTL_EXIT_USAGE;
      if (ms > UINT32_MAX)
        return runctl_usage_error(ctx, "--grace \"%s\" is too long", optarg);
      r->grace = (int64_t)ms;
    } else if (c == 'h') {
      *help = true;
      return 0;
    } else {
      return c == 'j'   ? runctl_usage_error(ctx, "unknown option '--json'")
             : c == 'g' ? runctl_usage_error(ctx, "unknown option '--grace'")
                        : runctl_getopt_error(ctx, c, argv);
    }
  }
  if (optind >= argc)
    return runctl_usage_error(ctx, "missing job id (ID, @FILE of 'NAME: ID' lines, or @DIR)");
  if (optind + 1 < argc)
    return runctl_usage_error(ctx, "too many arguments");
  char msg[640];
  if (fanout_hosts_job_ids(&r->hosts, argv[optind], msg, sizeof msg) < 0)
    return runctl_usage_error(ctx, "%s", msg);
  return 0;
}

/* --parallel, --host-timeout, --connect-timeout. */
static int fanout_parse_globals(runctl_ctx *ctx, runrpc_fanout_options *fo, uint64_t *connect_ms) {
  if (ctx->parallel) {
    char *end;
    errno = 0;
    unsigned long n = strtoul(ctx->parallel, &end, 10);
    if (errno || end == ctx->parallel || *end || n < 1 || n > RUNRPC_FANOUT_MAX_PARALLEL ||
        ctx->parallel[0] == '-')
      return runctl_usage_error(NULL, "invalid --parallel \"%s\" (want 1 to %d)", ctx->parallel,
                                RUNRPC_FANOUT_MAX_PARALLEL);
    fo->parallel = (unsigned)n;
  }
  if (ctx->host_timeout &&
      runctl_parse_duration(NULL, "--host-timeout", ctx->host_timeout, &fo->host_timeout_ms) < 0)
    return RUNCTL_EXIT_USAGE;
  if (ctx->connect_timeout &&
      runctl_parse_duration(NULL, "--connect-timeout", ctx->connect_timeout, connect_ms) < 0)
    return RUNCTL_EXIT_USAGE;
  if (ctx->connect_timeout && *connect_ms == 0)
    return runctl_usage_error(NULL, "--connect-timeout must be more than 0");
  return 0;
}

/* Each host's options: its line's, else the global ones. */
static void fanout_host_options(runctl_ctx *ctx, fanout_hosts *hs, const char *cache,
                                uint64_t connect_ms) {
  bool any_tls = false;
  for (size_t i = 0; i < hs->n; i++)
    any_tls |= runctl_addr_is_tls(hs->v[i].addr);
  if (any_tls) { /* the default files, as for a TLS --addr */
    const char *addr = ctx->addr;
    ctx->addr = "localhost:0";
    runctl_tls_defaults(ctx);
    ctx->addr = addr;
  }
  for (size_t i = 0; i < hs->n; i++) {
    fanout_host *h = &hs->v[i];
    runrpc_options *o = &h->options;
    runrpc_options_init(o);
    o->tls_ca_file = h->ca ? h->ca : ctx->ca;
    o->tls_cert_file = h->cert ? h->cert : ctx->tls_cert;
    o->tls_key_file = h->cert ? h->key : ctx->tls_key;
    o->tls_server_name = h->server_name ? h->server_name : ctx->server_name;
    o->token = h->token ? h->token : ctx->token;
    o->allow_insecure = h->allow_insecure || ctx->allow_insecure;
    o->compress = ctx->compress;
    o->tls_session_cache_dir = cache;
    o->connect_timeout_ms = connect_ms;
  }
}

static void fanout_run_free(fanout_run *r) {
  if (r->verb == FANOUT_EXEC || r->verb == FANOUT_START)
    runctl_run_flags_free(&r->flags);
  fanout_hosts_free(&r->hosts);
  free(r->io);
  pthread_mutex_destroy(&r->out_lock);
}

int runctl_fanout_main(runctl_ctx *ctx, const runctl_command *cmd, int argc, char **argv) {
  fanout_run r = {.ctx = ctx, .argc = argc, .argv = argv, .grace = -1, .out_dir = ctx->out_dir};
  pthread_mutex_init(&r.out_lock, NULL);
  if (cmd == &runctl_cmd_exec)
    r.verb = FANOUT_EXEC;
  else if (cmd == &runctl_cmd_start)
    r.verb = FANOUT_START;
  else if (cmd == &runctl_cmd_status)
    r.verb = FANOUT_STATUS;
  else if (cmd == &runctl_cmd_stop)
    r.verb = FANOUT_STOP;
  else
    return pthread_mutex_destroy(&r.out_lock),
           runctl_usage_error(ctx, "--hosts works with exec, start, status and stop");
  runrpc_fanout_options fo = {0};
  uint64_t connect_ms = 0;
  char msg[640];
  int rc = fanout_parse_globals(ctx, &fo, &connect_ms);
  if (rc == 0 && fanout_hosts_load(ctx->hosts, &r.hosts, msg, sizeof msg) < 0)
    rc = runctl_usage_error(NULL, "%s", msg);
  bool help = false;
  if (rc == 0)
    rc = fanout_parse_verb(&r, argc, argv, &help);
  if (rc || help) {
    if (help)
      runctl_print_help(cmd);
    fanout_run_free(&r);
    return rc;
  }
  if (r.out_dir && mkdir(r.out_dir, 0777) < 0 && errno != EEXIST) {
    fprintf(stderr, "runctl: cannot make --out-dir \"%s\": %s\n", r.out_dir, strerror(errno));
    fanout_run_free(&r);
    return RUNCTL_EXIT_FAILURE;
  }
  char cache[4096];
  fanout_host_options(ctx, &r.hosts,
                      ctx->no_session_cache ? NULL : runctl_session_cache_dir(cache, sizeof cache),
                      connect_ms);
  runrpc_fanout_host *targets = calloc(r.hosts.n, sizeof *targets);
  runrpc_fanout_result *res = calloc(r.hosts.n, sizeof *res);
  r.io = calloc(r.hosts.n, sizeof *r.io);
  runrpc_error err;
  if (!targets || !res || !r.io) {
    fprintf(stderr, "runctl: out of memory for %zu hosts\n", r.hosts.n);
    rc = RUNCTL_EXIT_FAILURE;
  } else {
    for (size_t i = 0; i < r.hosts.n; i++)
      targets[i] =
          (runrpc_fanout_host){.addr = r.hosts.v[i].addr, .options = &r.hosts.v[i].options};
    if (runrpc_fanout(targets, r.hosts.n, &fo, fanout_work, &r, res, &err) < 0)
      rc = runctl_fail("--hosts", &err, RUNCTL_EXIT_FAILURE);
    else
      rc = fanout_report(&r, res);
  }
  free(targets);
  free(res);
  fanout_run_free(&r);
  return rc;
}
