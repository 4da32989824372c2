/* cgroups at an OCI linux.cgroupsPath (runproc): a manager whose parent
 * directories are the path's dirname in each v1 hierarchy (or the one v2
 * hierarchy), so that the job functions of cgroup_job.c (limits, procs fds,
 * kill, removal) serve it; runproc update's writes and reads of limits;
 * systemd's slice:prefix:name mapped onto a cgroupfs path. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include "common/util.h"
#include "sandbox/cgroup_internal.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

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

/* v2: enable the controllers of mask that dir does not hand down yet. */
static int cg_v2_enable(const char *dir, unsigned mask, rr_err *e) {
  _cleanup_free_ char *path = cg_path_join(dir, "cgroup.subtree_control");
  char buf[256], line[64] = "";
  if (!path)
    return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, ENOMEM, "cannot set up cgroups");
  if (cg_file_read(path, buf, sizeof buf, e) < 0)
    return -1;
  mask &= ~cg_parse_v2_controllers(buf);
  for (unsigned bit = 1; bit <= CG_CTRL_FREEZER; bit <<= 1)
    if (mask & bit)
      snprintf(line + strlen(line), sizeof line - strlen(line), "%s+%s", *line ? " " : "",
               cg_controller_name(bit, CG_V2));
  if (!mask || cg_file_write(dir, "cgroup.subtree_control", line, "controllers", e) == 0)
    return 0;
  if (e && e->sys_errno == EBUSY)
    return rr_err_set(e, RR_FAILED_PRECONDITION,
                      "linux.cgroupsPath: cannot enable \"%s\" in %s: it has processes (cgroup "
                      "v2 hands controllers only to children of a cgroup without processes): "
                      "give a path whose parent has none",
                      line, dir);
  return -1;
}

/* v2: parents made from the top, each handing the controllers down (the
 * container's cgroup gets them from its parent). */
static int cg_v2_mkdirs(const char *from, char *parent, unsigned mask, rr_err *e) {
  if (cg_v2_enable(from, mask, e) < 0)
    return -1;
  for (char *p = parent + strlen(from) + 1; strlen(parent) > strlen(from); p++) {
    bool end = *p == '\0';
    if (*p != '/' && !end)
      continue;
    *p = '\0';
    int r = mkdir(parent, 0755) < 0 && errno != EEXIST
                ? rr_err_sys(e, RR_INTERNAL, errno, "cannot create cgroup %s", parent)
                : cg_v2_enable(parent, mask, e);
    if (!end)
      *p = '/';
    if (r < 0 || end)
      return r;
  }
  return 0;
}

/* v2 (one hierarchy): absolute paths from its mount, relative ones below
 * our own cgroup. */
static int cg_path_v2_manager(const cg_detection *d, const cg_mount *mounts, size_t nmounts,
                              const char *path, size_t dirlen, bool make, cg_manager **ret,
                              rr_err *e) {
  char from[CG_PATH_MAX];
  snprintf(from, sizeof from, "%s", d->hier[0].own_dir);
  for (size_t k = 0; path[0] == '/' && k < nmounts; k++)
    if (mounts[k].v2 && strncmp(from, mounts[k].path, strlen(mounts[k].path)) == 0) {
      if (strcmp(mounts[k].root, "/") != 0)
        return rr_err_set(e, RR_FAILED_PRECONDITION,
                          "linux.cgroupsPath: \"%s\" is out of reach (the hierarchy at %s "
                          "shows only %s)",
                          path, mounts[k].path, mounts[k].root);
      snprintf(from, sizeof from, "%s", mounts[k].path);
      break;
    }
  char parent[CG_PATH_MAX * 2];
  int n = snprintf(parent, sizeof parent, "%s%s%.*s", from, path[0] == '/' || !dirlen ? "" : "/",
                   (int)dirlen, path);
  if (n < 0 || (size_t)n >= CG_PATH_MAX)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "linux.cgroupsPath: \"%s\" is too long", path);
  _cleanup_free_ char *ctrl = cg_path_join(from, "cgroup.controllers");
  char buf[256];
  if (!ctrl)
    return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, ENOMEM, "cannot set up cgroups");
  if (cg_file_read(ctrl, buf, sizeof buf, e) < 0)
    return -1;
  unsigned avail =
      cg_parse_v2_controllers(buf) & (CG_CTRL_CPU | CG_CTRL_MEMORY | CG_CTRL_IO | CG_CTRL_PIDS);
  if (make && cg_v2_mkdirs(from, parent, avail, e) < 0)
    return -1;
  cg_manager *m = calloc(1, sizeof *m);
  if (!m || !(m->name = strdup("oci")) || !(m->hier[0].parent = strdup(parent))) {
    if (m)
      free(m->name);
    free(m);
    return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, ENOMEM, "cannot set up cgroups");
  }
  m->version = CG_V2;
  m->ops = &cg_v2_ops;
  m->nhier = 1;
  m->hier[0].controllers = m->controllers = avail;
  *ret = m;
  return 0;
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
  struct statfs sfs;
  bool root_v2 = statfs(root, &sfs) == 0 && sfs.f_type == CGROUP2_SUPER_MAGIC;
  if (cg_detect(root, root_v2, mounts, nmounts, proc_cgroup, d, e) < 0)
    return -1;
  if (d->version == CG_NONE)
    return rr_err_set(e, RR_FAILED_PRECONDITION,
                      "linux.cgroupsPath: %s has no usable cgroups (neither v1 nor v2)", root);
  const char *slash = strrchr(path, '/');
  const char *base = slash ? slash + 1 : path;
  size_t dirlen = slash ? (size_t)(slash - path) : 0;
  if (d->version == CG_V2) {
    if (cg_path_v2_manager(d, mounts, nmounts, path, dirlen, make, ret, e) < 0)
      return -1;
    *ret_base = base;
    return 0;
  }
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

