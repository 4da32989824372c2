/* runctl run --image NAME [--rm] [--profile P] [EXEC FLAGS] -- CMD [ARGS...]:
 * one container per command, docker run's shape on exec: the command runs
 * in its own overlay root of the image (profile default unless given),
 * streams its output, gets stdin, and runctl exits with its status. An Exec
 * keeps nothing (no job, its root and cgroup go when it ends): --rm is
 * what always happens, accepted for docker's users. */
#include <stdlib.h>
#include <string.h>

#include "runctl.h"

static bool flag_is(const char *arg, const char *name) {
  size_t n = strlen(name);
  return !strncmp(arg, name, n) && (arg[n] == 0 || arg[n] == '=');
}

static int run_run(runctl_ctx *ctx, int argc, char **argv) {
  int dd = -1;
  bool image = false, profile = false;
  for (int i = 1; i < argc && dd < 0; i++) {
    if (!strcmp(argv[i], "--"))
      dd = i;
    else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
      return runctl_print_help(&runctl_cmd_run), 0;
    else if (flag_is(argv[i], "--image"))
      image = true;
    else if (flag_is(argv[i], "--profile"))
      profile = true;
  }
  if (!image)
    return runctl_usage_error(ctx, "run needs --image NAME[:TAG]");
  if (dd < 0 || dd + 1 >= argc)
    return runctl_usage_error(ctx, "run needs -- and the command after it");
  /* exec's argv: --rm dropped, --profile default added when none is given */
  char **v = calloc((size_t)argc + 3, sizeof *v);
  if (!v)
    return runctl_usage_error(ctx, "out of memory");
  int n = 0;
  v[n++] = (char *)"exec";
  if (!profile) {
    v[n++] = (char *)"--profile";
    v[n++] = (char *)"default";
  }
  for (int i = 1; i < argc; i++)
    if (i > dd || strcmp(argv[i], "--rm"))
      v[n++] = argv[i];
  v[n] = NULL;
  const char *verb = ctx->verb;
  int rc = runctl_cmd_exec.run(ctx, n, v);
  ctx->verb = verb;
  free(v);
  return rc;
}

const runctl_command runctl_cmd_run = {
    .name = "run",
    .run = run_run,
    .usage = "run --image NAME[:TAG] [--rm] [--profile P] [EXEC FLAGS] -- CMD [ARGS...]",
    .help = "Run one command in a container of an image of rund's store (runctl image),\n"
            "as `exec --image` does: its own overlay root, output streamed, stdin passed,\n"
            "exit with the command's status (125 for runctl's own failures). Profile\n"
            "default unless --profile says otherwise (not host). Nothing of it is kept\n"
            "afterwards (no job, no root, no cgroup): --rm is accepted and changes\n"
            "nothing. Every flag of exec applies (--env, --workdir, --timeout, -t, -i,\n"
            "limits, sandbox flags) but exec's --in (a new container is no running job).\n",
};
