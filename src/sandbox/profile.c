/* Profiles: names, clamping, binds, and the OCI config that default and
 * strict make of a request. Choices (profile.h has the contract):
 *  - net: default keeps the host's network unless the request asks for
 *    none; strict always has its own (only lo): a request's "host" is
 *    clamped to none, as strict means no network.
 *  - root: default runs on the request's rootfs writable, or on the
 *    host's root read-only with the working directory bound writable onto
 *    itself (so `make` in a project works; not for "/" nor below /proc,
 *    /sys, /dev, which are fresh mounts; below /tmp it is bound into the
 *    fresh /tmp); strict's root is always read-only and its cwd stays
 *    read-only (bound read-only into the fresh /tmp when below it).
 *  - ids: strict maps one uid and one gid: inside the request's ids (or
 *    the caller's numbers), outside the caller's, except that a root
 *    caller is mapped from nobody (65534): strict never runs as host root.
 *    default runs as the request's ids, or as the caller with its groups;
 *    made by a caller that is not root (rootless) it maps them as strict
 *    does, in a user namespace of its own.
 *  - /sys: a new sysfs, except on the host's root in the host's network
 *    namespace (default's usual case): a read-only bind of the host's.
 *  - strict adds RLIMIT_NOFILE 1024 and RLIMIT_CORE 0, and its pids and
 *    memory limits to the request's limits for each of the two it leaves
 *    unset. */
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
#include "sandbox/profile.h"
#include "sandbox/spec_internal.h"

#define NOBODY 65534u
#define DEFAULT_HOSTNAME "runrpc"

static const char *const profile_names[SB_PROFILE_COUNT] = {"host", "default", "strict"};

const char *sb_profile_name(sb_profile p) {
  return (unsigned)p < SB_PROFILE_COUNT ? profile_names[p] : NULL;
}

int sb_profile_from_name(const char *name, const char *field, sb_profile *ret, rr_err *e) {
  for (int i = 0; i < SB_PROFILE_COUNT; i++)
    if (strcmp(name, profile_names[i]) == 0) {
      *ret = (sb_profile)i;
      return 0;
    }
  return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: unknown profile %s (want host, default or strict)",
                    field, SJ_QUOTE(name));
}

sb_profile sb_profile_clamp(sb_profile requested, sb_profile min) {
  return requested < min ? min : requested;
}

/* ---- binds ---- */

int sb_bind_parse(const char *text, const char *field, sb_bind *ret, char **storage, rr_err *e) {
  if (strlen(text) > 2 * SB_PATH_MAX)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: longer than %d bytes", field, 2 * SB_PATH_MAX);
  _cleanup_free_ char *s = strdup(text);
  if (!s)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "%s: out of memory", field);
  char *src = s, *dst = strchr(s, ':'), *mode = NULL;
  if (!dst)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: %s is not SOURCE:DESTINATION[:ro|rw]", field,
                      SJ_QUOTE(text));
  *dst++ = '\0';
  if ((mode = strchr(dst, ':')))
    *mode++ = '\0';
  if (mode && strcmp(mode, "ro") != 0 && strcmp(mode, "rw") != 0)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: mode %s is not \"ro\" or \"rw\"", field,
                      SJ_QUOTE(mode));
  char p[300];
  snprintf(p, sizeof p, "%s.source", field);
  if (sb_path_check(src, p, e) < 0)
    return -1;
  snprintf(p, sizeof p, "%s.destination", field);
  if (sb_path_check(dst, p, e) < 0)
    return -1;
  *ret = (sb_bind){
      .source = src, .destination = dst, .readonly = mode && mode[0] == 'r' && mode[1] == 'o'};
  free(*storage);
  *storage = TAKE_PTR(s);
  return 0;
}

