/* A job's cgroup: made (from the pool on v1) in the hierarchies it needs,
 * the fds its first process joins through, counters, kill and removal. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "sandbox/cgroup_internal.h"

/* A job in the hierarchies of mask hiers (bit i: m->hier[i]). */
cg_job *cg_job_alloc(cg_manager *m, const char *id, unsigned hiers) {
  cg_job *j = calloc(1, sizeof *j);
  if (!j)
    return NULL;
  j->m = m;
  j->hiers = hiers;
  j->dir_fd = -1;
  for (size_t i = 0; i < CG_MAX_HIER; i++) {
    j->procs_fd[i] = -1;
    j->removed[i] = !(hiers & (1u << i));
  }
  j->id = strdup(id);
  bool ok = j->id != NULL;
  for (size_t i = 0; ok && i < m->nhier; i++)
    ok = !(hiers & (1u << i)) || (j->dir[i] = cg_path_join(m->hier[i].parent, id)) != NULL;
  if (!ok) {
    cg_job_free(j);
    return NULL;
  }
  return j;
}

unsigned cg_all_hiers(const cg_manager *m) { return (1u << m->nhier) - 1; }

/* The hierarchies a job joins: those that kill and count every job
 * (plain_hiers) and those of the limits it sets, not the others (v1: each
 * costs a mkdir, an open, a join and an rmdir per start); a manager of
 * given paths (plain_hiers 0): all. */
static unsigned job_hiers(const cg_manager *m, const cg_limits *l) {
  if (!m->plain_hiers)
    return cg_all_hiers(m);
  unsigned want = (l->has_cpu ? CG_CTRL_CPU : 0u) | (l->has_memory ? CG_CTRL_MEMORY : 0u) |
                  (l->has_pids ? CG_CTRL_PIDS : 0u) | (l->nio > 0 ? CG_CTRL_IO : 0u);
  unsigned hiers = m->plain_hiers;
  for (size_t i = 0; i < m->nhier; i++)
    if (m->hier[i].controllers & want)
      hiers |= 1u << i;
  return hiers;
}

int cg_job_hier_of(const cg_job *j, unsigned bit) {
  for (size_t i = 0; i < j->m->nhier; i++)
    if ((j->hiers & (1u << i)) && (j->m->hier[i].controllers & bit))
      return (int)i;
  return -1;
}

int cg_job_hier_first(const cg_job *j) {
  for (size_t i = 0; i < j->m->nhier; i++)
    if (j->hiers & (1u << i))
      return (int)i;
  return 0; /* no job has none (job_alloc's callers) */
}

/* Open the fds the child and clone3 need. */
static int job_open_fds(cg_job *j, rr_err *e) {
  for (size_t i = 0; i < j->m->nhier; i++) {
    if (!(j->hiers & (1u << i)))
      continue;
    /* v1: "tasks", for the single-threaded child: moving one thread skips
     * the global lock a cgroup.procs write takes (Linux >= 6.1), whose
     * first writer after a quiet spell waits for an RCU grace period
     * (~10 ms per start here) */
    _cleanup_free_ char *path =
        cg_path_join(j->dir[i], j->m->version == CG_V1 ? "tasks" : "cgroup.procs");
    if (!path)
      return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, ENOMEM, "cannot open job cgroup");
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
      return rr_err_sys(e, RR_INTERNAL, errno, "cannot open %s", path);
    j->procs_fd[j->nprocs++] = fd;
  }
  if (j->m->version == CG_V2) {
    j->dir_fd = open(j->dir[0], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (j->dir_fd < 0)
      return rr_err_sys(e, RR_INTERNAL, errno, "cannot open %s", j->dir[0]);
  }
  return 0;
}

