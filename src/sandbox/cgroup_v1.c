/* cgroup v1 backend: one hierarchy per controller (cpu and cpuacct may share
 * one). Our subtree is <mount>/<own path>/<name> in each hierarchy we use;
 * a job's cgroup is <subtree>/<id> in each, and its first process writes "0"
 * to every cgroup.procs before exec. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "sandbox/cgroup_internal.h"

static const unsigned v1_used =
    CG_CTRL_CPU | CG_CTRL_CPUACCT | CG_CTRL_MEMORY | CG_CTRL_IO | CG_CTRL_PIDS | CG_CTRL_FREEZER;

/* Every job: freezer (a kill of the whole tree that no fork races, and its
 * tasks count as pids_current) and cpuacct (its CPU, daemons included).
 * The others only for a limit they hold: each costs a mkdir, an open, a
 * join and an rmdir per start (cpu and memory the most: a task group, a
 * memcg), and pids would only count what freezer's tasks list shows. */
static const unsigned v1_plain = CG_CTRL_FREEZER | CG_CTRL_CPUACCT;

static void v1_describe(cg_manager *m) {
  size_t off = (size_t)snprintf(m->describe, sizeof m->describe, "cgroup v1:");
  for (size_t i = 0; i < m->nhier && off < sizeof m->describe; i++) {
    char names[64] = "";
    for (unsigned bit = 1; bit <= CG_CTRL_FREEZER; bit <<= 1)
      if (m->hier[i].controllers & bit)
        snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", *names ? "," : "",
                 cg_controller_name(bit, CG_V1));
    off += (size_t)snprintf(m->describe + off, sizeof m->describe - off, "%s %s at %s%s",
                            i ? ";" : "", names, m->hier[i].parent,
                            m->plain_hiers & (1u << i) ? "" : " (limits only)");
  }
}

static int v1_manager_setup(cg_manager *m, const cg_detection *d, rr_err *e) {
  for (size_t i = 0; i < d->nhier; i++) {
    unsigned ctrls = d->hier[i].controllers & v1_used;
    if (!ctrls)
      continue;
    char *parent = cg_path_join(d->hier[i].own_dir, m->name);
    if (!parent)
      return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, ENOMEM, "cannot set up cgroups");
    m->hier[m->nhier].parent = parent;
    m->hier[m->nhier++].controllers = ctrls;
    m->controllers |= ctrls;
    /* An existing subtree is ours from a previous run (the name is stable). */
    if (mkdir(parent, 0755) < 0 && errno != EEXIST)
      return rr_err_sys(e, errno == EACCES || errno == EROFS ? RR_PERMISSION_DENIED : RR_INTERNAL,
                        errno, "cannot create cgroup %s", parent);
  }
  for (size_t i = 0; i < m->nhier; i++)
    if (m->hier[i].controllers & v1_plain)
      m->plain_hiers |= 1u << i;
  if (!m->plain_hiers && m->nhier) /* any hierarchy lists the processes to kill */
    m->plain_hiers = 1;
  v1_describe(m);
  return 0;
}

static void v1_manager_teardown(cg_manager *m) {
  for (size_t i = 0; i < m->nhier; i++)
    if (m->hier[i].parent)
      rmdir(m->hier[i].parent); /* fails while job cgroups remain: they are kept */
}