/* p at or below dir (both canonical). */
static bool path_below(const char *p, const char *dir) {
  size_t n = strlen(dir);
  while (n > 1 && dir[n - 1] == '/')
    n--;
  if (n == 1 && dir[0] == '/')
    return true;
  return strncmp(p, dir, n) == 0 && (p[n] == '\0' || p[n] == '/');
}

#define MAX_SYMLINKS 40 /* as the kernel's path walk */

/* p may be looked at while resolving: below an allowed dir, or on the way to one. */
static bool probe_ok(const char *p, char (*dirs)[PATH_MAX], size_t n) {
  for (size_t i = 0; i < n; i++)
    if (path_below(p, dirs[i]) || path_below(dirs[i], p))
      return true;
  return false;
}

static int bind_denied(const char *field, const char *src, rr_err *e) {
  return rr_err_set(e, RR_PERMISSION_DENIED, "%s: %s is not below a directory allowed for binds",
                    field, SJ_QUOTE(src));
}

static int bind_unresolved(const char *field, const char *src, int err, rr_err *e) {
  return rr_err_sys(e, err == ENOENT || err == ENOTDIR ? RR_NOT_FOUND : RR_FAILED_PRECONDITION, err,
                    "%s: cannot resolve %s", field, SJ_QUOTE(src));
}

/* The allowed dirs: canonical paths (what may be probed) and the objects. */
typedef struct bind_allowed {
  char (*dirs)[PATH_MAX];
  struct stat *ids;
  size_t n;
} bind_allowed;

/* An O_PATH fd of directory fd's parent ("/" is its own). */
static int dir_parent(int fd) { return openat(fd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC); }

/* Directory fd is one of the allowed dirs or below one: walked up by ".."
 * from the object itself, not from a name that may point elsewhere now. */
static bool fd_below(int fd, const bind_allowed *a) {
  _cleanup_close_ int cur = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  struct stat st, up;
  for (int depth = 0; cur >= 0 && depth < PATH_MAX && fstat(cur, &st) == 0; depth++) {
    for (size_t i = 0; i < a->n; i++)
      if (st.st_dev == a->ids[i].st_dev && st.st_ino == a->ids[i].st_ino)
        return true;
    _cleanup_close_ int parent = dir_parent(cur);
    if (parent < 0 || fstat(parent, &up) < 0 || (up.st_dev == st.st_dev && up.st_ino == st.st_ino))
      return false; /* reached the root */
    close(cur);
    cur = TAKE_FD(parent);
  }
  return false;
}

/* realpath(src) component by component on fds (openat O_PATH|O_NOFOLLOW
 * from the directory reached, never a path string looked up again), never
 * looking at a path outside the allowed dirs and those leading to them:
 * rund resolves as root, and the answer must tell nothing of paths
 * elsewhere (a caller's symlink to /root/x gets the same refusal whether
 * /root/x exists or not). *ret_fd: the object reached, checked to be below
 * an allowed dir, which is what gets mounted. */