int cg_job_create(cg_manager *m, const char *id, const cg_limits *l, cg_job **ret, rr_err *e) {
  if (cg_check_name("job id", id, e) < 0 || cg_limits_validate(l, e) < 0 ||
      cg_manager_check(m, l, e) < 0)
    return -1;
  if (m->version == CG_NONE)
    return rr_err_set(e, RR_FAILED_PRECONDITION, "no usable cgroups on this host");
  cg_job *j = cg_job_alloc(m, id, job_hiers(m, l));
  if (!j)
    return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, ENOMEM, "cannot create cgroup of job %s", id);
  if (m->version == CG_V1 && m->plain_hiers && !m->pool && !m->pool_failed)
    m->pool_failed = !(m->pool = cg_pool_new(m));
  bool made[CG_MAX_HIER] = {false};
  int r = 0;
  for (size_t i = 0; i < m->nhier && r == 0; i++) {
    if (!(j->hiers & (1u << i)))
      continue;
    if ((m->pool ? cg_pool_take(m->pool, i, j->dir[i]) : mkdir(j->dir[i], 0755)) < 0)
      r = rr_err_sys(e, errno == EEXIST ? RR_ALREADY_EXISTS : RR_INTERNAL, errno,
                     "cannot create cgroup %s", j->dir[i]);
    else
      made[i] = true;
  }
  if (r == 0)
    r = job_open_fds(j, e);
  j->fresh = true;
  if (r == 0 && cg_limits_any(l)) /* none: no file written */
    r = m->ops->job_apply(j, l, e);
  if (r < 0) {
    for (size_t i = 0; i < m->nhier; i++)
      if (made[i])
        rmdir(j->dir[i]);
    cg_job_free(j);
    return rr_err_wrap(e, "job %s", id);
  }
  *ret = j;
  return 0;
}

int cg_job_open(cg_manager *m, const char *id, cg_job **ret, rr_err *e) {
  if (cg_check_name("job id", id, e) < 0)
    return -1;
  if (m->version == CG_NONE)
    return rr_err_set(e, RR_NOT_FOUND, "job %s has no cgroup (no usable cgroups here)", id);
  cg_job *j = cg_job_alloc(m, id, cg_all_hiers(m));
  if (!j)
    return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, ENOMEM, "cannot open cgroup of job %s", id);
  /* the hierarchies it was made in: all (limits) or a job without limits' */
  int err = 0;
  for (size_t i = 0; i < m->nhier; i++) {
    struct stat st;
    if (stat(j->dir[i], &st) < 0 || !S_ISDIR(st.st_mode)) {
      err = errno ? errno : ENOTDIR;
      j->hiers &= ~(1u << i);
      j->removed[i] = true;
    }
  }
  if (!j->hiers) {
    rr_err_set(e, RR_NOT_FOUND, "job %s has no cgroup %s (%s)", id, j->dir[0], strerror(err));
    cg_job_free(j);
    return -1;
  }
  if (job_open_fds(j, e) < 0) {
    cg_job_free(j);
    return rr_err_wrap(e, "job %s", id);
  }
  *ret = j;
  return 0;
}

int cg_job_create_child(cg_job *parent, const char *name, cg_job **ret, rr_err *e) {
  if (cg_check_name("child", name, e) < 0)
    return -1;
  size_t idlen = strlen(parent->id) + 1 + strlen(name) + 1;
  cg_job *j = calloc(1, sizeof *j);
  char *id = malloc(idlen);
  if (!j || !id) {
    free(j);
    free(id);
    return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, ENOMEM, "cannot create a cgroup in job %s",
                      parent->id);
  }
  snprintf(id, idlen, "%s/%s", parent->id, name);
  j->m = parent->m;
  j->id = id;
  j->dir_fd = -1;
  j->fresh = true;
  j->nested = true;
  for (size_t i = 0; i < CG_MAX_HIER; i++) {
    j->procs_fd[i] = -1;
    /* the hierarchies the parent still has */
    if (i < j->m->nhier && (parent->hiers & (1u << i)) && !parent->removed[i])
      j->hiers |= 1u << i;
    j->removed[i] = !(j->hiers & (1u << i));
  }
  int r =
      j->hiers ? 0 : rr_err_set(e, RR_FAILED_PRECONDITION, "job %s has no cgroup left", parent->id);
  for (size_t i = 0; i < j->m->nhier && r == 0; i++) {
    if (!(j->hiers & (1u << i)))
      continue;
    if (!(j->dir[i] = cg_path_join(parent->dir[i], name)))
      r = rr_err_sys(e, RR_RESOURCE_EXHAUSTED, ENOMEM, "cannot create cgroup in job %s",
                     parent->id);
    else if (mkdir(j->dir[i], 0755) < 0) {
      r = rr_err_sys(e, errno == EEXIST ? RR_ALREADY_EXISTS : RR_INTERNAL, errno,
                     "cannot create cgroup %s", j->dir[i]);
      j->removed[i] = true; /* not ours to remove */
    }
  }
  if (r == 0)
    r = job_open_fds(j, e);
  if (r < 0) {
    for (size_t i = 0; i < j->m->nhier; i++)
      if (!j->removed[i] && j->dir[i])
        rmdir(j->dir[i]);
    cg_job_free(j);
    return -1;
  }
  *ret = j;
  return 0;
}

