/* runproc events [--stats] [--interval DUR] ID: runc's events. --stats
 * prints one {"type":"stats","id":ID,"data":{...}} object (cpu, memory,
 * pids, blkio of the container's cgroup, runc's field names and units);
 * without it, one such object every interval (default 5s) and an
 * {"type":"oom","id":ID} when the cgroup's OOM-kill count grew, until the
 * container stops. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runproc.h"
#include "sandbox/cgroup.h"

#define EVENTS_MAX_INTERVAL_MS (24ull * 3600 * 1000)

static json_object *u64(uint64_t v) { return json_object_new_uint64(v); }

static json_object *blkio_entries(uint64_t read, uint64_t write) {
  /* totals over the devices (major/minor 0): the engine sums them */
  json_object *a = json_object_new_array();
  const char *ops[] = {"Read", "Write"};
  uint64_t vals[] = {read, write};
  for (size_t i = 0; i < 2; i++) {
    json_object *o = json_object_new_object();
    json_object_object_add(o, "major", u64(0));
    json_object_object_add(o, "minor", u64(0));
    json_object_object_add(o, "op", json_object_new_string(ops[i]));
    json_object_object_add(o, "value", u64(vals[i]));
    json_object_array_add(a, o);
  }
  return a;
}

/* runc's Stats (events/types.go): cpu in ns, memory and blkio in bytes. */
static json_object *events_stats_json(const cg_usage *u, const cg_limits *l) {
  json_object *usage = json_object_new_object();
  json_object_object_add(usage, "total", u64(u->cpu_usec * 1000));
  json_object_object_add(usage, "kernel", u64(u->cpu_system_usec * 1000));
  json_object_object_add(usage, "user", u64(u->cpu_user_usec * 1000));
  json_object *thr = json_object_new_object();
  json_object_object_add(thr, "throttled_time", u64(u->cpu_throttled_usec * 1000));
  json_object *cpu = json_object_new_object();
  json_object_object_add(cpu, "usage", usage);
  json_object_object_add(cpu, "throttling", thr);

  json_object *mu = json_object_new_object();
  json_object_object_add(mu, "limit", u64(l->memory_max));
  json_object_object_add(mu, "usage", u64(u->memory_current));
  json_object_object_add(mu, "max", u64(u->memory_peak));
  json_object_object_add(mu, "failcnt", u64(u->memory_limit_hits));
  json_object *mem = json_object_new_object();
  json_object_object_add(mem, "usage", mu);

  json_object *pids = json_object_new_object();
  json_object_object_add(pids, "current", u64(u->pids_current));
  json_object_object_add(pids, "limit", u64(l->has_pids ? l->pids_max : 0));

  json_object *blkio = json_object_new_object();
  json_object_object_add(blkio, "ioServiceBytesRecursive",
                         blkio_entries(u->io_read_bytes, u->io_write_bytes));
  json_object_object_add(blkio, "ioServicedRecursive",
                         blkio_entries(u->io_read_ops, u->io_write_ops));

  json_object *d = json_object_new_object();
  json_object_object_add(d, "cpu", cpu);
  json_object_object_add(d, "memory", mem);
  json_object_object_add(d, "pids", pids);
  json_object_object_add(d, "blkio", blkio);
  json_object_object_add(d, "hugetlb", json_object_new_object());
  return d;
}

static void events_print(const char *type, const char *id, json_object *data) {
  json_object *o = json_object_new_object();
  json_object_object_add(o, "type", json_object_new_string(type));
  json_object_object_add(o, "id", json_object_new_string(id));
  if (data)
    json_object_object_add(o, "data", data);
  printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
  fflush(stdout);
  json_object_put(o);
}