static int bind_resolve(const char *src, const char *field, const bind_allowed *a, int *ret_fd,
                        rr_err *e) {
  char rest[2 * PATH_MAX], cur[PATH_MAX] = "", next[PATH_MAX], target[PATH_MAX];
  snprintf(rest, sizeof rest, "%s", src);
  _cleanup_close_ int dir = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  _cleanup_close_ int leaf = -1; /* a non-directory reached in dir: must be last */
  if (dir < 0)
    return bind_unresolved(field, src, errno, e);
  size_t pos = 0;
  int links = 0;
  for (;;) {
    while (rest[pos] == '/')
      pos++;
    size_t len = strcspn(rest + pos, "/");
    if (!len)
      break;
    const char *comp = rest + pos;
    pos += len;
    if (len == 1 && comp[0] == '.')
      continue;
    if (leaf >= 0)
      return bind_unresolved(field, src, ENOTDIR, e);
    if (len == 2 && comp[0] == '.' && comp[1] == '.') {
      char *slash = strrchr(cur, '/');
      if (slash)
        *slash = '\0';
      int up = dir_parent(dir);
      if (up < 0)
        return bind_unresolved(field, src, errno, e);
      close(dir);
      dir = up;
      continue;
    }
    if ((size_t)snprintf(next, sizeof next, "%s/%.*s", cur, (int)len, comp) >= sizeof next)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: %s resolves to a path too long", field,
                        SJ_QUOTE(src));
    if (!probe_ok(next, a->dirs, a->n))
      return bind_denied(field, src, e);
    if (len > NAME_MAX)
      return bind_unresolved(field, src, ENAMETOOLONG, e);
    char name[NAME_MAX + 1];
    memcpy(name, comp, len);
    name[len] = '\0';
    _cleanup_close_ int fd = openat(dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
      return bind_unresolved(field, src, errno, e);
    if (!S_ISLNK(st.st_mode)) {
      memcpy(cur, next, sizeof cur);
      if (S_ISDIR(st.st_mode)) {
        close(dir);
        dir = TAKE_FD(fd);
      } else
        leaf = TAKE_FD(fd);
      continue;
    }
    ssize_t tl = readlinkat(fd, "", target, sizeof target - 1);
    if (tl < 0)
      return rr_err_sys(e, RR_FAILED_PRECONDITION, errno, "%s: cannot resolve %s", field,
                        SJ_QUOTE(src));
    target[tl] = '\0';
    if (++links > MAX_SYMLINKS)
      return rr_err_sys(e, RR_FAILED_PRECONDITION, ELOOP, "%s: cannot resolve %s", field,
                        SJ_QUOTE(src));
    char joined[sizeof rest];
    if ((size_t)snprintf(joined, sizeof joined, "%s/%s", target, rest + pos) >= sizeof joined)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: %s resolves to a path too long", field,
                        SJ_QUOTE(src));
    memcpy(rest, joined, sizeof rest);
    pos = 0;
    if (target[0] == '/') {
      cur[0] = '\0';
      close(dir);
      if ((dir = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
        return bind_unresolved(field, src, errno, e);
    }
  }
  bool below = false;
  for (size_t i = 0; i < a->n && !below; i++)
    below = path_below(cur[0] ? cur : "/", a->dirs[i]);
  /* the name says so; the object must too (a directory on the way may
   * have been swapped since it was opened) */
  if (!below || !fd_below(dir, a))
    return bind_denied(field, src, e);
  *ret_fd = leaf >= 0 ? TAKE_FD(leaf) : TAKE_FD(dir);
  return 0;
}

int sb_binds_open(const sb_bind *b, size_t n, const char *const *allowed, size_t nallowed,
                  int *ret_fds, rr_err *e) {
  if (n > SB_MAX_BINDS)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "binds: %zu entries (at most %d)", n, SB_MAX_BINDS);
  if (nallowed > SB_MAX_BINDS)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "allowed bind dirs: %zu (at most %d)", nallowed,
                      SB_MAX_BINDS);
  _cleanup_free_ char(*dirs)[PATH_MAX] = calloc(nallowed ? nallowed : 1, PATH_MAX);
  _cleanup_free_ struct stat *ids = calloc(nallowed ? nallowed : 1, sizeof *ids);
  if (!dirs || !ids)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "binds: out of memory");
  bind_allowed a = {.dirs = dirs, .ids = ids};
  for (size_t i = 0; i < nallowed; i++) {
    /* one that does not exist allows nothing */
    _cleanup_close_ int fd =
        realpath(allowed[i], dirs[a.n]) ? open(dirs[a.n], O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
    if (fd >= 0 && fstat(fd, &ids[a.n]) == 0)
      a.n++;
  }
  int fds[SB_MAX_BINDS];
  size_t nfds = 0;
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    char field[64];
    snprintf(field, sizeof field, "binds[%zu].source", i);
    rc = sb_path_check(b[i].source, field, e);
    snprintf(field, sizeof field, "binds[%zu].destination", i);
    if (rc == 0)
      rc = sb_path_check(b[i].destination, field, e);
    snprintf(field, sizeof field, "binds[%zu].source", i);
    if (rc == 0 && (rc = bind_resolve(b[i].source, field, &a, &fds[nfds], e)) == 0)
      nfds++;
  }
  if (rc < 0) {
    for (size_t i = 0; i < nfds; i++)
      close(fds[i]);
    return -1;
  }
  memcpy(ret_fds, fds, nfds * sizeof *fds);
  return 0;
}

