/* Copy-mode image roots (no overlayfs) are made by a `rund image
 * root-copy NAME` child, watched on the loop: a large image's copy never
 * holds rund's loop, and the request it is for waits for its end. The
 * child's stdout says why it failed ("CODE: message"); a cancelled copy is
 * killed and its root released once the child is gone (not before: it
 * could still be writing there). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "rund.h"

#define COPY_OUTPUT_MAX 2048 /* kept of the child's stdout */

struct rund_root_copy {
  rund_ctx *ctx;
  reaper_watch *child;
  int out; /* our end of the child's stdout */
  bool cancelled;
  rund_root_copy_done_fn *done;
  void *data;
  char name[64];
  rund_root_copy *next, **prevp; /* every copy running, freed at rund's end */
};

static rund_root_copy *copies;

static void copy_free(rund_root_copy *rc) {
  *rc->prevp = rc->next;
  if (rc->next)
    rc->next->prevp = rc->prevp;
  rr_closep(&rc->out);
  free(rc);
}

/* "CODE: message" (the child's one line) into e. */
static void copy_error(rund_root_copy *rc, int status, rr_err *e) {
  char buf[COPY_OUTPUT_MAX + 1];
  ssize_t n = rc->out >= 0 ? read(rc->out, buf, COPY_OUTPUT_MAX) : -1;
  buf[n > 0 ? n : 0] = 0;
  const char *colon = strstr(buf, ": ");
  int code = 0;
  for (int i = 1; colon && i <= RR_UNAUTHENTICATED; i++)
    if ((size_t)(colon - buf) == strlen(rr_code_name(i)) &&
        !strncmp(buf, rr_code_name(i), (size_t)(colon - buf)))
      code = i;
  if (!code) {
    rr_err_set(e, RR_INTERNAL, "image root (copy): the copy failed (%s %d)",
               status >= 0 ? "exit" : "signal", status >= 0 ? status : -status);
    return;
  }
  size_t len = strcspn(colon + 2, "\n");
  rr_err_set(e, code, "%.*s", (int)len, colon + 2);
}

static void copy_on_exit(void *data, pid_t pid, const siginfo_t *si, const struct rusage *ru) {
  rund_root_copy *rc = data;
  rc->child = NULL;
  if (rc->cancelled) {
    rund_image_root_release(rc->ctx, rc->name);
    copy_free(rc);
    return;
  }
  rr_err e = {0};
  int status = !si ? -1 : si->si_code == CLD_EXITED ? si->si_status : -si->si_status;
  if (status != 0)
    copy_error(rc, status, &e);
  rund_root_copy_done_fn *done = rc->done;
  void *d = rc->data;
  copy_free(rc);
  done(d, &e);
}

int rund_root_copy_start(rund_ctx *ctx, const char *name, rund_root_copy_done_fn *done, void *data,
                         rund_root_copy **ret, rr_err *e) {
  rund_root_copy *rc = calloc(1, sizeof *rc);
  if (!rc)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  *rc = (rund_root_copy){.ctx = ctx, .out = -1, .done = done, .data = data};
  snprintf(rc->name, sizeof rc->name, "%s", name);
  rc->next = copies;
  rc->prevp = &copies;
  if (copies)
    copies->prevp = &rc->next;
  copies = rc;
  int p[2];
  if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) {
    copy_free(rc);
    return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, errno, "image root (copy): pipe");
  }
  rc->out = p[0];
  const char *argv[] = {ctx->exe, "image", "root-copy", "--state-dir", ctx->state_dir, name, NULL};
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  sigset_t none;
  sigemptyset(&none);
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, p[1], 1);
  posix_spawnattr_init(&at);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
  pid_t pid;
  int r = posix_spawn(&pid, ctx->exe, &fa, &at, (char *const *)argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  close(p[1]);
  if (r != 0) {
    copy_free(rc);
    return rr_err_sys(e, RR_INTERNAL, r, "image root (copy): cannot run \"%s image root-copy\"",
                      ctx->exe);
  }
  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (pidfd < 0 || reaper_watch_add(ctx->reaper, pid, pidfd, copy_on_exit, rc, &rc->child, e) < 0) {
    kill(pid, SIGKILL); /* reaped as an orphan */
    copy_free(rc);
    return e->code ? -1 : rr_err_sys(e, RR_INTERNAL, errno, "image root (copy): pidfd_open");
  }
  *ret = rc;
  return 0;
}

void rund_root_copy_cancel(rund_root_copy *rc) {
  if (!rc || rc->cancelled)
    return;
  rc->cancelled = true; /* the root goes once the child is gone */
  if (rc->child &&
      syscall(SYS_pidfd_send_signal, reaper_watch_pidfd(rc->child), SIGKILL, NULL, 0) < 0 &&
      errno != ESRCH)
    rr_warn("cannot stop an image root copy", "root=%s error=\"%s\"", rc->name, strerror(errno));
}

void rund_root_copies_free(void) {
  while (copies) { /* rund ends: the next one releases their roots (no job file) */
    if (copies->child) {
      syscall(SYS_pidfd_send_signal, reaper_watch_pidfd(copies->child), SIGKILL, NULL, 0);
      reaper_watch_forget(copies->child);
    }
    copy_free(copies);
  }
}
