/* runproc resume ID: thaw a paused container. */
#include "runproc.h"
#include "sandbox/cgroup.h"

static int cmd_resume(runproc_ctx *ctx, int argc, char **argv) {
  if (argc != 2 || argv[1][0] == '-')
    return runproc_fail(ctx, "usage: runproc resume ID");
  rr_err e = {0};
  runproc_container c;
  if (runproc_container_load(ctx, argv[1], &c, &e) < 0)
    return runproc_fail_err(ctx, &e);
  int rc = 0;
  runproc_status st = runproc_container_status(&c);
  cg_job *cg = NULL;
  if (st != RUNPROC_PAUSED)
    rc = runproc_fail(ctx, "container \"%s\" is %s, not paused", c.id, runproc_status_name(st));
  else if (runproc_container_cgroup(&c, &cg, &e) < 0 || cg_job_freeze(cg, false, &e) < 0)
    rc = runproc_fail_err(ctx, &e);
  if (cg)
    cg_job_free(cg);
  runproc_container_free(&c);
  return rc;
}

const runproc_command runproc_cmd_resume = {"resume", "resume ID", cmd_resume};
