/* Cgroups of jobs: creation before the spawn, kill of the whole tree, final
 * counters and removal at the end, reopening after a rund restart, and the
 * usage part of job.json. */
#include "jobs/job_cgroup.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#include "jobs/job_internal.h"

int job_cgroup_create(cg_manager *m, const char *name, const cg_limits *l, spawn_opts *o,
                      cg_job **ret, rr_err *e) {
  static const cg_limits none;
  *ret = NULL;
  if (!l && (!m || cg_manager_version(m) == CG_NONE))
    return 0; /* no cgroups: a command without limits stays in rund's */
  if (!m)
    return rr_err_set(e, RR_FAILED_PRECONDITION,
                      "the command has limits but rund runs without cgroups (--no-cgroups, "
                      "or none usable: see rund's start-up log)");
  if (l && cg_manager_check(m, l, e) < 0)
    return -1;
  cg_job *cg;
  if (cg_job_create(m, name, l ? l : &none, &cg, e) < 0)
    return rr_err_wrap(e, l ? "cannot set up the limits" : "cannot create the command's cgroup");
  o->cgroup_fd = cg_job_clone_fd(cg);
  const int *fds;
  o->ncgroup_procs = cg_job_procs_fds(cg, &fds);
  o->cgroup_procs_fds = fds;
  *ret = cg;
  return 0;
}

int job_cgroup_create_in(cg_job *parent, const char *name, spawn_opts *o, cg_job **ret, rr_err *e) {
  cg_job *cg;
  *ret = NULL;
  if (cg_job_create_child(parent, name, &cg, e) < 0)
    return rr_err_wrap(e, "cannot create the command's cgroup");
  o->cgroup_fd = cg_job_clone_fd(cg);
  const int *fds;
  o->ncgroup_procs = cg_job_procs_fds(cg, &fds);
  o->cgroup_procs_fds = fds;
  *ret = cg;
  return 0;
}

/* Cgroups of ended commands on their way out: removed from a timer (so the
 * exit status goes out first), their leftovers killed, retried every 10 ms
 * while the kernel still counts exiting tasks; never a wait on the loop.
 * The loop runs due timers after a turn's fd callbacks and flushes replies
 * only at the next turn: a 1 ms timer was due in the turn that handled the
 * exit whenever that turn took 1 ms (under load, or strace), and the
 * rmdirs went before the Wait reply. 10 ms puts them after it, and a burst
 * of ends shares one timer run. */
enum { RELEASE_DELAY_MS = 10, RELEASE_RETRY_MS = 10, RELEASE_TRIES = 500 };
typedef struct cg_release {
  cg_job *cg;
  int tries;
  struct cg_release *next;
} cg_release;
static struct {
  uint64_t timer;
  cg_release *head;
} releases;

static void release_warn(const char *what, const rr_err *e) {
  char q[RR_ERR_MSG_MAX + 16];
  rr_warn(what, "error=%s", rr_log_quote(q, sizeof q, e->msg));
}

static void release_run(loop *l, void *data) {
  releases.timer = 0;
  cg_release **pp = &releases.head;
  while (*pp) {
    cg_release *r = *pp;
    rr_err e = {0};
    int rc = cg_job_remove(r->cg, &e);
    if (rc == 0 && ++r->tries < RELEASE_TRIES) {
      /* processes outlived the command's main process: they end with it */
      if ((r->tries == 1 || r->tries % 10 == 0) && cg_job_kill(r->cg, &e) < 0)
        release_warn("cannot kill what is left in a cgroup", &e);
      pp = &r->next;
      continue;
    }
    if (rc < 0)
      release_warn("cannot remove a cgroup", &e);
    else if (rc == 0) {
      rr_warn("a cgroup is still busy after 5 s: left in place", NULL);
      cg_job_free(r->cg);
    }
    *pp = r->next;
    free(r);
  }
  if (releases.head)
    releases.timer = loop_timer_add(l, RELEASE_RETRY_MS, release_run, NULL);
}

static void job_cgroup_release(loop *l, cg_job *cg) {
  cg_release *r = calloc(1, sizeof *r);
  if (!r) { /* no memory for the list: remove it now */
    rr_err e = {0};
    if (cg_job_destroy(cg, &e) < 0)
      release_warn("cannot remove a cgroup", &e);
    return;
  }
  r->cg = cg;
  r->next = releases.head;
  releases.head = r;
  if (!releases.timer)
    releases.timer = loop_timer_add(l, RELEASE_DELAY_MS, release_run, NULL);
}

void job_cgroup_release_flush(loop *l) {
  if (releases.timer)
    loop_timer_cancel(l, releases.timer);
  releases.timer = 0;
  while (releases.head) {
    cg_release *r = releases.head;
    releases.head = r->next;
    rr_err e = {0};
    if (cg_job_destroy(r->cg, &e) < 0)
      release_warn("cannot remove a cgroup", &e);
    free(r);
  }
}

