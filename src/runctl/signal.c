/* runctl signal ID SIG */
#include <getopt.h>
#include <stdio.h>

#include "runctl.h"

static int signal_run(runctl_ctx *ctx, int argc, char **argv) {
  static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0}};
  runctl_getopt_reset();
  int c;
  /* '+': "-9"/"-KILL" style signals are not options */
  while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
    if (c == 'h')
      return runctl_print_help(&runctl_cmd_signal), 0;
    return runctl_getopt_error(ctx, c, argv);
  }
  if (optind >= argc)
    return runctl_usage_error(ctx, "missing job ID");
  if (optind + 1 >= argc)
    return runctl_usage_error(ctx, "missing signal");
  if (argc - optind > 2)
    return runctl_usage_error(ctx, "unexpected argument \"%s\"", argv[optind + 2]);
  char id[RUNRPC_JOB_ID_SIZE];
  if (runctl_parse_job_id(ctx, argv[optind], id) < 0)
    return RUNCTL_EXIT_USAGE;
  int sig;
  if (runctl_parse_signal(ctx, argv[optind + 1], &sig) < 0)
    return RUNCTL_EXIT_USAGE;
  int rc = runctl_connect(ctx, RUNCTL_EXIT_FAILURE);
  if (rc)
    return rc;
  runrpc_error err;
  if (runrpc_signal(ctx->client, id, sig, NULL, &err) < 0) {
    char what[64];
    snprintf(what, sizeof what, "signal %s", id);
    return runctl_fail(what, &err, RUNCTL_EXIT_FAILURE);
  }
  return 0;
}

const runctl_command runctl_cmd_signal = {
    .name = "signal",
    .run = signal_run,
    .usage = "signal ID SIG",
    .help = "Send a signal to a job's process group. SIG is a number (9) or a name\n"
            "(KILL, SIGKILL, kill).\n",
};
