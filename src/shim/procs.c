/* The process table of Spawn and Load. */
#include "shim/procs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "shim/runner.pb-c.h"

struct shim_waiter {
  shim_waiter *next, *prev;
  shim_proc *p;
  rpc_call *c;
};

static void shim_proc_unlink(shim_proc *p) {
  shim_ctx *ctx = p->ctx;
  if (p->prev)
    p->prev->next = p->next;
  else
    ctx->procs = p->next;
  if (p->next)
    p->next->prev = p->prev;
  ctx->nprocs--;
}

static void shim_waiter_unlink(shim_waiter *w) {
  if (w->prev)
    w->prev->next = w->next;
  else
    w->p->waiters = w->next;
  if (w->next)
    w->next->prev = w->prev;
}

static void shim_waiter_answer(shim_waiter *w) {
  shim_proc *p = w->p;
  Runner__Status st = RUNNER__STATUS__INIT;
  st.pid = (uint32_t)p->pid;
  st.code = p->code;
  st.signal = p->signal;
  rr_err e = {0};
  rpc_call_set_data(w->c, NULL);
  if (rpc_call_send(w->c, &st.base, &e) < 0)
    rpc_call_finish(w->c, e.code, e.msg);
  else
    rpc_call_finish(w->c, RR_OK, NULL);
  free(w);
}

static void shim_proc_on_exit(void *data, pid_t pid, const siginfo_t *si, const struct rusage *ru) {
  shim_proc *p = data;
  p->rw = NULL;
  p->ended = true;
  kill_ctl_ended(&p->kill);
  if (si && si->si_code == CLD_EXITED) {
    p->code = si->si_status;
  } else if (si) {
    p->signal = si->si_status;
    p->code = 128 + p->signal;
  } else {
    p->code = -1; /* status unknown */
  }
  if (!p->waiters)
    return;
  while (p->waiters) {
    shim_waiter *w = p->waiters;
    shim_waiter_unlink(w);
    shim_waiter_answer(w);
  }
  shim_proc_unlink(p); /* its end was told */
  free(p);
}

static void shim_proc_warn(void *data, const rr_err *e) {
  char q[RR_ERR_MSG_MAX + 16];
  rr_warn("cannot kill a process", "error=%s", rr_log_quote(q, sizeof q, e->msg));
}

int shim_proc_add(shim_ctx *ctx, pid_t pid, int pidfd, uint64_t start_ticks, shim_proc **ret,
                  rr_err *e) {
  shim_proc *p = calloc(1, sizeof *p);
  if (!p) {
    kill(-pid, SIGKILL);
    close(pidfd);
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  }
  p->ctx = ctx;
  p->pid = pid;
  snprintf(p->handle, sizeof p->handle, "proc-%llu", (unsigned long long)++ctx->next_proc);
  kill_ctl_init(&p->kill, ctx->l, &p->rw, NULL, shim_proc_warn, p);
  kill_ctl_attach(&p->kill, pid, start_ticks);
  if (reaper_watch_add(ctx->reaper, pid, pidfd, shim_proc_on_exit, p, &p->rw, e) < 0) {
    kill(-pid, SIGKILL); /* the reaper closed the pidfd; the orphan path reaps it */
    free(p);
    return -1;
  }
  p->next = ctx->procs;
  if (ctx->procs)
    ctx->procs->prev = p;
  ctx->procs = p;
  ctx->nprocs++;
  *ret = p;
  return 0;
}

const char *shim_proc_handle(const shim_proc *p) { return p->handle; }

int shim_proc_find(shim_ctx *ctx, const char *handle, shim_proc **ret, rr_err *e) {
  if (!handle || !*handle)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "handle is empty");
  if (strncmp(handle, "proc-", 5) != 0)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "handle \"%.64s\" is not a process handle (proc-N)",
                      handle);
  for (shim_proc *p = ctx->procs; p; p = p->next)
    if (!strcmp(p->handle, handle)) {
      *ret = p;
      return 0;
    }
  return rr_err_set(e, RR_NOT_FOUND, "no process \"%.64s\" (unknown, or its end was already told)",
                    handle);
}

int shim_proc_wait(shim_proc *p, rpc_call *c, rr_err *e) {
  shim_waiter *w = calloc(1, sizeof *w);
  if (!w)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  w->p = p;
  w->c = c;
  if (p->ended) {
    shim_waiter_answer(w);
    shim_proc_unlink(p);
    free(p);
    return 0;
  }
  w->next = p->waiters;
  if (p->waiters)
    p->waiters->prev = w;
  p->waiters = w;
  rpc_call_set_data(c, w);
  return 0;
}

void shim_proc_waiter_close(rpc_call *c) {
  shim_waiter *w = rpc_call_data(c);
  if (!w)
    return;
  shim_waiter_unlink(w);
  rpc_call_set_data(c, NULL);
  free(w);
}

void shim_procs_free(shim_ctx *ctx) {
  while (ctx->procs) {
    shim_proc *p = ctx->procs;
    kill_ctl_send(&p->kill, SIGKILL);
    kill_ctl_cancel(&p->kill);
    reaper_watch_forget(p->rw);
    while (p->waiters) {
      shim_waiter *w = p->waiters;
      shim_waiter_unlink(w);
      rpc_call_set_data(w->c, NULL);
      free(w);
    }
    shim_proc_unlink(p);
    free(p);
  }
}
