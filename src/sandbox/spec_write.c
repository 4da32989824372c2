/* An sb_spec back to config.json form: sb_spec_from_json of the result
 * gives the same sb_spec (fields at their zero value are left out). */
#include <stdlib.h>
#include <string.h>

#include "sandbox/spec_internal.h"

static json_object *strings_json(char *const *v, size_t n) {
  json_object *a = json_object_new_array_ext((int)n);
  for (size_t i = 0; i < n; i++)
    json_object_array_add(a, json_object_new_string(v[i]));
  return a;
}

static json_object *caps_json(uint64_t set) {
  json_object *a = json_object_new_array();
  for (int c = 0; c < 64; c++)
    if ((set & (1ull << c)) && sb_cap_name(c))
      json_object_array_add(a, json_object_new_string(sb_cap_name(c)));
  return a;
}

static json_object *process_json(const sb_process *p) {
  json_object *o = json_object_new_object(), *u = json_object_new_object();
  if (p->terminal)
    json_object_object_add(o, "terminal", json_object_new_boolean(1));
  if (p->has_console_size) {
    json_object *c = json_object_new_object();
    json_object_object_add(c, "height", json_object_new_int64(p->console_height));
    json_object_object_add(c, "width", json_object_new_int64(p->console_width));
    json_object_object_add(o, "consoleSize", c);
  }
  json_object_object_add(u, "uid", json_object_new_int64(p->uid));
  json_object_object_add(u, "gid", json_object_new_int64(p->gid));
  if (p->has_umask)
    json_object_object_add(u, "umask", json_object_new_int64(p->umask));
  if (p->ngids) {
    json_object *g = json_object_new_array_ext((int)p->ngids);
    for (size_t i = 0; i < p->ngids; i++)
      json_object_array_add(g, json_object_new_int64(p->additional_gids[i]));
    json_object_object_add(u, "additionalGids", g);
  }
  json_object_object_add(o, "user", u);
  json_object_object_add(o, "args", strings_json(p->args, p->nargs));
  if (p->nenv)
    json_object_object_add(o, "env", strings_json(p->env, p->nenv));
  if (p->cwd)
    json_object_object_add(o, "cwd", json_object_new_string(p->cwd));
  if (p->has_caps) {
    json_object *c = json_object_new_object();
    json_object_object_add(c, "bounding", caps_json(p->caps.bounding));
    json_object_object_add(c, "effective", caps_json(p->caps.effective));
    json_object_object_add(c, "inheritable", caps_json(p->caps.inheritable));
    json_object_object_add(c, "permitted", caps_json(p->caps.permitted));
    json_object_object_add(c, "ambient", caps_json(p->caps.ambient));
    json_object_object_add(o, "capabilities", c);
  }
  if (p->nrlimits) {
    json_object *a = json_object_new_array_ext((int)p->nrlimits);
    for (size_t i = 0; i < p->nrlimits; i++) {
      json_object *r = json_object_new_object();
      json_object_object_add(r, "type",
                             json_object_new_string(sb_rlimit_name(p->rlimits[i].resource)));
      json_object_object_add(r, "hard", json_object_new_uint64(p->rlimits[i].hard));
      json_object_object_add(r, "soft", json_object_new_uint64(p->rlimits[i].soft));
      json_object_array_add(a, r);
    }
    json_object_object_add(o, "rlimits", a);
  }
  if (p->no_new_privileges)
    json_object_object_add(o, "noNewPrivileges", json_object_new_boolean(1));
  if (p->has_oom_score_adj)
    json_object_object_add(o, "oomScoreAdj", json_object_new_int(p->oom_score_adj));
  return o;
}

static json_object *mount_json(const sb_mount *m) {
  json_object *o = json_object_new_object();
  json_object_object_add(o, "destination", json_object_new_string(m->destination));
  if (m->type)
    json_object_object_add(o, "type", json_object_new_string(m->type));
  if (m->source)
    json_object_object_add(o, "source", json_object_new_string(m->source));
  if (m->noptions)
    json_object_object_add(o, "options", strings_json(m->options, m->noptions));
  return o;
}

static json_object *id_maps_json(const sb_id_map *m, size_t n) {
  json_object *a = json_object_new_array_ext((int)n);
  for (size_t i = 0; i < n; i++) {
    json_object *o = json_object_new_object();
    json_object_object_add(o, "containerID", json_object_new_int64(m[i].container_id));
    json_object_object_add(o, "hostID", json_object_new_int64(m[i].host_id));
    json_object_object_add(o, "size", json_object_new_int64(m[i].size));
    json_object_array_add(a, o);
  }
  return a;
}

