/* runctl send [--close] ID */
#include <getopt.h>
#include <stdio.h>
#include <unistd.h>

#include "runctl.h"

enum { OPT_CLOSE = 3100 };

static int send_run(runctl_ctx *ctx, int argc, char **argv) {
  static const struct option opts[] = {
      {"help", no_argument, NULL, 'h'}, {"close", no_argument, NULL, OPT_CLOSE}, {0}};
  runctl_getopt_reset();
  bool close_stdin = false;
  int c;
  while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
    if (c == 'h')
      return runctl_print_help(&runctl_cmd_send), 0;
    if (c != OPT_CLOSE)
      return runctl_getopt_error(ctx, c, argv);
    close_stdin = true;
  }
  char id[RUNRPC_JOB_ID_SIZE];
  int rc = runctl_job_connect(ctx, argc, argv, 0, id, RUNCTL_EXIT_FAILURE);
  if (rc)
    return rc;
  runrpc_error err;
  if (runrpc_send(ctx->client, id, STDIN_FILENO, close_stdin, NULL, &err) < 0) {
    char what[64];
    snprintf(what, sizeof what, "send %s", id);
    return runctl_fail(what, &err, RUNCTL_EXIT_FAILURE);
  }
  return 0;
}

const runctl_command runctl_cmd_send = {
    .name = "send",
    .run = send_run,
    .usage = "send [--close] ID",
    .help = "Copy runctl's stdin (until EOF) into the stdin of running job ID, started\n"
            "with -i or -t; with --close, close the job's stdin after (a terminal gets\n"
            "its EOF character, Ctrl-D). To close it without sending anything:\n"
            "runctl send --close ID </dev/null. For scripts: it does not attach, and\n"
            "writes even while a client is attached as the job's writer. A job without\n"
            "open stdin (started without -i/-t, closed, or ended) is refused\n"
            "(FAILED_PRECONDITION); runctl exits 1 on any failure.\n",
};
