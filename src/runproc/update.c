/* runproc update [--resources FILE|-] [--memory N] [--cpu-quota N]
 * [--cpu-period N] [--pids-limit N] ID: new limits written into the
 * container's cgroup (runc's update, as containerd's shim calls it with
 * --resources -). What the engine enforces is taken (cpu quota and period,
 * memory limit, pids limit, blockIO throttles); a field it does not enforce
 * is refused when it asks for something (zero, null and empty values pass,
 * as callers send them for "unset"), an unknown one always; -1 removes a
 * memory or pids limit or the cpu quota. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "runproc.h"
#include "sandbox/cgroup.h"
#include "sandbox/spec.h"

#define UPDATE_MAX_JSON (1u << 20)

/* The fields of linux.resources: those taken, and runc's others. */
typedef struct update_field {
  const char *key;
  bool taken;
} update_field;

static const update_field f_top[] = {
    {"cpu", true},      {"memory", true},   {"pids", true},
    {"blockIO", true},  {"devices", false}, {"hugepageLimits", false},
    {"network", false}, {"rdma", false},    {"unified", false},
};
static const update_field f_cpu[] = {
    {"quota", true},           {"period", true}, {"shares", false}, {"realtimeRuntime", false},
    {"realtimePeriod", false}, {"cpus", false},  {"mems", false},   {"idle", false},
    {"burst", false},
};
static const update_field f_memory[] = {
    {"limit", true},
    {"reservation", false},
    {"swap", false},
    {"kernel", false},
    {"kernelTCP", false},
    {"swappiness", false},
    {"disableOOMKiller", false},
    {"useHierarchy", false},
    {"checkBeforeUpdate", false},
};
static const update_field f_pids[] = {{"limit", true}};
static const update_field f_blkio[] = {
    {"throttleReadBpsDevice", true},
    {"throttleWriteBpsDevice", true},
    {"throttleReadIOPSDevice", true},
    {"throttleWriteIOPSDevice", true},
    {"weight", false},
    {"leafWeight", false},
    {"weightDevice", false},
};

/* What -1 asks to remove (no limit). */
typedef struct update_unlimit {
  bool memory, cpu, pids;
} update_unlimit;

/* null, 0, false, "", [] and {}: what callers send for "not set". */
static bool update_unset(json_object *v) {
  switch (json_object_get_type(v)) {
  case json_type_null:
    return true;
  case json_type_int:
    return json_object_get_int64(v) == 0;
  case json_type_boolean:
    return !json_object_get_boolean(v);
  case json_type_string:
    return json_object_get_string_len(v) == 0;
  case json_type_array:
    return json_object_array_length(v) == 0;
  case json_type_object:
    return json_object_object_length(v) == 0;
  default:
    return false;
  }
}

/* Every key of o known (in fields) and, when not taken, unset. */
static int update_check_keys(json_object *o, const char *path, const update_field *fields, size_t n,
                             update_unlimit *u, rr_err *e) {
  if (!json_object_is_type(o, json_type_object))
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: want an object", path);
  json_object_object_foreach(o, key, v) {
    size_t k = 0;
    while (k < n && strcmp(fields[k].key, key) != 0)
      k++;
    if (k == n)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s.%.64s: unknown field", path, key);
    if (!fields[k].taken && !update_unset(v))
      return rr_err_set(e, RR_UNIMPLEMENTED,
                        "%s.%s: not supported by runproc (it sets cpu quota and period, memory "
                        "limit, pids limit and blockIO throttles)",
                        path, key);
    if (!fields[k].taken || !json_object_is_type(v, json_type_int) || json_object_get_int64(v) >= 0)
      continue;
    /* -1: no limit (memory and pids limit, cpu quota) */
    bool *slot = NULL;
    if (strcmp(key, "limit") == 0)
      slot = strstr(path, ".memory") ? &u->memory : strstr(path, ".pids") ? &u->pids : NULL;
    else if (strcmp(key, "quota") == 0)
      slot = &u->cpu;
    if (!slot || json_object_get_int64(v) != -1)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s.%s: %lld (want -1 for no limit, or more)", path,
                        key, (long long)json_object_get_int64(v));
    *slot = true;
  }
  return 0;
}

static int update_check(json_object *res, update_unlimit *u, rr_err *e) {
  const char *rp = "linux.resources";
  if (update_check_keys(res, rp, f_top, RR_ARRAY_SIZE(f_top), u, e) < 0)
    return -1;
  const struct {
    const char *key, *path;
    const update_field *f;
    size_t n;
  } sub[] = {{"cpu", "linux.resources.cpu", f_cpu, RR_ARRAY_SIZE(f_cpu)},
             {"memory", "linux.resources.memory", f_memory, RR_ARRAY_SIZE(f_memory)},
             {"pids", "linux.resources.pids", f_pids, RR_ARRAY_SIZE(f_pids)},
             {"blockIO", "linux.resources.blockIO", f_blkio, RR_ARRAY_SIZE(f_blkio)}};
  for (size_t i = 0; i < RR_ARRAY_SIZE(sub); i++) {
    json_object *v;
    if (json_object_object_get_ex(res, sub[i].key, &v) && !json_object_is_type(v, json_type_null) &&
        update_check_keys(v, sub[i].path, sub[i].f, sub[i].n, u, e) < 0)
      return -1;
  }
  return 0;
}

