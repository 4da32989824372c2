/* The OCI config the engine runs: allocation, the name tables, parsing of
 * the top level and of process, loading a bundle's config.json.
 *
 * Ignored (accepted with any content, as runc ignores what it does not
 * implement): annotations, hooks, solaris, windows, vm, zos, domainname's
 * absence; in process: commandLine, apparmorProfile,
 * selinuxLabel, ioPriority, scheduler, execCPUAffinity, user.username; in
 * root: nothing else exists. linux.* is in spec_linux.c. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "sandbox/spec_internal.h"

#define SB_CONFIG_MAX_BYTES (16u << 20)
#define SB_JSON_DEPTH 64

static const char *const ns_names[SB_NS_COUNT] = {
    [SB_NS_PID] = "pid",   [SB_NS_MOUNT] = "mount",   [SB_NS_IPC] = "ipc",
    [SB_NS_UTS] = "uts",   [SB_NS_CGROUP] = "cgroup", [SB_NS_NET] = "network",
    [SB_NS_USER] = "user", [SB_NS_TIME] = "time",
};

const char *sb_ns_name(sb_ns_type t) { return (unsigned)t < SB_NS_COUNT ? ns_names[t] : NULL; }

int sb_ns_from_name(const char *name) {
  for (int i = 0; i < SB_NS_COUNT; i++)
    if (strcmp(name, ns_names[i]) == 0)
      return i;
  return -1;
}

/* Numbers from linux/capability.h; a table so that names parse the same
 * whatever libcap or kernel this runs on (the spawn side skips caps the
 * running kernel lacks). */
static const char *const cap_names[] = {
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
};

int sb_cap_from_name(const char *name) {
  for (size_t i = 0; i < RR_ARRAY_SIZE(cap_names); i++)
    if (strcmp(name, cap_names[i]) == 0)
      return (int)i;
  return -1;
}

const char *sb_cap_name(int cap) {
  return cap >= 0 && (size_t)cap < RR_ARRAY_SIZE(cap_names) ? cap_names[cap] : NULL;
}

