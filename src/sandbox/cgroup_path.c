/* cgroups at an OCI linux.cgroupsPath (runproc): a manager whose parent
 * directories are the path's dirname in each v1 hierarchy, so that the
 * job functions of cgroup.c (limits, procs fds, kill, removal) serve it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/util.h"
#include "sandbox/cgroup_internal.h"

/* Components of [A-Za-z0-9_.:@+-], not "." or "..", no empty ones but a
 * leading "/". */
static int cg_path_check(const char *path, rr_err *e) {
  size_t n = strlen(path);
  bool ok = n > 0 && n < CG_PATH_MAX / 2;
  for (const char *p = path[0] == '/' ? path + 1 : path; ok;) {
    size_t c = strcspn(p, "/");
    ok = c > 0 &&
         strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:@+-") == c;
    ok = ok && !(c == 1 && p[0] == '.') && !(c == 2 && p[0] == '.' && p[1] == '.');
    if (!p[c])
      break;
    p += c + 1;
  }
  if (!ok)
    return rr_err_set(e, RR_INVALID_ARGUMENT,
                      "linux.cgroupsPath: \"%.200s\" is not a cgroup path (components of "
                      "[A-Za-z0-9_.:@+-], no \".\" or \"..\")",
                      path);
  return 0;
}

static int cg_read_proc(const char *path, char **ret, rr_err *e) {
  char *buf = malloc(65536);
  if (!buf)
    return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, ENOMEM, "cannot read %s", path);
  if (cg_file_read(path, buf, 65536, e) < 0) {
    free(buf);
    return -1;
  }
  *ret = buf;
  return 0;
}

/* mkdir -p of dir's components below base (which exists). */
static int cg_mkdirs_below(const char *base, char *dir, rr_err *e) {
  for (char *p = dir + strlen(base) + 1;; p++) {
    bool end = *p == '\0';
    if (*p == '/' || end) {
      *p = '\0';
      int r = mkdir(dir, 0755);
      if (!end)
        *p = '/';
      if (r < 0 && errno != EEXIST)
        return rr_err_sys(e, RR_INTERNAL, errno, "cannot create cgroup %s", dir);
      if (end)
        return 0;
    }
  }
}

/* A manager for path's parent in each hierarchy; *ret_base = the last
 * component. make: create missing parents. */
static int cg_path_manager(const char *root, const char *path, bool make, cg_manager **ret,
                           const char **ret_base, rr_err *e) {
  if (cg_path_check(path, e) < 0)
    return -1;
  _cleanup_free_ char *mountinfo = NULL, *proc_cgroup = NULL;
  _cleanup_free_ cg_mount *mounts = calloc(CG_MAX_MOUNTS, sizeof *mounts);
  _cleanup_free_ cg_detection *d = calloc(1, sizeof *d);
  if (!mounts || !d)
    return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, ENOMEM, "cannot set up cgroups");
  if (cg_read_proc("/proc/self/mountinfo", &mountinfo, e) < 0 ||
      cg_read_proc("/proc/self/cgroup", &proc_cgroup, e) < 0)
    return -1;
  size_t nmounts = cg_parse_mountinfo(mountinfo, mounts, CG_MAX_MOUNTS);
  if (cg_detect(root, false, mounts, nmounts, proc_cgroup, d, e) < 0)
    return -1;
  if (d->version != CG_V1)
    return rr_err_set(e, RR_UNIMPLEMENTED,
                      "linux.cgroupsPath: only cgroup v1 is supported yet (%s has %s)", root,
                      d->version == CG_V2 ? "cgroup v2" : "no cgroups");
  const char *slash = strrchr(path, '/');
  const char *base = slash ? slash + 1 : path;
  size_t dirlen = slash ? (size_t)(slash - path) : 0;
  cg_manager *m = calloc(1, sizeof *m);
  if (!m || !(m->name = strdup("oci"))) {
    free(m);
    return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, ENOMEM, "cannot set up cgroups");
  }
  m->version = CG_V1;
  m->ops = &cg_v1_ops;
  int r = 0;
  for (size_t i = 0; i < d->nhier && r == 0; i++) {
    /* absolute: from the root of the hierarchy's mount (the one that gave
     * these controllers); relative: below our own cgroup */
    char from[CG_PATH_MAX];
    snprintf(from, sizeof from, "%s", d->hier[i].own_dir);
    if (path[0] == '/')
      for (size_t k = 0; k < nmounts; k++)
        if (!mounts[k].v2 && (mounts[k].controllers & d->hier[i].controllers) &&
            strncmp(d->hier[i].own_dir, mounts[k].path, strlen(mounts[k].path)) == 0) {
          if (strcmp(mounts[k].root, "/") != 0)
            r = rr_err_set(e, RR_FAILED_PRECONDITION,
                           "linux.cgroupsPath: \"%s\" is out of reach (the hierarchy at %s "
                           "shows only %s)",
                           path, mounts[k].path, mounts[k].root);
          snprintf(from, sizeof from, "%s", mounts[k].path);
          break;
        }
    char parent[CG_PATH_MAX * 2];
    int n = snprintf(parent, sizeof parent, "%s%s%.*s", from, path[0] == '/' || !dirlen ? "" : "/",
                     (int)dirlen, path);
    if (r == 0 && (n < 0 || (size_t)n >= CG_PATH_MAX))
      r = rr_err_set(e, RR_INVALID_ARGUMENT, "linux.cgroupsPath: \"%s\" is too long", path);
    if (r == 0 && make && strlen(parent) > strlen(from))
      r = cg_mkdirs_below(from, parent, e);
    if (r == 0 && !(m->hier[m->nhier].parent = strdup(parent)))
      r = rr_err_sys(e, RR_RESOURCE_EXHAUSTED, ENOMEM, "cannot set up cgroups");
    if (r == 0) {
      m->hier[m->nhier++].controllers = d->hier[i].controllers;
      m->controllers |= d->hier[i].controllers;
    }
  }
  if (r < 0) {
    cg_manager_free(m);
    return -1;
  }
  *ret = m;
  *ret_base = base;
  return 0;
}

