/* Shared parts of the cgroup module: limit validation, device resolution,
 * version detection and dispatch to the v1 / v2 backend (cg_ops). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/util.h"
#include "sandbox/cgroup_internal.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

bool cg_limits_any(const cg_limits *l) {
  return l->has_cpu || l->has_memory || l->has_pids || l->nio > 0;
}

int cg_limits_validate(const cg_limits *l, rr_err *e) {
  if (l->has_cpu) {
    uint64_t period = l->cpu_period_us ? l->cpu_period_us : CG_DEFAULT_CPU_PERIOD_US;
    if (period < CG_MIN_CPU_PERIOD_US || period > CG_MAX_CPU_PERIOD_US)
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "limits.cpu.period_us: %" PRIu64 " out of range %u..%u", period,
                        CG_MIN_CPU_PERIOD_US, CG_MAX_CPU_PERIOD_US);
    if (l->cpu_quota_us < CG_MIN_CPU_QUOTA_US)
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "limits.cpu.quota_us: %" PRIu64 " is too small (at least %u us)",
                        l->cpu_quota_us, CG_MIN_CPU_QUOTA_US);
    if (l->cpu_quota_us > period * CG_MAX_CPUS)
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "limits.cpu.quota_us: %" PRIu64 " is too large (at most %u CPUs, i.e. "
                        "%" PRIu64 " us per period of %" PRIu64 " us)",
                        l->cpu_quota_us, CG_MAX_CPUS, period * CG_MAX_CPUS, period);
  }
  if (l->has_memory) {
    if (l->memory_max < CG_MIN_MEMORY_MAX)
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "limits.memory_max: %" PRIu64 " is too small (at least %u bytes)",
                        l->memory_max, CG_MIN_MEMORY_MAX);
    if (l->memory_max > CG_MAX_MEMORY_MAX)
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "limits.memory_max: %" PRIu64 " is too large (at most %" PRIu64 " bytes)",
                        l->memory_max, (uint64_t)CG_MAX_MEMORY_MAX);
  }
  if (l->has_pids && (l->pids_max < 1 || l->pids_max > CG_MAX_PIDS_MAX))
    return rr_err_set(e, RR_INVALID_ARGUMENT, "limits.pids_max: %" PRIu64 " out of range 1..%u",
                      l->pids_max, CG_MAX_PIDS_MAX);
  if (l->nio > CG_MAX_IO)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "limits.io: %zu devices (at most %d)", l->nio,
                      CG_MAX_IO);
  for (size_t i = 0; i < l->nio; i++) {
    const cg_io_limit *io = &l->io[i];
    if (io->major == 0 || io->major >= (1u << 12) || io->minor >= (1u << 20))
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "limits.io[%zu].device: %u:%u is not a block device number", i, io->major,
                        io->minor);
    if (!io->rbps && !io->wbps && !io->riops && !io->wiops)
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "limits.io[%zu]: no limit set for %u:%u (want rbps, wbps, riops or wiops)",
                        i, io->major, io->minor);
    for (size_t k = 0; k < i; k++)
      if (l->io[k].major == io->major && l->io[k].minor == io->minor)
        return rr_err_set(e, RR_INVALID_ARGUMENT,
                          "limits.io[%zu].device: %u:%u is already limited by limits.io[%zu]", i,
                          io->major, io->minor, k);
  }
  return 0;
}

/* Strict "MAJ:MIN": digits only, in the kernel's dev_t ranges. */
static bool parse_majmin(const char *s, unsigned *major, unsigned *minor) {
  unsigned long v[2];
  const char *p = s;
  for (int i = 0; i < 2; i++) {
    if (*p < '0' || *p > '9')
      return false;
    v[i] = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
      v[i] = v[i] * 10 + (unsigned long)(*p - '0');
      if (v[i] >= (1ul << 20))
        return false;
    }
    if (i == 0 && *p++ != ':')
      return false;
  }
  if (*p || v[0] >= (1ul << 12))
    return false;
  *major = (unsigned)v[0];
  *minor = (unsigned)v[1];
  return true;
}

