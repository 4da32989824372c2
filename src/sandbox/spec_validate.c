/* Cross-field checks of a config, as runc's validator makes them: what
 * needs which namespace, ids inside the maps, rlimits the kernel would
 * refuse. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "sandbox/spec_internal.h"

static bool id_mapped(const sb_id_map *m, size_t n, uint32_t id) {
  for (size_t i = 0; i < n; i++)
    if (id >= m[i].container_id && (uint64_t)id < (uint64_t)m[i].container_id + m[i].size)
      return true;
  return false;
}

static int maps_check(const sb_id_map *m, size_t n, const char *path, rr_err *e) {
  for (size_t i = 0; i < n; i++)
    for (size_t k = 0; k < i; k++) {
      uint64_t a0 = m[i].container_id, a1 = a0 + m[i].size;
      uint64_t b0 = m[k].container_id, b1 = b0 + m[k].size;
      uint64_t h0 = m[i].host_id, h1 = h0 + m[i].size;
      uint64_t g0 = m[k].host_id, g1 = g0 + m[k].size;
      if ((a0 < b1 && b0 < a1) || (h0 < g1 && g0 < h1))
        return rr_err_set(e, RR_INVALID_ARGUMENT, "%s[%zu]: overlaps %s[%zu]", path, i, path, k);
    }
  return 0;
}

static int ids_check(const sb_spec *s, rr_err *e) {
  const sb_namespace *user = &s->ns[SB_NS_USER];
  bool maps = s->nuid_maps || s->ngid_maps;
  if (maps && !user->enabled)
    return rr_err_set(e, RR_INVALID_ARGUMENT,
                      "linux.uidMappings: id maps need a user namespace (linux.namespaces has no "
                      "\"user\")");
  if (maps && user->path)
    return rr_err_set(e, RR_INVALID_ARGUMENT,
                      "linux.uidMappings: a joined user namespace (path %s) has its maps already",
                      SJ_QUOTE(user->path));
  if (user->enabled && !user->path && (!s->nuid_maps || !s->ngid_maps))
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: required with a new user namespace",
                      s->nuid_maps ? "linux.gidMappings" : "linux.uidMappings");
  if (maps_check(s->uid_maps, s->nuid_maps, "linux.uidMappings", e) < 0 ||
      maps_check(s->gid_maps, s->ngid_maps, "linux.gidMappings", e) < 0)
    return -1;
  if (!s->nuid_maps)
    return 0;
  const sb_process *p = &s->process;
  if (!id_mapped(s->uid_maps, s->nuid_maps, p->uid))
    return rr_err_set(e, RR_INVALID_ARGUMENT,
                      "process.user.uid: %" PRIu32 " is not mapped by linux.uidMappings", p->uid);
  if (!id_mapped(s->gid_maps, s->ngid_maps, p->gid))
    return rr_err_set(e, RR_INVALID_ARGUMENT,
                      "process.user.gid: %" PRIu32 " is not mapped by linux.gidMappings", p->gid);
  for (size_t i = 0; i < p->ngids; i++)
    if (!id_mapped(s->gid_maps, s->ngid_maps, p->additional_gids[i]))
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "process.user.additionalGids[%zu]: %" PRIu32
                        " is not mapped by linux.gidMappings",
                        i, p->additional_gids[i]);
  return 0;
}

/* The namespace a sysctl belongs to (runc's list); -1: not namespaced. */
static int sysctl_namespace(const char *k) {
  static const char *const ipc[] = {"kernel.msgmax", "kernel.msgmnb",         "kernel.msgmni",
                                    "kernel.sem",    "kernel.shmall",         "kernel.shmmax",
                                    "kernel.shmmni", "kernel.shm_rmid_forced"};
  for (size_t i = 0; i < sizeof ipc / sizeof *ipc; i++)
    if (strcmp(k, ipc[i]) == 0)
      return SB_NS_IPC;
  if (strncmp(k, "fs.mqueue.", 10) == 0)
    return SB_NS_IPC;
  if (strncmp(k, "net.", 4) == 0)
    return SB_NS_NET;
  if (strcmp(k, "kernel.hostname") == 0 || strcmp(k, "kernel.domainname") == 0)
    return SB_NS_UTS;
  return -1;
}

static int sysctls_check(const sb_spec *s, rr_err *e) {
  for (size_t i = 0; i < s->nsysctls; i++) {
    /* "net/ipv4/ip_forward" is the same as "net.ipv4.ip_forward" */
    char k[SB_NAME_MAX + 1];
    snprintf(k, sizeof k, "%s", s->sysctl_keys[i]);
    for (char *c = k; *c; c++)
      if (*c == '/')
        *c = '.';
    int ns = sysctl_namespace(k);
    if (ns < 0)
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "linux.sysctl: %s is not namespaced: it would change the host",
                        SJ_QUOTE(s->sysctl_keys[i]));
    if (!s->ns[ns].enabled || s->ns[ns].path)
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "linux.sysctl: %s needs a new \"%s\" namespace (it would change the "
                        "host's)",
                        SJ_QUOTE(s->sysctl_keys[i]), sb_ns_name(ns));
  }
  return 0;
}

int sb_spec_validate(const sb_spec *s, rr_err *e) {
  const sb_process *p = &s->process;
  if (!p->nargs || !p->args[0][0])
    return rr_err_set(e, RR_INVALID_ARGUMENT, "process.args: required (at least the command)");
  if (!p->cwd)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "process.cwd: required");
  if (sb_path_check(p->cwd, "process.cwd", e) < 0)
    return -1;
  if (ids_check(s, e) < 0)
    return -1;
  if (s->hostname && !s->ns[SB_NS_UTS].enabled)
    return rr_err_set(e, RR_INVALID_ARGUMENT,
                      "hostname: needs a uts namespace (linux.namespaces has no \"uts\")");
  if (s->domainname && !s->ns[SB_NS_UTS].enabled)
    return rr_err_set(e, RR_INVALID_ARGUMENT,
                      "domainname: needs a uts namespace (linux.namespaces has no \"uts\")");
  const char *needs_mount = s->root_path         ? "root.path"
                            : s->nmounts         ? "mounts"
                            : s->nmasked_paths   ? "linux.maskedPaths"
                            : s->nreadonly_paths ? "linux.readonlyPaths"
                                                 : NULL;
  if (needs_mount && !s->ns[SB_NS_MOUNT].enabled)
    return rr_err_set(e, RR_INVALID_ARGUMENT,
                      "%s: needs a mount namespace (linux.namespaces has no \"mount\")",
                      needs_mount);
  for (size_t i = 0; i < p->nrlimits; i++)
    if (p->rlimits[i].soft > p->rlimits[i].hard)
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "process.rlimits[%zu]: soft %" PRIu64 " is above hard %" PRIu64, i,
                        p->rlimits[i].soft, p->rlimits[i].hard);
  /* ambient capabilities outside permitted and inheritable are let through:
   * `runc spec` writes them so (no inheritable set) and runc skips them */
  if (sysctls_check(s, e) < 0)
    return -1;
  if (s->resources && cg_limits_validate(s->resources, e) < 0)
    return rr_err_wrap(e, "linux.resources");
  for (size_t i = 0; i < s->nmounts; i++)
    if (s->mounts[i].bind && (!s->mounts[i].source || s->mounts[i].source[0] != '/'))
      return rr_err_set(e, RR_INVALID_ARGUMENT, "mounts[%zu].source: a bind needs an absolute path",
                        i);
  return 0;
}
