/* The end of a job: its status (from the reaper, or the keeper's record),
 * its cgroup's final counters, the last job.json; and signals and stops. */
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>

#include "common/util.h"
#include "jobs/job_cgroup.h"
#include "jobs/job_input.h"
#include "jobs/job_internal.h"

void job_on_exit(void *data, pid_t pid, const siginfo_t *si) {
  job *j = data;
  job_table *t = j->table;
  j->rw = NULL;
  j->end_ns = rr_now_unix_ns();
  siginfo_t recorded;
  int64_t recorded_end;
  /* not our child (adopted): its waiter said how it ended; a sandbox's init
   * ends with 128+N for signal N, its record has the signal */
  if ((!si || j->req.sandbox.profile != SB_PROFILE_HOST) &&
      job_exit_file_read(j, &recorded, &recorded_end) == 0) {
    si = &recorded;
    j->end_ns = recorded_end;
  }
  if (!si) {
    j->state = JOB_FAILED;
    snprintf(j->reason, sizeof j->reason, "lost");
  } else if (si->si_code == CLD_EXITED) {
    j->state = JOB_EXITED;
    j->exit_code = si->si_status;
    snprintf(j->reason, sizeof j->reason, "exited");
  } else {
    j->state = JOB_KILLED;
    j->signal = si->si_status;
    snprintf(j->reason, sizeof j->reason, "signaled");
  }
  if (si && j->kill.cause)
    snprintf(j->reason, sizeof j->reason, "%s",
             j->kill.cause == KILL_CAUSE_TIMEOUT ? "timeout" : "stopped");
  kill_ctl_ended(&j->kill);
  job_cgroup_end(j, si);
  j->lost_check = true; /* the keeper's last word */
  job_input_end(j);
  job_logs_refresh(j);
  job_close_logs(j);
  rr_err e = {0};
  if (job_persist(j, &e) < 0)
    job_table_warn(t, "job %s: cannot record its end: %s", j->id, e.msg);
  job_notify(j, JOB_EVENT_EXIT);
}

/* The reaper's callback for jobs we started: a job without a cgroup takes its
 * usage from the rusage (one with a cgroup keeps the cgroup's numbers, which
 * count every process in it). */
void job_on_reaped(void *data, pid_t pid, const siginfo_t *si, const struct rusage *ru) {
  job *j = data;
  if (ru && j->cgroup == CG_NONE) {
    job_usage_from_rusage(ru, &j->usage);
    j->has_usage = true;
  }
  job_on_exit(data, pid, si);
}

int job_signal(job *j, int sig, rr_err *e) {
  if (j->state != JOB_RUNNING)
    return rr_err_set(e, RR_FAILED_PRECONDITION, "job %s is not running (%s)", j->id,
                      job_state_name(j->state));
  if (kill_ctl_signal(&j->kill, sig, e) < 0)
    return rr_err_wrap(e, "cannot signal job %s", j->id);
  return 0;
}

int job_stop(job *j, uint64_t grace_ms, rr_err *e) {
  if (grace_ms > JOB_MAX_GRACE_MS)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "grace_ms %llu is out of range (0..%u)",
                      (unsigned long long)grace_ms, JOB_MAX_GRACE_MS);
  if (j->state != JOB_RUNNING)
    return 0;
  kill_ctl_stop(&j->kill, grace_ms, KILL_CAUSE_STOP);
  return 0;
}
