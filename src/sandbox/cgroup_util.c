/* File helpers and pure parsers of kernel text for the cgroup backends. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "sandbox/cgroup_internal.h"

char *cg_path_join(const char *a, const char *b) {
  char *p = NULL;
  size_t la = strlen(a);
  bool slash = la > 0 && a[la - 1] == '/';
  if (asprintf(&p, "%s%s%s", a, slash ? "" : "/", b[0] == '/' ? b + 1 : b) < 0)
    return NULL;
  return p;
}

/* single: a cgroup file without seq_start (every counter and stat file,
 * not cgroup.procs or tasks) is one record that the kernel hands out whole
 * to a read with room for it, so a read that leaves room is the end: one
 * read(2) instead of two. */
static int file_read(const char *path, char *buf, size_t len, bool single, rr_err *e) {
  _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot open %s", path);
  size_t off = 0;
  while (off + 1 < len) {
    ssize_t n = rr_read(fd, buf + off, len - 1 - off);
    if (n < 0)
      return rr_err_sys(e, RR_INTERNAL, errno, "cannot read %s", path);
    if (n == 0)
      break;
    off += (size_t)n;
    if (single && off + 1 < len)
      break;
  }
  buf[off] = '\0';
  return 0;
}

int cg_file_read(const char *path, char *buf, size_t len, rr_err *e) {
  return file_read(path, buf, len, false, e);
}

int cg_tasks_count(const char *dir, uint64_t *ret, rr_err *e) {
  _cleanup_free_ char *path = cg_path_join(dir, "tasks");
  if (!path)
    return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, ENOMEM, "cannot read the tasks of %s", dir);
  _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot open %s", path);
  char buf[4096];
  uint64_t n = 0;
  for (;;) {
    ssize_t r = rr_read(fd, buf, sizeof buf);
    if (r < 0)
      return rr_err_sys(e, RR_INTERNAL, errno, "cannot read %s", path);
    if (r == 0)
      break;
    for (ssize_t i = 0; i < r; i++)
      n += buf[i] == '\n';
  }
  *ret = n;
  return 0;
}

int cg_file_write(const char *dir, const char *file, const char *value, const char *what,
                  rr_err *e) {
  _cleanup_free_ char *path = cg_path_join(dir, file);
  if (!path)
    return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, ENOMEM, "cannot set %s", file);
  _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return rr_err_sys(e, errno == ENOENT ? RR_FAILED_PRECONDITION : RR_INTERNAL, errno,
                      "cannot open %s to set %s", path, what);
  /* cgroup files take one write(2); a short write is an error. */
  ssize_t n;
  do
    n = write(fd, value, strlen(value));
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    int err = errno;
    int code = err == EINVAL || err == ERANGE  ? RR_INVALID_ARGUMENT
               : err == EBUSY || err == ENOSPC ? RR_FAILED_PRECONDITION
                                               : RR_INTERNAL;
    return rr_err_sys(e, code, err, "cannot set %s: writing \"%s\" to %s failed", what, value,
                      path);
  }
  if ((size_t)n != strlen(value))
    return rr_err_set(e, RR_INTERNAL, "cannot set %s: short write to %s", what, path);
  return 0;
}

int cg_file_read_u64(const char *dir, const char *file, uint64_t *ret, rr_err *e) {
  _cleanup_free_ char *path = cg_path_join(dir, file);
  if (!path)
    return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, ENOMEM, "cannot read %s", file);
  char buf[64];
  if (file_read(path, buf, sizeof buf, true, e) < 0)
    return -1;
  if (strncmp(buf, "max", 3) == 0) {
    *ret = UINT64_MAX;
    return 0;
  }
  char *end;
  errno = 0;
  unsigned long long v = strtoull(buf, &end, 10);
  if (errno || end == buf || (*end && *end != '\n'))
    return rr_err_set(e, RR_INTERNAL, "%s: not a number: \"%.20s\"", path, buf);
  *ret = v;
  return 0;
}

bool cg_file_exists(const char *dir, const char *file) {
  _cleanup_free_ char *path = cg_path_join(dir, file);
  return path && access(path, F_OK) == 0;
}