/* Go's durations that make sense here: "250ms", "5s", "1m", "1h". */
static int events_interval(const char *v, uint64_t *ret_ms) {
  char *end;
  errno = 0;
  double n = strtod(v, &end);
  const struct {
    const char *unit;
    double ms;
  } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
  for (size_t i = 0; end != v && !errno && i < sizeof units / sizeof *units; i++)
    if (strcmp(end, units[i].unit) == 0) {
      double ms = n * units[i].ms;
      if (ms < 1 || ms > (double)EVENTS_MAX_INTERVAL_MS)
        return -1;
      *ret_ms = (uint64_t)ms;
      return 0;
    }
  return -1;
}

static void sleep_ms(uint64_t ms) {
  struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
    ;
}

/* One sample of the container's cgroup: 0; 1 when it has stopped (*ret_oom
 * still read while its cgroup is there: an OOM kill may have ended it), 2
 * when it does not exist (deleted meanwhile); -1 with e. */
static int events_sample(runproc_ctx *ctx, const char *id, json_object **ret_data,
                         uint64_t *ret_oom, rr_err *e) {
  runproc_container c;
  if (runproc_container_load(ctx, id, &c, e) < 0)
    return e->code == RR_NOT_FOUND ? 2 : -1;
  bool stopped = runproc_container_status(&c) == RUNPROC_STOPPED;
  int rc = -1;
  cg_job *cg = NULL;
  cg_usage u;
  cg_limits l;
  if (stopped) {
    rr_err_set(e, RR_FAILED_PRECONDITION, "container \"%s\" is stopped", c.id);
    if (c.cgroup && *c.cgroup && cg_path_open(RUNPROC_CGROUP_ROOT, c.cgroup, &cg, NULL) == 0 &&
        cg_job_usage(cg, &u, NULL) == 0)
      *ret_oom = u.oom_kills;
    rc = 1;
  } else if (runproc_container_cgroup(&c, &cg, e) == 0 && cg_job_usage(cg, &u, e) == 0 &&
             cg_job_limits_read(cg, &l, e) == 0) {
    *ret_data = events_stats_json(&u, &l);
    *ret_oom = u.oom_kills;
    rc = 0;
  }
  if (cg)
    cg_job_free(cg);
  runproc_container_free(&c);
  return rc;
}

static int cmd_events(runproc_ctx *ctx, int argc, char **argv) {
  const char *id = NULL;
  bool stats = false;
  uint64_t interval_ms = 5000;
  for (int i = 1; i < argc; i++) {
    const char *v = NULL;
    int r = runproc_opt(argc, argv, &i, "interval", 0, &v);
    if (r < 0)
      return runproc_fail(ctx, "option \"%s\" needs a value", argv[i]);
    if (r > 0) {
      if (events_interval(v, &interval_ms) < 0)
        return runproc_fail(ctx, "invalid --interval \"%s\" (want a duration: 500ms, 5s, 1m)", v);
    } else if (runproc_flag(argv[i], "stats", 0))
      stats = true;
    else if (runproc_arg_id(ctx, argv[i], &id))
      return 1;
  }
  if (!id)
    return runproc_fail(ctx, "usage: runproc events [--stats] [--interval DUR] ID");
  rr_err e = {0};
  json_object *data = NULL;
  uint64_t ooms = 0, seen = 0;
  int r = events_sample(ctx, id, &data, &seen, &e);
  if (r != 0)
    return runproc_fail_err(ctx, &e);
  events_print("stats", id, data);
  if (stats)
    return 0;
  for (;;) {
    sleep_ms(interval_ms);
    data = NULL;
    ooms = seen;
    r = events_sample(ctx, id, &data, &ooms, &e);
    if (r < 0)
      return runproc_fail_err(ctx, &e);
    if (ooms > seen)
      events_print("oom", id, NULL);
    seen = ooms;
    if (r > 0) /* stopped or deleted: the stream ends, as runc's */
      return 0;
    events_print("stats", id, data);
  }
}

const runproc_command runproc_cmd_events = {"events", "events [--stats] [--interval DUR] ID",
                                            cmd_events};