static void throttle_json(json_object *b, const cg_limits *l, const char *key, size_t field) {
  json_object *a = NULL;
  for (size_t i = 0; i < l->nio; i++) {
    uint64_t rate = *(const uint64_t *)((const char *)&l->io[i] + field);
    if (!rate)
      continue;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "major", json_object_new_int64(l->io[i].major));
    json_object_object_add(o, "minor", json_object_new_int64(l->io[i].minor));
    json_object_object_add(o, "rate", json_object_new_uint64(rate));
    if (!a)
      a = json_object_new_array();
    json_object_array_add(a, o);
  }
  if (a)
    json_object_object_add(b, key, a);
}

static json_object *resources_json(const cg_limits *l) {
  json_object *o = json_object_new_object();
  if (l->has_cpu) {
    json_object *c = json_object_new_object();
    json_object_object_add(c, "quota", json_object_new_int64((int64_t)l->cpu_quota_us));
    if (l->cpu_period_us)
      json_object_object_add(c, "period", json_object_new_uint64(l->cpu_period_us));
    json_object_object_add(o, "cpu", c);
  }
  if (l->has_memory) {
    json_object *m = json_object_new_object();
    json_object_object_add(m, "limit", json_object_new_int64((int64_t)l->memory_max));
    json_object_object_add(o, "memory", m);
  }
  if (l->has_pids) {
    json_object *p = json_object_new_object();
    json_object_object_add(p, "limit", json_object_new_int64((int64_t)l->pids_max));
    json_object_object_add(o, "pids", p);
  }
  if (l->nio) {
    json_object *b = json_object_new_object();
    throttle_json(b, l, "throttleReadBpsDevice", offsetof(cg_io_limit, rbps));
    throttle_json(b, l, "throttleWriteBpsDevice", offsetof(cg_io_limit, wbps));
    throttle_json(b, l, "throttleReadIOPSDevice", offsetof(cg_io_limit, riops));
    throttle_json(b, l, "throttleWriteIOPSDevice", offsetof(cg_io_limit, wiops));
    json_object_object_add(o, "blockIO", b);
  }
  return o;
}

static json_object *linux_json(const sb_spec *s) {
  json_object *l = json_object_new_object(), *ns = json_object_new_array();
  for (int i = 0; i < SB_NS_COUNT; i++) {
    if (!s->ns[i].enabled)
      continue;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "type", json_object_new_string(sb_ns_name((sb_ns_type)i)));
    if (s->ns[i].path)
      json_object_object_add(o, "path", json_object_new_string(s->ns[i].path));
    json_object_array_add(ns, o);
  }
  json_object_object_add(l, "namespaces", ns);
  if (s->nuid_maps)
    json_object_object_add(l, "uidMappings", id_maps_json(s->uid_maps, s->nuid_maps));
  if (s->ngid_maps)
    json_object_object_add(l, "gidMappings", id_maps_json(s->gid_maps, s->ngid_maps));
  if (s->resources)
    json_object_object_add(l, "resources", resources_json(s->resources));
  if (s->cgroups_path)
    json_object_object_add(l, "cgroupsPath", json_object_new_string(s->cgroups_path));
  if (s->seccomp)
    json_object_object_add(l, "seccomp", sb_seccomp_to_json(s->seccomp));
  if (s->nmasked_paths)
    json_object_object_add(l, "maskedPaths", strings_json(s->masked_paths, s->nmasked_paths));
  if (s->nreadonly_paths)
    json_object_object_add(l, "readonlyPaths", strings_json(s->readonly_paths, s->nreadonly_paths));
  if (s->nsysctls) {
    json_object *o = json_object_new_object();
    for (size_t i = 0; i < s->nsysctls; i++)
      json_object_object_add(o, s->sysctl_keys[i], json_object_new_string(s->sysctl_values[i]));
    json_object_object_add(l, "sysctl", o);
  }
  if (s->rootfs_propagation && sb_propagation_name(s->rootfs_propagation))
    json_object_object_add(l, "rootfsPropagation",
                           json_object_new_string(sb_propagation_name(s->rootfs_propagation)));
  return l;
}

json_object *sb_spec_to_json(const sb_spec *s) {
  json_object *o = json_object_new_object();
  if (s->oci_version)
    json_object_object_add(o, "ociVersion", json_object_new_string(s->oci_version));
  json_object_object_add(o, "process", process_json(&s->process));
  if (s->root_path) {
    json_object *r = json_object_new_object();
    json_object_object_add(r, "path", json_object_new_string(s->root_path));
    if (s->root_readonly)
      json_object_object_add(r, "readonly", json_object_new_boolean(1));
    json_object_object_add(o, "root", r);
  }
  if (s->hostname)
    json_object_object_add(o, "hostname", json_object_new_string(s->hostname));
  if (s->domainname)
    json_object_object_add(o, "domainname", json_object_new_string(s->domainname));
  json_object *m = json_object_new_array_ext((int)s->nmounts);
  for (size_t i = 0; i < s->nmounts; i++)
    json_object_array_add(m, mount_json(&s->mounts[i]));
  json_object_object_add(o, "mounts", m);
  json_object_object_add(o, "linux", linux_json(s));
  return o;
}
