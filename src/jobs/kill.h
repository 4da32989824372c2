/* Ending a command: the one kill path of background jobs and Exec sessions.
 * Signals go to the command's process group (its leader alone if it left
 * it) and, for SIGKILL, to everything in its cgroup; a stop or a timeout
 * sends SIGTERM (+ SIGCONT, so that a stopped command acts on it), then
 * SIGKILL after a grace period; once the main process ended after such a
 * stop, what is left of its group is killed. Nothing is sent once the main
 * process ended (its pid may be another process's by then). */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"
#include "common/loop.h"
#include "sandbox/cgroup.h"

/* Why we are ending the command (the reason its end gets). */
typedef enum kill_cause { KILL_CAUSE_NONE, KILL_CAUSE_STOP, KILL_CAUSE_TIMEOUT } kill_cause;

#define KILL_DEFAULT_GRACE_MS 10000u /* after a timeout's SIGTERM */

typedef struct kill_ctl {
  loop *l;
  pid_t pid;         /* the command's main process (group leader); 0: none yet */
  cg_job *const *cg; /* where the owner keeps the command's cgroup (*cg NULL: none) */
  bool ended;        /* the main process ended: nothing is sent any more */
  kill_cause cause;  /* the first stop or timeout */
  uint64_t timeout_timer, kill_timer, kill_at;
  /* the cgroup could not be killed (this module never logs) */
  void (*warn)(void *data, const rr_err *e);
  void *warn_data;
} kill_ctl;

/* Before any other call; cg may be NULL (no cgroup ever). */
void kill_ctl_init(kill_ctl *k, loop *l, cg_job *const *cg,
                   void (*warn)(void *data, const rr_err *e), void *warn_data);
/* The command runs as pid from now on. */
void kill_ctl_attach(kill_ctl *k, pid_t pid);
/* sig to the command's group (and cgroup for SIGKILL); no-op when none runs. */
void kill_ctl_send(kill_ctl *k, int sig);
/* End it: SIGTERM (+ SIGCONT) now and SIGKILL grace_ms later (0: SIGKILL
 * now); an earlier pending SIGKILL stays. cause is kept unless one was. */
void kill_ctl_stop(kill_ctl *k, uint64_t grace_ms, kill_cause cause);
/* A stop with KILL_CAUSE_TIMEOUT and the default grace after ms (timer
 * reserved by the caller). */
void kill_ctl_timeout_arm(kill_ctl *k, uint64_t ms);
/* The main process ended: timers cancelled; after a stop or timeout, and if
 * known (we saw its end: our child, or its waiter told), the rest of its
 * group is killed. */
void kill_ctl_ended(kill_ctl *k, bool known);
/* Cancel the timers, send nothing (the owner goes away). */
void kill_ctl_cancel(kill_ctl *k);
/* Send sig to the process group of pid (pid alone if it left it) and, for
 * SIGKILL, kill everything in cg too (NULL: none); -1 with e when the cgroup
 * could not be killed. */
int kill_tree_signal(pid_t pid, cg_job *cg, int sig, rr_err *e);
