/* runctl list [--json] [--state running|exited|killed|failed] [--tag T] [--limit N]
 * [--oldest-first] */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "runctl.h"

static int list_parse_state(const runctl_ctx *ctx, const char *s, runrpc_job_state *ret) {
  static const runrpc_job_state states[] = {RUNRPC_JOB_RUNNING, RUNRPC_JOB_EXITED,
                                            RUNRPC_JOB_KILLED, RUNRPC_JOB_FAILED};
  for (size_t i = 0; i < sizeof states / sizeof states[0]; i++) {
    if (strcmp(s, runrpc_job_state_name(states[i])) == 0) {
      *ret = states[i];
      return 0;
    }
  }
  runctl_usage_error(ctx, "invalid --state \"%s\" (want running, exited, killed or failed)", s);
  return -1;
}

static void list_print_row(const runrpc_job_status *s) {
  char pid[16], exitbuf[24], started[48] = "-";
  snprintf(pid, sizeof pid, "%d", s->pid);
  if (s->state == RUNRPC_JOB_EXITED) {
    snprintf(exitbuf, sizeof exitbuf, "%d", s->exit_code);
  } else if (s->state == RUNRPC_JOB_KILLED) {
    const char *name = runctl_signal_name(s->signal);
    if (name)
      snprintf(exitbuf, sizeof exitbuf, "SIG%s", name);
    else
      snprintf(exitbuf, sizeof exitbuf, "sig%d", s->signal);
  } else {
    snprintf(exitbuf, sizeof exitbuf, "-");
  }
  if (s->start_time_unix_ns) {
    runctl_format_time(s->start_time_unix_ns, started, sizeof started);
    char *dot = strchr(started, '.'); /* seconds are enough in a table */
    if (dot)
      strcpy(dot, "Z");
  }
  printf("%-26s  %-4s  %-7s  %7s  %-7s  %-20s  ", s->job_id, s->kind ? s->kind : "job",
         runrpc_job_state_name(s->state), pid, exitbuf, started);
  runctl_print_quoted(s->path ? s->path : "");
  for (size_t i = 0; i < s->nargs; i++) {
    putchar(' ');
    runctl_print_quoted(s->args[i]);
  }
  putchar('\n');
}

static int list_fail(int code, const char *msg) {
  runrpc_error err = {.code = code};
  snprintf(err.message, sizeof err.message, "%s", msg);
  return runctl_fail("list", &err, RUNCTL_EXIT_FAILURE);
}

static int list_run(runctl_ctx *ctx, int argc, char **argv) {
  static const struct option opts[] = {
      {"json", no_argument, NULL, 'j'},
      {"state", required_argument, NULL, 's'},
      {"tag", required_argument, NULL, 't'},
      {"limit", required_argument, NULL, 'n'},
      {"oldest-first", no_argument, NULL, 'o'},
      {"help", no_argument, NULL, 'h'},
      {0},
  };
  bool json = false;
  runrpc_job_state state = RUNRPC_JOB_UNSPECIFIED;
  const char *tag = NULL;
  uint64_t limit = 0; /* 0: all */
  bool oldest_first = false;
  runctl_getopt_reset();
  int c;
  while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
    switch (c) {
    case 'j':
      json = true;
      break;
    case 's':
      if (list_parse_state(ctx, optarg, &state) < 0)
        return RUNCTL_EXIT_USAGE;
      break;
    case 't':
      if (!*optarg)
        return runctl_usage_error(ctx, "empty --tag");
      tag = optarg;
      break;
    case 'n': {
      char *end;
      errno = 0;
      unsigned long long v = strtoull(optarg, &end, 10);
      if (!*optarg || *optarg == '-' || *end || errno || v == 0 || v > 1000000000ull)
        return runctl_usage_error(ctx, "invalid --limit \"%s\" (want a count of jobs, 1 or more)",
                                  optarg);
      limit = v;
      break;
    }
    case 'o':
      oldest_first = true;
      break;
    case 'h':
      return runctl_print_help(&runctl_cmd_list), 0;
    default:
      return runctl_getopt_error(ctx, c, argv);
    }
  }
  if (optind < argc)
    return runctl_usage_error(ctx, "unexpected argument \"%s\"", argv[optind]);
  int rc = runctl_connect(ctx, RUNCTL_EXIT_FAILURE);
  if (rc)
    return rc;
  /* page by page: rows are printed as they come, memory stays one page */
  json_object *arr = json ? json_object_new_array() : NULL;
  if (json && !arr)
    return list_fail(RUNRPC_RESOURCE_EXHAUSTED, "out of memory");
  if (!json)
    printf("%-26s  %-4s  %-7s  %7s  %-7s  %-20s  %s\n", "ID", "KIND", "STATE", "PID", "EXIT",
           "STARTED", "COMMAND");
  char token[RUNRPC_PAGE_TOKEN_SIZE] = "";
  uint64_t shown = 0;
  do {
    runrpc_job_status *jobs;
    size_t n;
    runrpc_error err;
    char next[RUNRPC_PAGE_TOKEN_SIZE];
    runrpc_list_request q = {.state = state,
                             .tag = tag,
                             .page_size =
                                 limit && limit - shown < 1000 ? (uint32_t)(limit - shown) : 0,
                             .page_token = token,
                             .newest_first = !oldest_first};
    if (runrpc_list_query(ctx->client, &q, &jobs, &n, next, &err) < 0) {
      if (arr)
        json_object_put(arr);
      return runctl_fail("list", &err, RUNCTL_EXIT_FAILURE);
    }
    for (size_t i = 0; i < n && (!limit || shown < limit); i++, shown++) {
      if (json)
        json_object_array_add(arr, runctl_status_json(&jobs[i]));
      else
        list_print_row(&jobs[i]);
    }
    runrpc_job_list_free(jobs, n);
    if (*next && !strcmp(next, token)) {
      if (arr)
        json_object_put(arr);
      return list_fail(RUNRPC_INTERNAL, "the server returned the same page token twice");
    }
    memcpy(token, next, sizeof token);
  } while (*token && (!limit || shown < limit));
  if (json) {
    puts(json_object_to_json_string_ext(arr,
                                        JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(arr);
  }
  return 0;
}

const runctl_command runctl_cmd_list = {
    .name = "list",
    .run = list_run,
    .usage = "list [--json] [--state running|exited|killed|failed] [--tag T] [--limit N] "
             "[--oldest-first]",
    .help = "List jobs, newest first, as a table (ID  KIND  STATE  PID  EXIT  STARTED\n"
            "COMMAND; the command quoted as a shell would need it), or as a JSON array\n"
            "of the objects 'runctl status --json' prints. Exec commands that run now\n"
            "are listed too (KIND exec; their id is known to list only).\n"
            "\n"
            "Options:\n"
            "  --json           JSON output\n"
            "  --state S        only jobs in state S\n"
            "  --tag T          only jobs tagged T\n"
            "  --limit N        at most N jobs (the newest N; with --oldest-first the\n"
            "                   oldest N)\n"
            "  --oldest-first   in start order instead\n",
};