void cg_sleep_ms(unsigned ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

/* Counts the pids of DIR/cgroup.procs but spare (0: none), killing them if
 * kill_them; -1 on error. */
static int procs_each(const char *dir, bool kill_them, pid_t spare, size_t *count, rr_err *e) {
  _cleanup_free_ char *path = cg_path_join(dir, "cgroup.procs");
  if (!path)
    return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, ENOMEM, "cannot list %s", dir);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot open %s", path);
  FILE *f = fdopen(fd, "r");
  if (!f) {
    int err = errno;
    close(fd);
    return rr_err_sys(e, RR_INTERNAL, err, "cannot read %s", path);
  }
  *count = 0;
  char line[32];
  while (fgets(line, sizeof line, f)) {
    long pid = strtol(line, NULL, 10);
    if (pid <= 0 || pid == spare)
      continue;
    (*count)++;
    if (kill_them && kill((pid_t)pid, SIGKILL) < 0 && errno != ESRCH) {
      int err = errno;
      fclose(f);
      return rr_err_sys(e, RR_INTERNAL, err, "cannot kill pid %ld of %s", pid, dir);
    }
  }
  fclose(f);
  return 0;
}

/* Child cgroups nest at most this deep below a job's (exec --in: one). */
#define CG_KILL_DEPTH 4

static int procs_kill_tree(const char *dir, int depth, pid_t spare, size_t *nlisted, rr_err *e) {
  size_t n = 0;
  if (procs_each(dir, true, spare, &n, e) < 0)
    return -1;
  *nlisted += n;
  if (depth >= CG_KILL_DEPTH)
    return 0;
  DIR *d = opendir(dir);
  if (!d)
    return 0; /* gone meanwhile: nothing below it either */
  int r = 0;
  for (struct dirent *de; r == 0 && (de = readdir(d));) {
    if (de->d_type != DT_DIR || de->d_name[0] == '.')
      continue;
    _cleanup_free_ char *sub = cg_path_join(dir, de->d_name);
    r = sub ? procs_kill_tree(sub, depth + 1, spare, nlisted, e)
            : rr_err_sys(e, RR_RESOURCE_EXHAUSTED, ENOMEM, "cannot list %s", dir);
  }
  closedir(d);
  return r;
}

int cg_procs_kill_all(const char *dir, pid_t spare, size_t *nlisted, rr_err *e) {
  *nlisted = 0;
  return procs_kill_tree(dir, 0, spare, nlisted, e);
}

bool cg_procs_empty(const char *dir) {
  size_t n = 0;
  return procs_each(dir, false, 0, &n, NULL) < 0 || n == 0;
}

/* ---- parsers ---- */

bool cg_parse_keyed(const char *text, const char *key, uint64_t *ret) {
  size_t klen = strlen(key);
  for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
    if (strncmp(p, key, klen) == 0 && p[klen] == ' ') {
      char *end;
      unsigned long long v = strtoull(p + klen + 1, &end, 10);
      if (end == p + klen + 1)
        return false;
      *ret = v;
      return true;
    }
  }
  return false;
}

/* Copies a mountinfo field, undoing the \ooo octal escapes; false if too long. */
static bool field_unescape(const char *s, size_t n, char *out, size_t len) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == '\\' && i + 3 < n && s[i + 1] >= '0' && s[i + 1] <= '3') {
      c = (char)((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    }
    if (o + 1 >= len)
      return false;
    out[o++] = c;
  }
  out[o] = '\0';
  return true;
}

static unsigned v1_controllers(const char *opts) {
  static const struct {
    const char *name;
    unsigned bit;
  } names[] = {{"cpu", CG_CTRL_CPU},  {"cpuacct", CG_CTRL_CPUACCT}, {"memory", CG_CTRL_MEMORY},
               {"blkio", CG_CTRL_IO}, {"pids", CG_CTRL_PIDS},       {"freezer", CG_CTRL_FREEZER}};
  unsigned mask = 0;
  const char *p = opts;
  while (*p) {
    size_t n = strcspn(p, ",");
    for (size_t i = 0; i < RR_ARRAY_SIZE(names); i++)
      if (strlen(names[i].name) == n && strncmp(p, names[i].name, n) == 0)
        mask |= names[i].bit;
    p += n;
    if (*p == ',')
      p++;
  }
  return mask;
}

