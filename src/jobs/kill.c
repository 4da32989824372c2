#include "jobs/kill.h"

#include <errno.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox/spawn.h"

#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

static bool pidfd_signal_disabled;

void kill_set_pidfd_signal_disabled(bool disabled) { pidfd_signal_disabled = disabled; }

static int kill_pidfd_send(int pidfd, int sig) {
  if (pidfd_signal_disabled) {
    errno = ENOSYS;
    return -1;
  }
  return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

/* sig to the leader's group, or to the leader alone if it left it; -1 with
 * errno ESRCH when the leader is gone. The pidfd is asked first (signal 0,
 * so that the leader gets sig once, from the group): while the leader is
 * there, even as a zombie, its pid and group id are nobody else's. */
static int kill_leader_group(const kill_ctl *k, int sig) {
  int pidfd = k->rw && *k->rw ? reaper_watch_pidfd(*k->rw) : -1;
  if (pidfd < 0) { /* not watched (the orphan reaper may take it), or its end being told */
    errno = ESRCH;
    return -1;
  }
  bool by_pidfd = kill_pidfd_send(pidfd, 0) == 0;
  if (!by_pidfd) {
    if (errno != ENOSYS)
      return -1;
    /* no pidfd_send_signal: the pid is its own while its start time is */
    uint64_t ticks;
    if (k->start_ticks && (spawn_proc_start_ticks(k->pid, &ticks) < 0 || ticks != k->start_ticks)) {
      errno = ESRCH;
      return -1;
    }
  }
  if (kill(-k->pid, sig) == 0)
    return 0;
  if (errno != ESRCH)
    return -1;
  return by_pidfd ? kill_pidfd_send(pidfd, sig) : kill(k->pid, sig);
}

void kill_ctl_init(kill_ctl *k, loop *l, reaper_watch *const *rw, cg_job *const *cg,
                   void (*warn)(void *data, const rr_err *e), void *warn_data) {
  *k = (kill_ctl){.l = l, .rw = rw, .cg = cg, .warn = warn, .warn_data = warn_data};
}

/* SIGKILL for a job whose keeper the cgroup spares: the cgroup alone. */
static bool kill_spares_keeper(const kill_ctl *k, int sig) {
  return sig == SIGKILL && k->keeper && k->cg && *k->cg;
}

void kill_ctl_keeper(kill_ctl *k) { k->keeper = true; }

void kill_ctl_attach(kill_ctl *k, pid_t pid, uint64_t start_ticks) {
  k->pid = pid;
  k->start_ticks = start_ticks;
  k->ended = false;
  k->keeper = false;
}

int kill_ctl_signal(kill_ctl *k, int sig, rr_err *e) {
  if (k->pid <= 0 || k->ended)
    return rr_err_set(e, RR_FAILED_PRECONDITION, "the command has ended");
  if (kill_spares_keeper(k, sig))
    return cg_job_kill(*k->cg, e) < 0 ? -1 : 0;
  int rc = kill_leader_group(k, sig), saved = errno;
  cg_job *cg = k->cg ? *k->cg : NULL;
  /* and with SIGKILL whatever left the group but not the cgroup */
  if (sig == SIGKILL && cg) /* the leader gone or not, everything in it */
    return cg_job_kill(cg, e) < 0 ? -1 : 0;
  if (rc == 0)
    return 0;
  if (saved == ESRCH)
    return rr_err_set(e, RR_FAILED_PRECONDITION, "the command has ended");
  return rr_err_sys(e, RR_INTERNAL, saved, "cannot send signal %d to process %d", sig, k->pid);
}

void kill_ctl_send(kill_ctl *k, int sig) {
  if (k->pid <= 0 || k->ended)
    return;
  if (!kill_spares_keeper(k, sig))
    kill_leader_group(k, sig); /* ESRCH: its end is on its way to us */
  cg_job *cg = k->cg ? *k->cg : NULL;
  rr_err e = {0};
  if (sig == SIGKILL && cg && cg_job_kill(cg, &e) < 0 && k->warn)
    k->warn(k->warn_data, &e);
}

/* SIGTERM and the like also continue a stopped command (as systemd does). */
static void kill_ctl_term(kill_ctl *k, int sig) {
  kill_ctl_send(k, sig);
  if (sig != SIGKILL && sig != SIGCONT)
    kill_ctl_send(k, SIGCONT);
}

static void kill_ctl_on_kill_timer(loop *l, void *data) {
  kill_ctl *k = data;
  k->kill_timer = 0;
  kill_ctl_send(k, SIGKILL);
}

static void kill_ctl_schedule(kill_ctl *k, uint64_t grace_ms) {
  uint64_t at = loop_now_ms(k->l) + grace_ms;
  if (k->kill_timer && k->kill_at <= at)
    return;
  loop_timer_cancel(k->l, k->kill_timer);
  k->kill_at = at;
  k->kill_timer = loop_timer_add(k->l, grace_ms, kill_ctl_on_kill_timer, k);
  if (!k->kill_timer) /* no memory to wait: end it now rather than never */
    kill_ctl_send(k, SIGKILL);
}

/* The leader of a group we were ending ended and is not reaped yet: do not
 * leave stragglers behind (the cgroup, if any, goes with its end). */
static void kill_ctl_on_leader_end(void *data) {
  kill_ctl *k = data;
  if (k->pid > 0 && !k->ended && k->cause)
    kill_leader_group(k, SIGKILL);
}

void kill_ctl_stop(kill_ctl *k, uint64_t grace_ms, kill_cause cause) {
  if (!k->cause)
    k->cause = cause;
  if (k->rw && *k->rw && !k->ended)
    reaper_watch_set_before_end(*k->rw, kill_ctl_on_leader_end, k);
  if (grace_ms == 0) {
    kill_ctl_send(k, SIGKILL);
    return;
  }
  kill_ctl_term(k, SIGTERM);
  kill_ctl_schedule(k, grace_ms);
}

static void kill_ctl_on_timeout(loop *l, void *data) {
  kill_ctl *k = data;
  k->timeout_timer = 0;
  if (k->ended)
    return;
  kill_ctl_stop(k, k->timeout_grace_ms ? k->timeout_grace_ms : KILL_DEFAULT_GRACE_MS,
                KILL_CAUSE_TIMEOUT);
}

void kill_ctl_timeout_arm(kill_ctl *k, uint64_t ms, uint64_t grace_ms) {
  k->timeout_grace_ms = grace_ms;
  k->timeout_timer = loop_timer_add(k->l, ms, kill_ctl_on_timeout, k);
}

void kill_ctl_cancel(kill_ctl *k) {
  loop_timer_cancel(k->l, k->timeout_timer);
  loop_timer_cancel(k->l, k->kill_timer);
  k->timeout_timer = k->kill_timer = 0;
}

void kill_ctl_ended(kill_ctl *k) {
  kill_ctl_cancel(k);
  k->ended = true;
}
