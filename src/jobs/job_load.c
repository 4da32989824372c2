/* Persistence of jobs (job.json) and reloading the table at start-up:
 * finished jobs come back as they were; running ones are adopted through a
 * pidfd when the recorded pid still names the same process (start time from
 * /proc/PID/stat), else they are marked failed/"lost"; an adopted job's
 * timeout is armed again for the time it has left. A running job with a
 * cgroup gets it reopened (cg_job_open; the cgroup's name is the job id
 * under the subtree named after the state dir), so stop and timeouts kill
 * its whole tree and its end reads the final counters; a lost one has its
 * counters read and its cgroup (with any leftover process) removed. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/util.h"
#include "jobs/job_cgroup.h"
#include "jobs/job_internal.h"
#include "jobs/job_sandbox.h"
#include "jobs/logstore.h"
#include "sandbox/spawn.h"
#include "waiter/relay.h"

/* ---- persistence ---- */

/* j as its job.json says it; NULL on ENOMEM. */
static json_object *job_to_json(const job *j) {
  json_object *o = json_object_new_object();
  if (!o)
    return NULL;
  json_object_object_add(o, "version", json_object_new_int(1));
  json_object_object_add(o, "id", json_object_new_string(j->id));
  json_object_object_add(o, "state", json_object_new_string(job_state_name(j->state)));
  json_object_object_add(o, "reason", json_object_new_string(j->reason));
  json_object_object_add(o, "pid", json_object_new_int(j->pid));
  json_object_object_add(o, "start_ticks", json_object_new_uint64(j->start_ticks));
  json_object_object_add(o, "exit_code", json_object_new_int(j->exit_code));
  json_object_object_add(o, "signal", json_object_new_int(j->signal));
  json_object_object_add(o, "start_ns", json_object_new_int64(j->start_ns));
  json_object_object_add(o, "end_ns", json_object_new_int64(j->end_ns));
  json_object_object_add(o, "request", job_request_to_json(&j->req));
  if (j->stdin_closed)
    json_object_object_add(o, "stdin_closed", json_object_new_boolean(1));
  for (int s = 0; s < 2; s++)
    if (j->lost[s]) {
      char k[32];
      snprintf(k, sizeof k, "%s_lost", logstore_stream_name(s));
      json_object_object_add(o, k, json_object_new_uint64(j->lost[s]));
      snprintf(k, sizeof k, "%s_lost_errno", logstore_stream_name(s));
      json_object_object_add(o, k, json_object_new_int(j->lost_errno[s]));
    }
  if (j->cgroup)
    json_object_object_add(o, "cgroup", json_object_new_string(job_cgroup_version_name(j->cgroup)));
  if (j->has_usage)
    json_object_object_add(o, "usage", job_usage_to_json(&j->usage));
  if (j->nowner) {
    json_object *own = json_object_new_array();
    for (size_t i = 0; i < j->nowner; i++)
      json_object_array_add(own, json_object_new_string(j->owner[i]));
    json_object_object_add(o, "owner", own);
  }
  return o;
}

int job_persist(job *j, rr_err *e) {
  json_object *o = job_to_json(j);
  if (!o)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  int rc = logstore_json_write(j->dir, o, j->table->sync, e);
  json_object_put(o);
  return rc;
}

int job_persist_fresh(job *j, int fd, rr_err *e) {
  json_object *o = job_to_json(j);
  if (!o)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  int rc = logstore_json_write_fresh(fd, j->table->jobs_dir_fd, o, j->table->sync, e);
  json_object_put(o);
  return rc;
}

/* ---- the waiter's record ---- */