static const struct {
  const char *name;
  int resource;
} rlimit_names[] = {
    {"RLIMIT_AS", RLIMIT_AS},
    {"RLIMIT_CORE", RLIMIT_CORE},
    {"RLIMIT_CPU", RLIMIT_CPU},
    {"RLIMIT_DATA", RLIMIT_DATA},
    {"RLIMIT_FSIZE", RLIMIT_FSIZE},
    {"RLIMIT_LOCKS", RLIMIT_LOCKS},
    {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK},
    {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE},
    {"RLIMIT_NICE", RLIMIT_NICE},
    {"RLIMIT_NOFILE", RLIMIT_NOFILE},
    {"RLIMIT_NPROC", RLIMIT_NPROC},
    {"RLIMIT_RSS", RLIMIT_RSS},
    {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},
    {"RLIMIT_RTTIME", RLIMIT_RTTIME},
    {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
    {"RLIMIT_STACK", RLIMIT_STACK},
};

int sb_rlimit_from_name(const char *name) {
  for (size_t i = 0; i < RR_ARRAY_SIZE(rlimit_names); i++)
    if (strcmp(name, rlimit_names[i].name) == 0)
      return rlimit_names[i].resource;
  return -1;
}

const char *sb_rlimit_name(int resource) {
  for (size_t i = 0; i < RR_ARRAY_SIZE(rlimit_names); i++)
    if (rlimit_names[i].resource == resource)
      return rlimit_names[i].name;
  return NULL;
}

sb_spec *sb_spec_new(void) { return calloc(1, sizeof(sb_spec)); }

void sb_mount_clear(sb_mount *m) {
  free(m->destination);
  free(m->type);
  free(m->source);
  sj_strings_free(m->options, m->noptions);
  free(m->data);
  memset(m, 0, sizeof *m);
}

void sb_spec_free(sb_spec *s) {
  if (!s)
    return;
  free(s->oci_version);
  sj_strings_free(s->process.args, s->process.nargs);
  sj_strings_free(s->process.env, s->process.nenv);
  free(s->process.cwd);
  free(s->root_path);
  free(s->hostname);
  free(s->domainname);
  for (size_t i = 0; i < s->nmounts; i++)
    sb_mount_clear(&s->mounts[i]);
  free(s->mounts);
  for (int i = 0; i < SB_NS_COUNT; i++)
    free(s->ns[i].path);
  free(s->uid_maps);
  free(s->gid_maps);
  free(s->resources);
  free(s->cgroups_path);
  sb_seccomp_free(s->seccomp);
  sj_strings_free(s->masked_paths, s->nmasked_paths);
  sj_strings_free(s->readonly_paths, s->nreadonly_paths);
  sj_strings_free(s->sysctl_keys, s->nsysctls);
  sj_strings_free(s->sysctl_values, s->nsysctls);
  free(s);
}

void sb_spec_host_root(sb_spec *s) {
  free(TAKE_PTR(s->root_path));
  s->root_readonly = false;
  s->has_root_fd = false;
  s->ns[SB_NS_MOUNT].enabled = false;
  free(TAKE_PTR(s->ns[SB_NS_MOUNT].path));
  for (size_t i = 0; i < s->nmounts; i++)
    sb_mount_clear(&s->mounts[i]);
  s->nmounts = 0;
  sj_strings_free(TAKE_PTR(s->masked_paths), s->nmasked_paths);
  sj_strings_free(TAKE_PTR(s->readonly_paths), s->nreadonly_paths);
  s->nmasked_paths = s->nreadonly_paths = 0;
  s->rootfs_propagation = 0;
}

/* ---- process ---- */

static int caps_set_from_json(json_object *c, const char *path, const char *key, uint64_t *ret,
                              rr_err *e) {
  json_object *a;
  int r = sj_member(c, path, key, json_type_array, &a, e);
  if (r <= 0)
    return r;
  sj_path p = sj_key(path, key);
  size_t n = json_object_array_length(a);
  if (n > 256)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: %zu entries (at most 256)", p.s, n);
  *ret = 0;
  for (size_t i = 0; i < n; i++) {
    sj_path pi = sj_index(p.s, i);
    json_object *v = json_object_array_get_idx(a, i);
    if (sj_check_type(v, pi.s, json_type_string, e) < 0)
      return -1;
    int cap = sb_cap_from_name(json_object_get_string(v));
    if (cap < 0)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: unknown capability %s", pi.s,
                        SJ_QUOTE(json_object_get_string(v)));
    *ret |= 1ull << cap;
  }
  return 1;
}

static int rlimits_from_json(json_object *o, sb_process *p, rr_err *e) {
  json_object *a;
  int r = sj_member(o, "process", "rlimits", json_type_array, &a, e);
  if (r <= 0)
    return r;
  size_t n = json_object_array_length(a);
  if (n > SB_MAX_RLIMITS)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "process.rlimits: %zu entries (at most %d)", n,
                      SB_MAX_RLIMITS);
  for (size_t i = 0; i < n; i++) {
    sj_path pi = sj_index("process.rlimits", i);
    json_object *v = json_object_array_get_idx(a, i), *t;
    if (sj_check_type(v, pi.s, json_type_object, e) < 0)
      return -1;
    if ((r = sj_member(v, pi.s, "type", json_type_string, &t, e)) <= 0)
      return r < 0 ? -1 : rr_err_set(e, RR_INVALID_ARGUMENT, "%s.type: required", pi.s);
    sb_rlimit *rl = &p->rlimits[i];
    rl->resource = sb_rlimit_from_name(json_object_get_string(t));
    if (rl->resource < 0)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s.type: unknown rlimit %s", pi.s,
                        SJ_QUOTE(json_object_get_string(t)));
    for (size_t k = 0; k < i; k++)
      if (p->rlimits[k].resource == rl->resource)
        return rr_err_set(e, RR_INVALID_ARGUMENT, "%s.type: %s is already set by [%zu]", pi.s,
                          json_object_get_string(t), k);
    if (sj_u64(v, pi.s, "soft", UINT64_MAX, &rl->soft, e) < 0 ||
        sj_u64(v, pi.s, "hard", UINT64_MAX, &rl->hard, e) < 0)
      return -1;
    p->nrlimits = i + 1;
  }
  return 0;
}

