/* runctl exec [--in ID] [-t|-tt] [-i] [--env K=V]... [--workdir DIR]
 * [--timeout DUR [--timeout-grace DUR]]
 * [--max-* LIMIT]... [--] CMD [ARGS...] */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runctl.h"
#include "tty.h"

static int exec_failure_exit(const runrpc_error *err) {
  /* an unknown image is no missing command (docker run: 125), nor is an
   * unknown job (--in) */
  if (!strncmp(err->message, "sandbox.", 8) || !strncmp(err->message, "job ", 4))
    return RUNCTL_EXIT_EXEC_FAILED;
  /* like a shell: 127 command not found, 126 not executable */
  if (err->code == RUNRPC_NOT_FOUND)
    return RUNCTL_EXIT_NOT_FOUND;
  if (err->code == RUNRPC_PERMISSION_DENIED)
    return RUNCTL_EXIT_NOT_EXECUTABLE;
  return RUNCTL_EXIT_EXEC_FAILED;
}

static int exec_run(runctl_ctx *ctx, int argc, char **argv) {
  runctl_run_flags f;
  int rc = runctl_parse_run_flags(ctx, argc, argv, false, &f);
  if (rc < 0) {
    runctl_print_help(&runctl_cmd_exec);
    runctl_run_flags_free(&f);
    return 0;
  }
  if (rc > 0) {
    runctl_run_flags_free(&f);
    return rc == RUNCTL_EXIT_USAGE ? rc : RUNCTL_EXIT_EXEC_FAILED;
  }
  rc = runctl_connect(ctx, RUNCTL_EXIT_EXEC_FAILED);
  if (rc) {
    runctl_run_flags_free(&f);
    return rc;
  }
  runrpc_exec_request req = {
      .command = {.path = argv[f.cmd_index],
                  .args = (const char *const *)argv + f.cmd_index + 1,
                  .nargs = (size_t)(argc - f.cmd_index - 1),
                  .env = f.env.v,
                  .nenv = f.env.n,
                  .workdir = f.workdir},
      .has_timeout = f.has_timeout,
      .timeout_ms = f.timeout_ms,
      .timeout_grace_ms = (uint32_t)f.timeout_grace_ms,
      .limits = f.limits.limits,
      .sandbox = f.sandbox.sandbox,
      .stdin_fd = STDIN_FILENO,
      .stdout_fd = STDOUT_FILENO,
      .stderr_fd = STDERR_FILENO,
      .forward_signals = true, /* Ctrl-C reaches the command, as if it ran here */
      .tty_size_fd = -1,
      .job_id = f.in_job,
  };
  if (runctl_tty_wanted(f.tty)) {
    bool local = isatty(STDIN_FILENO);
    req.tty = true;
    req.tty_size_fd = local ? STDIN_FILENO : isatty(STDOUT_FILENO) ? STDOUT_FILENO : -1;
    req.tty_term = getenv("TERM");
    if (local && runctl_tty_raw(STDIN_FILENO) < 0) {
      fprintf(stderr, "runctl: exec: cannot put the terminal in raw mode: %s\n", strerror(errno));
      runctl_run_flags_free(&f);
      return RUNCTL_EXIT_EXEC_FAILED;
    }
    /* keys are bytes now; signals from elsewhere end runctl (the terminal restored) */
    req.forward_signals = !local;
  }
  runrpc_exit_status st;
  runrpc_error err;
  rc = runrpc_exec(ctx->client, &req, &st, &err);
  runctl_tty_restore();
  runctl_run_flags_free(&f);
  if (rc < 0) {
    runctl_die_if_epipe(&err);
    return runctl_fail("exec", &err, exec_failure_exit(&err));
  }
  bool oom = strcmp(st.reason, "oom-killed") == 0;
  if (oom) /* 137 alone does not tell an OOM kill from kill -9 */
    runctl_oom_note("exec", req.limits.has_memory_max, req.limits.memory_max);
  if (!strcmp(st.reason, "timeout")) /* nor 143 a timeout from a kill */
    runctl_timeout_note("exec", req.timeout_ms, st.signal);
  if (st.signal > 0)
    return 128 + st.signal;
  if (oom)
    return 128 + 9;
  return st.exit_code & 0xff;
}

const runctl_command runctl_cmd_exec = {
    .name = "exec",
    .run = exec_run,
    .usage = "exec [--in ID] [-t|-tt] [-i] [--env K=V]... [--workdir DIR] [--timeout DUR "
             "[--timeout-grace DUR]] "
             "[--max-* LIMIT]... [--] CMD [ARGS...]",
    .help = "Run a command on the server and wait for it. stdin, stdout and stderr are\n"
            "passed through live (EOF on stdin reaches the command); runctl exits with the\n"
            "command's status, 128+N if it was killed by signal N. If runctl itself fails\n"
            "it exits 125 (126: command not executable, 127: command not found).\n"
            "A command the OOM killer ended exits 137 and runctl adds one line on stderr:\n"
            "'runctl: exec: killed by the OOM killer (memory.max SIZE)'.\n"
            "\n"
            "SIGINT (Ctrl-C), SIGTERM, SIGHUP and SIGQUIT (Ctrl-\\) sent to runctl are\n"
            "forwarded to the command's process group, which may handle them; runctl\n"
            "keeps waiting for the command's own exit status. Signals runctl was started\n"
            "with ignored (nohup) are not forwarded. Killing runctl (SIGKILL) drops the\n"
            "stream, and rund kills the command's process group.\n"
            "\n"
            "With -t the command runs on a terminal of its own on the server (as with\n"
            "ssh -t or docker exec -t): runctl puts this terminal in raw mode, so Ctrl-C,\n"
            "Ctrl-Z and Ctrl-D go to the command as keys, and gives it back as it was when\n"
            "it ends (also on errors and when runctl gets SIGINT, SIGTERM, SIGHUP or\n"
            "SIGQUIT, which then end runctl and with it the command). The command's\n"
            "window follows this one (SIGWINCH), TERM is passed, its output all comes as\n"
            "stdout, and the exit status is as without -t.\n"
            "\n"
            "With --in ID the command runs inside that running job (as docker exec):\n"
            "in its namespaces and root (in its pid namespace, beside its processes), in\n"
            "a cgroup below the job's (its usage counts to the job, the job's limits\n"
            "hold), with the job's sandbox profile, user, environment (--env adds) and\n"
            "working directory (unless --workdir). Only the job's owner (or an admin)\n"
            "may; a job that ended refuses.\n"
            "\n"
            "Options:\n"
            "  --in ID         run inside job ID (no limits or sandbox flags then)\n"
            "  -t, --tty       a terminal for the command, when stdin is one (-tt: always;\n"
            "                  -it, -ti and -t -t work as with docker and ssh)\n"
            "  -i, --interactive  pass stdin (what exec always does; for docker habits)\n"
            "  --env K=V       add K=V to the command's environment (repeatable)\n"
            "  --workdir DIR   absolute working directory (default: the home of the user\n"
            "                  it runs as, which also sets HOME, USER, LOGNAME, SHELL)\n"
            "  --timeout DUR   kill the command after DUR (SIGTERM, grace, SIGKILL);\n"
            "                  runctl then says so on stderr\n"
            "  --timeout-grace DUR\n"
            "                  the grace: SIGKILL DUR after the SIGTERM (default "
            "10s)\n" RUNCTL_LIMITS_HELP RUNCTL_SANDBOX_HELP,
};
