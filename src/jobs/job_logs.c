/* Log growth of running jobs: one inotify watch per job directory, sizes
 * read by path when it fires (no fd per job), the log cap applied through
 * the punch worker. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "jobs/intmap.h"
#include "jobs/job_internal.h"
#include "jobs/logstore.h"

#define JOB_INOTIFY_BATCH_MS 10
#define JOB_INOTIFY_READS 4 /* of 8 KiB (256 events) per batch */

static void job_mark_dirty(job_table *t, job *j) {
  if (j->logs_dirty)
    return;
  j->logs_dirty = true;
  j->dirty_next = t->dirty;
  t->dirty = j;
}

/* A job leaving the table before its batch is done leaves the list too. */
static void job_unmark_dirty(job_table *t, job *j) {
  if (!j->logs_dirty)
    return;
  for (job **p = &t->dirty; *p; p = &(*p)->dirty_next)
    if (*p == j) {
      *p = j->dirty_next;
      break;
    }
  j->logs_dirty = false;
  j->dirty_next = NULL;
}

void job_close_logs(job *j) {
  job_unmark_dirty(j->table, j);
  if (j->inotify_wd >= 0) {
    inotify_rm_watch(j->table->inotify_fd, j->inotify_wd);
    intmap_del(&j->table->by_wd, (uint64_t)j->inotify_wd);
    j->inotify_wd = -1;
  }
  j->logs_live = false;
}

/* ---- log growth ---- */

/* "ID/stdout": stream s of j below the table's jobs dir fd. */
static void job_log_name(const job *j, int s, char out[PUNCH_NAME_MAX]) {
  snprintf(out, PUNCH_NAME_MAX, "%s/%s", j->id, logstore_stream_name(s));
}