static int user_from_json(json_object *o, sb_process *p, rr_err *e) {
  json_object *u, *a;
  int r = sj_member(o, "process", "user", json_type_object, &u, e);
  if (r <= 0)
    return r;
  uint64_t v;
  /* uid/gid absent are 0, as runc reads them */
  if ((r = sj_u64(u, "process.user", "uid", UINT32_MAX, &v, e)) < 0)
    return -1;
  p->uid = r ? (uint32_t)v : 0;
  if ((r = sj_u64(u, "process.user", "gid", UINT32_MAX, &v, e)) < 0)
    return -1;
  p->gid = r ? (uint32_t)v : 0;
  if ((r = sj_u64(u, "process.user", "umask", 0777, &v, e)) < 0)
    return -1;
  p->has_umask = r;
  p->umask = r ? (uint32_t)v : 0;
  if ((r = sj_member(u, "process.user", "additionalGids", json_type_array, &a, e)) < 0)
    return -1;
  size_t n = r ? json_object_array_length(a) : 0;
  if (n > SB_MAX_GROUPS)
    return rr_err_set(e, RR_INVALID_ARGUMENT,
                      "process.user.additionalGids: %zu entries (at most %d)", n, SB_MAX_GROUPS);
  for (size_t i = 0; i < n; i++) {
    if (sj_u64_value(json_object_array_get_idx(a, i), sj_index("process.user.additionalGids", i).s,
                     UINT32_MAX, &v, e) < 0)
      return -1;
    p->additional_gids[i] = (uint32_t)v;
  }
  p->ngids = n;
  return 0;
}

static int process_from_json(json_object *o, sb_process *p, rr_err *e) {
  json_object *c;
  int r;
  if (sj_bool(o, "process", "terminal", &p->terminal, e) < 0 || user_from_json(o, p, e) < 0 ||
      sj_strings(o, "process", "args", SB_MAX_ARGS, SB_ARG_MAX, &p->args, &p->nargs, e) < 0 ||
      sj_strings(o, "process", "env", SB_MAX_ARGS, SB_ARG_MAX, &p->env, &p->nenv, e) < 0 ||
      sj_string(o, "process", "cwd", SB_PATH_MAX, &p->cwd, e) < 0)
    return -1;
  for (size_t i = 0; i < p->nenv; i++) {
    const char *eq = strchr(p->env[i], '=');
    if (!eq || eq == p->env[i])
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: %s is not KEY=VALUE",
                        sj_index("process.env", i).s, SJ_QUOTE(p->env[i]));
  }
  if (p->cwd && sb_path_check(p->cwd, "process.cwd", e) < 0)
    return -1;
  if ((r = sj_member(o, "process", "capabilities", json_type_object, &c, e)) < 0)
    return -1;
  if (r) {
    const char *cp = "process.capabilities";
    p->has_caps = true;
    if (caps_set_from_json(c, cp, "bounding", &p->caps.bounding, e) < 0 ||
        caps_set_from_json(c, cp, "effective", &p->caps.effective, e) < 0 ||
        caps_set_from_json(c, cp, "inheritable", &p->caps.inheritable, e) < 0 ||
        caps_set_from_json(c, cp, "permitted", &p->caps.permitted, e) < 0 ||
        caps_set_from_json(c, cp, "ambient", &p->caps.ambient, e) < 0)
      return -1;
  }
  if ((r = sj_member(o, "process", "consoleSize", json_type_object, &c, e)) < 0)
    return -1;
  if (r) {
    uint64_t h = 0, w = 0;
    if (sj_u64(c, "process.consoleSize", "height", UINT16_MAX, &h, e) < 0 ||
        sj_u64(c, "process.consoleSize", "width", UINT16_MAX, &w, e) < 0)
      return -1;
    p->has_console_size = true;
    p->console_height = (uint32_t)h;
    p->console_width = (uint32_t)w;
  }
  if (sj_bool(o, "process", "noNewPrivileges", &p->no_new_privileges, e) < 0 ||
      rlimits_from_json(o, p, e) < 0)
    return -1;
  int64_t adj;
  if ((r = sj_i64(o, "process", "oomScoreAdj", -1000, 1000, &adj, e)) < 0)
    return -1;
  p->has_oom_score_adj = r;
  p->oom_score_adj = r ? (int)adj : 0;
  return 0;
}

