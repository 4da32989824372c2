/* config.json's linux object (config-linux.md): namespaces, id maps,
 * resources (the cg_limits subset), cgroupsPath, masked and read-only
 * paths, sysctl, rootfsPropagation; seccomp is in spec_seccomp.c.
 *
 * Ignored: devices, intelRdt, mountLabel, personality, memoryPolicy,
 * netDevices, timeOffsets; in resources everything but cpu.quota,
 * cpu.period, memory.limit, pids.limit and blockIO's throttle lists
 * (devices, memory.swap/reservation, cpu.shares/cpus/mems, hugepageLimits,
 * network, rdma, unified, blockIO weights). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/util.h"
#include "sandbox/sandbox.h"
#include "sandbox/spec_internal.h"

static int namespaces_from_json(json_object *l, sb_spec *s, rr_err *e) {
  json_object *a;
  int r = sj_member(l, "linux", "namespaces", json_type_array, &a, e);
  if (r <= 0)
    return r;
  size_t n = json_object_array_length(a);
  if (n > 64) /* more than SB_NS_COUNT is refused below as a repeat */
    return rr_err_set(e, RR_INVALID_ARGUMENT, "linux.namespaces: %zu entries (at most 64)", n);
  for (size_t i = 0; i < n; i++) {
    sj_path p = sj_index("linux.namespaces", i);
    json_object *v = json_object_array_get_idx(a, i), *t;
    if (sj_check_type(v, p.s, json_type_object, e) < 0)
      return -1;
    if ((r = sj_member(v, p.s, "type", json_type_string, &t, e)) <= 0)
      return r < 0 ? -1 : rr_err_set(e, RR_INVALID_ARGUMENT, "%s.type: required", p.s);
    int type = sb_ns_from_name(json_object_get_string(t));
    if (type < 0)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s.type: unknown namespace %s", p.s,
                        SJ_QUOTE(json_object_get_string(t)));
    sb_namespace *ns = &s->ns[type];
    if (ns->enabled)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s.type: namespace \"%s\" is listed twice", p.s,
                        sb_ns_name(type));
    ns->enabled = true;
    if (sj_string(v, p.s, "path", SB_PATH_MAX, &ns->path, e) < 0)
      return -1;
    if (ns->path && !ns->path[0])
      free(TAKE_PTR(ns->path));
    if (ns->path && ns->path[0] != '/')
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s.path: must be absolute, not %s", p.s,
                        SJ_QUOTE(ns->path));
  }
  return 0;
}

static int id_maps_from_json(json_object *l, const char *key, sb_id_map **ret, size_t *nret,
                             rr_err *e) {
  json_object *a;
  int r = sj_member(l, "linux", key, json_type_array, &a, e);
  if (r <= 0)
    return r;
  sj_path path = sj_key("linux", key);
  size_t n = json_object_array_length(a);
  if (n > SB_MAX_ID_MAPS)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: %zu entries (at most %d)", path.s, n,
                      SB_MAX_ID_MAPS);
  sb_id_map *m = calloc(n ? n : 1, sizeof *m);
  if (!m)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "%s: out of memory", path.s);
  *ret = m;
  for (size_t i = 0; i < n; i++) {
    sj_path p = sj_index(path.s, i);
    json_object *v = json_object_array_get_idx(a, i);
    uint64_t c = 0, h = 0, size = 0;
    if (sj_check_type(v, p.s, json_type_object, e) < 0 ||
        sj_u64(v, p.s, "containerID", UINT32_MAX, &c, e) < 0 ||
        sj_u64(v, p.s, "hostID", UINT32_MAX, &h, e) < 0 ||
        sj_u64(v, p.s, "size", UINT32_MAX, &size, e) < 0)
      return -1;
    if (size == 0)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s.size: must be at least 1", p.s);
    if (c + size > (1ull << 32) || h + size > (1ull << 32))
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: range past id 4294967295", p.s);
    m[i] = (sb_id_map){(uint32_t)c, (uint32_t)h, (uint32_t)size};
    *nret = i + 1;
  }
  return 0;
}

