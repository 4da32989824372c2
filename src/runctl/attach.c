/* runctl attach [--detach-keys KEYS] [--no-stdin] [--replay BYTES] ID */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runctl.h"
#include "tty.h"

#define ATTACH_DEFAULT_KEYS "ctrl-p,ctrl-q"
#define ATTACH_MAX_KEYS 16

enum { OPT_DETACH_KEYS = 3000, OPT_NO_STDIN, OPT_REPLAY };

/* One key as docker spells it: "ctrl-X" (X a letter or one of @ [ \ ] ^ _)
 * or a single character. -1 if neither. */
static int attach_key_parse(const char *k) {
  if (!strncmp(k, "ctrl-", 5) && k[5] && !k[6]) {
    char c = k[5];
    if (c >= 'a' && c <= 'z')
      return c - 'a' + 1;
    if (c >= 'A' && c <= 'Z')
      return c - 'A' + 1;
    const char *sym = strchr("@[\\]^_", c);
    return sym ? (int)(sym - "@[\\]^_") + (c == '@' ? 0 : 26) : -1;
  }
  return k[0] && !k[1] ? (unsigned char)k[0] : -1;
}

/* "ctrl-p,ctrl-q" into bytes: their count, or the usage exit code negated. */
static int attach_keys_parse(const runctl_ctx *ctx, const char *s, unsigned char *out) {
  char buf[256];
  if (!*s || strlen(s) >= sizeof buf)
    return -runctl_usage_error(ctx, "--detach-keys \"%s\": want keys such as \"ctrl-p,ctrl-q\"", s);
  snprintf(buf, sizeof buf, "%s", s);
  int n = 0;
  char *save = NULL;
  for (char *k = strtok_r(buf, ",", &save); k; k = strtok_r(NULL, ",", &save)) {
    int b = attach_key_parse(k);
    if (b < 0 || n == ATTACH_MAX_KEYS)
      return -runctl_usage_error(ctx,
                                 "--detach-keys \"%s\": %s \"%s\" (want ctrl-a..ctrl-z, ctrl-@, "
                                 "ctrl-[, ctrl-\\, ctrl-], ctrl-^, ctrl-_ or one character)",
                                 s, b < 0 ? "unknown key" : "too many keys at", k);
    out[n++] = (unsigned char)b;
  }
  if (!n)
    return -runctl_usage_error(ctx, "--detach-keys \"%s\": no key in it", s);
  return n;
}

typedef struct attach_state {
  const char *id;
  bool stdin_tty;
} attach_state;

static void attach_on_attached(const runrpc_attach_info *info, void *userdata) {
  attach_state *st = userdata;
  if (info->read_only_reason[0] && info->stdin_open)
    fprintf(stderr, "runctl: attach: read-only: %s\n", info->read_only_reason);
  if (info->writer && info->tty && st->stdin_tty && runctl_tty_raw(STDIN_FILENO) < 0)
    perror("runctl: attach: cannot put the terminal in raw mode");
}

