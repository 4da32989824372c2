/* runctl status ID [--json] */
#include <getopt.h>
#include <stdio.h>

#include "runctl.h"

static int status_run(runctl_ctx *ctx, int argc, char **argv) {
  static const struct option opts[] = {
      {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {0}};
  bool json = false;
  runctl_getopt_reset();
  int c;
  while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
    if (c == 'j')
      json = true;
    else if (c == 'h')
      return runctl_print_help(&runctl_cmd_status), 0;
    else
      return runctl_getopt_error(ctx, c, argv);
  }
  char id[RUNRPC_JOB_ID_SIZE];
  int rc = runctl_job_connect(ctx, argc, argv, 0, id, RUNCTL_EXIT_FAILURE);
  if (rc)
    return rc;
  runrpc_job_status st;
  runrpc_error err;
  if (runrpc_status(ctx->client, id, &st, &err) < 0) {
    char what[64];
    snprintf(what, sizeof what, "status %s", id);
    return runctl_fail(what, &err, RUNCTL_EXIT_FAILURE);
  }
  if (json) {
    json_object *o = runctl_status_json(&st);
    puts(
        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
  } else {
    runctl_status_print(&st);
  }
  runrpc_job_status_free(&st);
  return 0;
}

const runctl_command runctl_cmd_status = {
    .name = "status",
    .run = status_run,
    .usage = "status ID [--json]",
    .help = "Show a job's status: state, pid, exit code or signal, times, and the\n"
            "request it was started with. A job with limits also shows its cgroup\n"
            "version, the limits in force and what it used (cpu, memory, pids, io);\n"
            "one without limits shows, once ended, its cpu time.\n"
            "\n"
            "Options:\n"
            "  --json   print one JSON object (job_id, state, pid, exit_code, signal,\n"
            "           reason, profile, profile_requested, start_time, end_time,\n"
            "           command, env, workdir, tags, timeout_ms, timeout_grace_ms,\n"
            "           stdout_bytes, stderr_bytes, stdout_lost_bytes, stderr_lost_bytes,\n"
            "           log_error, owner, kind, cgroup, limits, usage)\n"
            "           instead of key: value lines; exit_code is null unless the job\n"
            "           exited, signal null unless it was killed (a failed job's end is\n"
            "           unknown: reason says why)\n",
};
