/* The job table: job objects, watchers, lookup and listing, the table's
 * set-up and teardown. Start is in job_start.c, the end of a job in
 * job_exit.c, log growth in job_logs.c, persistence in job_load.c. */
#include "jobs/job.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "common/util.h"
#include "jobs/intmap.h"
#include "jobs/job_cgroup.h"
#include "jobs/job_input.h"
#include "jobs/job_internal.h"

#define JOB_PUNCH_DRAIN_MS 300 /* at the end, for the last holes */

static const char *const state_names[] = {"unspecified", "running", "exited", "killed", "failed"};

const char *job_state_name(job_state s) {
  return (unsigned)s < RR_ARRAY_SIZE(state_names) ? state_names[s] : "unspecified";
}

job_state job_state_parse(const char *s) {
  for (unsigned i = 1; i < RR_ARRAY_SIZE(state_names); i++)
    if (s && strcmp(s, state_names[i]) == 0)
      return (job_state)i;
  return 0;
}

void job_table_warn(job_table *t, const char *fmt, ...) {
  if (!t->warn)
    return;
  char buf[RR_ERR_MSG_MAX + 128];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  t->warn(t->warn_data, buf);
}

/* ---- watchers ---- */

static void watch_unlink(job_watch *w) {
  if (w->prev) {
    w->prev->next = w->next;
    w->next->prev = w->prev;
  }
  w->prev = w->next = NULL;
}

static void watch_append(job_watch *head, job_watch *w) {
  w->prev = head->prev;
  w->next = head;
  head->prev->next = w;
  head->prev = w;
}

void job_watch_add(job *j, job_watch *w) {
  w->job = j;
  watch_append(&j->watchers, w);
}

void job_watch_del(job_watch *w) { watch_unlink(w); }

/* Callbacks may add or remove any watcher while we iterate. */
void job_notify(job *j, int event) {
  job_watch pending = {0};
  pending.prev = pending.next = &pending;
  if (j->watchers.next == &j->watchers)
    return;
  pending.next = j->watchers.next;
  pending.prev = j->watchers.prev;
  pending.next->prev = &pending;
  pending.prev->next = &pending;
  j->watchers.next = j->watchers.prev = &j->watchers;
  while (pending.next != &pending) {
    job_watch *w = pending.next;
    watch_unlink(w);
    watch_append(&j->watchers, w);
    w->fn(w, event);
  }
}

/* ---- table bookkeeping ---- */

static void job_kill_warn(void *data, const rr_err *e) {
  job *j = data;
  job_table_warn(j->table, "job %s: cannot kill its cgroup: %s", j->id, e->msg);
}

job *job_alloc(job_table *t, const char *id) {
  job *j = calloc(1, sizeof *j);
  if (!j)
    return NULL;
  memcpy(j->id, id, ULID_LEN);
  j->table = t;
  j->inotify_wd = -1;
  j->watchers.prev = j->watchers.next = &j->watchers;
  kill_ctl_init(&j->kill, t->l, &j->rw, &j->cg, job_kill_warn, j);
  size_t n = strlen(t->jobs_dir) + ULID_LEN + 2;
  if (!(j->dir = malloc(n))) {
    free(j);
    return NULL;
  }
  snprintf(j->dir, n, "%s/%s", t->jobs_dir, id);
  return j;
}

/* Put j on the list of jobs to refresh at the end of this batch. */
void job_free(job *j) {
  if (!j)
    return;
  job_input_end(j);
  job_close_logs(j);
  cg_job_free(j->cg); /* the cgroup stays: the job runs on */
  job_request_free(&j->req);
  free(j->detail);
  for (size_t i = 0; i < j->nowner; i++)
    free(j->owner[i]);
  free(j->owner);
  free(j->dir);
  free(j);
}

static size_t job_table_pos(const job_table *t, const char *id, bool *found) {
  size_t lo = 0, hi = t->njobs;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = strcmp(t->jobs[mid]->id, id);
    if (c == 0) {
      *found = true;
      return mid;
    }
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  *found = false;
  return lo;
}

int job_table_insert(job_table *t, job *j, rr_err *e) {
  if (t->njobs == t->cap) {
    size_t n = t->cap ? t->cap * 2 : 64;
    job **p = realloc(t->jobs, n * sizeof *p);
    if (!p)
      return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory for the job table");
    t->jobs = p;
    t->cap = n;
  }
  bool found;
  size_t pos = job_table_pos(t, j->id, &found);
  if (found)
    return rr_err_set(e, RR_ALREADY_EXISTS, "job %s already exists", j->id);
  memmove(t->jobs + pos + 1, t->jobs + pos, (t->njobs - pos) * sizeof *t->jobs);
  t->jobs[pos] = j;
  t->njobs++;
  return 0;
}

void job_table_drop_at(job_table *t, size_t i) {
  job_free(t->jobs[i]);
  memmove(t->jobs + i, t->jobs + i + 1, (t->njobs - i - 1) * sizeof *t->jobs);
  t->njobs--;
}

size_t job_table_count(const job_table *t) { return t->njobs; }

bool job_table_disk_full(job_table *t) {
  uint64_t now = loop_now_ms(t->l);
  if (t->disk_checked_ms && now - t->disk_checked_ms < 1000)
    return t->disk_full;
  t->disk_checked_ms = now;
  struct statvfs sv;
  bool full = statvfs(t->jobs_dir, &sv) == 0 && sv.f_bavail == 0;
  if (full != t->disk_full)
    job_table_warn(t,
                   full ? "the disk of \"%s\" is full: what running jobs write is lost"
                        : "the disk of \"%s\" has space again",
                   t->jobs_dir);
  t->disk_full = full;
  return full;
}