/* One of blockIO's throttle lists into l->io (merged by device). */
static int throttle_from_json(json_object *b, const char *path, const char *key, size_t field,
                              cg_limits *l, rr_err *e) {
  json_object *a;
  int r = sj_member(b, path, key, json_type_array, &a, e);
  if (r <= 0)
    return r;
  sj_path lp = sj_key(path, key);
  size_t n = json_object_array_length(a);
  if (n > CG_MAX_IO)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: %zu entries (at most %d)", lp.s, n, CG_MAX_IO);
  for (size_t i = 0; i < n; i++) {
    sj_path p = sj_index(lp.s, i);
    json_object *v = json_object_array_get_idx(a, i);
    uint64_t major = 0, minor = 0, rate = 0;
    if (sj_check_type(v, p.s, json_type_object, e) < 0 ||
        sj_u64(v, p.s, "major", (1u << 12) - 1, &major, e) < 0 ||
        sj_u64(v, p.s, "minor", (1u << 20) - 1, &minor, e) < 0 ||
        sj_u64(v, p.s, "rate", UINT64_MAX, &rate, e) < 0)
      return -1;
    if (major == 0)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s.major: 0 is no block device", p.s);
    if (rate == 0) /* no limit */
      continue;
    size_t k;
    for (k = 0; k < l->nio; k++)
      if (l->io[k].major == major && l->io[k].minor == minor)
        break;
    if (k == l->nio) {
      if (l->nio == CG_MAX_IO)
        return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: more than %d devices limited", p.s,
                          CG_MAX_IO);
      l->io[l->nio++] = (cg_io_limit){.major = (unsigned)major, .minor = (unsigned)minor};
    }
    uint64_t *slot = (uint64_t *)((char *)&l->io[k] + field);
    if (*slot)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: device %" PRIu64 ":%" PRIu64 " listed twice",
                        p.s, major, minor);
    *slot = rate;
  }
  return 0;
}

int sb_resources_from_json(json_object *res, cg_limits *c, rr_err *e) {
  json_object *v;
  const char *rp = "linux.resources";
  int64_t i;
  uint64_t u;
  int r;
  memset(c, 0, sizeof *c);
  if ((r = sj_member(res, rp, "cpu", json_type_object, &v, e)) < 0)
    return -1;
  if (r) {
    /* quota -1, 0 (or absent) is no limit, as runc reads it */
    if ((r = sj_i64(v, "linux.resources.cpu", "quota", -1, INT64_MAX, &i, e)) < 0)
      return -1;
    if (r && i > 0) {
      c->has_cpu = true;
      c->cpu_quota_us = (uint64_t)i;
    }
    if ((r = sj_u64(v, "linux.resources.cpu", "period", CG_MAX_CPU_PERIOD_US, &u, e)) < 0)
      return -1;
    if (r)
      c->cpu_period_us = u;
  }
  if ((r = sj_member(res, rp, "memory", json_type_object, &v, e)) < 0)
    return -1;
  if (r) {
    /* -1 and 0 are no limit, as runc reads them */
    if ((r = sj_i64(v, "linux.resources.memory", "limit", -1, INT64_MAX, &i, e)) < 0)
      return -1;
    if (r && i > 0) {
      c->has_memory = true;
      c->memory_max = (uint64_t)i;
    }
  }
  if ((r = sj_member(res, rp, "pids", json_type_object, &v, e)) < 0)
    return -1;
  if (r) {
    /* 0 and -1 are no limit, as runc reads them */
    if ((r = sj_i64(v, "linux.resources.pids", "limit", -1, INT64_MAX, &i, e)) < 0)
      return -1;
    if (r && i > 0) {
      c->has_pids = true;
      c->pids_max = (uint64_t)i;
    }
  }
  if ((r = sj_member(res, rp, "blockIO", json_type_object, &v, e)) < 0)
    return -1;
  if (r) {
    const char *bp = "linux.resources.blockIO";
    if (throttle_from_json(v, bp, "throttleReadBpsDevice", offsetof(cg_io_limit, rbps), c, e) < 0 ||
        throttle_from_json(v, bp, "throttleWriteBpsDevice", offsetof(cg_io_limit, wbps), c, e) <
            0 ||
        throttle_from_json(v, bp, "throttleReadIOPSDevice", offsetof(cg_io_limit, riops), c, e) <
            0 ||
        throttle_from_json(v, bp, "throttleWriteIOPSDevice", offsetof(cg_io_limit, wiops), c, e) <
            0)
      return -1;
  }
  if (cg_limits_validate(c, e) < 0)
    return rr_err_wrap(e, "%s", rp);
  return 0;
}

static int resources_from_json(json_object *l, sb_spec *s, rr_err *e) {
  json_object *res;
  int r = sj_member(l, "linux", "resources", json_type_object, &res, e);
  if (r <= 0)
    return r;
  cg_limits *c = calloc(1, sizeof *c);
  if (!c)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "linux.resources: out of memory");
  s->resources = c;
  if (sb_resources_from_json(res, c, e) < 0)
    return -1;
  if (!c->has_cpu) /* a period alone limits nothing */
    c->cpu_period_us = 0;
  if (!cg_limits_any(c))
    free(TAKE_PTR(s->resources));
  return 0;
}

static int paths_from_json(json_object *l, const char *key, char ***ret, size_t *n, rr_err *e) {
  sj_path p = sj_key("linux", key);
  if (sj_strings(l, "linux", key, SB_MAX_PATHS, SB_PATH_MAX, ret, n, e) < 0)
    return -1;
  for (size_t i = 0; i < *n; i++)
    if (sb_path_check((*ret)[i], sj_index(p.s, i).s, e) < 0)
      return -1;
  return 0;
}

