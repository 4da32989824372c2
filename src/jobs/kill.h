/* Ending a command: the one kill path of background jobs and Exec sessions.
 * Signals go through the main process's pidfd (held by its reaper watch):
 * the group is signalled by number only while the pidfd says its leader is
 * still there (even a zombie keeps its pid and group id from being reused),
 * the leader alone if it left its group; once the leader is gone nothing is
 * sent by number, and SIGKILL still kills everything in the cgroup. A stop
 * or a timeout sends SIGTERM (+ SIGCONT, so that a stopped command acts on
 * it), then SIGKILL after a grace period; when the leader of a group being
 * stopped ends, what is left of its group is killed before it is reaped.
 * Nothing is sent once the main process ended. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"
#include "common/loop.h"
#include "jobs/reaper.h"
#include "sandbox/cgroup.h"

/* Why we are ending the command (the reason its end gets). */
typedef enum kill_cause { KILL_CAUSE_NONE, KILL_CAUSE_STOP, KILL_CAUSE_TIMEOUT } kill_cause;

#define KILL_DEFAULT_GRACE_MS 10000u /* after a timeout's SIGTERM */

typedef struct kill_ctl {
  loop *l;
  pid_t pid;               /* the command's main process (group leader); 0: none yet */
  uint64_t start_ticks;    /* its /proc start time (0: unknown), without pidfd_send_signal */
  reaper_watch *const *rw; /* where the owner keeps the main process's watch (NULL: none) */
  cg_job *const *cg;       /* where the owner keeps the command's cgroup (*cg NULL: none) */
  bool ended;              /* the main process ended: nothing is sent any more */
  bool keeper;             /* the main process is the job's keeper (kill_ctl_keeper) */
  kill_cause cause;        /* the first stop or timeout */
  uint64_t timeout_timer, kill_timer, kill_at;
  uint64_t timeout_grace_ms; /* SIGTERM to SIGKILL when the timeout fires */
  /* the cgroup could not be killed (this module never logs) */
  void (*warn)(void *data, const rr_err *e);
  void *warn_data;
} kill_ctl;

/* Before any other call; rw and cg may be NULL (no watch, no cgroup ever).
 * The owner sets *rw to its watch of the main process and back to NULL
 * when its exit callback runs; without one nothing is sent to a process. */
void kill_ctl_init(kill_ctl *k, loop *l, reaper_watch *const *rw, cg_job *const *cg,
                   void (*warn)(void *data, const rr_err *e), void *warn_data);
/* The command runs as pid (started at start_ticks, 0: unknown) from now on. */
void kill_ctl_attach(kill_ctl *k, pid_t pid, uint64_t start_ticks);
/* The main process is the job's keeper (rund-waiter or a sandbox's init),
 * spared by the cgroup (cg_job_spare): SIGKILL then goes to everything else
 * in the cgroup and not to the keeper's group, so that the keeper drains
 * what the command wrote before it died into the logs, then ends. */
void kill_ctl_keeper(kill_ctl *k);
/* sig to the command's group (and cgroup for SIGKILL): FAILED_PRECONDITION
 * when it ended (even if rund has not seen it yet), INTERNAL when the
 * kernel refused. */
int kill_ctl_signal(kill_ctl *k, int sig, rr_err *e);
/* kill_ctl_signal without the answer (a cgroup that cannot be killed is
 * warned about); no-op when none runs. */
void kill_ctl_send(kill_ctl *k, int sig);
/* End it: SIGTERM (+ SIGCONT) now and SIGKILL grace_ms later (0: SIGKILL
 * now); an earlier pending SIGKILL stays. cause is kept unless one was. */
void kill_ctl_stop(kill_ctl *k, uint64_t grace_ms, kill_cause cause);
/* A stop with KILL_CAUSE_TIMEOUT and grace_ms (0: KILL_DEFAULT_GRACE_MS)
 * after ms (timer reserved by the caller; 0: on the loop's next turn). */
void kill_ctl_timeout_arm(kill_ctl *k, uint64_t ms, uint64_t grace_ms);
/* The main process ended: timers cancelled, nothing is sent from now on. */
void kill_ctl_ended(kill_ctl *k);
/* Cancel the timers, send nothing (the owner goes away). */
void kill_ctl_cancel(kill_ctl *k);
/* Tests: behave as on a kernel without pidfd_send_signal (ENOSYS). */
void kill_set_pidfd_signal_disabled(bool disabled);
