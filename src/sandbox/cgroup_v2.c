/* cgroup v2 backend (unified hierarchy).
 *
 * Layout, with OWN the cgroup rund was started in (from "0::/path"):
 *   OWN/NAME/              our subtree: controllers enabled, no processes
 *   OWN/NAME/supervisor/   rund itself, moved here at start because a
 *                          non-root cgroup with controllers enabled for its
 *                          children may hold no processes (the
 *                          no-internal-process rule); not made when OWN is
 *                          the root cgroup, which is exempt (rund stays)
 *   OWN/NAME/jobs/         parent of the job cgroups, controllers enabled
 *   OWN/NAME/jobs/ID/      one job (clone3 CLONE_INTO_CGROUP puts its first
 *                          process there)
 * +cpu +memory +io +pids (those OWN/cgroup.controllers lists) are enabled in
 * OWN, OWN/NAME and OWN/NAME/jobs. Writing OWN/cgroup.subtree_control is the
 * one write outside OWN/NAME; it fails with EBUSY when other processes share
 * OWN, and then rund must get a cgroup of its own (systemd: Delegate=yes).
 * On shutdown the controllers we enabled in OWN are disabled again, rund
 * moves back to OWN and OWN/NAME is removed (left when jobs remain).
 *
 * Swap: with a memory limit, memory.swap.max is set to 0 (v1 sets memsw to
 * the limit: the same, no swap), so memory.max is a hard cap on every host
 * and a job over it is OOM-killed rather than paged out. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "sandbox/cgroup_internal.h"

static const unsigned v2_used = CG_CTRL_CPU | CG_CTRL_MEMORY | CG_CTRL_IO | CG_CTRL_PIDS;

/* "+cpu +io" (sign '+') or "-cpu -io" for the controllers in mask. */
static void controllers_line(unsigned mask, char sign, char *buf, size_t len) {
  buf[0] = '\0';
  for (unsigned bit = 1; bit <= CG_CTRL_FREEZER; bit <<= 1)
    if (mask & bit)
      snprintf(buf + strlen(buf), len - strlen(buf), "%s%c%s", buf[0] ? " " : "", sign,
               cg_controller_name(bit, CG_V2));
}

static int read_controllers(const char *dir, const char *file, unsigned *ret, rr_err *e) {
  _cleanup_free_ char *path = cg_path_join(dir, file);
  char buf[512];
  if (!path)
    return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, ENOMEM, "cannot read %s", file);
  if (cg_file_read(path, buf, sizeof buf, e) < 0)
    return -1;
  *ret = cg_parse_v2_controllers(buf);
  return 0;
}

static int enable_controllers(const char *dir, unsigned mask, rr_err *e) {
  char line[64];
  if (!mask)
    return 0;
  controllers_line(mask, '+', line, sizeof line);
  if (cg_file_write(dir, "cgroup.subtree_control", line, "controllers", e) < 0) {
    if (e && e->sys_errno == EBUSY)
      return rr_err_set(e, RR_FAILED_PRECONDITION,
                        "cannot enable \"%s\" in %s/cgroup.subtree_control: other processes are "
                        "in that cgroup (cgroup v2 allows no processes in a cgroup that hands "
                        "controllers to children); run rund in a cgroup of its own (systemd: "
                        "Delegate=yes)",
                        line, dir);
    return -1;
  }
  return 0;
}

static int mkdir_ok(const char *dir, rr_err *e) {
  if (mkdir(dir, 0755) < 0 && errno != EEXIST)
    return rr_err_sys(e, errno == EACCES || errno == EROFS ? RR_PERMISSION_DENIED : RR_INTERNAL,
                      errno, "cannot create cgroup %s", dir);
  return 0;
}