int job_table_lookup(job_table *t, const char *id, job **ret, rr_err *e) {
  size_t len = strlen(id);
  if (!ulid_parse(id, len, NULL))
    return rr_err_set(e, RR_INVALID_ARGUMENT, "job_id \"%.64s\" is not a ULID", id);
  char up[ULID_LEN + 1];
  for (size_t i = 0; i < ULID_LEN; i++)
    up[i] = (id[i] >= 'a' && id[i] <= 'z') ? (char)(id[i] - 32) : id[i];
  up[ULID_LEN] = '\0';
  bool found;
  size_t pos = job_table_pos(t, up, &found);
  if (!found)
    return rr_err_set(e, RR_NOT_FOUND, "job %s not found", up);
  *ret = t->jobs[pos];
  return 0;
}

int job_table_list(job_table *t, job_state state, const char *tag, job ***ret, size_t *n,
                   rr_err *e) {
  job **v = malloc((t->njobs ? t->njobs : 1) * sizeof *v);
  if (!v)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory listing jobs");
  size_t k = 0;
  for (size_t i = 0; i < t->njobs; i++) {
    job *j = t->jobs[i];
    if (state && j->state != state)
      continue;
    if (tag && *tag) {
      size_t x = 0;
      while (x < j->req.ntags && strcmp(j->req.tags[x], tag) != 0)
        x++;
      if (x == j->req.ntags)
        continue;
    }
    v[k++] = j;
  }
  *ret = v;
  *n = k;
  return 0;
}

/* One supervisor per state dir: two would both adopt and rewrite jobs. */
static int job_table_lock(job_table *t, const char *state_dir, rr_err *e) {
  char p[PATH_MAX];
  if ((size_t)snprintf(p, sizeof p, "%s/rund.lock", state_dir) >= sizeof p)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "state dir path too long");
  t->lock_fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (t->lock_fd < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot open \"%s\"", p);
  if (flock(t->lock_fd, LOCK_EX | LOCK_NB) < 0)
    return rr_err_sys(e, RR_FAILED_PRECONDITION, errno,
                      "state dir \"%s\" is in use by another rund", state_dir);
  return 0;
}

int job_table_new(job_table **ret, loop *l, reaper *r, const job_table_config *cfg, rr_err *e) {
  job_table *t = calloc(1, sizeof *t);
  if (!t)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  t->l = l;
  t->r = r;
  t->max_log_bytes = cfg->max_log_bytes;
  t->retention_ms = cfg->retention_ms;
  t->sync = !cfg->no_sync;
  t->warn = cfg->warn;
  t->warn_data = cfg->warn_data;
  t->cgm = cfg->cgroups;
  if (cfg->waiter && !(t->waiter = strdup(cfg->waiter))) {
    free(t);
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  }
  t->inotify_fd = -1;
  t->jobs_dir_fd = -1;
  t->lock_fd = -1;
  t->devnull_fd = -1;
  ulid_gen_init(&t->gen);
  size_t n = strlen(cfg->state_dir) + sizeof "/jobs";
  if (!(t->jobs_dir = malloc(n))) {
    free(t);
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  }
  snprintf(t->jobs_dir, n, "%s/jobs", cfg->state_dir);
  if (rr_mkdirs(t->jobs_dir, e) < 0 || job_table_lock(t, cfg->state_dir, e) < 0)
    goto fail;
  if ((t->jobs_dir_fd = open(t->jobs_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
    rr_err_sys(e, RR_INTERNAL, errno, "cannot open \"%s\"", t->jobs_dir);
    goto fail;
  }
  /* every job's stdin; opened once, not per start */
  if ((t->devnull_fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
    rr_err_sys(e, RR_INTERNAL, errno, "cannot open /dev/null");
    goto fail;
  }
  if (t->max_log_bytes && punch_queue_new(&t->punch, t->jobs_dir_fd, e) < 0) {
    /* no thread: punch on the loop (slow disks may then stall it) */
    job_table_warn(t, "%s: log caps are applied on the event loop", e->msg);
    t->punch = NULL;
  }
  if ((t->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0) {
    rr_err_sys(e, RR_INTERNAL, errno, "inotify_init1");
    goto fail;
  }
  if (loop_fd_add(l, t->inotify_fd, EPOLLIN, "job logs (inotify)", job_table_on_inotify, t, e) < 0)
    goto fail;
  if (job_table_load(t, e) < 0)
    goto fail;
  /* after the load, which removed the ready directories of a crash */
  if (t->waiter)
    t->dirs = job_dirs_new(t->jobs_dir_fd, t->sync);
  job_retention_start(t);
  *ret = t;
  return 0;
fail:
  job_table_free(t);
  return -1;
}

void job_table_free(job_table *t) {
  if (!t)
    return;
  for (size_t i = 0; i < t->njobs; i++) {
    job *j = t->jobs[i];
    reaper_watch_forget(j->rw);
    kill_ctl_cancel(&j->kill);
    job_free(j);
  }
  free(t->jobs);
  /* cgroups of ended jobs (and Exec commands) still on their way out */
  job_cgroup_release_flush(t->l);
  loop_timer_cancel(t->l, t->inotify_timer);
  loop_timer_cancel(t->l, t->retention_timer);
  if (t->inotify_fd >= 0) {
    loop_fd_del(t->l, t->inotify_fd);
    close(t->inotify_fd);
  }
  intmap_free(&t->by_wd);
  job_dirs_free(t->dirs);
  punch_queue_free(t->punch, JOB_PUNCH_DRAIN_MS);
  if (t->lock_fd >= 0)
    close(t->lock_fd);
  if (t->jobs_dir_fd >= 0)
    close(t->jobs_dir_fd);
  if (t->devnull_fd >= 0)
    close(t->devnull_fd);
  free(t->jobs_dir);
  free(t->waiter);
  free(t);
}
