/* runctl: a thin CLI on librunrpc. One file per verb behind a command table
 * (main.c); helpers for flags, errors, and output here. */
#pragma once
#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "limits.h"
#include "runrpc/client.h"

/* Exit codes (docs/dev/CLI.md). */
#define RUNCTL_EXIT_FAILURE 1
#define RUNCTL_EXIT_USAGE 2
#define RUNCTL_EXIT_EXEC_FAILED 125 /* exec/wait's own failures */
#define RUNCTL_EXIT_NOT_EXECUTABLE 126
#define RUNCTL_EXIT_NOT_FOUND 127

typedef struct runctl_ctx {
  const char *addr;
  const char *verb;
  runrpc_client *client;
  /* TLS and token flags (or RUNRPC_TLS_CERT, RUNRPC_TLS_KEY, RUNRPC_CA, RUNRPC_TOKEN) */
  const char *tls_cert, *tls_key, *ca, *server_name, *token;
  bool allow_insecure;
  bool no_session_cache; /* --no-session-cache or RUNRPC_NO_SESSION_CACHE=1 */
  bool compress;         /* --compress or RUNRPC_COMPRESS=1: gzip messages */
  /* where tls_cert, tls_key and ca came from ("--ca", "$RUNRPC_CA"), for -v */
  const char *tls_cert_from, *tls_key_from, *ca_from;
  bool verbose; /* -v: say on stderr which address and files are used */
  /* --hosts and its flags (fanout.c); strings as given */
  const char *hosts, *out_dir, *parallel, *host_timeout, *connect_timeout;
  char default_file[3][4096]; /* STATE/tls/{ca.pem,client.pem,client.key} when chosen */
} runctl_ctx;

typedef struct runctl_command {
  const char *name;
  int (*run)(runctl_ctx *ctx, int argc, char **argv); /* argv[0] is the verb */
  const char *usage;                                  /* one line: "status ID [--json]" */
  const char *help;                                   /* what it does, and its flags */
} runctl_command;

extern const runctl_command runctl_cmd_exec, runctl_cmd_start, runctl_cmd_status, runctl_cmd_logs,
    runctl_cmd_wait, runctl_cmd_signal, runctl_cmd_stop, runctl_cmd_list, runctl_cmd_image,
    runctl_cmd_run, runctl_cmd_attach, runctl_cmd_send;

