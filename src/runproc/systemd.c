/* --systemd-cgroup: the container's cgroup as a transient scope that
 * systemd makes (StartTransientUnit over D-Bus, as runc's systemd driver
 * asks), where systemd answers on the system bus; elsewhere (no bus, or
 * no systemd on it) the cgroupfs path systemd would give the scope, made
 * directly, and a warning saying so in the log. D-Bus through libsystemd's
 * sd-bus when runproc is built with it (meson finds libsystemd), else
 * always the second way. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "runproc.h"
#include "runproc_systemd.h"
#include "sandbox/cgroup.h"

#ifdef RUNPROC_HAVE_SD_BUS
#include <systemd/sd-bus.h>
#endif

int runproc_systemd_names(const char *spec, char *slice, size_t slice_len, char *unit,
                          size_t unit_len, rr_err *e) {
  char path[512];
  if (cg_path_from_systemd(spec, path, sizeof path, e) < 0) /* the same checks */
    return -1;
  const char *c1 = strchr(spec, ':'), *c2 = strchr(c1 + 1, ':');
  int a = c1 == spec ? snprintf(slice, slice_len, "system.slice")
                     : snprintf(slice, slice_len, "%.*s", (int)(c1 - spec), spec);
  int b = c2 == c1 + 1
              ? snprintf(unit, unit_len, "%s", c2 + 1)
              : snprintf(unit, unit_len, "%.*s-%s.scope", (int)(c2 - c1 - 1), c1 + 1, c2 + 1);
  if (a < 0 || (size_t)a >= slice_len || b < 0 || (size_t)b >= unit_len)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "linux.cgroupsPath: \"%.200s\" is too long", spec);
  return 0;
}

size_t runproc_scope_properties(const char *slice, const char *description, const cg_limits *l,
                                bool v2, uint32_t pid, runproc_unit_prop *out) {
  size_t n = 0;
  out[n++] = (runproc_unit_prop){"Description", RUNPROC_PROP_STRING, description, 0};
  out[n++] = (runproc_unit_prop){"Slice", RUNPROC_PROP_STRING, slice, 0};
  out[n++] = (runproc_unit_prop){"PIDs", RUNPROC_PROP_PIDS, NULL, pid};
  /* the container makes cgroups below its own; no ordering after basic.target */
  out[n++] = (runproc_unit_prop){"Delegate", RUNPROC_PROP_BOOL, NULL, 1};
  out[n++] = (runproc_unit_prop){"DefaultDependencies", RUNPROC_PROP_BOOL, NULL, 0};
  if (l && l->has_memory)
    out[n++] = (runproc_unit_prop){v2 ? "MemoryMax" : "MemoryLimit", RUNPROC_PROP_U64, NULL,
                                   l->memory_max};
  if (l && l->has_cpu && l->cpu_quota_us) {
    uint64_t period = l->cpu_period_us ? l->cpu_period_us : CG_DEFAULT_CPU_PERIOD_US;
    /* systemd takes a quota per second, in steps of 10 ms: round up, as runc */
    uint64_t per_sec = l->cpu_quota_us * 1000000 / period;
    if (per_sec % 10000)
      per_sec = (per_sec / 10000 + 1) * 10000;
    out[n++] = (runproc_unit_prop){"CPUQuotaPerSecUSec", RUNPROC_PROP_U64, NULL, per_sec};
    out[n++] = (runproc_unit_prop){"CPUQuotaPeriodUSec", RUNPROC_PROP_U64, NULL, period};
  }
  if (l && l->has_pids)
    out[n++] = (runproc_unit_prop){"TasksMax", RUNPROC_PROP_U64, NULL, l->pids_max};
  return n;
}

#ifdef RUNPROC_HAVE_SD_BUS

static int runproc_bus_append(sd_bus_message *m, const runproc_unit_prop *p) {
  int r = sd_bus_message_open_container(m, 'r', "sv");
  if (r >= 0)
    r = sd_bus_message_append(m, "s", p->name);
  if (r >= 0) {
    switch (p->kind) {
    case RUNPROC_PROP_STRING:
      r = sd_bus_message_append(m, "v", "s", p->s);
      break;
    case RUNPROC_PROP_BOOL:
      r = sd_bus_message_append(m, "v", "b", (int)p->u);
      break;
    case RUNPROC_PROP_U64:
      r = sd_bus_message_append(m, "v", "t", p->u);
      break;
    case RUNPROC_PROP_PIDS:
      r = sd_bus_message_append(m, "v", "au", 1, (uint32_t)p->u);
      break;
    }
  }
  if (r >= 0)
    r = sd_bus_message_close_container(m);
  return r;
}