int cg_device_resolve(const char *spec, const char *field, unsigned *major, unsigned *minor,
                      rr_err *e) {
  unsigned maj, min;
  if (!spec || !*spec)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: empty device", field);
  if (spec[0] == '/') {
    struct stat st;
    if (stat(spec, &st) < 0)
      return rr_err_sys(e, RR_INVALID_ARGUMENT, errno, "%s: cannot stat \"%s\"", field, spec);
    dev_t dev = S_ISBLK(st.st_mode) ? st.st_rdev : st.st_dev;
    if (S_ISCHR(st.st_mode))
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "%s: \"%s\" is a character device, not a block device", field, spec);
    maj = major(dev);
    min = minor(dev);
    char sys[64];
    snprintf(sys, sizeof sys, "/sys/dev/block/%u:%u", maj, min);
    if (maj == 0 || access(sys, F_OK) < 0)
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "%s: \"%s\" is not on a block device (tmpfs?): name a device", field, spec);
  } else {
    size_t nd = strspn(spec, "0123456789");
    bool shape = nd > 0 && spec[nd] == ':' && spec[nd + 1] &&
                 strspn(spec + nd + 1, "0123456789") == strlen(spec + nd + 1);
    if (shape && !parse_majmin(spec, &maj, &min))
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "%s: \"%s\" out of range (want MAJ:MIN, major < 4096, minor < 1048576)",
                        field, spec);
    if (!parse_majmin(spec, &maj, &min))
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "%s: \"%s\" is neither MAJ:MIN nor an absolute path", field, spec);
    char sys[64];
    snprintf(sys, sizeof sys, "/sys/dev/block/%u:%u", maj, min);
    if (access(sys, F_OK) < 0)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: unknown device %u:%u", field, maj, min);
  }
  /* Throttling applies to whole disks: map a partition to its disk. */
  char path[96], buf[32];
  snprintf(path, sizeof path, "/sys/dev/block/%u:%u/partition", maj, min);
  if (access(path, F_OK) == 0) {
    snprintf(path, sizeof path, "/sys/dev/block/%u:%u/../dev", maj, min);
    unsigned pmaj, pmin;
    if (cg_file_read(path, buf, sizeof buf, NULL) < 0 || sscanf(buf, "%u:%u", &pmaj, &pmin) != 2)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: cannot find the disk of partition %u:%u",
                        field, maj, min);
    maj = pmaj;
    min = pmin;
  }
  *major = maj;
  *minor = min;
  return 0;
}

/* Names used as one path component: no "/", no dot names, bounded. */
static int check_name(const char *what, const char *s, rr_err *e) {
  size_t n = strlen(s);
  if (n == 0 || n > 128 ||
      strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                "0123456789_.-") != n ||
      s[0] == '.')
    return rr_err_set(e, RR_INVALID_ARGUMENT,
                      "cgroup %s \"%.140s\" is not a plain name ([A-Za-z0-9_.-], 1..128)", what, s);
  return 0;
}

static int read_proc(const char *path, char **ret, rr_err *e) {
  size_t cap = 65536;
  char *buf = malloc(cap);
  if (!buf)
    return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, ENOMEM, "cannot read %s", path);
  if (cg_file_read(path, buf, cap, e) < 0) {
    free(buf);
    return -1;
  }
  *ret = buf;
  return 0;
}

int cg_manager_new(const char *root, const char *name, cg_manager **ret, rr_err *e) {
  if (check_name("subtree name", name, e) < 0)
    return -1;
  _cleanup_free_ char *mountinfo = NULL, *proc_cgroup = NULL;
  _cleanup_free_ cg_mount *mounts = calloc(CG_MAX_MOUNTS, sizeof *mounts);
  _cleanup_free_ cg_detection *d = calloc(1, sizeof *d);
  cg_manager *m = calloc(1, sizeof *m);
  if (!mounts || !d || !m) {
    free(m);
    return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, ENOMEM, "cannot set up cgroups");
  }
  m->name = strdup(name);
  if (!m->name) {
    free(m);
    return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, ENOMEM, "cannot set up cgroups");
  }
  struct statfs sfs;
  bool root_v2 = statfs(root, &sfs) == 0 && sfs.f_type == CGROUP2_SUPER_MAGIC;
  if (read_proc("/proc/self/mountinfo", &mountinfo, e) < 0 ||
      read_proc("/proc/self/cgroup", &proc_cgroup, e) < 0) {
    cg_manager_free(m);
    return -1;
  }
  size_t nmounts = cg_parse_mountinfo(mountinfo, mounts, CG_MAX_MOUNTS);
  if (cg_detect(root, root_v2, mounts, nmounts, proc_cgroup, d, e) < 0) {
    cg_manager_free(m);
    return -1;
  }
  if (d->version == CG_V2 && !root_v2) {
    /* A cgroup2 mount beside v1 ones (hybrid) counts only with controllers. */
    char buf[256];
    _cleanup_free_ char *path = cg_path_join(d->hier[0].own_dir, "cgroup.controllers");
    if (!path || cg_file_read(path, buf, sizeof buf, NULL) < 0 || !cg_parse_v2_controllers(buf))
      d->version = CG_NONE;
  }
  m->version = d->version;
  if (m->version == CG_NONE) {
    snprintf(m->describe, sizeof m->describe,
             "cgroups: none usable under %s (jobs with limits will be refused)", root);
    *ret = m;
    return 0;
  }
  m->ops = m->version == CG_V1 ? &cg_v1_ops : &cg_v2_ops;
  if (m->ops->manager_setup(m, d, e) < 0) {
    cg_manager_free(m);
    return rr_err_wrap(e, "cannot set up cgroup v%d subtree \"%s\"", (int)d->version, name);
  }
  *ret = m;
  return 0;
}

