/* runproc pause ID / resume ID: freeze a running container's cgroup (it
 * needs one: linux.cgroupsPath), state says "paused" until resume thaws it.
 * One verb is the other's inverse: one function serves both. */
#include "runproc.h"
#include "sandbox/cgroup.h"

static int freeze_verb(runproc_ctx *ctx, int argc, char **argv, bool freeze) {
  const char *verb = freeze ? "pause" : "resume";
  runproc_status want = freeze ? RUNPROC_RUNNING : RUNPROC_PAUSED;
  if (argc != 2 || argv[1][0] == '-')
    return runproc_fail(ctx, "usage: runproc %s ID", verb);
  rr_err e = {0};
  runproc_container c;
  if (runproc_container_load(ctx, argv[1], &c, &e) < 0)
    return runproc_fail_err(ctx, &e);
  int rc = 0;
  runproc_status st = runproc_container_status(&c);
  cg_job *cg = NULL;
  if (st != want)
    rc = runproc_fail(ctx, "container \"%s\" is %s, not %s", c.id, runproc_status_name(st),
                      freeze ? "running" : "paused");
  else if (runproc_container_cgroup(&c, &cg, &e) < 0 || cg_job_freeze(cg, freeze, &e) < 0)
    rc = runproc_fail_err(ctx, &e);
  if (cg)
    cg_job_free(cg);
  runproc_container_free(&c);
  return rc;
}

static int cmd_pause(runproc_ctx *ctx, int argc, char **argv) {
  return freeze_verb(ctx, argc, argv, true);
}

static int cmd_resume(runproc_ctx *ctx, int argc, char **argv) {
  return freeze_verb(ctx, argc, argv, false);
}

const runproc_command runproc_cmd_pause = {"pause", "pause ID", cmd_pause};
const runproc_command runproc_cmd_resume = {"resume", "resume ID", cmd_resume};