/* No thread for punching: open the file just for the punch, on the loop. */
static void job_logs_punch_here(job *j, int s) {
  job_table *t = j->table;
  char name[PUNCH_NAME_MAX];
  job_log_name(j, s, name);
  rr_err e = {0};
  _cleanup_close_ int fd =
      openat(t->jobs_dir_fd, name, O_WRONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
  if (fd < 0)
    rr_err_sys(&e, RR_INTERNAL, errno, "cannot open the log to drop old bytes");
  if (fd < 0 || logstore_enforce_cap(fd, j->size[s], t->max_log_bytes, &j->kept_from[s], &e) < 0)
    job_table_warn(t, "job %s %s: %s", j->id, logstore_stream_name(s), e.msg);
  j->punched_to[s] = j->kept_from[s];
}

/* Apply the cap to stream s of j: from now on readers are told the bytes
 * before the new start are dropped (so none ever reads a hole), and the
 * worker punches them out. A full queue only delays the punch: the next
 * refresh asks for the whole range not yet asked for. */
static void job_logs_cap(job *j, int s) {
  job_table *t = j->table;
  uint64_t to;
  if (!logstore_cap_plan(j->size[s], t->max_log_bytes, j->kept_from[s], &to))
    return;
  if (!t->punch) {
    job_logs_punch_here(j, s);
    return;
  }
  j->kept_from[s] = to;
  char name[PUNCH_NAME_MAX];
  job_log_name(j, s, name);
  if (j->punched_to[s] < to &&
      punch_queue_add(t->punch, name, j->punched_to[s], to - j->punched_to[s]))
    j->punched_to[s] = to;
}

/* Sizes by path, only when inotify said a file changed (and at start and
 * end): a running job costs rund no fd for its logs. A file that cannot be
 * looked at keeps its last size. */
void job_logs_refresh(job *j) {
  if (!j->logs_live)
    return;
  if (j->lost_check) {
    j->lost_check = false;
    job_lost_read(j);
  }
  for (int s = 0; s < 2; s++) {
    char name[PUNCH_NAME_MAX];
    job_log_name(j, s, name);
    struct stat st;
    if (fstatat(j->table->jobs_dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
      continue;
    j->size[s] = (uint64_t)st.st_size;
    job_logs_cap(j, s);
  }
}

/* What the punch worker could not do, said at most once a minute. */
static void job_table_punch_check(job_table *t) {
  int err;
  uint64_t n = t->punch ? punch_queue_errors(t->punch, &err) : 0;
  if (!n || (t->punch_warned_ms && loop_now_ms(t->l) - t->punch_warned_ms < 60000))
    return;
  t->punch_warned_ms = loop_now_ms(t->l);
  job_table_warn(t, "cannot drop old log bytes (%llu punches failed): %s", (unsigned long long)n,
                 strerror(err));
}

/* An ended job's files may still grow: processes it left behind (no cgroup
 * to end them, or writes in flight when it ended) write on. Their size is
 * read from the files then (one fstat each), never lowered. */
static void job_logs_refresh_ended(job *j) {
  for (int s = 0; s < 2; s++) {
    char name[PUNCH_NAME_MAX];
    job_log_name(j, s, name);
    struct stat st;
    if (fstatat(j->table->jobs_dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISREG(st.st_mode) && (uint64_t)st.st_size > j->size[s])
      j->size[s] = (uint64_t)st.st_size;
  }
}

void job_refresh(job *j) {
  if (j->state == JOB_RUNNING)
    job_logs_refresh(j);
  else
    job_logs_refresh_ended(j);
}

static void job_table_inotify_resume(loop *l, void *data) {
  job_table *t = data;
  t->inotify_timer = 0;
  if (loop_fd_add(l, t->inotify_fd, EPOLLIN, "job logs (inotify)", job_table_on_inotify, t, NULL) ==
      0)
    t->inotify_paused = false;
  else /* cannot happen short of ENOMEM: try again later */
    t->inotify_timer = loop_timer_add(l, JOB_INOTIFY_BATCH_MS, job_table_inotify_resume, t);
}

/* Bounded work per call: at most JOB_INOTIFY_READS reads of the queue, then
 * one refresh (fstat, cap) and one notify per job that grew, whatever the
 * number of events; writers that never pause cannot keep us here. What is
 * left in the queue (or lost to its overflow) is seen JOB_INOTIFY_BATCH_MS
 * later, so a busy job costs one refresh per batch, not one per write. */
void job_table_on_inotify(loop *l, int fd, uint32_t events, void *data) {
  job_table *t = data;
  _Alignas(struct inotify_event) char buf[8192];
  bool overflow = false;
  for (int i = 0; i < JOB_INOTIFY_READS; i++) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0)
      break;
    for (char *p = buf; p < buf + n;) {
      struct inotify_event *ev = (struct inotify_event *)p;
      p += sizeof *ev + ev->len;
      if (ev->mask & IN_Q_OVERFLOW)
        overflow = true;
      job *j = intmap_get(&t->by_wd, (uint64_t)ev->wd);
      if (!j) /* e.g. IN_IGNORED of a job that ended */
        continue;
      /* the keeper says there what it could not store */
      if (ev->len && strcmp(ev->name, JOB_EXIT_FILE) == 0)
        j->lost_check = true;
      job_mark_dirty(t, j);
    }
  }
  if (overflow) /* events were lost: look at every watched job */
    for (size_t i = 0; i < t->njobs; i++)
      if (t->jobs[i]->inotify_wd >= 0)
        job_mark_dirty(t, t->jobs[i]);
  if (!t->dirty)
    return; /* nothing was written: no need to hold back */
  job_table_punch_check(t);
  while (t->dirty) {
    job *j = t->dirty;
    t->dirty = j->dirty_next;
    j->logs_dirty = false;
    j->dirty_next = NULL;
    job_logs_refresh(j);
    job_notify(j, JOB_EVENT_OUTPUT);
  }
  /* a busy writer would wake us per write: let events pile up (the kernel
   * merges repeats) and look again a few ms later */
  loop_fd_del(l, fd);
  t->inotify_paused = true;
  t->inotify_timer = loop_timer_add(l, JOB_INOTIFY_BATCH_MS, job_table_inotify_resume, t);
  if (!t->inotify_timer) /* no memory for a timer: watch again at once rather than never */
    job_table_inotify_resume(l, t);
}

int job_logs_watch(job *j, rr_err *e) {
  int wd = inotify_add_watch(j->table->inotify_fd, j->dir, IN_MODIFY | IN_CLOSE_WRITE);
  if (wd < 0)
    return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, errno, "cannot watch the logs of job %s", j->id);
  if (intmap_put(&j->table->by_wd, (uint64_t)wd, j) < 0) {
    inotify_rm_watch(j->table->inotify_fd, wd);
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  }
  j->inotify_wd = wd;
  return 0;
}