/* "a-b.slice" as systemd nests it: "/a.slice/a-b.slice" into out. */
static int cg_slice_expand(const char *slice, char *out, size_t len, rr_err *e) {
  size_t n = strlen(slice);
  out[0] = '\0';
  if (strcmp(slice, "-.slice") == 0)
    return 0; /* the root slice */
  if (n <= 6 || strcmp(slice + n - 6, ".slice") != 0 || slice[0] == '-' || slice[n - 7] == '-' ||
      strstr(slice, "--") || strchr(slice, '/'))
    return rr_err_set(e, RR_INVALID_ARGUMENT,
                      "linux.cgroupsPath: \"%.200s\" is not a systemd slice (want NAME.slice, "
                      "dashes nesting it: a-b.slice is below a.slice)",
                      slice);
  for (size_t i = 0; i < n - 6; i++) {
    if (slice[i] != '-')
      continue;
    size_t used = strlen(out);
    if ((size_t)snprintf(out + used, len - used, "/%.*s.slice", (int)i, slice) >= len - used)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "linux.cgroupsPath: \"%.200s\" is too long", slice);
  }
  size_t used = strlen(out);
  if ((size_t)snprintf(out + used, len - used, "/%s", slice) >= len - used)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "linux.cgroupsPath: \"%.200s\" is too long", slice);
  return 0;
}

int cg_path_from_systemd(const char *spec, char *out, size_t len, rr_err *e) {
  const char *c1 = strchr(spec, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
  if (!c2 || strchr(c2 + 1, ':') || !c2[1] || strchr(c1, '/'))
    return rr_err_set(e, RR_INVALID_ARGUMENT,
                      "linux.cgroupsPath: \"%.200s\" is not systemd's \"slice:prefix:name\" "
                      "(--systemd-cgroup)",
                      spec);
  char slice[CG_PATH_MAX], unit[CG_PATH_MAX];
  if (c1 == spec)
    snprintf(slice, sizeof slice, "system.slice"); /* runc's default for root */
  else
    snprintf(slice, sizeof slice, "%.*s", (int)(c1 - spec), spec);
  if (c2 == c1 + 1)
    snprintf(unit, sizeof unit, "%s", c2 + 1);
  else
    snprintf(unit, sizeof unit, "%.*s-%s.scope", (int)(c2 - c1 - 1), c1 + 1, c2 + 1);
  char dir[CG_PATH_MAX];
  if (cg_slice_expand(slice, dir, sizeof dir, e) < 0)
    return -1;
  if ((size_t)snprintf(out, len, "%s/%s", dir, unit) >= len)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "linux.cgroupsPath: \"%.200s\" is too long", spec);
  return cg_path_check(out, e);
}

/* One "no limit" write; FAILED_PRECONDITION without the controller. */
static int cg_unlimit_one(cg_job *j, unsigned bit, const char *file, const char *value, rr_err *e) {
  int h = cg_job_hier_of(j, bit);
  if (h < 0)
    return rr_err_set(e, RR_FAILED_PRECONDITION, "the container's cgroup has no %s controller",
                      cg_controller_name(bit, j->m->version));
  if (!cg_file_exists(j->dir[h], file))
    return 0; /* memsw, swap.max: not on every host */
  return cg_file_write(j->dir[h], file, value, file, e);
}

int cg_job_unlimit(cg_job *j, bool memory, bool cpu, bool pids, rr_err *e) {
  bool v2 = j->m->version == CG_V2;
  /* v1: memsw >= limit at all times, so memsw goes first */
  if (memory &&
      (v2 ? cg_unlimit_one(j, CG_CTRL_MEMORY, "memory.max", "max", e) < 0 ||
                cg_unlimit_one(j, CG_CTRL_MEMORY, "memory.swap.max", "max", e) < 0
          : cg_unlimit_one(j, CG_CTRL_MEMORY, "memory.memsw.limit_in_bytes", "-1", e) < 0 ||
                cg_unlimit_one(j, CG_CTRL_MEMORY, "memory.limit_in_bytes", "-1", e) < 0))
    return -1;
  if (cpu &&
      cg_unlimit_one(j, CG_CTRL_CPU, v2 ? "cpu.max" : "cpu.cfs_quota_us", v2 ? "max" : "-1", e) < 0)
    return -1;
  if (pids && cg_unlimit_one(j, CG_CTRL_PIDS, "pids.max", "max", e) < 0)
    return -1;
  return 0;
}
