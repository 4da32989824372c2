#include "jobs/job.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "jobs/intmap.h"
#include "jobs/job_input.h"
#include "jobs/job_cgroup.h"
#include "jobs/job_sandbox.h"
#include "jobs/job_internal.h"
#include "jobs/job_sandbox.h"
#include "jobs/logstore.h"
#include "sandbox/spawn.h"

#define JOB_INOTIFY_BATCH_MS 10
#define JOB_INOTIFY_READS 4    /* of 8 KiB (256 events) per batch */
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
static void job_notify(job *j, int event) {
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

static void job_table_on_inotify(loop *l, int fd, uint32_t events, void *data);

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
static void job_table_on_inotify(loop *l, int fd, uint32_t events, void *data) {
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

/* ---- ending ---- */

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
static void job_on_reaped(void *data, pid_t pid, const siginfo_t *si, const struct rusage *ru) {
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

/* ---- start ---- */

void job_remove_dir(const char *dir) {
  char p[PATH_MAX];
  static const char *const names[] = {"stdout",       "stderr",      "job.json",
                                      "job.json.tmp", JOB_EXIT_FILE, JOB_INPUT_SOCKET};
  for (size_t i = 0; i < RR_ARRAY_SIZE(names); i++) {
    snprintf(p, sizeof p, "%s/%s", dir, names[i]);
    unlink(p);
  }
  rmdir(dir);
}

/* Copy the owner principals into j. */
static int job_set_owner(job *j, const job_start_opts *opts, rr_err *e) {
  if (!opts || !opts->nowner)
    return 0;
  if (opts->nowner > JOB_MAX_OWNERS)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%zu owner principals (max %d)", opts->nowner,
                      JOB_MAX_OWNERS);
  if (!(j->owner = calloc(opts->nowner, sizeof *j->owner)))
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  for (; j->nowner < opts->nowner; j->nowner++)
    if (!(j->owner[j->nowner] = strdup(opts->owner[j->nowner])))
      return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  return 0;
}

static void job_pipes_close(int pipes[2][2]) {
  for (int s = 0; s < 2; s++)
    for (int k = 0; k < 2; k++)
      if (pipes[s][k] >= 0) {
        close(pipes[s][k]);
        pipes[s][k] = -1;
      }
}

/* The empty file rund-waiter writes the command's end to. */
static int job_exit_file_create(job *j, rr_err *e) {
  char p[PATH_MAX];
  snprintf(p, sizeof p, "%s/" JOB_EXIT_FILE, j->dir);
  int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot create \"%s\"", p);
  return fd;
}

int job_table_start(job_table *t, job_request *req, const job_start_opts *opts, job **ret,
                    rr_err *e) {
  if (job_request_validate(req, e) < 0)
    return -1;
  if (req->has_timeout && loop_timer_reserve(t->l, 1) < 0)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory for the job's timeout");
  char id[ULID_LEN + 1];
  if (ulid_gen_next(&t->gen, 0, id, e) < 0)
    return -1;
  int status_fd = -1; /* rund-waiter's STATE/jobs/<ID>/exit */
  /* the log files, and the pipes the job writes into (its keeper copies
   * them into the files): ours only until it is spawned */
  _cleanup_close_ int out_fd = -1;
  _cleanup_close_ int err_fd = -1;
  int pipes[2][2] = {{-1, -1}, {-1, -1}};
  job_input_fds inf = {-1, {-1, -1}, -1, -1}; /* stdin or tty: what the keeper holds */
  job *j = job_alloc(t, id);
  if (!j)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  if (job_set_owner(j, opts, e) < 0) {
    job_free(j);
    return -1;
  }
  if (logstore_job_dir_create(j->dir, e) < 0) {
    job_free(j);
    return -1;
  }
  if ((out_fd = logstore_stream_create(j->dir, LOG_STDOUT, e)) < 0 ||
      (err_fd = logstore_stream_create(j->dir, LOG_STDERR, e)) < 0)
    goto fail;
  /* a sandbox's init records the end as rund-waiter does, in its place */
  bool sandboxed = req->sandbox.profile != SB_PROFILE_HOST;
  bool relay = t->waiter || sandboxed; /* their keeper: rund-waiter or the init */
  bool input = req->stdin_open || req->tty;
  if (input && (!t->waiter || sandboxed)) {
    rr_err_set(e, RR_INVALID_ARGUMENT, "%s with %s: not supported yet for background jobs",
               req->tty ? "tty" : "stdin",
               sandboxed ? "a sandbox profile" : "rund without rund-waiter");
    goto fail;
  }
  for (int s = 0; relay && !req->tty && s < 2; s++)
    if (pipe2(pipes[s], O_CLOEXEC) < 0) {
      rr_err_sys(e, RR_RESOURCE_EXHAUSTED, errno, "cannot make the pipes of job %s", id);
      goto fail;
    }
  int relay_fds[4] = {pipes[0][0], pipes[1][0], out_fd, err_fd};
  spawn_opts o = {
      .path = req->path,
      .args = (const char *const *)req->args,
      .nargs = req->nargs,
      .env_keys = (const char *const *)req->env_keys,
      .env_values =
          opts && opts->env_values ? opts->env_values : (const char *const *)req->env_values,
      .nenv = req->nenv,
      .workdir = req->workdir,
      .stdin_fd = t->devnull_fd,
      .stdout_fd = relay ? pipes[0][1] : out_fd,
      .stderr_fd = relay ? pipes[1][1] : err_fd,
      .ids = opts ? opts->ids : NULL,
      .waiter_relay_fds = relay ? relay_fds : NULL,
  };
  if (input) {
    if (job_input_prepare(req, j->dir, &o, &inf, e) < 0)
      goto fail;
    relay_fds[0] = inf.relay_in >= 0 ? inf.relay_in : relay_fds[0];
    o.waiter_input_fds = inf.keeper;
    o.waiter_tty = req->tty;
    o.waiter_stdio_fd = t->devnull_fd;
  }
  if (t->waiter || sandboxed) {
    if ((status_fd = job_exit_file_create(j, e)) < 0)
      goto fail;
    o.waiter = sandboxed ? NULL : t->waiter;
    o.waiter_status_fd = status_fd;
  }
  /* limits or not, outside rund's cgroup (its limits, restarts and OOM are
   * not the job's), and a stop kills the whole tree */
  if (job_cgroup_create(t->cgm, id, req->limits, &o, &j->cg, e) < 0)
    goto fail;
  if (j->cg)
    j->cgroup = cg_job_version(j->cg);
  spawn_result sr;
  j->start_ns = rr_now_unix_ns();
  if ((sandboxed ? job_sandbox_spawn(&req->sandbox, req->limits, &o, status_fd, &sr, e)
                 : spawn_process(&o, &sr, e)) < 0)
    goto fail;
  if (j->cg)
    cg_job_close_fds(j->cg); /* a live job holds no fd of its cgroup */
  /* the child has them: a running job keeps only its pidfd open in rund */
  if (status_fd >= 0) {
    close(status_fd);
    status_fd = -1;
  }
  close(TAKE_FD(out_fd));
  close(TAKE_FD(err_fd));
  job_pipes_close(pipes);
  job_input_fds_close(&inf);
  j->pid = sr.pid;
  kill_ctl_attach(&j->kill, sr.pid, sr.start_ticks);
  if (relay && j->cg) /* a kill leaves it to drain the pipes (kill.h) */
    job_keeper_spare(j);
  j->start_ticks = sr.start_ticks;
  j->state = JOB_RUNNING;
  j->req = *req;
  if (reaper_watch_add(t->r, sr.pid, sr.pidfd, job_on_reaped, j, &j->rw, e) < 0 ||
      job_persist(j, e) < 0 || job_logs_watch(j, e) < 0 || job_table_insert(t, j, e) < 0) {
    /* cannot track it: do not leave it running */
    kill(-sr.pid, SIGKILL);
    if (j->rw)
      reaper_watch_forget(j->rw);
    memset(&j->req, 0, sizeof j->req);
    goto fail;
  }
  memset(req, 0, sizeof *req);
  /* watched only now so that writing job.json raised no events: take what
   * the job wrote before the watch existed (and apply the cap to it) */
  j->logs_live = true;
  job_logs_refresh(j);
  if (j->req.has_timeout)
    kill_ctl_timeout_arm(&j->kill, j->req.timeout_ms, j->req.timeout_grace_ms);
  *ret = j;
  return 0;
fail:
  if (status_fd >= 0)
    close(status_fd);
  job_pipes_close(pipes);
  job_input_fds_close(&inf);
  if (j->cg) { /* its removal (on a timer) also kills a child we could not track */
    cg_job_kill(j->cg, NULL);
    cg_usage unused;
    bool has;
    job_cgroup_finish(t->l, j->cg, &unused, &has, NULL);
    j->cg = NULL;
  }
  job_close_logs(j);
  job_remove_dir(j->dir);
  job_free(j);
  return -1;
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