/* Print "runctl: VERB: <msg>" on stderr; return RUNCTL_EXIT_USAGE. */
int runctl_usage_error(const runctl_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Print "runctl: <what>: <CODE>: <message>" on stderr; return exit_code. */
int runctl_fail(const char *what, const runrpc_error *err, int exit_code);
/* Print a verb's help on stdout. */
void runctl_print_help(const runctl_command *cmd);
/* $XDG_RUNTIME_DIR/runrpc/tls-sessions, else $HOME/.cache/runrpc/tls-sessions,
 * into buf; NULL if neither is set. */
const char *runctl_session_cache_dir(char *buf, size_t len);
/* False for unix: and h2c: addresses. */
bool runctl_addr_is_tls(const char *addr);
/* TLS files not given for a TLS ctx->addr: rund's default files when readable. */
void runctl_tls_defaults(runctl_ctx *ctx);
/* Connect ctx->client; on failure print the error and return exit_code, else 0. */
int runctl_connect(runctl_ctx *ctx, int exit_code);

/* Per-verb option parsing around getopt_long: reset state, and report
 * unknown/missing-value options as a usage error. */
void runctl_getopt_reset(void);
int runctl_getopt_error(const runctl_ctx *ctx, int c, char **argv);

/* Flag values; each prints its own usage error and returns -1. */
int runctl_parse_duration(const runctl_ctx *ctx, const char *flag, const char *s, uint64_t *ret_ms);
int runctl_parse_env(const runctl_ctx *ctx, const char *s);
int runctl_parse_job_id(const runctl_ctx *ctx, const char *s, char out[RUNRPC_JOB_ID_SIZE]);
/* The job ID at argv[optind], allowing nextra more positionals: 0 or the
 * usage exit code (message printed). */
int runctl_take_job_id(const runctl_ctx *ctx, int argc, char **argv, int nextra,
                       char out[RUNRPC_JOB_ID_SIZE]);
/* runctl_take_job_id, then runctl_connect (FAIL_CODE if that fails): 0 or
 * the exit code (message printed). */
int runctl_job_connect(runctl_ctx *ctx, int argc, char **argv, int nextra,
                       char out[RUNRPC_JOB_ID_SIZE], int fail_code);
int runctl_parse_signal(const runctl_ctx *ctx, const char *s, int *ret_sig);
/* "TERM" for 15, NULL if unknown. */
const char *runctl_signal_name(int sig);

/* A growable array of borrowed strings (argv-style). */
typedef struct runctl_strv {
  const char **v;
  size_t n, cap;
} runctl_strv;
void runctl_strv_push(runctl_strv *s, const char *str);
void runctl_strv_free(runctl_strv *s);

/* The sandbox flags of exec and start (getopt values). */
enum {
  RUNCTL_OPT_PROFILE = 2000,
  RUNCTL_OPT_ROOTFS,
  RUNCTL_OPT_BIND,
  RUNCTL_OPT_NET,
  RUNCTL_OPT_HOSTNAME,
  RUNCTL_OPT_USER,
  RUNCTL_OPT_IMAGE,
  RUNCTL_OPT_TTY = 2100, /* exec's terminal flags */
  RUNCTL_OPT_INTERACTIVE,
  RUNCTL_OPT_IN, /* exec --in ID */
};
typedef struct runctl_sandbox_flags {
  runrpc_sandbox sandbox; /* points into binds and argv */
  runrpc_bind binds[RUNRPC_MAX_BINDS];
  char *storage[RUNRPC_MAX_BINDS]; /* each --bind's copy, split in place */
} runctl_sandbox_flags;
/* Apply one sandbox flag: 0 or the usage exit code (message printed). */
int runctl_sandbox_apply(runctl_ctx *ctx, runctl_sandbox_flags *s, int opt, const char *arg);
void runctl_sandbox_flags_free(runctl_sandbox_flags *s);
#define RUNCTL_SANDBOX_HELP                                                                        \
  "\n"                                                                                             \
  "Sandbox (rund decides: it raises a profile weaker than its minimum to it):\n"                   \
  "  --profile NAME        host (no isolation), default (own pid, mount, ipc, uts\n"               \
  "                        and cgroup namespaces, Docker's capabilities and seccomp\n"             \
  "                        list, no_new_privs, read-only host root) or strict (also\n"             \
  "                        a user namespace, no network, no capabilities, a tight\n"               \
  "                        seccomp list, pids and memory limits); default: rund's\n"               \
  "  --rootfs DIR          this host directory as the root (default: the host's, read-only)\n"     \
  "  --image NAME[:TAG]    an image of rund's store as the root (its own overlay)\n"               \
  "  --bind SRC:DST[:ro]   make host path SRC visible at DST (repeatable; SRC must be\n"           \
  "                        below a directory rund allows with --bind-allow)\n"                     \
  "  --net none|host       a network of its own with only lo, or the host's\n"                     \
  "  --hostname NAME       the sandbox's hostname (default runrpc)\n"                              \
  "  --user UID[:GID]      ids inside the sandbox (GID defaults to UID)\n"

/* Shared flags of exec and start: --env, --workdir, --timeout, the --max-*
 * limits (+ --tag for start). */
typedef struct runctl_run_flags {
  runctl_strv env, tags;
  const char *workdir;
  bool has_timeout;
  uint64_t timeout_ms;
  uint64_t timeout_grace_ms; /* 0: rund's default (10 s) */
  int cmd_index;             /* argv index of CMD */
  runctl_limits limits;
  runctl_sandbox_flags sandbox;
  int tty;            /* exec's -t/--tty given this many times (2: forced) */
  bool interactive;   /* exec's -i/--interactive */
  const char *in_job; /* exec's --in ID: run inside that job */
} runctl_run_flags;
/* The --max-* lines of start's and exec's help. */
#define RUNCTL_LIMITS_HELP                                                                         \
  "\n"                                                                                             \
  "Resource limits (enforced by the kernel in a cgroup of the job's own):\n"                       \
  "  --max-cpu CPU         CPU time: a number of CPUs (0.5, 2), a percentage of\n"                 \
  "                        one CPU (50%), or QUOTA/PERIOD in us (50000/100000)\n"                  \
  "  --max-memory SIZE     memory.max (at least 1M); SIZE is bytes, or with a suffix\n"            \
  "                        K, M, G, T (KB, KiB alike: all binary, K = 1024; any case)\n"           \
  "  --max-pids N          at most N processes and threads\n"                                      \
  "  --max-rbps [DEV=]SIZE read bytes per second (SIZE as above, \"/s\" optional)\n"               \
  "  --max-wbps [DEV=]SIZE written bytes per second\n"                                             \
  "  --max-riops [DEV=]N   read operations per second\n"                                           \
  "  --max-wiops [DEV=]N   write operations per second\n"                                          \
  "                        DEV: /dev/sda, 8:0, or any path on the device; default:\n"              \
  "                        the device of the working directory. Flags for one DEV\n"               \
  "                        add up to one io.max entry; a repeated flag: last wins.\n"              \
  "  Seed spellings (one dash or two, VALUE or =VALUE): -max_cpu_bandwidth US (us of\n"            \
  "  CPU per 100000 us), -max_memory_usage, -max_rbps, -max_wbps, -max_riops, -max_wiops.\n"
int runctl_parse_run_flags(runctl_ctx *ctx, int argc, char **argv, bool allow_tags,
                           runctl_run_flags *ret);
void runctl_run_flags_free(runctl_run_flags *f);

/* RFC 3339 UTC with microseconds ("2024-05-01T12:00:00.123456Z") into buf[40]. */
void runctl_format_time(int64_t unix_ns, char *buf, size_t bufsz);
/* Output of status and list. */
json_object *runctl_status_json(const runrpc_job_status *s);
void runctl_status_print(const runrpc_job_status *s);
json_object *runctl_usage_json(const runrpc_usage *u);
/* One line on stderr for exec/wait: "runctl: WHAT: killed by the OOM killer (memory.max 64.0 MiB)".
 */
/* s as a shell would need it quoted: as is, '...', or $'...' when it has
 * control characters (so a table row stays one line). */
void runctl_print_quoted(const char *s);
void runctl_oom_note(const char *what, bool has_memory_max, uint64_t memory_max);
/* One line on stderr for a command its --timeout ended (reason "timeout"):
 * after how long, and whether SIGTERM or the SIGKILL after the grace did it. */
void runctl_timeout_note(const char *what, uint64_t timeout_ms, int signal);
/* The exit status a shell would report for a finished job, -1 if not finished. */
int runctl_status_exit(const runrpc_job_status *s);
/* One line for a job's end: "ID STATE [exit_code=N | signal=N SIGNAME] reason=R" (stop). */
void runctl_status_line(const runrpc_job_status *st, char *buf, size_t len);
/* runctl --hosts: the verb on every host at once (fanout.c). */
int runctl_fanout_main(runctl_ctx *ctx, const runctl_command *cmd, int argc, char **argv);

/* Write to stdout/stderr; on EPIPE die by SIGPIPE quietly like any command. */
void runctl_write_or_die(int fd, const void *buf, size_t len);
/* Error came from writing our own output to a closed pipe: die quietly. */
void runctl_die_if_epipe(const runrpc_error *err);
