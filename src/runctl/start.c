/* runctl start [-i] [-t] [--tag T]... [--env K=V]... [--workdir DIR] [--timeout DUR
 * [--timeout-grace DUR]] [--max-* LIMIT]... [--] CMD [ARGS...] */
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "runctl.h"

static int start_run(runctl_ctx *ctx, int argc, char **argv) {
  runctl_run_flags f;
  int rc = runctl_parse_run_flags(ctx, argc, argv, true, &f);
  if (rc < 0) {
    runctl_print_help(&runctl_cmd_start);
    runctl_run_flags_free(&f);
    return 0;
  }
  if (rc == 0)
    rc = runctl_connect(ctx, RUNCTL_EXIT_FAILURE);
  if (rc) {
    runctl_run_flags_free(&f);
    return rc;
  }
  runrpc_start_request req = {
      .command = {.path = argv[f.cmd_index],
                  .args = (const char *const *)argv + f.cmd_index + 1,
                  .nargs = (size_t)(argc - f.cmd_index - 1),
                  .env = f.env.v,
                  .nenv = f.env.n,
                  .workdir = f.workdir},
      .tags = f.tags.v,
      .ntags = f.tags.n,
      .has_timeout = f.has_timeout,
      .timeout_ms = f.timeout_ms,
      .timeout_grace_ms = (uint32_t)f.timeout_grace_ms,
      .limits = f.limits.limits,
      .sandbox = f.sandbox.sandbox,
      /* only asked for: runctl attach/send use them */
      .stdin_open = f.interactive,
      .tty = f.tty > 0,
      .term = f.tty > 0 ? getenv("TERM") : NULL,
  };
  struct winsize ws;
  if (req.tty && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col) {
    req.rows = ws.ws_row;
    req.cols = ws.ws_col;
  }
  char id[RUNRPC_JOB_ID_SIZE];
  runrpc_error err;
  rc = runrpc_start(ctx->client, &req, id, NULL, &err);
  runctl_run_flags_free(&f);
  if (rc < 0)
    return runctl_fail("start", &err, RUNCTL_EXIT_FAILURE);
  printf("%s\n", id);
  fflush(stdout);
  return 0;
}

const runctl_command runctl_cmd_start = {
    .name = "start",
    .run = start_run,
    .usage = "start [-i] [-t] [--tag T]... [--env K=V]... [--workdir DIR] [--timeout DUR "
             "[--timeout-grace DUR]] [--max-* LIMIT]... [--] CMD [ARGS...]",
    .help = "Start a command as a background job and print its id (a 26-character ULID).\n"
            "\n"
            "Options:\n"
            "  -i, --interactive\n"
            "                  keep the job's stdin open for 'runctl send' and 'runctl\n"
            "                  attach' (else it reads /dev/null)\n"
            "  -t, --tty       run it on a pseudo-terminal (stdin, stdout and stderr;\n"
            "                  its output is stored as stdout) of this terminal's size\n"
            "                  and TERM; implies -i; not with a sandbox profile yet\n"
            "  --tag T         label the job, for 'runctl list --tag T' (repeatable)\n"
            "  --env K=V       add K=V to the command's environment (repeatable)\n"
            "  --workdir DIR   absolute working directory (default: the home of the user\n"
            "                  it runs as, which also sets HOME, USER, LOGNAME, SHELL)\n"
            "  --timeout DUR   stop the job after DUR (SIGTERM, grace, SIGKILL); status\n"
            "                  says reason: timeout, wait says so on stderr\n"
            "  --timeout-grace DUR\n"
            "                  the grace: SIGKILL DUR after the SIGTERM (default "
            "10s)\n" RUNCTL_LIMITS_HELP RUNCTL_SANDBOX_HELP,
};