/* FILE, or stdin for "-", read whole (bounded) and parsed strictly. */
static int update_read_resources(const char *file, cg_limits *ret, update_unlimit *u, rr_err *e) {
  _cleanup_close_ int fd = strcmp(file, "-") == 0 ? dup(0) : open(file, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return rr_err_sys(e, RR_NOT_FOUND, errno, "--resources \"%s\"", file);
  _cleanup_free_ char *buf = malloc(UPDATE_MAX_JSON + 1);
  if (!buf)
    return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, ENOMEM, "--resources");
  size_t len = 0;
  for (;;) {
    ssize_t n = rr_read(fd, buf + len, UPDATE_MAX_JSON + 1 - len);
    if (n < 0)
      return rr_err_sys(e, RR_INTERNAL, errno, "cannot read --resources \"%s\"", file);
    if (n == 0)
      break;
    len += (size_t)n;
    if (len > UPDATE_MAX_JSON)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "--resources: more than %u bytes", UPDATE_MAX_JSON);
  }
  json_tokener *tok = json_tokener_new();
  if (!tok)
    return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, ENOMEM, "--resources");
  json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
  json_object *o = json_tokener_parse_ex(tok, buf, (int)len);
  bool complete = o && json_tokener_get_error(tok) == json_tokener_success &&
                  (size_t)json_tokener_get_parse_end(tok) +
                          strspn(buf + json_tokener_get_parse_end(tok), " \t\r\n") ==
                      len;
  json_tokener_free(tok);
  int rc = -1;
  if (!complete)
    rr_err_set(e, RR_INVALID_ARGUMENT, "--resources \"%s\": not a JSON object", file);
  else if (update_check(o, u, e) == 0 && sb_resources_from_json(o, ret, e) == 0)
    rc = 0;
  json_object_put(o);
  return rc;
}

/* A count or size: digits, for sizes with a k/m/g/t suffix (runc's
 * --memory 64m); 1 for -1 (no limit), 0 for a number in *ret. */
static int update_number(const char *flag, const char *v, bool size, uint64_t *ret, rr_err *e) {
  if (strcmp(v, "-1") == 0)
    return 1;
  char *end;
  errno = 0;
  unsigned long long n = strtoull(v, &end, 10);
  uint64_t mult = 1;
  const char *u = size && end != v && *end ? strchr("kmgt", tolower((unsigned char)*end)) : NULL;
  if (u) {
    for (const char *p = "kmgt"; p <= u; p++)
      mult *= 1024;
    end += tolower((unsigned char)end[1]) == 'b' ? 2 : 1;
  }
  if (errno || end == v || *end || n > UINT64_MAX / mult || v[0] == '-')
    return rr_err_set(e, RR_INVALID_ARGUMENT, "invalid %s \"%s\" (want a number%s)", flag, v,
                      size ? " of bytes, k/m/g/t suffixes allowed" : "");
  *ret = n * mult;
  return 0;
}

/* Whether arg is option name ("--name", "-name", "--name=V"). */
static bool update_is_opt(const char *arg, const char *name) {
  arg += arg[1] == '-' ? 2 : 1;
  size_t n = strlen(name);
  return strncmp(arg, name, n) == 0 && (!arg[n] || arg[n] == '=');
}

typedef struct update_opts {
  const char *id, *resources;
  const char *memory, *cpu_quota, *cpu_period, *pids_limit;
} update_opts;

/* runc's flags that set what the engine does not. */
static const char *const update_unsupported[] = {
    "blkio-weight",       "cpu-share",   "cpu-rt-period",   "cpu-rt-runtime",
    "cpuset-cpus",        "cpuset-mems", "kernel-memory",   "kernel-memory-tcp",
    "memory-reservation", "memory-swap", "l3-cache-schema", "mem-bw-schema",
};

