/* runctl logs ID [-f|--follow] [--stdout|--stderr] */
#include <getopt.h>
#include <stdio.h>
#include <unistd.h>

#include "runctl.h"

static int logs_chunk(runrpc_stream stream, uint64_t offset, const void *data, size_t len,
                      uint64_t dropped, void *ud) {
  if (dropped)
    fprintf(stderr,
            "runctl: logs: %llu bytes of %s were dropped by the log size cap before "
            "offset %llu\n",
            (unsigned long long)dropped, stream == RUNRPC_STREAM_STDERR ? "stderr" : "stdout",
            (unsigned long long)offset);
  if (len)
    runctl_write_or_die(stream == RUNRPC_STREAM_STDERR ? STDERR_FILENO : STDOUT_FILENO, data, len);
  return 0;
}

static int logs_run(runctl_ctx *ctx, int argc, char **argv) {
  static const struct option opts[] = {
      {"follow", no_argument, NULL, 'f'},
      {"stdout", no_argument, NULL, 'o'},
      {"stderr", no_argument, NULL, 'e'},
      {"help", no_argument, NULL, 'h'},
      {0},
  };
  runrpc_logs_request req = {0};
  bool out = false, err_only = false;
  runctl_getopt_reset();
  int c;
  while ((c = getopt_long(argc, argv, ":fh", opts, NULL)) != -1) {
    switch (c) {
    case 'f':
      req.follow = true;
      break;
    case 'o':
      out = true;
      break;
    case 'e':
      err_only = true;
      break;
    case 'h':
      return runctl_print_help(&runctl_cmd_logs), 0;
    default:
      return runctl_getopt_error(ctx, c, argv);
    }
  }
  if (out && err_only)
    return runctl_usage_error(ctx, "--stdout and --stderr exclude each other");
  req.stream = out ? RUNRPC_STREAM_STDOUT : err_only ? RUNRPC_STREAM_STDERR : RUNRPC_STREAM_BOTH;
  char id[RUNRPC_JOB_ID_SIZE];
  int idrc = runctl_take_job_id(ctx, argc, argv, 0, id);
  if (idrc)
    return idrc;
  req.job_id = id;
  int rc = runctl_connect(ctx, RUNCTL_EXIT_FAILURE);
  if (rc)
    return rc;
  runrpc_error err;
  if (runrpc_logs(ctx->client, &req, logs_chunk, NULL, &err) < 0) {
    char what[64];
    snprintf(what, sizeof what, "logs %s", id);
    return runctl_fail(what, &err, RUNCTL_EXIT_FAILURE);
  }
  return 0;
}

const runctl_command runctl_cmd_logs = {
    .name = "logs",
    .run = logs_run,
    .usage = "logs ID [-f|--follow] [--stdout|--stderr]",
    .help = "Print a job's output from the beginning: its stdout bytes to stdout and its\n"
            "stderr bytes to stderr, exactly. Bytes dropped by the log size cap are\n"
            "reported on stderr.\n"
            "\n"
            "Options:\n"
            "  -f, --follow   keep printing until the job ends\n"
            "  --stdout       only the job's stdout\n"
            "  --stderr       only the job's stderr\n",
};