cg_version cg_job_version(const cg_job *j) { return j->m->version; }

int cg_job_clone_fd(const cg_job *j) { return j->dir_fd; }

size_t cg_job_procs_fds(const cg_job *j, const int **ret) {
  *ret = j->procs_fd;
  return j->nprocs;
}

void cg_job_close_fds(cg_job *j) {
  for (size_t i = 0; i < j->nprocs; i++)
    close(j->procs_fd[i]);
  for (size_t i = 0; i < CG_MAX_HIER; i++)
    j->procs_fd[i] = -1;
  j->nprocs = 0;
  if (j->dir_fd >= 0)
    close(j->dir_fd);
  j->dir_fd = -1;
}

static int job_usage(cg_job *j, bool final, cg_usage *ret, rr_err *e) {
  cg_usage u;
  memset(&u, 0, sizeof u);
  j->final = final;
  if (j->m->ops->job_usage(j, &u, e) < 0)
    return rr_err_wrap(e, "usage of job %s", j->id);
  if (final) {
    u.memory_current = 0;
    u.pids_current = 0;
  }
  *ret = u;
  return 0;
}

int cg_job_usage(cg_job *j, cg_usage *ret, rr_err *e) { return job_usage(j, false, ret, e); }

int cg_job_usage_final(cg_job *j, cg_usage *ret, rr_err *e) { return job_usage(j, true, ret, e); }

int cg_job_kill(cg_job *j, rr_err *e) {
  if (j->m->ops->job_kill(j, e) < 0)
    return rr_err_wrap(e, "cannot kill the processes of job %s", j->id);
  return 0;
}

void cg_job_spare(cg_job *j, pid_t pid) { j->spare = pid; }

bool cg_job_empty(cg_job *j) { return j->m->ops->job_empty(j); }

int cg_job_destroy(cg_job *j, rr_err *e) {
  rr_err ke = {0};
  for (int i = 0;; i++) {
    int r = cg_job_remove(j, e); /* j freed unless still busy */
    if (r != 0)
      return r < 0 ? -1 : 0;
    if (i == 200) { /* ~1 s */
      r = rr_err_set(e, RR_FAILED_PRECONDITION,
                     "cannot remove the cgroup of job %s: still busy%s%s", j->id,
                     ke.msg[0] ? " after kill failed: " : "", ke.msg);
      cg_job_free(j);
      return r;
    }
    /* processes left, or tasks still exiting: kill what is there, again now and then */
    if (i % 50 == 0)
      cg_job_kill(j, &ke);
    cg_sleep_ms(5);
  }
}

int cg_job_remove(cg_job *j, rr_err *e) {
  cg_job_close_fds(j);
  bool busy = false;
  for (size_t i = 0; i < j->m->nhier; i++) {
    if (j->removed[i])
      continue;
    if (rmdir(j->dir[i]) == 0 || errno == ENOENT) {
      j->removed[i] = true;
    } else if (errno == EBUSY) {
      busy = true;
    } else {
      int r = rr_err_sys(e, RR_INTERNAL, errno, "cannot remove cgroup %s", j->dir[i]);
      cg_job_free(j);
      return r;
    }
  }
  if (busy)
    return 0;
  cg_job_free(j);
  return 1;
}

void cg_job_free(cg_job *j) {
  if (!j)
    return;
  for (size_t i = 0; i < CG_MAX_HIER; i++) {
    if (j->procs_fd[i] >= 0)
      close(j->procs_fd[i]);
    free(j->dir[i]);
  }
  if (j->dir_fd >= 0)
    close(j->dir_fd);
  cg_manager *own = j->own_m;
  free(j->id);
  free(j);
  cg_manager_free(own);
}