static bool sysctl_key_ok(const char *k) {
  if (!k[0] || k[0] == '.' || k[0] == '/' || strstr(k, ".."))
    return false;
  for (; *k; k++)
    if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/", *k))
      return false;
  return true;
}

static int sysctl_from_json(json_object *l, sb_spec *s, rr_err *e) {
  json_object *o;
  int r = sj_member(l, "linux", "sysctl", json_type_object, &o, e);
  if (r <= 0)
    return r;
  size_t n = (size_t)json_object_object_length(o);
  if (n > SB_MAX_PATHS)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "linux.sysctl: %zu entries (at most %d)", n,
                      SB_MAX_PATHS);
  s->sysctl_keys = calloc(n ? n : 1, sizeof(char *));
  s->sysctl_values = calloc(n ? n : 1, sizeof(char *));
  if (!s->sysctl_keys || !s->sysctl_values)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "linux.sysctl: out of memory");
  json_object_object_foreach(o, key, val) {
    sj_path p = sj_key("linux.sysctl", key);
    if (strlen(key) > SB_NAME_MAX || !sysctl_key_ok(key))
      return rr_err_set(e, RR_INVALID_ARGUMENT, "linux.sysctl: %s is no sysctl name",
                        SJ_QUOTE(key));
    size_t i = s->nsysctls;
    if (!(s->sysctl_keys[i] = strdup(key)))
      return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "linux.sysctl: out of memory");
    s->nsysctls++;
    if (!val)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: must be a string, not null", p.s);
    if (sj_string_value(val, p.s, SB_NAME_MAX, &s->sysctl_values[i], e) < 0)
      return -1;
  }
  return 0;
}

int sb_linux_from_json(json_object *l, const char *bundle_dir, sb_spec *s, rr_err *e) {
  json_object *v;
  int r;
  if (namespaces_from_json(l, s, e) < 0 ||
      id_maps_from_json(l, "uidMappings", &s->uid_maps, &s->nuid_maps, e) < 0 ||
      id_maps_from_json(l, "gidMappings", &s->gid_maps, &s->ngid_maps, e) < 0 ||
      resources_from_json(l, s, e) < 0 ||
      sj_string(l, "linux", "cgroupsPath", SB_PATH_MAX, &s->cgroups_path, e) < 0 ||
      paths_from_json(l, "maskedPaths", &s->masked_paths, &s->nmasked_paths, e) < 0 ||
      paths_from_json(l, "readonlyPaths", &s->readonly_paths, &s->nreadonly_paths, e) < 0 ||
      sysctl_from_json(l, s, e) < 0)
    return -1;
  if (s->cgroups_path && !s->cgroups_path[0])
    free(TAKE_PTR(s->cgroups_path));
  if ((r = sj_member(l, "linux", "seccomp", json_type_object, &v, e)) < 0 ||
      (r && sb_seccomp_from_json(v, "linux.seccomp", &s->seccomp, e) < 0))
    return -1;
  if ((r = sj_member(l, "linux", "rootfsPropagation", json_type_string, &v, e)) < 0)
    return -1;
  if (r && json_object_get_string(v)[0]) {
    s->rootfs_propagation = sb_propagation_from_name(json_object_get_string(v));
    if (!s->rootfs_propagation)
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "linux.rootfsPropagation: unknown propagation %s (want private, "
                        "rprivate, slave, rslave, shared, rshared, unbindable or runbindable)",
                        SJ_QUOTE(json_object_get_string(v)));
  }
  (void)bundle_dir;
  return 0;
}

int sb_spec_join_namespaces(sb_spec *s, int procfd, const int *ns_fds, const char *whose,
                            rr_err *e) {
  for (int t = 0; t < SB_NS_COUNT; t++) {
    const char *file = sb_ns_proc_file((sb_ns_type)t);
    char theirs[96], ours[64];
    struct stat a, b;
    if (ns_fds)
      snprintf(theirs, sizeof theirs, "/proc/self/fd/%d", ns_fds[t]);
    else
      snprintf(theirs, sizeof theirs, "/proc/self/fd/%d/ns/%s", procfd, file);
    snprintf(ours, sizeof ours, "/proc/self/ns/%s", file);
    if (stat(ours, &b) < 0 || (ns_fds && ns_fds[t] < 0))
      continue; /* a kind this kernel does not have */
    if (stat(theirs, &a) < 0)
      return rr_err_sys(e, RR_FAILED_PRECONDITION, errno, "cannot look at the %s namespace of %s",
                        sb_ns_name((sb_ns_type)t), whose);
    if (a.st_ino == b.st_ino && a.st_dev == b.st_dev)
      continue;
    s->ns[t].enabled = true;
    if (!(s->ns[t].path = strdup(theirs)))
      return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  }
  return 0;
}