static int v1_job_apply(cg_job *j, const cg_limits *l, rr_err *e) {
  int h;
  if (l->has_cpu && (h = cg_job_hier_of(j, CG_CTRL_CPU)) >= 0) {
    uint64_t period = l->cpu_period_us ? l->cpu_period_us : CG_DEFAULT_CPU_PERIOD_US;
    /* a fresh cgroup has the kernel's default period, ours too */
    bool keep = j->fresh && period == CG_DEFAULT_CPU_PERIOD_US;
    if ((!keep && cg_file_write_u64(j->dir[h], "cpu.cfs_period_us", period, "limits.cpu.period_us",
                                    e) < 0) ||
        cg_file_write_u64(j->dir[h], "cpu.cfs_quota_us", l->cpu_quota_us, "limits.cpu.quota_us",
                          e) < 0)
      return -1;
  }
  if (l->has_memory && (h = cg_job_hier_of(j, CG_CTRL_MEMORY)) >= 0) {
    /* Same value with swap: the job cannot escape the limit by swapping.
     * The kernel wants memsw >= limit at all times: when the limit grows
     * (runproc update), memsw goes first. */
    if (!j->m->v1_memsw)
      j->m->v1_memsw = cg_file_exists(j->dir[h], "memory.memsw.limit_in_bytes") ? 1 : -1;
    bool memsw = j->m->v1_memsw > 0;
    uint64_t cur = 0; /* a fresh cgroup has no limit: nothing to grow from */
    bool grow = memsw && !j->fresh &&
                cg_file_read_u64(j->dir[h], "memory.limit_in_bytes", &cur, NULL) == 0 &&
                l->memory_max > cur;
    if (grow && cg_file_write_u64(j->dir[h], "memory.memsw.limit_in_bytes", l->memory_max,
                                  "limits.memory_max", e) < 0)
      return -1;
    if (cg_file_write_u64(j->dir[h], "memory.limit_in_bytes", l->memory_max, "limits.memory_max",
                          e) < 0)
      return -1;
    if (memsw && !grow &&
        cg_file_write_u64(j->dir[h], "memory.memsw.limit_in_bytes", l->memory_max,
                          "limits.memory_max", e) < 0)
      return -1;
    j->memory_max = l->memory_max;
  }
  if (l->nio > 0 && (h = cg_job_hier_of(j, CG_CTRL_IO)) >= 0) {
    for (size_t i = 0; i < l->nio; i++) {
      const cg_io_limit *io = &l->io[i];
      const struct {
        uint64_t v;
        const char *file, *name;
      } w[] = {{io->rbps, "blkio.throttle.read_bps_device", "rbps"},
               {io->wbps, "blkio.throttle.write_bps_device", "wbps"},
               {io->riops, "blkio.throttle.read_iops_device", "riops"},
               {io->wiops, "blkio.throttle.write_iops_device", "wiops"}};
      for (size_t k = 0; k < RR_ARRAY_SIZE(w); k++) {
        if (!w[k].v)
          continue;
        char buf[64], what[48];
        snprintf(buf, sizeof buf, "%u:%u %" PRIu64, io->major, io->minor, w[k].v);
        snprintf(what, sizeof what, "limits.io[%zu].%s", i, w[k].name);
        if (cg_file_write(j->dir[h], w[k].file, buf, what, e) < 0)
          return -1;
      }
    }
  }
  if (l->has_pids && (h = cg_job_hier_of(j, CG_CTRL_PIDS)) >= 0 &&
      cg_file_write_u64(j->dir[h], "pids.max", l->pids_max, "limits.pids_max", e) < 0)
    return -1;
  return 0;
}

static int v1_usage_cpu(cg_job *j, cg_usage *u, rr_err *e) {
  char buf[512];
  uint64_t v;
  int h = cg_job_hier_of(j, CG_CTRL_CPUACCT), r;
  char all[4096]; /* one read for the three below (per CPU: ~40 bytes) */
  uint64_t user, sys;
  if (h >= 0 && (r = cg_file_read_opt(j->dir[h], "cpuacct.usage_all", all, sizeof all, e)) < 0)
    return -1;
  if (h >= 0 && r && cg_parse_usage_all(all, &user, &sys)) {
    u->cpu_user_usec = user / 1000;
    u->cpu_system_usec = sys / 1000;
    u->cpu_usec = (user + sys) / 1000;
  } else if (h >= 0) { /* older kernels, or more CPUs than the buffer holds */
    if ((r = cg_file_read_opt(j->dir[h], "cpuacct.usage", buf, sizeof buf, e)) < 0)
      return -1;
    if (r)
      u->cpu_usec = strtoull(buf, NULL, 10) / 1000;
    if ((r = cg_file_read_opt(j->dir[h], "cpuacct.usage_user", buf, sizeof buf, e)) < 0)
      return -1;
    if (r) {
      u->cpu_user_usec = strtoull(buf, NULL, 10) / 1000;
      if (cg_file_read_opt(j->dir[h], "cpuacct.usage_sys", buf, sizeof buf, e) < 0)
        return -1;
      u->cpu_system_usec = strtoull(buf, NULL, 10) / 1000;
    } else if ((r = cg_file_read_opt(j->dir[h], "cpuacct.stat", buf, sizeof buf, e)) < 0) {
      return -1;
    } else if (r) {
      long hz = sysconf(_SC_CLK_TCK);
      uint64_t usec_per_tick = hz > 0 ? 1000000u / (uint64_t)hz : 10000u;
      if (cg_parse_keyed(buf, "user", &v))
        u->cpu_user_usec = v * usec_per_tick;
      if (cg_parse_keyed(buf, "system", &v))
        u->cpu_system_usec = v * usec_per_tick;
    }
  }
  if ((h = cg_job_hier_of(j, CG_CTRL_CPU)) >= 0) {
    if ((r = cg_file_read_opt(j->dir[h], "cpu.stat", buf, sizeof buf, e)) < 0)
      return -1;
    if (r && cg_parse_keyed(buf, "throttled_time", &v))
      u->cpu_throttled_usec = v / 1000;
  }
  return 0;
}

