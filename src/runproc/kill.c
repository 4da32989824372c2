/* runproc kill [--all] ID [SIGNAL]: SIGTERM by default; names or numbers. */
#include <signal.h>
#include <string.h>

#include "runproc.h"

static int cmd_kill(runproc_ctx *ctx, int argc, char **argv) {
  const char *id = NULL, *sigs = NULL;
  bool all = false;
  for (int i = 1; i < argc; i++) {
    if (runproc_flag(argv[i], "all", 'a'))
      all = true;
    else if (argv[i][0] == '-' && argv[i][1] && !id)
      return runproc_fail(ctx, "unknown option \"%s\"", argv[i]);
    else if (!id)
      id = argv[i];
    else if (!sigs)
      sigs = argv[i];
    else
      return runproc_fail(ctx, "unexpected argument \"%s\"", argv[i]);
  }
  if (!id)
    return runproc_fail(ctx, "usage: runproc kill [--all] ID [SIGNAL]");
  int sig = sigs ? runproc_signal_parse(sigs) : SIGTERM;
  if (sig < 0)
    return runproc_fail(ctx, "invalid signal \"%s\"", sigs);
  rr_err e = {0};
  runproc_container c;
  if (runproc_container_load(ctx, id, &c, &e) < 0)
    return runproc_fail_err(ctx, &e);
  int rc = 0;
  if (runproc_container_status(&c) == RUNPROC_STOPPED)
    rc = runproc_fail(ctx, "container \"%s\" is not running", id);
  else if (runproc_container_signal(&c, sig, all, &e) < 0)
    rc = runproc_fail_err(ctx, &e);
  runproc_container_free(&c);
  return rc;
}

const runproc_command runproc_cmd_kill = {"kill", "kill [--all] ID [SIGNAL]", cmd_kill};