int job_cgroup_finish(loop *l, cg_job *cg, cg_usage *usage, bool *has_usage, rr_err *e) {
  rr_err ue = {0};
  *has_usage = cg_job_usage_final(cg, usage, &ue) == 0;
  job_cgroup_release(l, cg);
  if (!*has_usage) {
    if (e)
      *e = ue;
    return -1;
  }
  return 0;
}

bool job_cgroup_oom_killed(const siginfo_t *si, const cg_usage *u) {
  return si && si->si_code != CLD_EXITED && si->si_status == SIGKILL && u->oom_kills > 0;
}

static uint64_t timeval_usec(const struct timeval *tv) {
  return (uint64_t)tv->tv_sec * 1000000u + (uint64_t)tv->tv_usec;
}

void job_usage_from_rusage(const struct rusage *ru, cg_usage *ret) {
  *ret = (cg_usage){0};
  ret->cpu_user_usec = timeval_usec(&ru->ru_utime);
  ret->cpu_system_usec = timeval_usec(&ru->ru_stime);
  ret->cpu_usec = ret->cpu_user_usec + ret->cpu_system_usec;
  /* not ru_maxrss: Linux carries the spawner's high-water mark across exec,
   * and a vfork-style child shares rund's memory until then, so it would
   * tell rund's size rather than the job's */
}

const char *job_cgroup_version_name(cg_version v) {
  return v == CG_V1 ? "v1" : v == CG_V2 ? "v2" : "";
}

/* ---- the job table's side ---- */

void job_cgroup_end(job *j, const siginfo_t *si) {
  if (!j->cg)
    return;
  rr_err e = {0};
  if (job_cgroup_finish(j->table->l, j->cg, &j->usage, &j->has_usage, &e) < 0)
    job_table_warn(j->table, "job %s: cgroup at its end: %s", j->id, e.msg);
  j->cg = NULL;
  /* a stop or timeout we caused keeps its reason */
  if (!j->kill.cause && j->has_usage && job_cgroup_oom_killed(si, &j->usage))
    snprintf(j->reason, sizeof j->reason, "oom-killed");
}

void job_cgroup_reload(job *j) {
  job_table *t = j->table;
  rr_err e = {0};
  if (j->cgroup == CG_NONE || j->cg)
    return;
  if (!t->cgm) {
    job_table_warn(t,
                   "job %s has a cgroup but rund runs without cgroups: stop kills only its "
                   "process group",
                   j->id);
    return;
  }
  if (cg_job_open(t->cgm, j->id, &j->cg, &e) < 0)
    job_table_warn(t, "job %s: cannot reopen its cgroup: %s", j->id, e.msg);
  else
    cg_job_close_fds(j->cg); /* nothing joins it any more */
}

static const struct {
  const char *name;
  size_t off;
} usage_fields[] = {
#define F(x)                                                                                       \
  { #x, offsetof(cg_usage, x) }
    F(cpu_usec),      F(cpu_user_usec),      F(cpu_system_usec), F(memory_current), F(memory_peak),
    F(io_read_bytes), F(io_write_bytes),     F(io_read_ops),     F(io_write_ops),   F(pids_current),
    F(oom_kills),     F(cpu_throttled_usec), F(pids_refused),
#undef F
};

json_object *job_usage_to_json(const cg_usage *u) {
  json_object *o = json_object_new_object();
  for (size_t i = 0; i < sizeof usage_fields / sizeof *usage_fields; i++) {
    uint64_t v;
    memcpy(&v, (const char *)u + usage_fields[i].off, sizeof v);
    json_object_object_add(o, usage_fields[i].name, json_object_new_uint64(v));
  }
  return o;
}

int job_usage_from_json(json_object *o, cg_usage *u, rr_err *e) {
  memset(u, 0, sizeof *u);
  if (!json_object_is_type(o, json_type_object))
    return rr_err_set(e, RR_DATA_LOSS, "job.json: usage is not an object");
  for (size_t i = 0; i < sizeof usage_fields / sizeof *usage_fields; i++) {
    json_object *v;
    if (!json_object_object_get_ex(o, usage_fields[i].name, &v))
      continue;
    if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0)
      return rr_err_set(e, RR_DATA_LOSS, "job.json: usage.%s is not a number >= 0",
                        usage_fields[i].name);
    uint64_t x = json_object_get_uint64(v);
    memcpy((char *)u + usage_fields[i].off, &x, sizeof x);
  }
  return 0;
}

/* Without a cgroup, has_usage is set only at the end (from the rusage). */
bool job_usage(job *j, cg_usage *ret) {
  if (j->state == JOB_RUNNING && j->cg) {
    rr_err e = {0};
    return cg_job_usage(j->cg, ret, &e) == 0;
  }
  if (!j->has_usage)
    return false;
  *ret = j->usage;
  return true;
}