static int v2_manager_setup(cg_manager *m, const cg_detection *d, rr_err *e) {
  char own[CG_PATH_MAX];
  snprintf(own, sizeof own, "%s", d->hier[0].own_dir);
  /* Started again from our own supervisor leaf (re-exec): OWN is above it. */
  char tail[CG_PATH_MAX];
  snprintf(tail, sizeof tail, "/%s/supervisor", m->name);
  size_t ol = strlen(own), tl = strlen(tail);
  bool in_leaf = ol > tl && strcmp(own + ol - tl, tail) == 0;
  if (in_leaf)
    own[ol - tl] = '\0';
  m->v2_own = strdup(own);
  m->v2_subtree = cg_path_join(own, m->name);
  char *jobs = m->v2_subtree ? cg_path_join(m->v2_subtree, "jobs") : NULL;
  if (!m->v2_own || !jobs)
    return free(jobs), rr_err_sys(e, RR_RESOURCE_EXHAUSTED, ENOMEM, "cannot set up cgroups");
  m->hier[0].parent = jobs;
  m->nhier = 1;
  m->plain_hiers = 1; /* one directory, limits or not */
  unsigned avail, before;
  if (read_controllers(own, "cgroup.controllers", &avail, e) < 0 ||
      read_controllers(own, "cgroup.subtree_control", &before, e) < 0)
    return -1;
  avail &= v2_used;
  if (mkdir_ok(m->v2_subtree, e) < 0)
    return -1;
  if (!d->own_is_root || in_leaf) {
    m->v2_supervisor = cg_path_join(m->v2_subtree, "supervisor");
    if (!m->v2_supervisor)
      return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, ENOMEM, "cannot set up cgroups");
    if (mkdir_ok(m->v2_supervisor, e) < 0 ||
        cg_file_write(m->v2_supervisor, "cgroup.procs", "0", "the cgroup of rund", e) < 0)
      return -1;
  }
  m->v2_enabled_own = avail & ~before;
  if (enable_controllers(own, avail & ~before, e) < 0) {
    m->v2_enabled_own = 0;
    return -1;
  }
  m->hier[0].controllers = avail; /* before enabling: teardown undoes it */
  if (enable_controllers(m->v2_subtree, avail, e) < 0 || mkdir_ok(jobs, e) < 0 ||
      enable_controllers(jobs, avail, e) < 0)
    return -1;
  m->controllers = avail;
  char names[64];
  controllers_line(avail, '+', names, sizeof names);
  snprintf(m->describe, sizeof m->describe, "cgroup v2: jobs in %s (%s)%s%s", jobs,
           *names ? names : "no controllers", m->v2_supervisor ? "; rund moved to " : "",
           m->v2_supervisor ? m->v2_supervisor : "");
  return 0;
}

static void v2_manager_teardown(cg_manager *m) {
  if (!m->v2_subtree)
    return;
  /* Jobs left running keep their cgroups, and so our subtree. */
  if (m->hier[0].parent && rmdir(m->hier[0].parent) < 0 && errno != ENOENT)
    return;
  /* Top-down: a controller cannot be disabled while a child enables it. */
  char line[64];
  if (m->v2_enabled_own) {
    controllers_line(m->hier[0].controllers, '-', line, sizeof line);
    if (m->hier[0].controllers)
      cg_file_write(m->v2_subtree, "cgroup.subtree_control", line, "controllers", NULL);
    controllers_line(m->v2_enabled_own, '-', line, sizeof line);
    cg_file_write(m->v2_own, "cgroup.subtree_control", line, "controllers", NULL);
  }
  if (m->v2_supervisor) {
    if (cg_file_write(m->v2_own, "cgroup.procs", "0", "the cgroup of rund", NULL) < 0)
      return; /* OWN has controllers someone else enabled: we stay in our leaf */
    rmdir(m->v2_supervisor);
  }
  rmdir(m->v2_subtree);
}

static int v2_job_apply(cg_job *j, const cg_limits *l, rr_err *e) {
  const char *dir = j->dir[0];
  char buf[160];
  if (l->has_cpu) {
    uint64_t period = l->cpu_period_us ? l->cpu_period_us : CG_DEFAULT_CPU_PERIOD_US;
    snprintf(buf, sizeof buf, "%" PRIu64 " %" PRIu64, l->cpu_quota_us, period);
    if (cg_file_write(dir, "cpu.max", buf, "limits.cpu", e) < 0)
      return -1;
  }
  if (l->has_memory) {
    if (cg_file_write_u64(dir, "memory.max", l->memory_max, "limits.memory_max", e) < 0)
      return -1;
    /* no swap, as v1's memsw = limit: memory.max is then a hard cap that
     * ends in the OOM killer, not a job slowly paging out on a host with swap */
    if (cg_file_exists(dir, "memory.swap.max") &&
        cg_file_write(dir, "memory.swap.max", "0", "limits.memory_max (memory.swap.max)", e) < 0)
      return -1;
  }
  for (size_t i = 0; i < l->nio; i++) {
    const cg_io_limit *io = &l->io[i];
    const struct {
      uint64_t v;
      const char *key;
    } w[] = {{io->rbps, "rbps"}, {io->wbps, "wbps"}, {io->riops, "riops"}, {io->wiops, "wiops"}};
    int n = snprintf(buf, sizeof buf, "%u:%u", io->major, io->minor);
    for (size_t k = 0; k < RR_ARRAY_SIZE(w); k++)
      if (w[k].v)
        n += snprintf(buf + n, sizeof buf - (size_t)n, " %s=%" PRIu64, w[k].key, w[k].v);
    char what[32];
    snprintf(what, sizeof what, "limits.io[%zu]", i);
    if (cg_file_write(dir, "io.max", buf, what, e) < 0)
      return -1;
  }
  if (l->has_pids && cg_file_write_u64(dir, "pids.max", l->pids_max, "limits.pids_max", e) < 0)
    return -1;
  return 0;
}