/* A reply that says nobody is systemd on this bus (or the bus tried to
 * start one for the name and could not: a session bus's activation). */
static bool runproc_bus_no_systemd(const sd_bus_error *err) {
  return sd_bus_error_has_names(err, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER,
                                SD_BUS_ERROR_NO_REPLY, SD_BUS_ERROR_DISCONNECTED) ||
         (err->name && strncmp(err->name, "org.freedesktop.DBus.Error.Spawn.", 33) == 0);
}

/* Wait (up to ~10 s) until systemd says the job at path is done. */
static int runproc_bus_wait_job(sd_bus *bus, const char *unit, const char **job_done, rr_err *e) {
  for (int i = 0; i < 100 && !*job_done; i++) {
    int r = sd_bus_process(bus, NULL);
    if (r < 0)
      return rr_err_sys(e, RR_UNAVAILABLE, -r, "systemd scope %s: the bus failed", unit);
    if (r == 0 && (r = sd_bus_wait(bus, 100000)) < 0 && r != -EINTR)
      return rr_err_sys(e, RR_UNAVAILABLE, -r, "systemd scope %s: the bus failed", unit);
  }
  if (!*job_done)
    return rr_err_set(e, RR_DEADLINE_EXCEEDED, "systemd did not start scope %s in 10 s", unit);
  if (strcmp(*job_done, "done") != 0)
    return rr_err_set(e, RR_FAILED_PRECONDITION, "systemd could not start scope %s: job %s", unit,
                      *job_done);
  return 0;
}

struct runproc_job_wait {
  const char *path;   /* our job's object path */
  const char *result; /* its result once removed */
  char buf[32];
};

static int runproc_on_job_removed(sd_bus_message *m, void *arg, sd_bus_error *ret_error) {
  struct runproc_job_wait *w = arg;
  uint32_t id;
  const char *path, *unit, *result;
  (void)ret_error;
  if (sd_bus_message_read(m, "uoss", &id, &path, &unit, &result) < 0 || !w->path ||
      strcmp(path, w->path) != 0)
    return 0;
  snprintf(w->buf, sizeof w->buf, "%s", result);
  w->result = w->buf;
  return 0;
}

int runproc_systemd_start_scope(const char *unit, const runproc_unit_prop *props, size_t n,
                                rr_err *e) {
  sd_bus *bus = NULL;
  sd_bus_message *m = NULL, *reply = NULL;
  sd_bus_slot *slot = NULL;
  sd_bus_error err = SD_BUS_ERROR_NULL;
  struct runproc_job_wait w = {0};
  int rc = -1, r = sd_bus_open_system(&bus);
  if (r < 0) {
    rr_err_sys(e, RR_UNAVAILABLE, -r, "no system bus");
    rc = 1;
    goto out;
  }
  /* before the call, so that the job's end cannot come first */
  r = sd_bus_match_signal(bus, &slot, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                          "org.freedesktop.systemd1.Manager", "JobRemoved", runproc_on_job_removed,
                          &w);
  if (r >= 0)
    r = sd_bus_message_new_method_call(bus, &m, "org.freedesktop.systemd1",
                                       "/org/freedesktop/systemd1",
                                       "org.freedesktop.systemd1.Manager", "StartTransientUnit");
  if (r >= 0)
    r = sd_bus_message_append(m, "ss", unit, "fail");
  if (r >= 0)
    r = sd_bus_message_open_container(m, 'a', "(sv)");
  for (size_t i = 0; r >= 0 && i < n; i++)
    r = runproc_bus_append(m, &props[i]);
  if (r >= 0)
    r = sd_bus_message_close_container(m);
  if (r >= 0)
    r = sd_bus_message_append(m, "a(sa(sv))", 0); /* no auxiliary units */
  if (r < 0) {
    rr_err_sys(e, RR_INTERNAL, -r, "systemd scope %s: cannot build the D-Bus call", unit);
    goto out;
  }
  r = sd_bus_call(bus, m, 10 * 1000000, &err, &reply);
  if (r < 0) {
    bool none = runproc_bus_no_systemd(&err);
    rr_err_set(e, none ? RR_UNAVAILABLE : RR_FAILED_PRECONDITION, "%s%s: %s",
               none ? "systemd does not answer on the system bus" : "systemd refused scope ",
               none ? "" : unit, err.message ? err.message : strerror(-r));
    rc = none ? 1 : -1;
    goto out;
  }
  const char *job;
  if (sd_bus_message_read(reply, "o", &job) < 0) {
    rr_err_set(e, RR_INTERNAL, "systemd scope %s: a reply without a job", unit);
    goto out;
  }
  w.path = job;
  if (runproc_bus_wait_job(bus, unit, &w.result, e) < 0)
    goto out;
  rc = 0;
out:
  sd_bus_error_free(&err);
  sd_bus_message_unref(reply);
  sd_bus_message_unref(m);
  sd_bus_slot_unref(slot);
  sd_bus_flush_close_unref(bus);
  return rc;
}

