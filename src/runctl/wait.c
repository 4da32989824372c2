/* runctl wait ID */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "runctl.h"

static int wait_run(runctl_ctx *ctx, int argc, char **argv) {
  static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0}};
  runctl_getopt_reset();
  int c;
  while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
    if (c == 'h')
      return runctl_print_help(&runctl_cmd_wait), 0;
    return runctl_getopt_error(ctx, c, argv);
  }
  char id[RUNRPC_JOB_ID_SIZE];
  int rc = runctl_job_connect(ctx, argc, argv, 0, id, RUNCTL_EXIT_EXEC_FAILED);
  if (rc)
    return rc;
  runrpc_job_status st;
  runrpc_error err;
  char what[64];
  snprintf(what, sizeof what, "wait %s", id);
  if (runrpc_wait(ctx->client, id, 0, &st, &err) < 0)
    return runctl_fail(what, &err, RUNCTL_EXIT_EXEC_FAILED);
  rc = runctl_status_exit(&st);
  if (st.reason && strcmp(st.reason, "oom-killed") == 0)
    runctl_oom_note(what, st.limits.has_memory_max, st.limits.memory_max);
  if (st.reason && strcmp(st.reason, "timeout") == 0)
    runctl_timeout_note(what, st.timeout_ms, st.signal);
  if (rc < 0) {
    fprintf(stderr, "runctl: %s: job is %s (reason: %s)\n", what, runrpc_job_state_name(st.state),
            st.reason && *st.reason ? st.reason : "none");
    rc = RUNCTL_EXIT_EXEC_FAILED;
  }
  runrpc_job_status_free(&st);
  return rc;
}

const runctl_command runctl_cmd_wait = {
    .name = "wait",
    .run = wait_run,
    .usage = "wait ID",
    .help = "Wait for a job to end and exit with its status: its exit code, or 128+N if\n"
            "it was killed by signal N. If the wait itself fails (or rund lost track of\n"
            "the job), runctl exits 125. A job the OOM killer ended (reason oom-killed)\n"
            "exits 137, with one line on stderr: 'runctl: wait ID: killed by the OOM\n"
            "killer (memory.max SIZE)'.\n"
            "A job its --timeout ended says so too: 'runctl: wait ID: timed out after\n"
            "DUR (--timeout): ended by SIGTERM' (or 'killed by SIGKILL after the grace').\n",
};