static int attach_run(runctl_ctx *ctx, int argc, char **argv) {
  static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
                                       {"detach-keys", required_argument, NULL, OPT_DETACH_KEYS},
                                       {"no-stdin", no_argument, NULL, OPT_NO_STDIN},
                                       {"replay", required_argument, NULL, OPT_REPLAY},
                                       {0}};
  runctl_getopt_reset();
  unsigned char keys[ATTACH_MAX_KEYS];
  int nkeys = attach_keys_parse(ctx, ATTACH_DEFAULT_KEYS, keys);
  bool no_stdin = false, has_replay = false;
  uint64_t replay = 0;
  int c;
  while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
    if (c == 'h')
      return runctl_print_help(&runctl_cmd_attach), 0;
    if (c == OPT_DETACH_KEYS) {
      if ((nkeys = attach_keys_parse(ctx, optarg, keys)) < 0)
        return -nkeys;
    } else if (c == OPT_NO_STDIN) {
      no_stdin = true;
    } else if (c == OPT_REPLAY) {
      char *end;
      replay = strtoull(optarg, &end, 10);
      if (!*optarg || *end || optarg[0] == '-')
        return runctl_usage_error(ctx, "--replay \"%s\": want a number of bytes", optarg);
      has_replay = true;
    } else {
      return runctl_getopt_error(ctx, c, argv);
    }
  }
  char id[RUNRPC_JOB_ID_SIZE];
  int rc = runctl_job_connect(ctx, argc, argv, 0, id, RUNCTL_EXIT_FAILURE);
  if (rc)
    return rc;
  attach_state st = {.id = id, .stdin_tty = isatty(STDIN_FILENO)};
  runrpc_attach_request req = {
      .job_id = id,
      .want_stdin = !no_stdin,
      .stdin_fd = no_stdin ? -1 : STDIN_FILENO,
      .stdout_fd = STDOUT_FILENO,
      .stderr_fd = STDERR_FILENO,
      .has_replay = has_replay,
      .replay_bytes = replay,
      .tty_size_fd = st.stdin_tty            ? STDIN_FILENO
                     : isatty(STDOUT_FILENO) ? STDOUT_FILENO
                                             : -1,
      .detach_keys = no_stdin ? NULL : keys,
      .detach_keys_len = (size_t)nkeys,
      .on_attached = attach_on_attached,
      .userdata = &st,
  };
  runrpc_attach_result res;
  runrpc_error err;
  rc = runrpc_attach(ctx->client, &req, &res, &err);
  runctl_tty_restore();
  if (rc < 0) {
    runctl_die_if_epipe(&err);
    char what[64];
    snprintf(what, sizeof what, "attach %s", id);
    return runctl_fail(what, &err, RUNCTL_EXIT_FAILURE);
  }
  if (res.detached) {
    fprintf(stderr, "runctl: attach: detached from job %s (it runs on)\n", id);
    return 0;
  }
  rc = runctl_status_exit(&res.status);
  runrpc_job_status_free(&res.status);
  return rc < 0 ? RUNCTL_EXIT_EXEC_FAILED : rc;
}

const runctl_command runctl_cmd_attach = {
    .name = "attach",
    .run = attach_run,
    .usage = "attach [--detach-keys KEYS] [--no-stdin] [--replay BYTES] ID",
    .help = "Attach to a running job, as docker attach: its output comes here live (a job\n"
            "with a terminal (start -t) first shows what it printed last, about a screen)\n"
            "and, for a job started with -i or -t, what you type goes to its stdin. When\n"
            "the job ends, runctl exits with its status (128+N if killed by signal N).\n"
            "A job that ended already is refused (its output: runctl logs ID).\n"
            "\n"
            "Detach with Ctrl-P Ctrl-Q (--detach-keys): the job runs on, its stdin stays\n"
            "open, and runctl exits 0. Killing runctl detaches too.\n"
            "\n"
            "Any number of clients may attach; one at a time types: the first one\n"
            "attached that takes stdin is the job's writer until it detaches; the others\n"
            "watch only (runctl says so: 'read-only: another client is attached ...').\n"
            "With a terminal job, the writer's window is the job's (on attach and on each\n"
            "resize) and this terminal is in raw mode until runctl ends (Ctrl-C is a key\n"
            "for the job). EOF on runctl's stdin stops typing, the job's stdin stays open\n"
            "(runctl send --close ID closes it).\n"
            "\n"
            "Options:\n"
            "  --detach-keys KEYS  the detach sequence, comma-separated keys: ctrl-a..ctrl-z,\n"
            "                      ctrl-@, ctrl-[, ctrl-\\, ctrl-], ctrl-^, ctrl-_ or one\n"
            "                      character (default ctrl-p,ctrl-q)\n"
            "  --no-stdin          only watch (never the writer; no detach keys: Ctrl-C)\n"
            "  --replay BYTES      show up to BYTES of the output's end first (from a line\n"
            "                      start; default 4096 with a terminal, 0 without; at most\n"
            "                      1048576)\n",
};