static int update_parse(runproc_ctx *ctx, int argc, char **argv, update_opts *o) {
  memset(o, 0, sizeof *o);
  for (int i = 1; i < argc; i++) {
    const char *v = NULL, *a = argv[i];
    int r;
    if ((r = runproc_opt(argc, argv, &i, "resources", 'r', &v)))
      o->resources = v;
    else if ((r = runproc_opt(argc, argv, &i, "memory", 0, &v)))
      o->memory = v;
    else if ((r = runproc_opt(argc, argv, &i, "cpu-quota", 0, &v)))
      o->cpu_quota = v;
    else if ((r = runproc_opt(argc, argv, &i, "cpu-period", 0, &v)))
      o->cpu_period = v;
    else if ((r = runproc_opt(argc, argv, &i, "pids-limit", 0, &v)))
      o->pids_limit = v;
    else if (a[0] == '-' && a[1]) {
      for (size_t k = 0; k < RR_ARRAY_SIZE(update_unsupported); k++)
        if (update_is_opt(a, update_unsupported[k]))
          return runproc_fail(ctx,
                              "%s: not supported by runproc (it sets --memory, --cpu-quota, "
                              "--cpu-period, --pids-limit and --resources' blockIO throttles)",
                              a);
      return runproc_fail(ctx, "unknown option \"%s\"", a);
    } else if (runproc_arg_id(ctx, a, &o->id))
      return 1;
    if (r < 0)
      return runproc_fail(ctx, "option \"%s\" needs a value", a);
  }
  if (!o->id)
    return runproc_fail(ctx, "usage: runproc update [--resources FILE|-] [--memory N] "
                             "[--cpu-quota N] [--cpu-period N] [--pids-limit N] ID");
  return -1;
}

/* One flag over what --resources said: a limit (n > 0), or no limit (-1). */
static int update_flag(const char *flag, const char *v, bool size, bool *has, uint64_t *value,
                       bool *unlimit, rr_err *e) {
  uint64_t n = 0;
  int r = update_number(flag, v, size, &n, e);
  if (r < 0)
    return -1;
  *unlimit = r == 1;
  *has = r == 0 && n > 0;
  *value = *has ? n : 0;
  return 0;
}

/* The new limits: --resources, then the flags over it. */
static int update_limits(const update_opts *o, cg_limits *l, update_unlimit *u, rr_err *e) {
  memset(l, 0, sizeof *l);
  memset(u, 0, sizeof *u);
  if (o->resources && update_read_resources(o->resources, l, u, e) < 0)
    return -1;
  if (o->memory &&
      update_flag("--memory", o->memory, true, &l->has_memory, &l->memory_max, &u->memory, e) < 0)
    return -1;
  if (o->cpu_quota && update_flag("--cpu-quota", o->cpu_quota, false, &l->has_cpu, &l->cpu_quota_us,
                                  &u->cpu, e) < 0)
    return -1;
  if (o->pids_limit && update_flag("--pids-limit", o->pids_limit, false, &l->has_pids, &l->pids_max,
                                   &u->pids, e) < 0)
    return -1;
  if (o->cpu_period) {
    bool has, none;
    if (update_flag("--cpu-period", o->cpu_period, false, &has, &l->cpu_period_us, &none, e) < 0)
      return -1;
    if (none || !has)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "invalid --cpu-period \"%s\" (want a number)",
                        o->cpu_period);
  }
  return 0;
}

/* A period alone keeps the quota; a quota alone keeps the period. */
static int update_merge_cpu(cg_job *cg, cg_limits *l, const update_unlimit *u, rr_err *e) {
  if (u->cpu) /* no quota: the period stays as it is */
    l->cpu_period_us = 0;
  if (!l->has_cpu && !l->cpu_period_us)
    return 0;
  cg_limits cur;
  if (cg_job_limits_read(cg, &cur, e) < 0)
    return -1;
  if (!l->has_cpu) {
    if (!cur.has_cpu)
      return rr_err_set(e, RR_FAILED_PRECONDITION,
                        "a cpu period without a quota limits nothing (the container has no "
                        "cpu quota: give one)");
    l->has_cpu = true;
    l->cpu_quota_us = cur.cpu_quota_us;
  }
  if (!l->cpu_period_us)
    l->cpu_period_us = cur.cpu_period_us;
  return 0;
}

static int cmd_update(runproc_ctx *ctx, int argc, char **argv) {
  update_opts o;
  int rc = update_parse(ctx, argc, argv, &o);
  if (rc >= 0)
    return rc;
  rr_err e = {0};
  cg_limits l;
  update_unlimit u;
  if (update_limits(&o, &l, &u, &e) < 0)
    return runproc_fail_err(ctx, &e);
  runproc_container c;
  if (runproc_container_load(ctx, o.id, &c, &e) < 0)
    return runproc_fail_err(ctx, &e);
  cg_job *cg = NULL;
  if (runproc_container_status(&c) == RUNPROC_STOPPED)
    rc = runproc_fail(ctx, "container \"%s\" is stopped", c.id);
  else if (runproc_container_cgroup(&c, &cg, &e) < 0 || update_merge_cpu(cg, &l, &u, &e) < 0 ||
           cg_job_unlimit(cg, u.memory, u.cpu, u.pids, &e) < 0 || cg_job_update(cg, &l, &e) < 0)
    rc = runproc_fail_err(ctx, &e);
  else
    rc = 0;
  if (cg)
    cg_job_free(cg);
  runproc_container_free(&c);
  return rc;
}

const runproc_command runproc_cmd_update = {
    "update",
    "update [--resources FILE|-] [--memory N] [--cpu-quota N] [--cpu-period N] "
    "[--pids-limit N] ID",
    cmd_update};