int sb_binds_check(const sb_bind *b, size_t n, const char *const *allowed, size_t nallowed,
                   rr_err *e) {
  int fds[SB_MAX_BINDS];
  if (sb_binds_open(b, n, allowed, nallowed, fds, e) < 0)
    return -1;
  for (size_t i = 0; i < n; i++)
    close(fds[i]);
  return 0;
}

/* ---- the config of a profile ---- */

static int add_mount(sb_spec *s, const char *dst, const char *type, const char *src,
                     const char *const *options, rr_err *e) {
  sb_mount *m = &s->mounts[s->nmounts++];
  size_t n = 0;
  while (options[n])
    n++;
  if (!(m->destination = strdup(dst)) || (type && !(m->type = strdup(type))) ||
      !(m->source = strdup(src)) || !(m->options = sj_strings_dup(options, n)))
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "mounts: out of memory");
  m->noptions = n;
  return sb_mount_options_parse(m, "mounts", e);
}

static bool path_is_fresh_mount(const char *p) {
  static const char *const fresh[] = {"/proc", "/sys", "/dev"};
  for (size_t i = 0; i < RR_ARRAY_SIZE(fresh); i++)
    if (path_below(p, fresh[i]))
      return true;
  return false;
}

/* A new sysfs, or on the host's root in the host's network namespace a
 * read-only bind of its /sys: there /sys already is that namespace's sysfs
 * and the kernel refuses to mount a superblock on itself (EBUSY). Not
 * recursive: the host's cgroup and debug mounts below stay out. */
static int sys_mount(sb_spec *s, const sb_params *pa, rr_err *e) {
  /* rootless, in the host's network: a new sysfs is refused (its network
   * namespace is not ours), and so is a bind that would uncover what the
   * host's mounts below /sys hide: take them along (recursive, read-only) */
  if (!s->ns[SB_NS_NET].enabled && (!pa->rootfs || pa->rootless))
    return add_mount(
        s, "/sys", "bind", "/sys",
        (const char *[]){pa->rootless ? "rbind" : "bind", "nosuid", "noexec", "nodev", "ro", NULL},
        e);
  return add_mount(s, "/sys", "sysfs", "sysfs",
                   (const char *[]){"nosuid", "noexec", "nodev", "ro", NULL}, e);
}

