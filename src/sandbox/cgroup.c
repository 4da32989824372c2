/* The cgroup manager: version detection, the subtree jobs are made in,
 * dispatch to the v1 / v2 backend (cg_ops), and the start-up sweep of job
 * cgroups no job claims. A job's own cgroup is in cgroup_job.c. */
#include <dirent.h>
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

/* Names used as one path component: no "/", no dot names, bounded. */
int cg_check_name(const char *what, const char *s, rr_err *e) {
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
  if (cg_check_name("subtree name", name, e) < 0)
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
      cg_job *j = cg_job_alloc(m, names[k], cg_all_hiers(m));
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