size_t cg_parse_mountinfo(const char *text, cg_mount *out, size_t max) {
  size_t count = 0;
  const char *line = text;
  while (line && *line && count < max) {
    const char *eol = strchr(line, '\n');
    size_t len = eol ? (size_t)(eol - line) : strlen(line);
    /* id parent maj:min root mountpoint options [optional...] - fstype source superopts */
    const char *f[6];
    size_t fl[6], nf = 0;
    const char *p = line, *end = line + len;
    while (p < end && nf < 6) {
      while (p < end && *p == ' ')
        p++;
      const char *s = p;
      while (p < end && *p != ' ')
        p++;
      f[nf] = s;
      fl[nf++] = (size_t)(p - s);
    }
    const char *sep = nf == 6 ? strstr(line, " - ") : NULL;
    if (sep && sep < end) {
      char fstype[16], rest[512];
      const char *q = sep + 3;
      size_t tl = strcspn(q, " \n");
      const char *src = q + tl + (q[tl] == ' ');
      size_t sl = strcspn(src, " \n");
      const char *opts = src + sl + (src[sl] == ' ');
      size_t ol = (size_t)(end - opts);
      if (opts > end)
        ol = 0;
      cg_mount *m = &out[count];
      if (tl < sizeof fstype && ol < sizeof rest) {
        memcpy(fstype, q, tl);
        fstype[tl] = '\0';
        memcpy(rest, opts, ol);
        rest[ol] = '\0';
        bool v2 = strcmp(fstype, "cgroup2") == 0, v1 = strcmp(fstype, "cgroup") == 0;
        if ((v1 || v2) && field_unescape(f[3], fl[3], m->root, sizeof m->root) &&
            field_unescape(f[4], fl[4], m->path, sizeof m->path)) {
          m->v2 = v2;
          m->controllers = v1 ? v1_controllers(rest) : 0;
          count++;
        }
      }
    }
    line = eol ? eol + 1 : NULL;
  }
  return count;
}

int cg_parse_proc_cgroup(const char *text, const char *controller, char *out, size_t len) {
  for (const char *line = text; line && *line;) {
    const char *eol = strchr(line, '\n');
    size_t n = eol ? (size_t)(eol - line) : strlen(line);
    const char *c1 = memchr(line, ':', n);
    const char *c2 = c1 ? memchr(c1 + 1, ':', (size_t)(line + n - c1 - 1)) : NULL;
    if (c2) {
      bool match = false;
      if (!controller) {
        match = c2 == c1 + 1 && c1 - line == 1 && line[0] == '0';
      } else {
        for (const char *p = c1 + 1; p < c2;) {
          const char *q = memchr(p, ',', (size_t)(c2 - p));
          if (!q)
            q = c2;
          if ((size_t)(q - p) == strlen(controller) && strncmp(p, controller, (size_t)(q - p)) == 0)
            match = true;
          p = q + 1;
        }
      }
      size_t pl = (size_t)(line + n - c2 - 1);
      if (match && pl > 0 && pl < len) {
        memcpy(out, c2 + 1, pl);
        out[pl] = '\0';
        return 0;
      }
    }
    line = eol ? eol + 1 : NULL;
  }
  return -1;
}

/* Own dir = mount point + (own path relative to the mount's root); false when
 * our cgroup is not visible through this mount or the path is too long. */
static bool own_dir(const cg_mount *m, const char *own, char *out, size_t len) {
  size_t rl = strlen(m->root);
  const char *rel = own;
  if (strcmp(m->root, "/") != 0) {
    if (strncmp(own, m->root, rl) != 0 || (own[rl] != '/' && own[rl] != '\0'))
      return false;
    rel = own + rl;
  }
  while (*rel == '/')
    rel++;
  int n = snprintf(out, len, "%s%s%s", m->path, *rel ? "/" : "", rel);
  return n > 0 && (size_t)n < len;
}

