/* runproc delete [--force] ID: a stopped or created container goes (a
 * created one is killed first, as runc does); a running one only with
 * --force (SIGKILL to all of it, then wait). Its cgroup goes with it. As
 * runc's: --force of a container that does not exist succeeds, and what a
 * crashed create left in ROOT/ID is removed. */
#include "runproc.h"

static int cmd_delete(runproc_ctx *ctx, int argc, char **argv) {
  const char *id = NULL;
  bool force = false;
  for (int i = 1; i < argc; i++) {
    if (runproc_flag(argv[i], "force", 'f'))
      force = true;
    else if (runproc_arg_id(ctx, argv[i], &id))
      return 1;
  }
  if (!id)
    return runproc_fail(ctx, "usage: runproc delete [--force] ID");
  rr_err e = {0};
  runproc_container c;
  if (runproc_container_load(ctx, id, &c, &e) < 0) {
    if (e.code != RR_NOT_FOUND)
      return runproc_fail_err(ctx, &e);
    runproc_container_remove_leftover(ctx, id);
    /* --force: gone is what was asked (containerd's shim relies on it) */
    return force ? 0 : runproc_fail_err(ctx, &e);
  }
  int rc = 0;
  runproc_status st = runproc_container_status(&c);
  if ((st == RUNPROC_RUNNING || st == RUNPROC_PAUSED) && !force)
    rc = runproc_fail(ctx, "cannot delete container \"%s\": it is %s (stop it, or --force)", id,
                      runproc_status_name(st));
  else if (st != RUNPROC_STOPPED && runproc_container_kill_wait(&c, &e) < 0)
    rc = runproc_fail_err(ctx, &e);
  else {
    /* poststop: a failure is said, the container goes anyway (as runc) */
    rr_err hook = {0};
    int hooked = runproc_container_poststop(&c, &hook);
    if (runproc_container_cgroup_remove(&c, &e) < 0 || runproc_container_remove(ctx, &c, &e) < 0)
      rc = runproc_fail_err(ctx, &e);
    else if (hooked < 0)
      rc = runproc_fail_err(ctx, &hook);
  }
  runproc_container_free(&c);
  return rc;
}

const runproc_command runproc_cmd_delete = {"delete", "delete [--force] ID", cmd_delete};