cg_version cg_manager_version(const cg_manager *m) { return m->version; }

const char *cg_manager_describe(const cg_manager *m) { return m->describe; }

int cg_manager_check(const cg_manager *m, const cg_limits *l, rr_err *e) {
  if (!cg_limits_any(l))
    return 0;
  if (m->version == CG_NONE)
    return rr_err_set(e, RR_FAILED_PRECONDITION,
                      "resource limits need cgroups, and this host has none usable");
  static const struct {
    unsigned bit;
    const char *field;
  } need[] = {{CG_CTRL_CPU, "limits.cpu"},
              {CG_CTRL_MEMORY, "limits.memory_max"},
              {CG_CTRL_PIDS, "limits.pids_max"},
              {CG_CTRL_IO, "limits.io"}};
  bool wanted[] = {l->has_cpu, l->has_memory, l->has_pids, l->nio > 0};
  for (size_t i = 0; i < RR_ARRAY_SIZE(need); i++)
    if (wanted[i] && !(m->controllers & need[i].bit))
      return rr_err_set(e, RR_FAILED_PRECONDITION,
                        "%s needs the %s cgroup controller, which is not available here (%s)",
                        need[i].field, cg_controller_name(need[i].bit, m->version), m->describe);
  return 0;
}

void cg_manager_free(cg_manager *m) {
  if (!m)
    return;
  cg_pool_free(m->pool); /* before the subtree goes */
  if (m->ops)
    m->ops->manager_teardown(m);
  for (size_t i = 0; i < m->nhier; i++)
    free(m->hier[i].parent);
  free(m->v2_own);
  free(m->v2_subtree);
  free(m->v2_supervisor);
  free(m->name);
  free(m);
}