static bool under_root(const char *root, const char *path) {
  size_t rl = strlen(root);
  while (rl > 1 && root[rl - 1] == '/')
    rl--;
  return strncmp(path, root, rl) == 0 && (path[rl] == '\0' || path[rl] == '/' || rl == 1);
}

int cg_detect(const char *root, bool root_is_cgroup2, const cg_mount *mounts, size_t nmounts,
              const char *proc_cgroup, cg_detection *d, rr_err *e) {
  memset(d, 0, sizeof *d);
  char own[CG_PATH_MAX];
  if (root_is_cgroup2) {
    if (cg_parse_proc_cgroup(proc_cgroup, NULL, own, sizeof own) < 0)
      return rr_err_set(e, RR_FAILED_PRECONDITION,
                        "%s is a cgroup2 mount but /proc/self/cgroup has no \"0::\" line", root);
    cg_mount m = {.v2 = true};
    snprintf(m.path, sizeof m.path, "%s", root);
    snprintf(m.root, sizeof m.root, "/");
    if (!own_dir(&m, own, d->hier[0].own_dir, sizeof d->hier[0].own_dir))
      return rr_err_set(e, RR_FAILED_PRECONDITION, "our cgroup \"%s\" is too long", own);
    d->version = CG_V2;
    d->nhier = 1;
    d->own_is_root = strcmp(own, "/") == 0;
    snprintf(d->own, sizeof d->own, "%s", own);
    return 0;
  }
  unsigned have = 0;
  for (size_t i = 0; i < nmounts && d->nhier < CG_MAX_HIER; i++) {
    const cg_mount *m = &mounts[i];
    unsigned ctrls = m->controllers & ~have;
    if (m->v2 || !ctrls || !under_root(root, m->path))
      continue;
    /* Find our line by any controller of this hierarchy. */
    const char *first = m->controllers & CG_CTRL_CPU       ? "cpu"
                        : m->controllers & CG_CTRL_CPUACCT ? "cpuacct"
                        : m->controllers & CG_CTRL_MEMORY  ? "memory"
                        : m->controllers & CG_CTRL_IO      ? "blkio"
                        : m->controllers & CG_CTRL_PIDS    ? "pids"
                                                           : "freezer";
    if (cg_parse_proc_cgroup(proc_cgroup, first, own, sizeof own) < 0)
      continue;
    if (!own_dir(m, own, d->hier[d->nhier].own_dir, sizeof d->hier[d->nhier].own_dir))
      continue;
    d->hier[d->nhier++].controllers = ctrls;
    have |= ctrls;
  }
  if (d->nhier > 0) {
    d->version = CG_V1;
    return 0;
  }
  for (size_t i = 0; i < nmounts; i++) {
    const cg_mount *m = &mounts[i];
    if (!m->v2 || !under_root(root, m->path) ||
        cg_parse_proc_cgroup(proc_cgroup, NULL, own, sizeof own) < 0 ||
        !own_dir(m, own, d->hier[0].own_dir, sizeof d->hier[0].own_dir))
      continue;
    d->version = CG_V2;
    d->nhier = 1;
    d->own_is_root = strcmp(own, "/") == 0;
    snprintf(d->own, sizeof d->own, "%s", own);
    return 0;
  }
  return 0; /* CG_NONE */
}

void cg_parse_io_stat(const char *text, cg_usage *u) {
  static const char *keys[] = {"rbytes=", "wbytes=", "rios=", "wios="};
  uint64_t *dst[] = {&u->io_read_bytes, &u->io_write_bytes, &u->io_read_ops, &u->io_write_ops};
  for (const char *line = text; line && *line;) {
    const char *eol = strchr(line, '\n');
    size_t n = eol ? (size_t)(eol - line) : strlen(line);
    for (const char *p = line; p < line + n;) {
      size_t wl = strcspn(p, " \n");
      for (size_t k = 0; k < RR_ARRAY_SIZE(keys); k++) {
        size_t kl = strlen(keys[k]);
        if (wl > kl && strncmp(p, keys[k], kl) == 0)
          *dst[k] += strtoull(p + kl, NULL, 10);
      }
      p += wl;
      while (*p == ' ')
        p++;
    }
    line = eol ? eol + 1 : NULL;
  }
}

