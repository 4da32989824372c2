/* config.json's mounts[]: options into mount(2) flags, propagation and
 * filesystem data, as mount(8) and runc read them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>

#include "common/util.h"
#include "sandbox/spec_internal.h"

static const struct {
  const char *name;
  bool clear; /* the option clears the flag ("rw", "suid", ...) */
  unsigned long flag;
} mount_flags[] = {
    {"defaults", false, 0},
    {"ro", false, MS_RDONLY},
    {"rw", true, MS_RDONLY},
    {"nosuid", false, MS_NOSUID},
    {"suid", true, MS_NOSUID},
    {"nodev", false, MS_NODEV},
    {"dev", true, MS_NODEV},
    {"noexec", false, MS_NOEXEC},
    {"exec", true, MS_NOEXEC},
    {"sync", false, MS_SYNCHRONOUS},
    {"async", true, MS_SYNCHRONOUS},
    {"dirsync", false, MS_DIRSYNC},
    {"remount", false, MS_REMOUNT},
    {"mand", false, MS_MANDLOCK},
    {"nomand", true, MS_MANDLOCK},
    {"atime", true, MS_NOATIME},
    {"noatime", false, MS_NOATIME},
    {"diratime", true, MS_NODIRATIME},
    {"nodiratime", false, MS_NODIRATIME},
    {"relatime", false, MS_RELATIME},
    {"norelatime", true, MS_RELATIME},
    {"strictatime", false, MS_STRICTATIME},
    {"nostrictatime", true, MS_STRICTATIME},
    {"lazytime", false, MS_LAZYTIME},
    {"nolazytime", true, MS_LAZYTIME},
    {"silent", false, MS_SILENT},
    {"loud", true, MS_SILENT},
    {"bind", false, MS_BIND},
    {"rbind", false, MS_BIND | MS_REC},
};

static const struct {
  const char *name;
  unsigned long flags;
} propagations[] = {
    {"private", MS_PRIVATE},       {"rprivate", MS_PRIVATE | MS_REC},
    {"shared", MS_SHARED},         {"rshared", MS_SHARED | MS_REC},
    {"slave", MS_SLAVE},           {"rslave", MS_SLAVE | MS_REC},
    {"unbindable", MS_UNBINDABLE}, {"runbindable", MS_UNBINDABLE | MS_REC},
};

unsigned long sb_propagation_from_name(const char *name) {
  for (size_t i = 0; i < RR_ARRAY_SIZE(propagations); i++)
    if (strcmp(name, propagations[i].name) == 0)
      return propagations[i].flags;
  return 0;
}

const char *sb_propagation_name(unsigned long flags) {
  for (size_t i = 0; i < RR_ARRAY_SIZE(propagations); i++)
    if (propagations[i].flags == flags)
      return propagations[i].name;
  return NULL;
}

/* Options that only runc's or mount(8)'s user space reads: no meaning here. */
static bool option_ignored(const char *o) {
  return strcmp(o, "tmpcopyup") == 0 || strncmp(o, "x-", 2) == 0;
}

int sb_mount_options_parse(sb_mount *m, const char *path, rr_err *e) {
  size_t datalen = 0;
  for (size_t i = 0; i < m->noptions; i++)
    datalen += strlen(m->options[i]) + 1;
  _cleanup_free_ char *data = calloc(datalen + 1, 1);
  if (!data)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "%s: out of memory", path);
  unsigned long flags = 0, prop = 0;
  size_t n = 0;
  for (size_t i = 0; i < m->noptions; i++) {
    const char *o = m->options[i];
    size_t k;
    if (!o[0] || strchr(o, ','))
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: %s is not one option",
                        sj_index(sj_key(path, "options").s, i).s, SJ_QUOTE(o));
    for (k = 0; k < RR_ARRAY_SIZE(mount_flags); k++)
      if (strcmp(o, mount_flags[k].name) == 0)
        break;
    if (k < RR_ARRAY_SIZE(mount_flags)) {
      if (mount_flags[k].clear)
        flags &= ~mount_flags[k].flag;
      else
        flags |= mount_flags[k].flag;
      continue;
    }
    unsigned long p = sb_propagation_from_name(o);
    if (p) {
      prop = p;
      continue;
    }
    if (option_ignored(o))
      continue;
    n += (size_t)sprintf(data + n, "%s%s", n ? "," : "", o);
  }
  if (m->type && strcmp(m->type, "bind") == 0)
    flags |= MS_BIND;
  free(m->data);
  m->data = n ? TAKE_PTR(data) : NULL;
  m->flags = flags;
  m->propagation = prop;
  m->bind = flags & MS_BIND;
  m->readonly = flags & MS_RDONLY;
  return 0;
}

static int mount_from_json(json_object *v, const char *path, const char *bundle_dir, sb_mount *m,
                           rr_err *e) {
  int r;
  if (sj_check_type(v, path, json_type_object, e) < 0)
    return -1;
  sj_path dp = sj_key(path, "destination");
  if ((r = sj_string(v, path, "destination", SB_PATH_MAX, &m->destination, e)) < 0)
    return -1;
  if (!r)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: required", dp.s);
  if (sb_path_check(m->destination, dp.s, e) < 0)
    return -1;
  if (sj_string(v, path, "type", SB_NAME_MAX, &m->type, e) < 0 ||
      sj_string(v, path, "source", SB_PATH_MAX, &m->source, e) < 0 ||
      sj_strings(v, path, "options", SB_MAX_OPTIONS, SB_PATH_MAX, &m->options, &m->noptions, e) <
          0 ||
      sb_mount_options_parse(m, path, e) < 0)
    return -1;
  if (m->type && !m->type[0])
    free(TAKE_PTR(m->type));
  if (!m->bind && !m->type)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: required for a mount that is no bind",
                      sj_key(path, "type").s);
  if (m->bind) {
    sj_path sp = sj_key(path, "source");
    if (!m->source || !m->source[0])
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: required for a bind mount", sp.s);
    if (m->source[0] != '/' && bundle_dir) {
      char *j;
      if (asprintf(&j, "%s/%s", bundle_dir, m->source) < 0)
        return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "%s: out of memory", sp.s);
      free(m->source);
      m->source = j;
      /* as root.path: what is written back must load again */
      if (strlen(j) > SB_PATH_MAX)
        return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: longer than %d bytes in the bundle", sp.s,
                          SB_PATH_MAX);
    }
    if (m->source[0] != '/')
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: must be absolute (or relative to a bundle)",
                        sp.s);
  }
  return 0;
}

int sb_mounts_from_json(json_object *a, const char *path, const char *bundle_dir, sb_spec *s,
                        rr_err *e) {
  size_t n = json_object_array_length(a);
  if (n > SB_MAX_MOUNTS)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: %zu entries (at most %d)", path, n,
                      SB_MAX_MOUNTS);
  s->mounts = calloc(n ? n : 1, sizeof *s->mounts);
  if (!s->mounts)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "%s: out of memory", path);
  for (size_t i = 0; i < n; i++) {
    s->nmounts = i + 1; /* freed with s even when half filled */
    if (mount_from_json(json_object_array_get_idx(a, i), sj_index(path, i).s, bundle_dir,
                        &s->mounts[i], e) < 0)
      return -1;
  }
  return 0;
}
