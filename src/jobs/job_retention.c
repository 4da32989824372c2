/* Retention: finished jobs older than the table's retention leave it and the
 * disk (job.json and both logs), from a timer. A job that somebody still
 * watches (a waiter, a Logs reader) is left for a later round. */
#include <stdint.h>

#include "common/util.h"
#include "jobs/job_internal.h"

enum { RETENTION_MIN_PERIOD_MS = 100, RETENTION_MAX_PERIOD_MS = 60000 };

/* How often to look: a quarter of the retention, within bounds. */
static uint64_t retention_period_ms(uint64_t retention_ms) {
  uint64_t p = retention_ms / 4;
  return p < RETENTION_MIN_PERIOD_MS   ? RETENTION_MIN_PERIOD_MS
         : p > RETENTION_MAX_PERIOD_MS ? RETENTION_MAX_PERIOD_MS
                                       : p;
}

static bool job_expired(const job *j, int64_t now_ns, uint64_t retention_ms) {
  if (j->state == JOB_RUNNING || j->end_ns <= 0 || j->watchers.next != &j->watchers)
    return false;
  return (uint64_t)(now_ns - j->end_ns) / 1000000u >= retention_ms && now_ns > j->end_ns;
}

static void job_retention_run(loop *l, void *data) {
  job_table *t = data;
  t->retention_timer = 0;
  int64_t now = rr_now_unix_ns();
  for (size_t i = 0; i < t->njobs;) {
    job *j = t->jobs[i];
    if (!job_expired(j, now, t->retention_ms)) {
      i++;
      continue;
    }
    if (t->on_drop)
      t->on_drop(t->on_drop_data, j);
    job_remove_dir(j->dir);
    job_table_drop_at(t, i);
  }
  t->retention_timer =
      loop_timer_add(l, retention_period_ms(t->retention_ms), job_retention_run, t);
}

void job_retention_start(job_table *t) {
  if (t->retention_ms)
    t->retention_timer =
        loop_timer_add(t->l, retention_period_ms(t->retention_ms), job_retention_run, t);
}

void job_table_set_drop_hook(job_table *t, void (*fn)(void *data, job *j), void *data) {
  t->on_drop = fn;
  t->on_drop_data = data;
}