void cg_parse_blkio(const char *text, uint64_t *read, uint64_t *write) {
  *read = *write = 0;
  for (const char *line = text; line && *line;) {
    const char *eol = strchr(line, '\n');
    unsigned maj, min;
    char op[16];
    unsigned long long v;
    /* "8:0 Read 123"; the final "Total N" line has no device and is skipped. */
    if (sscanf(line, "%u:%u %15s %llu", &maj, &min, op, &v) == 4) {
      if (strcmp(op, "Read") == 0)
        *read += v;
      else if (strcmp(op, "Write") == 0)
        *write += v;
    }
    line = eol ? eol + 1 : NULL;
  }
}

void cg_parse_cpu_stat(const char *text, cg_usage *u) {
  uint64_t v;
  if (cg_parse_keyed(text, "usage_usec", &v))
    u->cpu_usec = v;
  if (cg_parse_keyed(text, "user_usec", &v))
    u->cpu_user_usec = v;
  if (cg_parse_keyed(text, "system_usec", &v))
    u->cpu_system_usec = v;
  if (cg_parse_keyed(text, "throttled_usec", &v))
    u->cpu_throttled_usec = v;
}

unsigned cg_parse_v2_controllers(const char *text) {
  static const struct {
    const char *name;
    unsigned bit;
  } names[] = {
      {"cpu", CG_CTRL_CPU}, {"memory", CG_CTRL_MEMORY}, {"io", CG_CTRL_IO}, {"pids", CG_CTRL_PIDS}};
  unsigned mask = 0;
  for (const char *p = text; *p;) {
    size_t n = strcspn(p, " \n");
    for (size_t i = 0; i < RR_ARRAY_SIZE(names); i++)
      if (strlen(names[i].name) == n && strncmp(p, names[i].name, n) == 0)
        mask |= names[i].bit;
    p += n;
    while (*p == ' ' || *p == '\n')
      p++;
  }
  return mask;
}

const char *cg_controller_name(unsigned bit, cg_version v) {
  switch (bit) {
  case CG_CTRL_CPU:
    return "cpu";
  case CG_CTRL_CPUACCT:
    return "cpuacct";
  case CG_CTRL_MEMORY:
    return "memory";
  case CG_CTRL_IO:
    return v == CG_V1 ? "blkio" : "io";
  case CG_CTRL_PIDS:
    return "pids";
  case CG_CTRL_FREEZER:
    return "freezer";
  default:
    return "?";
  }
}

bool cg_parse_usage_all(const char *text, uint64_t *user_ns, uint64_t *sys_ns) {
  static const char head[] = "cpu user system\n";
  if (strncmp(text, head, sizeof head - 1) != 0)
    return false;
  uint64_t u = 0, s = 0;
  unsigned lines = 0;
  for (const char *p = text + sizeof head - 1; *p; lines++) {
    char *end;
    uint64_t v[3];
    for (int i = 0; i < 3; i++) {
      if (*p < '0' || *p > '9')
        return false;
      v[i] = strtoull(p, &end, 10);
      p = end;
      if (*p != (i == 2 ? '\n' : ' '))
        return false; /* a line cut short by the buffer is refused too */
      p++;
    }
    u += v[1];
    s += v[2];
  }
  if (!lines)
    return false;
  *user_ns = u;
  *sys_ns = s;
  return true;
}

int cg_file_read_opt(const char *dir, const char *file, char *buf, size_t len, rr_err *e) {
  _cleanup_free_ char *path = cg_path_join(dir, file);
  if (!path)
    return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, ENOMEM, "cannot read %s", file);
  rr_err tmp;
  if (file_read(path, buf, len, true, &tmp) < 0) {
    if (tmp.sys_errno == ENOENT)
      return 0;
    *e = tmp;
    return -1;
  }
  return 1;
}

int cg_file_write_u64(const char *dir, const char *file, uint64_t v, const char *what, rr_err *e) {
  char buf[32];
  snprintf(buf, sizeof buf, "%" PRIu64, v);
  return cg_file_write(dir, file, buf, what, e);
}