/* A job in the hierarchies of mask hiers (bit i: m->hier[i]). */
static cg_job *job_alloc(cg_manager *m, const char *id, unsigned hiers) {
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

static unsigned all_hiers(const cg_manager *m) { return (1u << m->nhier) - 1; }

/* The hierarchies a job joins: those that kill and count every job
 * (plain_hiers) and those of the limits it sets, not the others (v1: each
 * costs a mkdir, an open, a join and an rmdir per start); a manager of
 * given paths (plain_hiers 0): all. */
static unsigned job_hiers(const cg_manager *m, const cg_limits *l) {
  if (!m->plain_hiers)
    return all_hiers(m);
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
  if (check_name("job id", id, e) < 0 || cg_limits_validate(l, e) < 0 ||
      cg_manager_check(m, l, e) < 0)
    return -1;
  if (m->version == CG_NONE)
    return rr_err_set(e, RR_FAILED_PRECONDITION, "no usable cgroups on this host");
  cg_job *j = job_alloc(m, id, job_hiers(m, l));
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
  if (check_name("job id", id, e) < 0)
    return -1;
  if (m->version == CG_NONE)
    return rr_err_set(e, RR_NOT_FOUND, "job %s has no cgroup (no usable cgroups here)", id);
  cg_job *j = job_alloc(m, id, all_hiers(m));
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
  if (check_name("child", name, e) < 0)
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

/* Add name to the set *names (n entries) unless it is there already. */
static int name_add(char ***names, size_t *n, const char *name) {
  for (size_t i = 0; i < *n; i++)
    if (strcmp((*names)[i], name) == 0)
      return 0;
  char **grown = realloc(*names, (*n + 1) * sizeof *grown);
  if (!grown)
    return -1;
  *names = grown;
  if (!(grown[*n] = strdup(name)))
    return -1;
  (*n)++;
  return 0;
}

int cg_manager_sweep(cg_manager *m, bool (*keep)(const char *name, void *data), void *data,
                     size_t *ret_removed, rr_err *e) {
  *ret_removed = 0;
  char **names = NULL;
  size_t n = 0;
  int r = 0;
  /* every job cgroup in any of our hierarchies (one may lack a half-made one) */
  for (size_t i = 0; i < m->nhier && r == 0; i++) {
    DIR *d = opendir(m->hier[i].parent);
    if (!d) {
      if (errno != ENOENT)
        r = rr_err_sys(e, RR_INTERNAL, errno, "cannot list cgroup %s", m->hier[i].parent);
      continue;
    }
    struct dirent *de;
    while (r == 0 && (de = readdir(d)))
      if (de->d_type == DT_DIR && de->d_name[0] != '.' && strcmp(de->d_name, "supervisor") != 0 &&
          name_add(&names, &n, de->d_name) < 0)
        r = rr_err_sys(e, RR_RESOURCE_EXHAUSTED, ENOMEM, "cannot list job cgroups");
    closedir(d);
  }
  for (size_t k = 0; k < n; k++) {
    if (r == 0 && !keep(names[k], data)) {
      cg_job *j = job_alloc(m, names[k], all_hiers(m));
      if (!j) {
        r = rr_err_sys(e, RR_RESOURCE_EXHAUSTED, ENOMEM, "cannot sweep job cgroups");
      } else {
        struct stat st;
        for (size_t i = 0; i < m->nhier; i++)
          if (stat(j->dir[i], &st) < 0) { /* a job without limits' has fewer */
            j->removed[i] = true;
            j->hiers &= ~(1u << i);
          }
        if (cg_job_destroy(j, e) < 0) /* kills what is left in it */
          r = -1;
        else
          (*ret_removed)++;
      }
    }
    free(names[k]);
  }
  free(names);
  return r;
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

/* The freezer's directory and file of j: v1 freezer.state, v2 cgroup.freeze. */
static const char *job_freezer(const cg_job *j, const char **file) {
  if (j->m->version == CG_V2) {
    *file = "cgroup.freeze";
    return j->dir[0];
  }
  *file = "freezer.state";
  for (size_t i = 0; i < j->m->nhier; i++)
    if (j->m->hier[i].controllers & CG_CTRL_FREEZER)
      return j->dir[i];
  return NULL;
}

bool cg_job_frozen(cg_job *j) {
  const char *file, *dir = job_freezer(j, &file);
  char buf[32];
  _cleanup_free_ char *path = dir ? cg_path_join(dir, file) : NULL;
  if (!path || cg_file_read(path, buf, sizeof buf, NULL) < 0)
    return false;
  return j->m->version == CG_V2 ? buf[0] == '1' : strncmp(buf, "THAWED", 6) != 0;
}

int cg_job_freeze(cg_job *j, bool frozen, rr_err *e) {
  const char *file, *dir = job_freezer(j, &file);
  if (!dir)
    return rr_err_set(e, RR_FAILED_PRECONDITION, "no freezer cgroup for job %s", j->id);
  bool v2 = j->m->version == CG_V2;
  const char *value = v2 ? (frozen ? "1" : "0") : (frozen ? "FROZEN" : "THAWED");
  if (cg_file_write(dir, file, value, file, e) < 0)
    return rr_err_wrap(e, "job %s", j->id);
  if (!frozen)
    return 0;
  /* v1: FREEZING until every task stopped; v2: cgroup.events says frozen 1 */
  _cleanup_free_ char *path = cg_path_join(dir, v2 ? "cgroup.events" : file);
  char buf[512];
  for (int i = 0; i < 200 && path; i++) {
    uint64_t v = 0;
    if (cg_file_read(path, buf, sizeof buf, NULL) == 0 &&
        (v2 ? cg_parse_keyed(buf, "frozen", &v) && v == 1 : strncmp(buf, "FROZEN", 6) == 0))
      return 0;
    cg_sleep_ms(5);
  }
  cg_file_write(dir, file, v2 ? "0" : "THAWED", file, NULL);
  return rr_err_set(e, RR_DEADLINE_EXCEEDED, "job %s: not frozen after 1 s", j->id);
}

int cg_job_pids(cg_job *j, int **ret, size_t *ret_n, rr_err *e) {
  _cleanup_free_ char *path = cg_path_join(j->dir[cg_job_hier_first(j)], "cgroup.procs");
  FILE *f = path ? fopen(path, "re") : NULL;
  if (!f)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot read the processes of job %s", j->id);
  int *pids = NULL, pid;
  size_t n = 0;
  while (fscanf(f, "%d", &pid) == 1) {
    int *grown = realloc(pids, (n + 1) * sizeof *pids);
    if (!grown) {
      free(pids);
      fclose(f);
      return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, ENOMEM, "processes of job %s", j->id);
    }
    pids = grown;
    pids[n++] = pid;
  }
  fclose(f);
  *ret = pids;
  *ret_n = n;
  return 0;
}
