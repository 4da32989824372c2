/* Processes addressed by handle ("proc-N": Spawn, Load): their watch in the
 * reaper, the kill path (jobs/kill.h) and the calls waiting for their end.
 * An entry is dropped once its end was answered to a Wait or Stop. */
#pragma once
#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

#include "jobs/kill.h"
#include "shim/shim.h"

typedef struct shim_waiter shim_waiter;

struct shim_proc {
  shim_ctx *ctx;
  shim_proc *next, *prev;
  char handle[32];
  pid_t pid;
  reaper_watch *rw;
  kill_ctl kill;
  bool ended;
  int code, signal; /* code is 128 + signal when killed */
  shim_waiter *waiters;
};

/* Answer c with p's status when it ends (at once if it did). */
int shim_proc_wait(shim_proc *p, rpc_call *c, rr_err *e);
/* A waiting call went away: forget it (from its on_close). */
void shim_proc_waiter_close(rpc_call *c);
