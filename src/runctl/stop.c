/* runctl stop ID [--grace DUR] */
#include <getopt.h>
#include <stdio.h>

#include "runctl.h"

static int stop_run(runctl_ctx *ctx, int argc, char **argv) {
  static const struct option opts[] = {
      {"grace", required_argument, NULL, 'g'}, {"help", no_argument, NULL, 'h'}, {0}};
  int64_t grace = -1;
  runctl_getopt_reset();
  int c;
  while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
    if (c == 'g') {
      uint64_t ms;
      if (runctl_parse_duration(ctx, "--grace", optarg, &ms) < 0)
        return RUNCTL_EXIT_USAGE;
      if (ms > UINT32_MAX)
        return runctl_usage_error(ctx, "--grace \"%s\" is too long", optarg);
      grace = (int64_t)ms;
    } else if (c == 'h') {
      return runctl_print_help(&runctl_cmd_stop), 0;
    } else {
      return runctl_getopt_error(ctx, c, argv);
    }
  }
  char id[RUNRPC_JOB_ID_SIZE];
  int rc = runctl_job_connect(ctx, argc, argv, 0, id, RUNCTL_EXIT_FAILURE);
  if (rc)
    return rc;
  runrpc_job_status st;
  runrpc_error err;
  if (runrpc_stop(ctx->client, id, grace, &st, &err) < 0) {
    char what[64];
    snprintf(what, sizeof what, "stop %s", id);
    return runctl_fail(what, &err, RUNCTL_EXIT_FAILURE);
  }
  char line[256];
  runctl_status_line(&st, line, sizeof line);
  printf("%s\n", line);
  runrpc_job_status_free(&st);
  return 0;
}

void runctl_status_line(const runrpc_job_status *st, char *buf, size_t len) {
  /* ID STATE, then how it ended */
  size_t n = (size_t)snprintf(buf, len, "%s %s", st->job_id, runrpc_job_state_name(st->state));
  if (n < len && st->state == RUNRPC_JOB_EXITED)
    n += (size_t)snprintf(buf + n, len - n, " exit_code=%d", st->exit_code);
  if (n < len && st->state == RUNRPC_JOB_KILLED) {
    const char *name = runctl_signal_name(st->signal);
    n += (size_t)snprintf(buf + n, len - n, " signal=%d%s%s", st->signal, name ? " SIG" : "",
                          name ? name : "");
  }
  if (n < len)
    snprintf(buf + n, len - n, " reason=%.64s", st->reason && *st->reason ? st->reason : "-");
}

const runctl_command runctl_cmd_stop = {
    .name = "stop",
    .run = stop_run,
    .usage = "stop ID [--grace DUR]",
    .help = "Stop a job: SIGTERM to its process group, then SIGKILL after the grace\n"
            "period. Prints the final status: ID STATE [exit_code=N | signal=N SIGNAME]\n"
            "reason=R.\n"
            "\n"
            "Options:\n"
            "  --grace DUR   time between SIGTERM and SIGKILL (default 10s)\n",
};
