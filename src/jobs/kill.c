#include "jobs/kill.h"

#include <errno.h>
#include <signal.h>

int kill_tree_signal(pid_t pid, cg_job *cg, int sig, rr_err *e) {
  /* the whole group; the leader alone if it left its group */
  if (kill(-pid, sig) < 0 && errno == ESRCH)
    kill(pid, sig);
  /* and with SIGKILL whatever left the group but not the cgroup */
  return sig == SIGKILL && cg ? cg_job_kill(cg, e) : 0;
}

void kill_ctl_init(kill_ctl *k, loop *l, cg_job *const *cg,
                   void (*warn)(void *data, const rr_err *e), void *warn_data) {
  *k = (kill_ctl){.l = l, .cg = cg, .warn = warn, .warn_data = warn_data};
}

void kill_ctl_attach(kill_ctl *k, pid_t pid) {
  k->pid = pid;
  k->ended = false;
}

void kill_ctl_send(kill_ctl *k, int sig) {
  if (k->pid <= 0 || k->ended)
    return;
  rr_err e = {0};
  if (kill_tree_signal(k->pid, k->cg ? *k->cg : NULL, sig, &e) < 0 && k->warn)
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

void kill_ctl_stop(kill_ctl *k, uint64_t grace_ms, kill_cause cause) {
  if (!k->cause)
    k->cause = cause;
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
  kill_ctl_stop(k, KILL_DEFAULT_GRACE_MS, KILL_CAUSE_TIMEOUT);
}

void kill_ctl_timeout_arm(kill_ctl *k, uint64_t ms) {
  k->timeout_timer = loop_timer_add(k->l, ms, kill_ctl_on_timeout, k);
}

void kill_ctl_cancel(kill_ctl *k) {
  loop_timer_cancel(k->l, k->timeout_timer);
  loop_timer_cancel(k->l, k->kill_timer);
  k->timeout_timer = k->kill_timer = 0;
}

void kill_ctl_ended(kill_ctl *k, bool known) {
  kill_ctl_cancel(k);
  /* we were ending the whole group: do not leave stragglers behind */
  if (known && k->cause && k->pid > 0 && !k->ended)
    kill(-k->pid, SIGKILL);
  k->ended = true;
}