static int mounts_build(sb_spec *s, sb_profile p, const sb_params *pa, rr_err *e) {
  bool strict = p == SB_PROFILE_STRICT;
  const char *cwd = s->process.cwd;
  if (!(s->mounts = calloc(16 + pa->nbinds, sizeof *s->mounts)))
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "mounts: out of memory");
  const char *devpts_host[] = {"nosuid",    "noexec", "newinstance", "ptmxmode=0666",
                               "mode=0620", "gid=5",  NULL};
  const char *devpts_userns[] = {"nosuid",        "noexec",    "newinstance",
                                 "ptmxmode=0666", "mode=0620", NULL};
  const char *tmp_default[] = {"nosuid", "nodev", "mode=1777", "size=25%", NULL};
  const char *tmp_strict[] = {"nosuid", "nodev", "mode=1777", "size=" SB_STRICT_TMP_SIZE, NULL};
  if (add_mount(s, "/proc", "proc", "proc", (const char *[]){"nosuid", "noexec", "nodev", NULL},
                e) < 0 ||
      add_mount(s, "/dev", "tmpfs", "tmpfs",
                (const char *[]){"nosuid", "strictatime", "mode=755", "size=65536k", NULL},
                e) < 0 ||
      add_mount(s, "/dev/pts", "devpts", "devpts",
                strict || pa->rootless ? devpts_userns : devpts_host, e) < 0 ||
      add_mount(s, "/dev/shm", "tmpfs", "shm",
                (const char *[]){"nosuid", "noexec", "nodev", "mode=1777", "size=65536k", NULL},
                e) < 0 ||
      add_mount(s, "/dev/mqueue", "mqueue", "mqueue",
                (const char *[]){"nosuid", "noexec", "nodev", NULL}, e) < 0 ||
      sys_mount(s, pa, e) < 0 ||
      add_mount(s, "/tmp", "tmpfs", "tmpfs", strict ? tmp_strict : tmp_default, e) < 0)
    return -1;
  /* the working directory stays where it is: writable under default,
   * read-only under strict (there only one below the fresh /tmp needs it) */
  bool below_tmp = path_below(cwd, "/tmp");
  if (!pa->rootfs && strcmp(cwd, "/") != 0 && !path_is_fresh_mount(cwd) && (!strict || below_tmp) &&
      add_mount(s, cwd, "bind", cwd, (const char *[]){"rbind", strict ? "ro" : "rw", NULL}, e) < 0)
    return -1;
  for (size_t i = 0; i < pa->nbinds; i++) {
    if (add_mount(s, pa->binds[i].destination, "bind", pa->binds[i].source,
                  (const char *[]){"rbind", pa->binds[i].readonly ? "ro" : "rw", NULL}, e) < 0)
      return -1;
    if (pa->fds) {
      s->mounts[s->nmounts - 1].has_source_fd = true;
      s->mounts[s->nmounts - 1].source_fd = pa->fds[1 + i];
    }
  }
  return 0;
}

static const char *const masked_paths[] = {
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
};
static const char *const readonly_paths[] = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                             "/proc/sysrq-trigger"};

static int params_check(sb_profile p, const sb_params *pa, rr_err *e) {
  if (p != SB_PROFILE_DEFAULT && p != SB_PROFILE_STRICT)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "profile %s: no sandbox config to make",
                      sb_profile_name(p) ? sb_profile_name(p) : "?");
  if (!pa->nargs || !pa->argv[0] || !pa->argv[0][0])
    return rr_err_set(e, RR_INVALID_ARGUMENT, "argv: required (at least the command)");
  if (pa->nargs > SB_MAX_ARGS || pa->nenv > SB_MAX_ARGS)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: more than %d entries",
                      pa->nargs > SB_MAX_ARGS ? "argv" : "env", SB_MAX_ARGS);
  for (size_t i = 0; i < pa->nargs; i++)
    if (!pa->argv[i] || strlen(pa->argv[i]) > SB_ARG_MAX)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "argv[%zu]: missing or longer than %d bytes", i,
                        SB_ARG_MAX);
  for (size_t i = 0; i < pa->nenv; i++) {
    const char *v = pa->env[i], *eq = v ? strchr(v, '=') : NULL;
    if (!eq || eq == v || strlen(v) > SB_ARG_MAX)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "env[%zu]: %s is not KEY=VALUE", i,
                        v ? SJ_QUOTE(v) : "null");
  }
  if (pa->cwd && sb_path_check(pa->cwd, "cwd", e) < 0)
    return -1;
  if (pa->rootfs && sb_path_check(pa->rootfs, "rootfs", e) < 0)
    return -1;
  if (pa->nbinds > SB_MAX_BINDS)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "binds: %zu entries (at most %d)", pa->nbinds,
                      SB_MAX_BINDS);
  for (size_t i = 0; i < pa->nbinds; i++) {
    char field[64];
    snprintf(field, sizeof field, "binds[%zu].source", i);
    if (sb_path_check(pa->binds[i].source ? pa->binds[i].source : "", field, e) < 0)
      return -1;
    snprintf(field, sizeof field, "binds[%zu].destination", i);
    if (sb_path_check(pa->binds[i].destination ? pa->binds[i].destination : "", field, e) < 0)
      return -1;
  }
  for (size_t i = 0; pa->fds && i <= pa->nbinds; i++)
    if (pa->fds[i] < 0 && (i || pa->rootfs))
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: no fd of the checked source",
                        i ? "binds" : "rootfs");
  if (pa->net != SB_NET_PROFILE && pa->net != SB_NET_NONE && pa->net != SB_NET_HOST)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "net: unknown mode %d", (int)pa->net);
  if (pa->hostname && sb_hostname_check(pa->hostname, "hostname", e) < 0)
    return -1;
  if (pa->nhost_groups > SB_MAX_GROUPS || pa->ngroups > SB_MAX_GROUPS)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: %zu groups (at most %d)",
                      pa->ngroups > SB_MAX_GROUPS ? "groups" : "host_groups",
                      pa->ngroups > SB_MAX_GROUPS ? pa->ngroups : pa->nhost_groups, SB_MAX_GROUPS);
  if (pa->limits && cg_limits_validate(pa->limits, e) < 0)
    return -1;
  return 0;
}

