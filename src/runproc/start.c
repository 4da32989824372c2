/* runproc start ID: a created container's process, waiting on exec.fifo,
 * gets its byte and execs; the fifo goes (the container is running). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "runproc.h"

/* The hooks of kind with the container's state. */
static int start_hooks(runproc_container *c, runproc_hook_kind kind, pid_t ns_pid, rr_err *e) {
  if (!runproc_hooks_any(c->hooks, kind))
    return 0;
  json_object *st = runproc_container_state_json(c);
  int r = runproc_hooks_run(c->hooks, kind, st, ns_pid, e);
  json_object_put(st);
  return r;
}

int runproc_container_start(runproc_container *c, rr_err *e) {
  if (start_hooks(c, RUNPROC_HOOK_START_CONTAINER, c->pid, e) < 0)
    return -1;
  /* O_NONBLOCK: ENXIO instead of waiting when nobody holds the fifo */
  _cleanup_close_ int fd = openat(c->dirfd, "exec.fifo", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0 || write(fd, "0", 1) != 1)
    return rr_err_sys(e, RR_FAILED_PRECONDITION, errno, "container \"%s\" is not waiting to start",
                      c->id);
  unlinkat(c->dirfd, "exec.fifo", 0);
  return runproc_container_poststart(c, e);
}

int runproc_container_poststart(runproc_container *c, rr_err *e) {
  if (start_hooks(c, RUNPROC_HOOK_POSTSTART, 0, e) < 0) {
    runproc_container_kill_wait(c, NULL); /* as runc: it does not run on */
    return -1;
  }
  return 0;
}

int runproc_container_poststop(runproc_container *c, rr_err *e) {
  return start_hooks(c, RUNPROC_HOOK_POSTSTOP, 0, e);
}

static int cmd_start(runproc_ctx *ctx, int argc, char **argv) {
  if (argc != 2 || argv[1][0] == '-')
    return runproc_fail(ctx, "usage: runproc start ID");
  rr_err e = {0};
  runproc_container c;
  if (runproc_container_load(ctx, argv[1], &c, &e) < 0)
    return runproc_fail_err(ctx, &e);
  int rc = 0;
  runproc_status st = runproc_container_status(&c);
  if (st == RUNPROC_RUNNING) {
    rc = runproc_fail(ctx, "container \"%s\" is already running", c.id);
  } else if (st == RUNPROC_STOPPED) {
    rc = runproc_fail(ctx, "container \"%s\" has stopped: cannot start it", c.id);
  } else if (runproc_container_start(&c, &e) < 0) {
    rc = runproc_fail_err(ctx, &e);
  }
  runproc_container_free(&c);
  return rc;
}

const runproc_command runproc_cmd_start = {"start", "start ID", cmd_start};