/* The parents are not ours to remove: the manager's teardown skips them. */
static void cg_path_forget_parents(cg_manager *m) {
  for (size_t i = 0; i < m->nhier; i++) {
    free(m->hier[i].parent);
    m->hier[i].parent = NULL;
  }
}

int cg_path_create(const char *root, const char *path, const cg_limits *l, cg_job **ret,
                   rr_err *e) {
  cg_manager *m;
  const char *base;
  if (cg_path_manager(root, path, true, &m, &base, e) < 0)
    return -1;
  cg_job *j;
  if (cg_job_create(m, base, l, &j, e) < 0) {
    cg_path_forget_parents(m);
    cg_manager_free(m);
    return rr_err_wrap(e, "linux.cgroupsPath \"%s\"", path);
  }
  cg_path_forget_parents(m);
  j->own_m = m; /* freed with j */
  *ret = j;
  return 0;
}

int cg_path_open(const char *root, const char *path, cg_job **ret, rr_err *e) {
  cg_manager *m;
  const char *base;
  if (cg_path_manager(root, path, false, &m, &base, e) < 0)
    return -1;
  cg_job *j;
  if (cg_job_open(m, base, &j, e) < 0) {
    cg_path_forget_parents(m);
    cg_manager_free(m);
    return -1;
  }
  cg_path_forget_parents(m);
  j->own_m = m; /* freed with j */
  *ret = j;
  return 0;
}

int cg_job_update(cg_job *j, const cg_limits *l, rr_err *e) {
  if (cg_limits_validate(l, e) < 0)
    return -1;
  const struct {
    bool wanted;
    unsigned bit;
  } need[] = {{l->has_cpu, CG_CTRL_CPU},
              {l->has_memory, CG_CTRL_MEMORY},
              {l->has_pids, CG_CTRL_PIDS},
              {l->nio > 0, CG_CTRL_IO}};
  for (size_t i = 0; i < RR_ARRAY_SIZE(need); i++)
    if (need[i].wanted && cg_job_hier_of(j, need[i].bit) < 0)
      return rr_err_set(e, RR_FAILED_PRECONDITION, "the container's cgroup has no %s controller",
                        cg_controller_name(need[i].bit, j->m->version));
  return j->m->ops->job_apply(j, l, e);
}

/* v2 cpu.max: "max 100000" or "QUOTA PERIOD". */
static int cg_cpu_max_read(const char *dir, cg_limits *l, rr_err *e) {
  _cleanup_free_ char *path = cg_path_join(dir, "cpu.max");
  char buf[64];
  if (!path)
    return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, ENOMEM, "cannot read cpu.max");
  if (cg_file_read(path, buf, sizeof buf, e) < 0)
    return -1;
  l->cpu_period_us = strtoull(buf + strcspn(buf, " "), NULL, 10);
  if (strncmp(buf, "max", 3) != 0) {
    l->has_cpu = true;
    l->cpu_quota_us = strtoull(buf, NULL, 10);
  }
  return 0;
}

int cg_job_limits_read(cg_job *j, cg_limits *ret, rr_err *e) {
  memset(ret, 0, sizeof *ret);
  bool v2 = j->m->version == CG_V2;
  int h = cg_job_hier_of(j, CG_CTRL_CPU);
  uint64_t v;
  if (h >= 0 && v2 && cg_cpu_max_read(j->dir[h], ret, e) < 0)
    return -1;
  if (h >= 0 && !v2) {
    if (cg_file_read_u64(j->dir[h], "cpu.cfs_period_us", &ret->cpu_period_us, e) < 0 ||
        cg_file_read_u64(j->dir[h], "cpu.cfs_quota_us", &v, e) < 0) /* -1 reads as max */
      return -1;
    ret->has_cpu = v != UINT64_MAX;
    ret->cpu_quota_us = ret->has_cpu ? v : 0;
  }
  ret->memory_max = ret->pids_max = UINT64_MAX;
  if ((h = cg_job_hier_of(j, CG_CTRL_MEMORY)) >= 0) {
    if (cg_file_read_u64(j->dir[h], v2 ? "memory.max" : "memory.limit_in_bytes", &v, e) < 0)
      return -1;
    ret->has_memory = v < CG_MAX_MEMORY_MAX; /* v1's "no limit" is near 2^63 */
    ret->memory_max = ret->has_memory ? v : UINT64_MAX;
  }
  if ((h = cg_job_hier_of(j, CG_CTRL_PIDS)) >= 0) {
    if (cg_file_read_u64(j->dir[h], "pids.max", &ret->pids_max, e) < 0)
      return -1;
    ret->has_pids = ret->pids_max != UINT64_MAX;
  }
  return 0;
}
