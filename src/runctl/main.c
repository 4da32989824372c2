/* runctl: command-line client of rund (see docs/dev/CLI.md). */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "runctl.h"

#define RUNCTL_DEFAULT_ADDR "unix:/run/runrpc/rund.sock"

static const runctl_command *const commands[] = {
    &runctl_cmd_exec,  &runctl_cmd_start,  &runctl_cmd_status, &runctl_cmd_logs,
    &runctl_cmd_wait,  &runctl_cmd_signal, &runctl_cmd_stop,   &runctl_cmd_list,
    &runctl_cmd_image, &runctl_cmd_run,    &runctl_cmd_attach, &runctl_cmd_send,
};

static const runctl_command *command_find(const char *name) {
  if (strcmp(name, "log") == 0) /* the seed client's spelling */
    name = "logs";
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (strcmp(commands[i]->name, name) == 0)
      return commands[i];
  return NULL;
}

static void print_main_help(void) {
  printf("Usage: runctl [--addr ADDR] [TLS/TOKEN OPTIONS] COMMAND [ARGS]\n"
         "\n"
         "Run and manage commands on a rund server.\n"
         "\n"
         "Commands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    printf("  %s\n", commands[i]->usage);
  printf(
      "\n"
      "Options:\n"
      "  --addr ADDR         server address (default $RUNRPC_ADDR, else " RUNCTL_DEFAULT_ADDR ")\n"
      "                      unix:PATH           plaintext unix socket\n"
      "                      HOST:PORT, [V6]:PORT TLS 1.3, server verified; a client\n"
      "                                          certificate or --token (then --ca is all\n"
      "                                          the TLS it needs)\n"
      "                      h2c:HOST:PORT       plaintext TCP (loopback, development)\n"
      "  --tls-cert FILE     client certificate, PEM ($RUNRPC_TLS_CERT); optional with --token\n"
      "  --tls-key FILE      its private key ($RUNRPC_TLS_KEY)\n"
      "  --ca FILE           CA(s) the server certificate must chain to ($RUNRPC_CA)\n"
      "                      TLS files not given: " RUNRPC_DEFAULT_STATE_DIR
      "/tls/{client.pem,client.key,ca.pem}\n"
      "                      if readable ($RUNRPC_STATE_DIR/tls/ when set); -v names\n"
      "                      the files used\n"
      "  --server-name NAME  name to verify in the server certificate (default: ADDR's host)\n"
      "  --token TOKEN       bearer token sent with every call ($RUNRPC_TOKEN); needs TLS\n"
      "  --allow-insecure    allow sending the token over a plaintext address\n"
      "  -v, --verbose       say on stderr which address, TLS files and token are used\n"
      "  --no-session-cache  do not keep TLS sessions on disk ($RUNRPC_NO_SESSION_CACHE=1);\n"
      "                      by default they are kept (0600) in\n"
      "                      $XDG_RUNTIME_DIR/runrpc/tls-sessions, else\n"
      "                      $HOME/.cache/runrpc/tls-sessions, so the next runctl resumes\n"
      "                      instead of a full handshake (sessions last at most 1 hour)\n"
      "\n"
      "Many hosts at once (exec, start, status and stop):\n"
      "  --hosts FILE|ADDR,ADDR,...\n"
      "                      run the command on every host: a file (an existing file,\n"
      "                      a name without ':', or - for stdin) with one host a line,\n"
      "                      'ADDR [name=NAME] [ca=F] [cert=F key=F] [token-file=F]\n"
      "                      [server-name=N] [allow-insecure]' (# comments; relative\n"
      "                      files from the file's directory; what a line leaves out\n"
      "                      comes from the options above), or a comma-separated list\n"
      "                      Output lines come as 'NAME: line' (stdout and stderr kept\n"
      "                      apart); a row per host on stderr at the end; exit status 0\n"
      "                      only if every host succeeded (exec: its command exited 0),\n"
      "                      else 1 (2: usage error or bad hosts file); stdin is not passed\n"
      "  --parallel N        hosts worked on at once (default 32, at most 1024)\n"
      "  --host-timeout DUR  give up a host after DUR (connect included; exec's command\n"
      "                      is then killed); default: none\n"
      "  --connect-timeout DUR  per host (default 10s)\n"
      "  --out-dir DIR       each host's output in DIR/NAME.stdout and DIR/NAME.stderr\n"
      "                      and its row in DIR/NAME.status, instead of prefixed lines\n"
      "                      status and stop take ID, @FILE (start's 'NAME: ID' lines)\n"
      "                      or @DIR (start's --out-dir)\n"
      "\n"
      "  --compress          gzip messages of 1 KiB or more both ways ($RUNRPC_COMPRESS=1);\n"
      "                      off by default (CPU a unix socket or a fast link does not\n"
      "                      win back)\n"
      "  --help              this help; 'runctl help COMMAND' or 'runctl COMMAND --help' for one\n"
      "  --version           print the version\n"
      "\n"
      "The seed client's spellings work too: -addr, -ca, -cert and -key (before or\n"
      "right after the command) for --addr, --ca, --tls-cert and --tls-key, and\n"
      "'log' for 'logs'.\n"
      "\n"
      "DUR is 1.5 (seconds), 500ms, 10s, 2m or 1h.\n"
      "Exit codes: 2 usage error, 1 other failures; exec and wait exit with the\n"
      "command's status (128+N if killed by signal N), or 125 when they fail\n"
      "themselves (126: command not executable, 127: command not found).\n");
}

static int cmd_help(runctl_ctx *ctx, int argc, char **argv) {
  if (argc <= 1) {
    print_main_help();
    return 0;
  }
  if (argc > 2)
    return runctl_usage_error(ctx, "too many arguments");
  const runctl_command *cmd = command_find(argv[1]);
  if (!cmd)
    return runctl_usage_error(ctx, "unknown command \"%s\"", argv[1]);
  runctl_print_help(cmd);
  return 0;
}

static const char *env_or_null(const char *name) {
  const char *v = getenv(name);
  return v && *v ? v : NULL;
}

/* Global options with a value ("--ca F" or "--ca=F"): 1 if argv[*i] was
 * one (consumed), 0 if not, -1 after a usage error. */
static int global_value(int argc, char **argv, int *i, runctl_ctx *ctx) {
  const struct {
    const char *name;
    const char **dst, **from;
  } opts[] = {
      {"--addr", &ctx->addr, NULL},
      {"--tls-cert", &ctx->tls_cert, &ctx->tls_cert_from},
      {"--tls-key", &ctx->tls_key, &ctx->tls_key_from},
      {"--ca", &ctx->ca, &ctx->ca_from},
      {"--server-name", &ctx->server_name, NULL},
      {"--token", &ctx->token, NULL},
      {"--hosts", &ctx->hosts, NULL},
      {"--parallel", &ctx->parallel, NULL},
      {"--host-timeout", &ctx->host_timeout, NULL},
      {"--connect-timeout", &ctx->connect_timeout, NULL},
      {"--out-dir", &ctx->out_dir, NULL},
      /* the seed client's Go-style spellings */
      {"-addr", &ctx->addr, NULL},
      {"-ca", &ctx->ca, &ctx->ca_from},
      {"-cert", &ctx->tls_cert, &ctx->tls_cert_from},
      {"-key", &ctx->tls_key, &ctx->tls_key_from},
  };
  const char *a = argv[*i];
  for (size_t k = 0; k < sizeof opts / sizeof opts[0]; k++) {
    size_t n = strlen(opts[k].name);
    if (strncmp(a, opts[k].name, n) != 0)
      continue;
    if (a[n] == '=') {
      *opts[k].dst = a + n + 1;
    } else if (a[n] == '\0') {
      if (*i + 1 >= argc)
        return runctl_usage_error(NULL, "option '%s' needs a value", opts[k].name), -1;
      *opts[k].dst = argv[++*i];
    } else {
      continue;
    }
    if (opts[k].from)
      *opts[k].from = opts[k].name;
    return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  /* started with 0, 1 or 2 closed (cron, a daemon, `<&-`): /dev/null there,
   * so that no socket of ours is read as stdin or written as output */
  if (rr_stdio_reserve() < 0) {
    fprintf(stderr, "runctl: cannot open /dev/null for a closed stdin/stdout/stderr: %s\n",
            strerror(errno));
    return RUNCTL_EXIT_FAILURE;
  }
  /* exec output arrives as messages of up to 1 MiB, each in a buffer freed
   * once written: keep freed memory for the next one instead of handing it
   * back to the kernel per message (a fresh buffer page-faults and zeroes
   * every page: half of runctl's CPU per GiB) */
  mallopt(M_MMAP_THRESHOLD, 4 << 20);
  mallopt(M_TRIM_THRESHOLD, 16 << 20);
  /* our own writes report EPIPE; we then die by SIGPIPE on purpose */
  signal(SIGPIPE, SIG_IGN);
  runctl_ctx ctx = {
      .addr = getenv("RUNRPC_ADDR"),
      .tls_cert = env_or_null("RUNRPC_TLS_CERT"),
      .tls_key = env_or_null("RUNRPC_TLS_KEY"),
      .ca = env_or_null("RUNRPC_CA"),
      .token = env_or_null("RUNRPC_TOKEN"),
      .tls_cert_from = "$RUNRPC_TLS_CERT",
      .tls_key_from = "$RUNRPC_TLS_KEY",
      .ca_from = "$RUNRPC_CA",
  };
  const char *nocache = env_or_null("RUNRPC_NO_SESSION_CACHE");
  ctx.no_session_cache = nocache && strcmp(nocache, "0") != 0;
  const char *compress = env_or_null("RUNRPC_COMPRESS");
  ctx.compress = compress && strcmp(compress, "0") != 0;
  if (!ctx.addr || !*ctx.addr)
    ctx.addr = RUNCTL_DEFAULT_ADDR;
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    const char *a = argv[i];
    int r = global_value(argc, argv, &i, &ctx);
    if (r < 0)
      return RUNCTL_EXIT_USAGE;
    if (r > 0)
      continue;
    if (strcmp(a, "--allow-insecure") == 0) {
      ctx.allow_insecure = true;
    } else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
      ctx.verbose = true;
    } else if (strcmp(a, "--no-session-cache") == 0) {
      ctx.no_session_cache = true;
    } else if (strcmp(a, "--compress") == 0) {
      ctx.compress = true;
    } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      print_main_help();
      return 0;
    } else if (strcmp(a, "--version") == 0) {
      printf("runctl %s\n", runrpc_version());
      return 0;
    } else {
      return runctl_usage_error(NULL, "unknown option '%s'", a);
    }
  }
  if (!*ctx.addr)
    return runctl_usage_error(NULL, "empty --addr");
  if (i >= argc)
    return runctl_usage_error(NULL, "missing command");
  ctx.verb = argv[i];
  if (strcmp(argv[i], "help") == 0)
    return cmd_help(&ctx, argc - i, argv + i);
  const runctl_command *cmd = command_find(argv[i]);
  if (!cmd) {
    ctx.verb = NULL;
    return runctl_usage_error(NULL, "unknown command \"%s\"", argv[i]);
  }
  /* the seed put -addr/-ca/-cert/-key after the verb: take them there too */
  int n = i + 1;
  for (int j = i + 1; j < argc; j++) {
    if (argv[j][0] != '-' || strcmp(argv[j], "--") == 0) {
      while (j < argc)
        argv[n++] = argv[j++];
      break;
    }
    int r = argv[j][1] != '-' ? global_value(argc, argv, &j, &ctx) : 0;
    if (r < 0)
      return RUNCTL_EXIT_USAGE;
    if (r == 0)
      argv[n++] = argv[j];
  }
  argc = n;
  argv[argc] = NULL;
  if (!*ctx.addr)
    return runctl_usage_error(NULL, "empty -addr");
  if (ctx.hosts)
    return runctl_fanout_main(&ctx, cmd, argc - i, argv + i);
  const char *lone = ctx.parallel          ? "--parallel"
                     : ctx.host_timeout    ? "--host-timeout"
                     : ctx.connect_timeout ? "--connect-timeout"
                     : ctx.out_dir         ? "--out-dir"
                                           : NULL;
  if (lone)
    return runctl_usage_error(NULL, "%s goes with --hosts", lone);
  int rc = cmd->run(&ctx, argc - i, argv + i);
  runrpc_close(ctx.client);
  if (fflush(stdout) != 0 || ferror(stdout)) {
    runrpc_error err = {.code = RUNRPC_UNKNOWN, .sys_errno = errno};
    runctl_die_if_epipe(&err);
    return rc ? rc : RUNCTL_EXIT_FAILURE;
  }
  return rc;
}