static int v2_usage(cg_job *j, cg_usage *u, rr_err *e) {
  const char *dir = j->dir[0];
  /* a child below a job with processes cannot have controllers (no
   * internal processes): its cpu.stat only */
  unsigned c = j->nested ? 0 : j->m->controllers;
  char buf[4096];
  int r;
  /* cpu.stat has usage even without the cpu controller. */
  if ((r = cg_file_read_opt(dir, "cpu.stat", buf, sizeof buf, e)) < 0)
    return -1;
  if (r)
    cg_parse_cpu_stat(buf, u);
  if (c & CG_CTRL_MEMORY) {
    if ((r = cg_file_read_opt(dir, "memory.peak", buf, sizeof buf, e)) < 0)
      return -1;
    uint64_t peak = r ? strtoull(buf, NULL, 10) : 0;
    if ((!r || !j->final) && cg_file_read_u64(dir, "memory.current", &u->memory_current, e) < 0)
      return -1;
    /* Before Linux 5.19 there is no memory.peak: the max of our samples. */
    if (u->memory_current > j->memory_peak_seen)
      j->memory_peak_seen = u->memory_current;
    u->memory_peak = r ? peak : j->memory_peak_seen;
    if ((r = cg_file_read_opt(dir, "memory.events", buf, sizeof buf, e)) < 0)
      return -1;
    if (r) {
      cg_parse_keyed(buf, "oom_kill", &u->oom_kills);
      cg_parse_keyed(buf, "max", &u->memory_limit_hits);
    }
  }
  if (c & CG_CTRL_IO) {
    if ((r = cg_file_read_opt(dir, "io.stat", buf, sizeof buf, e)) < 0)
      return -1;
    if (r)
      cg_parse_io_stat(buf, u);
  }
  if (c & CG_CTRL_PIDS) {
    if (!j->final && cg_file_read_u64(dir, "pids.current", &u->pids_current, e) < 0)
      return -1;
    if ((r = cg_file_read_opt(dir, "pids.events", buf, sizeof buf, e)) < 0)
      return -1;
    if (r)
      cg_parse_keyed(buf, "max", &u->pids_refused);
  }
  return 0;
}

static bool v2_empty(cg_job *j) {
  char buf[256];
  uint64_t populated;
  if (cg_file_read_opt(j->dir[0], "cgroup.events", buf, sizeof buf, NULL) == 1 &&
      cg_parse_keyed(buf, "populated", &populated))
    return populated == 0;
  return cg_procs_empty(j->dir[0]);
}

static int v2_kill(cg_job *j, rr_err *e) {
  const char *dir = j->dir[0];
  /* Linux >= 5.14: the kernel kills the tree, all of it: with a keeper to
   * spare, only if freezing does not do (below) */
  bool has_kill = cg_file_exists(dir, "cgroup.kill");
  if (!j->spare && has_kill)
    return cg_file_write(dir, "cgroup.kill", "1", "cgroup.kill", e);
  if (cg_file_write(dir, "cgroup.freeze", "1", "cgroup.freeze", e) < 0)
    return -1;
  char buf[256];
  uint64_t frozen = 0;
  for (int i = 0; i < CG_KILL_WAIT_MS / 5; i++) {
    if (cg_file_read_opt(dir, "cgroup.events", buf, sizeof buf, NULL) == 1 &&
        cg_parse_keyed(buf, "frozen", &frozen) && frozen)
      break;
    cg_sleep_ms(5);
  }
  size_t n;
  int r = cg_procs_kill_all(dir, j->spare, &n, e);
  rr_err tmp;
  if (cg_file_write(dir, "cgroup.freeze", "0", "cgroup.freeze", r < 0 ? &tmp : e) < 0 || r < 0)
    return -1;
  /* not frozen in time (e.g. a fork bomb): the kernel's kill, keeper and
   * all (what it had not copied from the pipes yet is lost), else a few more
   * passes; a later kill takes the rest */
  if (!frozen && has_kill)
    return cg_file_write(dir, "cgroup.kill", "1", "cgroup.kill", e);
  for (int i = 0; i < CG_KILL_WAIT_MS / 5 && !frozen && n > 0; i++) {
    if (cg_procs_kill_all(dir, j->spare, &n, e) < 0)
      return -1;
    cg_sleep_ms(5);
  }
  return 0;
}

const cg_ops cg_v2_ops = {
    .manager_setup = v2_manager_setup,
    .manager_teardown = v2_manager_teardown,
    .job_apply = v2_job_apply,
    .job_usage = v2_usage,
    .job_kill = v2_kill,
    .job_empty = v2_empty,
};