#else

int runproc_systemd_start_scope(const char *unit, const runproc_unit_prop *props, size_t n,
                                rr_err *e) {
  (void)unit, (void)props, (void)n;
  rr_err_set(e, RR_UNIMPLEMENTED, "runproc was built without sd-bus (libsystemd)");
  return 1;
}

#endif

/* Our cgroup in each hierarchy, as /proc/self/cgroup says (malloc'd). */
static char *runproc_own_cgroups(void) {
  FILE *f = fopen("/proc/self/cgroup", "re");
  if (!f)
    return NULL;
  char *buf = calloc(1, 8192);
  if (buf && fread(buf, 1, 8191, f) == 0) {
    free(buf);
    buf = NULL;
  }
  fclose(f);
  return buf;
}

void runproc_systemd_leave(const char *saved) {
  if (!saved)
    return;
  char pid[24];
  snprintf(pid, sizeof pid, "%d", (int)getpid());
  bool hybrid = access("/sys/fs/cgroup/unified", F_OK) == 0;
  for (const char *line = saved; *line;) {
    const char *nl = strchr(line, '\n');
    size_t len = nl ? (size_t)(nl - line) : strlen(line);
    const char *c1 = memchr(line, ':', len),
               *c2 = c1 ? memchr(c1 + 1, ':', len - (size_t)(c1 + 1 - line)) : NULL;
    if (c2) {
      char dir[600], file[700];
      int cl = (int)(c2 - c1 - 1);
      const char *ctrls = c1 + 1;
      if (cl == 0)
        snprintf(dir, sizeof dir, "/sys/fs/cgroup%s", hybrid ? "/unified" : "");
      else if (cl > 5 && strncmp(ctrls, "name=", 5) == 0)
        snprintf(dir, sizeof dir, "/sys/fs/cgroup/%.*s", cl - 5, ctrls + 5);
      else
        snprintf(dir, sizeof dir, "/sys/fs/cgroup/%.*s", cl, ctrls);
      snprintf(file, sizeof file, "%s%.*s/cgroup.procs", dir, (int)(line + len - c2 - 1), c2 + 1);
      FILE *f = fopen(file, "we");
      if (f) {
        fputs(pid, f);
        fclose(f);
      }
    }
    line += len + (nl ? 1 : 0);
  }
}

int runproc_systemd_scope(runproc_ctx *ctx, const char *id, const char *spec, const cg_limits *l,
                          char **ret_saved, rr_err *e) {
  *ret_saved = NULL;
  char slice[256], unit[256], desc[300];
  if (runproc_systemd_names(spec, slice, sizeof slice, unit, sizeof unit, e) < 0)
    return -1;
  snprintf(desc, sizeof desc, "runproc container %.200s", id);
  runproc_unit_prop props[RUNPROC_SCOPE_MAX_PROPS];
  bool v2 = access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0;
  /* a scope needs a process: ours, which the container's first process
   * inherits (and joins); we leave after the spawn */
  size_t n = runproc_scope_properties(slice, desc, l, v2, (uint32_t)getpid(), props);
  char *saved = runproc_own_cgroups();
  rr_err why = {0};
  int r = runproc_systemd_start_scope(unit, props, n, &why);
  if (r == 1) {
    free(saved);
    runproc_warn(ctx,
                 "--systemd-cgroup: %s; the cgroup of %s is made at the path systemd would "
                 "give it, no scope unit",
                 why.msg, unit);
    return 1;
  }
  if (r < 0) {
    free(saved);
    *e = why;
    return -1;
  }
  *ret_saved = saved;
  return 0;
}