bool job_has_exit_file(const job *j) {
  char p[PATH_MAX];
  snprintf(p, sizeof p, "%s/" JOB_EXIT_FILE, j->dir);
  return faccessat(AT_FDCWD, p, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

void job_keeper_spare(job *j) {
  cg_job_spare(j->cg, j->pid);
  kill_ctl_keeper(&j->kill);
}

int job_exit_file_read(job *j, siginfo_t *ret, int64_t *end_ns) {
  char p[PATH_MAX], buf[64];
  snprintf(p, sizeof p, "%s/" JOB_EXIT_FILE, j->dir);
  _cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return -1;
  ssize_t n = rr_read(fd, buf, sizeof buf - 1);
  if (n <= 0)
    return -1; /* empty: the waiter died before the command ended */
  buf[n] = '\0';
  if (job_status_line_parse(buf, ret, end_ns) < 0)
    return -1;
  ret->si_pid = j->pid;
  return 0;
}

/* "lost OUT ERR OUT_ERRNO ERR_ERRNO" at RELAY_LOST_AT (src/waiter/relay.h),
 * padded; a line being rewritten that does not parse keeps the last one. */
void job_lost_read(job *j) {
  char name[ULID_LEN + sizeof "/" JOB_EXIT_FILE];
  snprintf(name, sizeof name, "%s/" JOB_EXIT_FILE, j->id);
  struct stat st;
  if (fstatat(j->table->jobs_dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
      st.st_size < RELAY_LOST_AT + RELAY_LINE)
    return; /* nothing lost (the common case: no open) */
  _cleanup_close_ int fd = openat(j->table->jobs_dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  char buf[RELAY_LINE + 1];
  if (fd < 0 || pread(fd, buf, RELAY_LINE, RELAY_LOST_AT) != RELAY_LINE ||
      buf[RELAY_LINE - 1] != '\n')
    return;
  buf[RELAY_LINE] = '\0';
  unsigned long long lost[2];
  int err[2];
  if (sscanf(buf, "lost %llu %llu %d %d", &lost[0], &lost[1], &err[0], &err[1]) != 4)
    return;
  for (int s = 0; s < 2; s++) {
    if (lost[s] > j->lost[s])
      j->lost[s] = lost[s];
    j->lost_errno[s] = err[s];
  }
}

/* ---- load ---- */

static int json_int(json_object *o, const char *k, int64_t *ret) {
  json_object *v;
  if (!json_object_object_get_ex(o, k, &v))
    return -1;
  *ret = json_object_get_int64(v);
  return 0;
}

/* Adopted jobs get no rusage-based usage: after a real restart they are not
 * our children (status and rusage unknown, so "lost"); only a cgroup counts. */
static void job_adopted_on_exit(void *data, pid_t pid, const siginfo_t *si,
                                const struct rusage *ru) {
  job_on_exit(data, pid, si);
}

/* An adopted job keeps its deadline: the time left of its timeout (none
 * left: the timeout acts on the loop's first turn). */
static void job_adopted_timeout_arm(job *j) {
  if (!j->req.has_timeout)
    return;
  uint64_t ms =
      j->req.timeout_ms < REQUEST_MAX_TIMEOUT_MS ? j->req.timeout_ms : REQUEST_MAX_TIMEOUT_MS;
  int64_t left = j->start_ns / 1000000 + (int64_t)ms - rr_now_unix_ns() / 1000000;
  kill_ctl_timeout_arm(&j->kill, left > 0 ? (uint64_t)left : 0, j->req.timeout_grace_ms);
  if (!j->kill.timeout_timer)
    job_table_warn(j->table, "job %s: out of memory for its timeout", j->id);
}

static void job_adopt_or_lose(job *j) {
  job_table *t = j->table;
  uint64_t ticks = 0;
  int pidfd = -1;
  rr_err e = {0};
  if (j->pid > 0 && spawn_proc_start_ticks(j->pid, &ticks) == 0 && ticks == j->start_ticks &&
      (pidfd = (int)syscall(SYS_pidfd_open, j->pid, 0)) >= 0 &&
      spawn_proc_start_ticks(j->pid, &ticks) == 0 && ticks == j->start_ticks) {
    if (job_logs_watch(j, &e) < 0)
      job_table_warn(t, "job %s: %s", j->id, e.msg);
    j->logs_live = true;
    j->lost_check = true; /* what its keeper lost meanwhile */
    job_logs_refresh(j);
    kill_ctl_attach(&j->kill, j->pid, j->start_ticks);
    if (j->cg && job_has_exit_file(j)) /* its first process is a keeper */
      job_keeper_spare(j);
    if (reaper_watch_add(t->r, j->pid, pidfd, job_adopted_on_exit, j, &j->rw, &e) == 0) {
      job_adopted_timeout_arm(j);
      return;
    }
    pidfd = -1;
    job_close_logs(j);
  }
  if (pidfd >= 0)
    close(pidfd);
  /* it ended while no rund ran: its waiter may have said how */
  job_on_exit(j, j->pid, NULL);
}

/* "owner": ["uid:1000", ...]; anything else is a damaged file. */
static int job_load_owner(job *j, json_object *v, rr_err *e) {
  if (!json_object_is_type(v, json_type_array))
    return rr_err_set(e, RR_DATA_LOSS, "job.json: owner is not an array");
  size_t n = json_object_array_length(v);
  if (n > JOB_MAX_OWNERS)
    return rr_err_set(e, RR_DATA_LOSS, "job.json: owner has %zu entries (max %d)", n,
                      JOB_MAX_OWNERS);
  if (n && !(j->owner = calloc(n, sizeof *j->owner)))
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  for (size_t i = 0; i < n; i++) {
    json_object *it = json_object_array_get_idx(v, i);
    if (!json_object_is_type(it, json_type_string))
      return rr_err_set(e, RR_DATA_LOSS, "job.json: owner[%zu] is not a string", i);
    if (!(j->owner[j->nowner] = strdup(json_object_get_string(it))))
      return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
    j->nowner++;
  }
  return 0;
}

/* Sizes and kept starts of the log files as they are on disk. */
static void job_load_log_sizes(job *j) {
  for (int s = 0; s < 2; s++) {
    int fd = logstore_stream_open_read(j->dir, s, NULL);
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0) {
      j->size[s] = (uint64_t)st.st_size;
      j->kept_from[s] = j->punched_to[s] = logstore_first_kept(fd, j->size[s]);
    }
    if (fd >= 0)
      close(fd);
  }
}

/* A job whose job.json cannot be used (truncated by a crash, damaged): it
 * stays in the table as failed/"corrupt" with why, its logs readable (by
 * its owners, when those could still be read, and admins), rather than
 * vanish. job.json is left as it is, for a person to look at. */
static int job_load_corrupt(job_table *t, const char *id, json_object *o, const rr_err *why,
                            rr_err *e) {
  job *j = job_alloc(t, id);
  if (!j)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  json_object *v;
  rr_err ignored = {0};
  if (o && json_object_object_get_ex(o, "owner", &v) && job_load_owner(j, v, &ignored) < 0) {
    for (size_t i = 0; i < j->nowner; i++)
      free(j->owner[i]);
    free(j->owner);
    j->owner = NULL;
    j->nowner = 0;
  }
  j->state = JOB_FAILED;
  snprintf(j->reason, sizeof j->reason, "corrupt");
  j->detail = strdup(why->msg);
  struct stat st;
  if (stat(j->dir, &st) == 0)
    j->start_ns = j->end_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
  job_load_log_sizes(j);
  if (job_table_insert(t, j, e) < 0) {
    job_free(j);
    return -1;
  }
  return 0;
}

int job_load_fields(job *j, json_object *o, rr_err *e) {
  json_object *v;
  int64_t x;
  if (!json_object_object_get_ex(o, "state", &v) ||
      !(j->state = job_state_parse(json_object_get_string(v))))
    return rr_err_set(e, RR_DATA_LOSS, "job.json: bad state");
  if (json_object_object_get_ex(o, "reason", &v))
    snprintf(j->reason, sizeof j->reason, "%s", json_object_get_string(v));
  if (json_int(o, "pid", &x) == 0)
    j->pid = (pid_t)x;
  if (json_int(o, "start_ticks", &x) == 0)
    j->start_ticks = (uint64_t)x;
  if (json_int(o, "exit_code", &x) == 0)
    j->exit_code = (int)x;
  if (json_int(o, "signal", &x) == 0)
    j->signal = (int)x;
  if (json_int(o, "start_ns", &x) == 0)
    j->start_ns = x;
  if (json_int(o, "end_ns", &x) == 0)
    j->end_ns = x;
  json_object *sc;
  j->stdin_closed =
      json_object_object_get_ex(o, "stdin_closed", &sc) && json_object_get_boolean(sc);
  for (int s = 0; s < 2; s++) {
    char k[32];
    snprintf(k, sizeof k, "%s_lost", logstore_stream_name(s));
    if (json_int(o, k, &x) == 0 && x > 0)
      j->lost[s] = (uint64_t)x;
    snprintf(k, sizeof k, "%s_lost_errno", logstore_stream_name(s));
    if (json_int(o, k, &x) == 0 && x > 0 && x < 4096)
      j->lost_errno[s] = (int)x;
  }
  if (!json_object_object_get_ex(o, "request", &v) || job_request_from_json(v, &j->req, e) < 0) {
    if (e && e->code == RR_OK)
      rr_err_set(e, RR_DATA_LOSS, "job.json: no request");
    return -1;
  }
  if (json_object_object_get_ex(o, "owner", &v) && job_load_owner(j, v, e) < 0)
    return -1;
  if (json_object_object_get_ex(o, "cgroup", &v)) {
    const char *cv = json_object_get_string(v);
    j->cgroup = !cv ? CG_NONE : !strcmp(cv, "v1") ? CG_V1 : !strcmp(cv, "v2") ? CG_V2 : CG_NONE;
  }
  if (json_object_object_get_ex(o, "usage", &v)) {
    if (job_usage_from_json(v, &j->usage, e) < 0)
      return -1;
    j->has_usage = true;
  }
  return 0;
}

static int job_load_one(job_table *t, const char *id, rr_err *e) {
  job *j = job_alloc(t, id);
  if (!j)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  json_object *o = NULL;
  if (logstore_json_read(j->dir, &o, e) < 0 || job_load_fields(j, o, e) < 0)
    goto fail;
  json_object_put(o);
  o = NULL;
  job_load_log_sizes(j);
  if (job_table_insert(t, j, e) < 0)
    goto fail;
  if (j->state == JOB_RUNNING) {
    job_cgroup_reload(j); /* before: a lost job's cgroup is read and removed */
    job_adopt_or_lose(j);
  }
  return 0;
fail:
  job_free(j);
  if (e->code == RR_DATA_LOSS || e->code == RR_NOT_FOUND || e->code == RR_INVALID_ARGUMENT) {
    rr_err why = *e;
    int r = job_load_corrupt(t, id, o, &why, e);
    json_object_put(o);
    return r < 0 ? -1 : 1;
  }
  json_object_put(o);
  return -1;
}

int job_table_load(job_table *t, rr_err *e) {
  DIR *d = opendir(t->jobs_dir);
  if (!d)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot read \"%s\"", t->jobs_dir);
  struct dirent *de;
  while ((de = readdir(d))) {
    if (strncmp(de->d_name, JOB_DIR_NEW_PREFIX, strlen(JOB_DIR_NEW_PREFIX)) == 0)
      job_dirs_remove_leftover(t, de->d_name); /* made ahead, never used */
    if (de->d_name[0] == '.')
      continue;
    size_t len = strlen(de->d_name);
    bool upper = true;
    for (size_t i = 0; i < len; i++)
      upper &= !(de->d_name[i] >= 'a' && de->d_name[i] <= 'z');
    if (!upper || !ulid_parse(de->d_name, len, NULL)) {
      job_table_warn(t, "ignoring \"%s/%s\": not a job id", t->jobs_dir, de->d_name);
      continue;
    }
    rr_err le = {0};
    int r = job_load_one(t, de->d_name, &le);
    if (r < 0)
      job_table_warn(t, "ignoring job %s: %s", de->d_name, le.msg);
    else if (r > 0)
      job_table_warn(t, "job %s is failed/corrupt: %s", de->d_name, le.msg);
  }
  closedir(d);
  return 0;
}