static int ids_build(sb_spec *s, sb_profile p, const sb_params *pa, rr_err *e) {
  sb_process *pr = &s->process;
  pr->uid = pa->has_user ? pa->uid : (uint32_t)pa->host_uid;
  pr->gid = pa->has_user ? pa->gid : (uint32_t)pa->host_gid;
  if (p != SB_PROFILE_STRICT && !pa->rootless) {
    for (size_t i = 0; !pa->has_user && i < pa->nhost_groups; i++)
      pr->additional_gids[pr->ngids++] = (uint32_t)pa->host_groups[i];
    for (size_t i = 0; pa->has_user && i < pa->ngroups; i++)
      pr->additional_gids[pr->ngids++] = pa->groups[i];
    if (pa->has_user && !pa->ngroups) /* as docker's UID:GID: the gid alone */
      pr->additional_gids[pr->ngids++] = pr->gid;
    return 0;
  }
  /* one id of each kind is mapped: the gid is the only group there can be */
  if (pa->has_user)
    pr->additional_gids[pr->ngids++] = pr->gid;
  s->uid_maps = calloc(1, sizeof *s->uid_maps);
  s->gid_maps = calloc(1, sizeof *s->gid_maps);
  if (!s->uid_maps || !s->gid_maps)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  s->uid_maps[0] = (sb_id_map){pr->uid, pa->host_uid == 0 ? NOBODY : (uint32_t)pa->host_uid, 1};
  s->gid_maps[0] = (sb_id_map){pr->gid, pa->host_gid == 0 ? NOBODY : (uint32_t)pa->host_gid, 1};
  s->nuid_maps = s->ngid_maps = 1;
  return 0;
}

/* p (checked: no "." or "..") without repeated or trailing slashes, so that
 * "//" is "/" and "//dev/" is "/dev" to the cwd bind's exceptions. */
static char *path_clean_dup(const char *p) {
  char *c = malloc(strlen(p) + 1);
  if (!c)
    return NULL;
  size_t n = 0;
  for (; *p; p++)
    if (*p != '/' || n == 0 || c[n - 1] != '/')
      c[n++] = *p;
  if (n > 1 && c[n - 1] == '/')
    n--;
  c[n] = '\0';
  return c;
}