/* ---- top level ---- */

/* Relative paths of a bundle are relative to its directory. */
static int bundle_path(const char *bundle_dir, char **p, const char *path, rr_err *e) {
  if ((*p)[0] == '/' || !bundle_dir)
    return 0;
  char *j;
  if (asprintf(&j, "%s/%s", bundle_dir, *p) < 0)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "%s: out of memory", path);
  free(*p);
  *p = j;
  if (strlen(j) >= SB_PATH_MAX)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: longer than %d bytes", path, SB_PATH_MAX - 1);
  return 0;
}

static int spec_parse(json_object *o, const char *bundle_dir, sb_spec *s, rr_err *e) {
  json_object *v;
  int r;
  if (sj_check_type(o, "config", json_type_object, e) < 0 ||
      sj_string(o, "", "ociVersion", SB_NAME_MAX, &s->oci_version, e) < 0)
    return -1;
  if ((r = sj_member(o, "", "process", json_type_object, &v, e)) < 0 ||
      (r && process_from_json(v, &s->process, e) < 0))
    return -1;
  if ((r = sj_member(o, "", "root", json_type_object, &v, e)) < 0)
    return -1;
  if (r) {
    if ((r = sj_string(v, "root", "path", SB_PATH_MAX, &s->root_path, e)) < 0)
      return -1;
    if (!r || !s->root_path[0])
      return rr_err_set(e, RR_INVALID_ARGUMENT, "root.path: required");
    if (bundle_path(bundle_dir, &s->root_path, "root.path", e) < 0 ||
        sj_bool(v, "root", "readonly", &s->root_readonly, e) < 0)
      return -1;
  }
  if (sj_string(o, "", "hostname", SB_HOSTNAME_MAX, &s->hostname, e) < 0 ||
      sj_string(o, "", "domainname", SB_HOSTNAME_MAX, &s->domainname, e) < 0)
    return -1;
  /* "" is no name (runc sets none) */
  if (s->hostname && !s->hostname[0])
    free(TAKE_PTR(s->hostname));
  if (s->domainname && !s->domainname[0])
    free(TAKE_PTR(s->domainname));
  if (s->hostname && sb_hostname_check_lax(s->hostname, "hostname", e) < 0)
    return -1;
  if (s->domainname && sb_hostname_check_lax(s->domainname, "domainname", e) < 0)
    return -1;
  if ((r = sj_member(o, "", "mounts", json_type_array, &v, e)) < 0 ||
      (r && sb_mounts_from_json(v, "mounts", bundle_dir, s, e) < 0))
    return -1;
  if ((r = sj_member(o, "", "linux", json_type_object, &v, e)) < 0 ||
      (r && sb_linux_from_json(v, bundle_dir, s, e) < 0))
    return -1;
  return 0;
}

int sb_spec_from_json(json_object *o, const char *bundle_dir, sb_spec **ret, rr_err *e) {
  sb_spec *s = sb_spec_new();
  if (!s)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  if (spec_parse(o, bundle_dir, s, e) < 0) {
    sb_spec_free(s);
    return -1;
  }
  *ret = s;
  return 0;
}

static int read_bounded(const char *path, char **ret, size_t *len, rr_err *e) {
  _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return rr_err_sys(e, errno == ENOENT ? RR_NOT_FOUND : RR_FAILED_PRECONDITION, errno,
                      "cannot open %s", path);
  struct stat st;
  if (fstat(fd, &st) < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot stat %s", path);
  if (!S_ISREG(st.st_mode))
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: not a regular file", path);
  if (st.st_size > SB_CONFIG_MAX_BYTES)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: %lld bytes (at most %u)", path,
                      (long long)st.st_size, SB_CONFIG_MAX_BYTES);
  if (rr_read_sized(fd, (size_t)st.st_size, ret, len) == 0)
    return 0;
  return errno == EFBIG    ? rr_err_set(e, RR_INVALID_ARGUMENT, "%s: changed while read", path)
         : errno == ENOMEM ? rr_err_set(e, RR_RESOURCE_EXHAUSTED, "%s: out of memory", path)
                           : rr_err_sys(e, RR_INTERNAL, errno, "cannot read %s", path);
}

