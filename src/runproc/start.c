/* runproc start ID: a created container's process, waiting on exec.fifo,
 * gets its byte and execs; the fifo goes (the container is running). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "runproc.h"

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
  } else {
    /* O_NONBLOCK: ENXIO instead of waiting when nobody holds the fifo */
    _cleanup_close_ int fd = openat(c.dirfd, "exec.fifo", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 || write(fd, "0", 1) != 1)
      rc = runproc_fail(ctx, "container \"%s\" is not waiting to start: %s", c.id, strerror(errno));
    else
      unlinkat(c.dirfd, "exec.fifo", 0);
  }
  runproc_container_free(&c);
  return rc;
}

const runproc_command runproc_cmd_start = {"start", "start ID", cmd_start};