static int spec_build(sb_spec *s, sb_profile p, const sb_params *pa, rr_err *e) {
  bool strict = p == SB_PROFILE_STRICT;
  sb_process *pr = &s->process;
  if (!(s->oci_version = strdup("1.2.0")) || !(pr->args = sj_strings_dup(pa->argv, pa->nargs)) ||
      !(pr->env = sj_strings_dup(pa->env, pa->nenv)) ||
      !(pr->cwd = path_clean_dup(pa->cwd ? pa->cwd : "/")) ||
      !(s->hostname = strdup(pa->hostname ? pa->hostname : DEFAULT_HOSTNAME)) ||
      !(s->root_path = strdup(pa->rootfs ? pa->rootfs : "/")) ||
      !(s->masked_paths = sj_strings_dup(masked_paths, RR_ARRAY_SIZE(masked_paths))) ||
      !(s->readonly_paths = sj_strings_dup(readonly_paths, RR_ARRAY_SIZE(readonly_paths))))
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  pr->nargs = pa->nargs;
  pr->nenv = pa->nenv;
  s->nmasked_paths = RR_ARRAY_SIZE(masked_paths);
  s->nreadonly_paths = RR_ARRAY_SIZE(readonly_paths);
  /* a rootfs of the request's is its own to write, but never the host's "/" */
  s->root_readonly = strict || !pa->rootfs || strcmp(pa->rootfs, "/") == 0;
  if (pa->rootfs && pa->fds) {
    s->has_root_fd = true;
    s->root_fd = pa->fds[0];
    s->root_fd_is_tree = pa->root_is_tree;
  }
  static const sb_ns_type base[] = {SB_NS_PID, SB_NS_MOUNT, SB_NS_IPC, SB_NS_UTS, SB_NS_CGROUP};
  for (size_t i = 0; i < RR_ARRAY_SIZE(base); i++)
    s->ns[base[i]].enabled = true;
  s->ns[SB_NS_NET].enabled = strict || pa->net == SB_NET_NONE;
  s->ns[SB_NS_USER].enabled = strict || pa->rootless;
  if (ids_build(s, p, pa, e) < 0 || mounts_build(s, p, pa, e) < 0)
    return -1;
  pr->no_new_privileges = true;
  pr->has_caps = true;
  if (!strict) {
    static const char *const docker_caps[] = {
        "CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
        "CAP_MKNOD",   "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
        "CAP_SETFCAP", "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
        "CAP_KILL",    "CAP_AUDIT_WRITE"};
    uint64_t set = 0;
    for (size_t i = 0; i < RR_ARRAY_SIZE(docker_caps); i++)
      set |= 1ull << sb_cap_from_name(docker_caps[i]);
    /* effective and permitted only matter to uid 0: exec drops them for others */
    pr->caps = (sb_caps){.bounding = set, .effective = set, .permitted = set};
  } else {
    pr->rlimits[0] = (sb_rlimit){.resource = RLIMIT_NOFILE, .soft = 1024, .hard = 1024};
    pr->rlimits[1] = (sb_rlimit){.resource = RLIMIT_CORE, .soft = 0, .hard = 0};
    pr->nrlimits = 2;
  }
  if (sb_profile_seccomp(strict, &s->seccomp, e) < 0)
    return -1;
  cg_limits l = pa->limits ? *pa->limits : (cg_limits){0};
  if (strict && !l.has_pids)
    l.has_pids = true, l.pids_max = SB_STRICT_PIDS_MAX;
  if (strict && !l.has_memory)
    l.has_memory = true, l.memory_max = SB_STRICT_MEMORY_MAX;
  if (cg_limits_any(&l)) {
    if (!(s->resources = malloc(sizeof *s->resources)))
      return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
    *s->resources = l;
  }
  return 0;
}

int sb_spec_for_profile(sb_profile p, const sb_params *params, sb_spec **ret, rr_err *e) {
  if (params_check(p, params, e) < 0)
    return -1;
  sb_spec *s = sb_spec_new();
  if (!s)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  if (spec_build(s, p, params, e) < 0 || sb_spec_validate(s, e) < 0) {
    sb_spec_free(s);
    return -1;
  }
  *ret = s;
  return 0;
}