static int v1_usage_memory(cg_job *j, cg_usage *u, rr_err *e) {
  char buf[512];
  uint64_t v;
  int h = cg_job_hier_of(j, CG_CTRL_MEMORY), r;
  if (h < 0)
    return 0;
  if ((!j->final &&
       cg_file_read_u64(j->dir[h], "memory.usage_in_bytes", &u->memory_current, e) < 0) ||
      cg_file_read_u64(j->dir[h], "memory.max_usage_in_bytes", &u->memory_peak, e) < 0 ||
      cg_file_read_u64(j->dir[h], "memory.failcnt", &u->memory_limit_hits, e) < 0)
    return -1;
  /* With memsw at the same limit, the memsw counter is the one that fails. */
  if ((r = cg_file_read_opt(j->dir[h], "memory.memsw.failcnt", buf, sizeof buf, e)) < 0)
    return -1;
  if (r)
    u->memory_limit_hits += strtoull(buf, NULL, 10);
  /* Some kernels leave failcnt at 0: a peak at the limit is a hit too. */
  uint64_t limit = j->memory_max;
  if (u->memory_limit_hits == 0 &&
      (limit || cg_file_read_u64(j->dir[h], "memory.limit_in_bytes", &limit, e) == 0) &&
      u->memory_peak >= limit)
    u->memory_limit_hits = 1;
  if ((r = cg_file_read_opt(j->dir[h], "memory.oom_control", buf, sizeof buf, e)) < 0)
    return -1;
  if (r && cg_parse_keyed(buf, "oom_kill", &v))
    u->oom_kills = v;
  else
    u->oom_kills_unknown = true;
  return 0;
}

static int v1_usage(cg_job *j, cg_usage *u, rr_err *e) {
  char buf[4096];
  int h, r;
  if (v1_usage_cpu(j, u, e) < 0 || v1_usage_memory(j, u, e) < 0)
    return -1;
  if ((h = cg_job_hier_of(j, CG_CTRL_IO)) >= 0) {
    if ((r = cg_file_read_opt(j->dir[h], "blkio.throttle.io_service_bytes", buf, sizeof buf, e)) <
        0)
      return -1;
    if (r)
      cg_parse_blkio(buf, &u->io_read_bytes, &u->io_write_bytes);
    if ((r = cg_file_read_opt(j->dir[h], "blkio.throttle.io_serviced", buf, sizeof buf, e)) < 0)
      return -1;
    if (r)
      cg_parse_blkio(buf, &u->io_read_ops, &u->io_write_ops);
  }
  if ((h = cg_job_hier_of(j, CG_CTRL_PIDS)) >= 0) {
    if (!j->final && cg_file_read_u64(j->dir[h], "pids.current", &u->pids_current, e) < 0)
      return -1;
    if ((r = cg_file_read_opt(j->dir[h], "pids.events", buf, sizeof buf, e)) < 0)
      return -1;
    if (r)
      cg_parse_keyed(buf, "max", &u->pids_refused);
  } else if (!j->final) { /* what pids.current counts: tasks */
    h = cg_job_hier_of(j, CG_CTRL_FREEZER);
    if (cg_tasks_count(j->dir[h >= 0 ? h : cg_job_hier_first(j)], &u->pids_current, e) < 0)
      return -1;
  }
  return 0;
}

static bool v1_empty(cg_job *j) {
  for (size_t i = 0; i < j->m->nhier; i++)
    if ((j->hiers & (1u << i)) && !cg_procs_empty(j->dir[i]))
      return false;
  return true;
}

/* Without a freezer (or not frozen in time), kill what is listed a few
 * times, ~CG_KILL_WAIT_MS at most: this runs on rund's event loop. What a
 * fork race leaves behind is killed by the caller's later passes (the
 * removal of an ended job's cgroup retries on a timer). */
static int kill_loop(cg_job *j, const char *dir, rr_err *e) {
  for (int i = 0; i < CG_KILL_WAIT_MS / 5; i++) {
    size_t n;
    if (cg_procs_kill_all(dir, j->spare, &n, e) < 0)
      return -1;
    if (n == 0)
      return 0;
    cg_sleep_ms(5);
  }
  return 0;
}

static int v1_kill(cg_job *j, rr_err *e) {
  int h = cg_job_hier_of(j, CG_CTRL_FREEZER);
  if (h < 0)
    return kill_loop(j, j->dir[cg_job_hier_first(j)], e);
  const char *dir = j->dir[h];
  /* Frozen, nothing can fork between listing and killing. */
  if (cg_file_write(dir, "freezer.state", "FROZEN", "freezer.state", e) < 0)
    return -1;
  _cleanup_free_ char *path = cg_path_join(dir, "freezer.state");
  char buf[32] = "";
  for (int i = 0; i < CG_KILL_WAIT_MS / 5 && path; i++) {
    if (cg_file_read(path, buf, sizeof buf, NULL) == 0 && strncmp(buf, "FROZEN", 6) == 0)
      break;
    cg_sleep_ms(5);
  }
  size_t n;
  int r = cg_procs_kill_all(dir, j->spare, &n, e);
  rr_err tmp;
  int t = cg_file_write(dir, "freezer.state", "THAWED", "freezer.state", r < 0 ? &tmp : e);
  if (r < 0 || t < 0)
    return -1;
  /* Not frozen in time (a task in uninterruptible sleep): make sure anyway. */
  return strncmp(buf, "FROZEN", 6) == 0 ? 0 : kill_loop(j, dir, e);
}

const cg_ops cg_v1_ops = {
    .manager_setup = v1_manager_setup,
    .manager_teardown = v1_manager_teardown,
    .job_apply = v1_job_apply,
    .job_usage = v1_usage,
    .job_kill = v1_kill,
    .job_empty = v1_empty,
};