/* strchr() would also find a NUL byte (its terminator). */
static bool char_in(char c, const char *set) { return c && strchr(set, c); }

/* json-c saturates integers beyond int64/uint64 (2^64 reads as
 * UINT64_MAX): refuse them in the text, which is strict JSON by now. */
static int json_ints_check(const char *buf, size_t len, rr_err *e) {
  char quote = 0; /* json-c takes 'keys' even when strict */
  for (size_t i = 0; i < len; i++) {
    char c = buf[i];
    if (quote) {
      if (c == '\\')
        i++;
      else if (c == quote)
        quote = 0;
      continue;
    }
    if (c == '"' || c == '\'')
      quote = c;
    if (c != '-' && (c < '0' || c > '9'))
      continue;
    size_t start = i++;
    while (i < len && buf[i] >= '0' && buf[i] <= '9')
      i++;
    bool integer = i >= len || !char_in(buf[i], ".eE");
    char num[32];
    size_t n = i - start;
    if (integer) {
      bool ok = n < sizeof num;
      if (ok) {
        memcpy(num, buf + start, n);
        num[n] = '\0';
        errno = 0;
        if (c == '-')
          (void)strtoll(num, NULL, 10);
        else
          (void)strtoull(num, NULL, 10);
        ok = errno != ERANGE;
      }
      if (!ok)
        return rr_err_set(e, RR_INVALID_ARGUMENT, "integer at byte %zu is out of range", start);
    }
    while (i < len && char_in(buf[i], "0123456789.eE+-"))
      i++;
    i--;
  }
  return 0;
}

/* sb_spec_parse, the parsed object kept in *ret_json when not NULL. */
static int sb_spec_parse_json(const char *text, size_t len, const char *bundle_dir, sb_spec **ret,
                              json_object **ret_json, rr_err *e) {
  if (len > SB_CONFIG_MAX_BYTES)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%zu bytes (at most %u)", len, SB_CONFIG_MAX_BYTES);
  json_tokener *tok = json_tokener_new_ex(SB_JSON_DEPTH);
  if (!tok)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  /* JSON as runc reads it: json-c's lax extras (comments, 'strings') would
   * also hide big integers from json_ints_check behind a quote it skips */
  json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS);
  json_object *o = json_tokener_parse_ex(tok, text, (int)len);
  enum json_tokener_error jerr = json_tokener_get_error(tok);
  size_t end = json_tokener_get_parse_end(tok);
  json_tokener_free(tok);
  if (!o || jerr != json_tokener_success) {
    json_object_put(o);
    return rr_err_set(e, RR_INVALID_ARGUMENT, "not JSON: %s",
                      jerr == json_tokener_continue ? "unexpected end of file"
                                                    : json_tokener_error_desc(jerr));
  }
  while (end < len && char_in(text[end], " \t\r\n"))
    end++;
  int rc = -1;
  if (end < len)
    rr_err_set(e, RR_INVALID_ARGUMENT, "not JSON: text after the value at byte %zu", end);
  else if (json_ints_check(text, len, e) == 0)
    rc = sb_spec_from_json(o, bundle_dir, ret, e);
  if (rc == 0 && ret_json)
    *ret_json = TAKE_PTR(o);
  json_object_put(o);
  return rc;
}

int sb_spec_parse(const char *text, size_t len, const char *bundle_dir, sb_spec **ret, rr_err *e) {
  return sb_spec_parse_json(text, len, bundle_dir, ret, NULL, e);
}

int sb_spec_load_json(const char *path, const char *bundle_dir, sb_spec **ret,
                      json_object **ret_json, rr_err *e) {
  _cleanup_free_ char *buf = NULL;
  size_t len = 0;
  if (read_bounded(path, &buf, &len, e) < 0)
    return -1;
  if (sb_spec_parse_json(buf, len, bundle_dir, ret, ret_json, e) < 0)
    return rr_err_wrap(e, "%s", path);
  return 0;
}

int sb_spec_load(const char *path, const char *bundle_dir, sb_spec **ret, rr_err *e) {
  return sb_spec_load_json(path, bundle_dir, ret, NULL, e);
}
