/* One layer tar into a directory, never by following a path string: every
 * parent is opened with openat2(RESOLVE_IN_ROOT) from the layer's root (a
 * symlink in the layer resolves inside it, as in the container), the last
 * component is made with the *at calls that do not follow it. Absolute
 * names, ".." and links whose targets climb out of the root are refused.
 * Whiteouts become overlayfs's: `.wh.NAME` a 0/0 character device NAME,
 * `.wh..wh..opq` the directory's trusted.overlay.opaque xattr. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/util.h"
#include "images/images_internal.h"

#define WH_PREFIX ".wh."
#define WH_OPAQUE ".wh..wh..opq"
#define WH_META ".wh..wh."

typedef struct extract_ctx {
  struct archive *a;
  int rootfd;
  bool is_root;
  const char *what;
  img_layer_stats *st;
} extract_ctx;

int img_path_clean(const char *path, char *out, size_t n, rr_err *e) {
  if (!path)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "entry without a name");
  if (path[0] == '/')
    return rr_err_set(e, RR_INVALID_ARGUMENT, "\"%s\": absolute path refused", path);
  size_t len = 0;
  const char *p = path;
  while (*p) {
    const char *end = strchrnul(p, '/');
    size_t cl = (size_t)(end - p);
    if (cl == 2 && p[0] == '.' && p[1] == '.')
      return rr_err_set(e, RR_INVALID_ARGUMENT, "\"%s\": \"..\" in a path refused", path);
    if (cl && !(cl == 1 && p[0] == '.')) {
      if (len + cl + 2 > n)
        return rr_err_set(e, RR_INVALID_ARGUMENT, "\"%.64s...\": path too long", path);
      if (len)
        out[len++] = '/';
      memcpy(out + len, p, cl);
      len += cl;
    }
    p = *end ? end + 1 : end;
  }
  out[len] = 0;
  return 0;
}

/* A symlink target, read from the directory at depth (components below the
 * root), must not climb above the root. */
static bool link_target_escapes(const char *target, unsigned depth) {
  long d = target[0] == '/' ? 0 : (long)depth;
  const char *p = target;
  while (*p) {
    const char *end = strchrnul(p, '/');
    size_t cl = (size_t)(end - p);
    if (cl == 2 && p[0] == '.' && p[1] == '.') {
      if (--d < 0)
        return true;
    } else if (cl && !(cl == 1 && p[0] == '.'))
      d++;
    p = *end ? end + 1 : end;
  }
  return false;
}

static int open_in_root(int rootfd, const char *path, uint64_t flags) {
  struct open_how how = {.flags = flags | O_CLOEXEC,
                         .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV};
  int fd;
  do
    fd = (int)syscall(SYS_openat2, rootfd, *path ? path : ".", &how, sizeof how);
  while (fd < 0 && errno == EAGAIN);
  return fd;
}

/* The directory dir (clean, relative) below the root, made (0755) where
 * missing: an archive may list a file before its directories. */
static int extract_dir_open(extract_ctx *x, const char *dir, rr_err *e) {
  int fd = open_in_root(x->rootfd, dir, O_PATH | O_DIRECTORY);
  if (fd >= 0 || errno != ENOENT)
    goto out;
  char buf[PATH_MAX];
  snprintf(buf, sizeof buf, "%s", dir);
  for (char *slash = buf;; slash++) {
    slash = strchrnul(slash, '/');
    char saved = *slash;
    *slash = 0;
    char *base = strrchr(buf, '/');
    _cleanup_close_ int parent = -1;
    if (base) {
      *base = 0;
      parent = open_in_root(x->rootfd, buf, O_PATH | O_DIRECTORY);
      *base = '/';
    } else
      parent = open_in_root(x->rootfd, "", O_PATH | O_DIRECTORY);
    if (parent < 0)
      return rr_err_sys(e, RR_INTERNAL, errno, "%s: cannot open \"%s\"", x->what, buf);
    if (mkdirat(parent, base ? base + 1 : buf, 0755) < 0 && errno != EEXIST)
      return rr_err_sys(e, RR_INTERNAL, errno, "%s: cannot make \"%s\"", x->what, buf);
    *slash = saved;
    if (!saved)
      break;
  }
  fd = open_in_root(x->rootfd, dir, O_PATH | O_DIRECTORY);
out:
  if (fd < 0)
    return rr_err_sys(e, errno == ELOOP || errno == ENOTDIR ? RR_INVALID_ARGUMENT : RR_INTERNAL,
                      errno, "%s: cannot open directory \"%s\"", x->what, dir);
  return fd;
}

/* Clear the way for a new entry named base in parent (an existing
 * directory stays when keep_dir). */
static int extract_clear(extract_ctx *x, int parent, const char *base, bool keep_dir,
                         const char *path, rr_err *e) {
  struct stat st;
  if (fstatat(parent, base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
    if (errno == ENOENT)
      return 0;
    return rr_err_sys(e, RR_INTERNAL, errno, "%s: cannot stat \"%s\"", x->what, path);
  }
  if (keep_dir && S_ISDIR(st.st_mode))
    return 1;
  if (img_rmtree_at(parent, base) < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "%s: cannot replace \"%s\"", x->what, path);
  return 0;
}

static bool block_is_zero(const void *buf, size_t len) {
  const unsigned char *p = buf;
  return len == 0 || (p[0] == 0 && memcmp(p, p + 1, len - 1) == 0);
}

/* File data, zero blocks left as holes (a large sparse file stays cheap). */
static int extract_data(extract_ctx *x, int fd, struct archive_entry *en, const char *path,
                        rr_err *e) {
  const void *buf;
  size_t len;
  la_int64_t off;
  int r;
  while ((r = archive_read_data_block(x->a, &buf, &len, &off)) == ARCHIVE_OK) {
    if (block_is_zero(buf, len))
      continue;
    const char *p = buf;
    while (len) {
      ssize_t n = pwrite(fd, p, len, off);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return rr_err_sys(e,
                          errno == ENOSPC || errno == EDQUOT ? RR_RESOURCE_EXHAUSTED : RR_INTERNAL,
                          errno, "%s: cannot write \"%s\"", x->what, path);
      p += n;
      off += n;
      len -= (size_t)n;
      x->st->bytes += (uint64_t)n;
    }
  }
  if (r != ARCHIVE_EOF)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: \"%s\": %s", x->what, path,
                      archive_error_string(x->a));
  if (ftruncate(fd, archive_entry_size(en)) < 0)
    return rr_err_sys(e, errno == ENOSPC ? RR_RESOURCE_EXHAUSTED : RR_INTERNAL, errno,
                      "%s: cannot size \"%s\"", x->what, path);
  return 0;
}

/* Owner (root only: a rund that is not root keeps its own), mode, mtime. */
static int extract_meta(extract_ctx *x, int parent, const char *base, struct archive_entry *en,
                        bool is_link, const char *path, rr_err *e) {
  if (x->is_root && fchownat(parent, base, (uid_t)archive_entry_uid(en),
                             (gid_t)archive_entry_gid(en), AT_SYMLINK_NOFOLLOW) < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "%s: cannot chown \"%s\"", x->what, path);
  if (!is_link && fchmodat(parent, base, archive_entry_perm(en) & 07777, 0) < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "%s: cannot chmod \"%s\"", x->what, path);
  struct timespec ts[2] = {
      {.tv_nsec = UTIME_OMIT},
      {.tv_sec = archive_entry_mtime(en), .tv_nsec = archive_entry_mtime_nsec(en)}};
  if (utimensat(parent, base, ts, AT_SYMLINK_NOFOLLOW) < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "%s: cannot set times of \"%s\"", x->what, path);
  return 0;
}

static int extract_whiteout(extract_ctx *x, int parent, const char *dir, const char *base,
                            const char *path, rr_err *e) {
  if (!strcmp(base, WH_OPAQUE)) {
    _cleanup_close_ int d = open_in_root(x->rootfd, dir, O_RDONLY | O_DIRECTORY);
    if (d < 0)
      return rr_err_sys(e, RR_INTERNAL, errno, "%s: cannot open \"%s\"", x->what, dir);
    if (fsetxattr(d, "trusted.overlay.opaque", "y", 1, 0) < 0)
      return rr_err_sys(e, RR_FAILED_PRECONDITION, errno,
                        "%s: opaque directory \"%s\" (overlayfs xattr; rund must be root)", x->what,
                        *dir ? dir : "/");
    return 0;
  }
  if (!strncmp(base, WH_META, strlen(WH_META)))
    return 0; /* aufs bookkeeping (.wh..wh.plnk, ...) */
  const char *name = base + strlen(WH_PREFIX);
  if (!*name || !strcmp(name, ".") || !strcmp(name, ".."))
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: bad whiteout \"%s\"", x->what, path);
  if (extract_clear(x, parent, name, false, path, e) < 0)
    return -1;
  if (mknodat(parent, name, S_IFCHR | 0, makedev(0, 0)) < 0)
    return rr_err_sys(e, RR_FAILED_PRECONDITION, errno,
                      "%s: whiteout \"%s\" (overlayfs device 0/0; rund must be root)", x->what,
                      path);
  return 0;
}

static int extract_file(extract_ctx *x, int parent, const char *base, struct archive_entry *en,
                        const char *path, rr_err *e) {
  _cleanup_close_ int fd =
      openat(parent, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return rr_err_sys(e, errno == ENOSPC ? RR_RESOURCE_EXHAUSTED : RR_INTERNAL, errno,
                      "%s: cannot create \"%s\"", x->what, path);
  return extract_data(x, fd, en, path, e);
}

static int extract_hardlink(extract_ctx *x, int parent, const char *base, const char *target,
                            const char *path, rr_err *e) {
  char clean[PATH_MAX];
  if (img_path_clean(target, clean, sizeof clean, e) < 0)
    return rr_err_wrap(e, "%s: hard link \"%s\"", x->what, path);
  char *slash = strrchr(clean, '/');
  const char *tbase = clean;
  _cleanup_close_ int tparent = -1;
  if (slash) {
    *slash = 0;
    tbase = slash + 1;
    tparent = open_in_root(x->rootfd, clean, O_PATH | O_DIRECTORY);
  } else
    tparent = open_in_root(x->rootfd, "", O_PATH | O_DIRECTORY);
  if (tparent < 0 || linkat(tparent, tbase, parent, base, 0) < 0)
    return rr_err_sys(e, RR_INVALID_ARGUMENT, errno, "%s: hard link \"%s\" to \"%s\"", x->what,
                      path, target);
  return 0;
}

static unsigned path_depth(const char *dir) {
  unsigned d = *dir ? 1 : 0;
  for (const char *p = dir; *p; p++)
    d += *p == '/';
  return d;
}

/* Make the entry's object (base in parent); 1: nothing made. */
static int extract_make(extract_ctx *x, int parent, const char *dir, const char *base,
                        struct archive_entry *en, const char *path, rr_err *e) {
  mode_t type = archive_entry_filetype(en);
  int r = extract_clear(x, parent, base, type == AE_IFDIR, path, e);
  if (r < 0)
    return -1;
  switch (type) {
  case AE_IFDIR:
    if (!r && mkdirat(parent, base, 0700) < 0)
      return rr_err_sys(e, RR_INTERNAL, errno, "%s: cannot make \"%s\"", x->what, path);
    return 0;
  case AE_IFREG:
    return extract_file(x, parent, base, en, path, e);
  case AE_IFLNK: {
    const char *target = archive_entry_symlink(en);
    if (!target || !*target)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: symlink \"%s\" without a target", x->what,
                        path);
    if (link_target_escapes(target, path_depth(dir)))
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "%s: symlink \"%s\" -> \"%s\" leaves the root: refused", x->what, path,
                        target);
    if (symlinkat(target, parent, base) < 0)
      return rr_err_sys(e, RR_INTERNAL, errno, "%s: cannot make symlink \"%s\"", x->what, path);
    return 0;
  }
  case AE_IFIFO:
    if (mknodat(parent, base, S_IFIFO | 0600, 0) < 0)
      return rr_err_sys(e, RR_INTERNAL, errno, "%s: cannot make fifo \"%s\"", x->what, path);
    return 0;
  case AE_IFCHR:
  case AE_IFBLK:
    if (!x->is_root) {
      x->st->devices_skipped++;
      return 1;
    }
    if (mknodat(parent, base, type | 0600, archive_entry_rdev(en)) < 0)
      return rr_err_sys(e, RR_INTERNAL, errno, "%s: cannot make device \"%s\"", x->what, path);
    return 0;
  default:
    return 1; /* sockets: nothing to unpack */
  }
}

static int extract_entry(extract_ctx *x, struct archive_entry *en, rr_err *e) {
  char path[PATH_MAX];
  if (img_path_clean(archive_entry_pathname(en), path, sizeof path, e) < 0)
    return rr_err_wrap(e, "%s", x->what);
  if (!*path)
    return 0; /* the root itself: ours stays as made */
  char *slash = strrchr(path, '/');
  char dir[PATH_MAX] = "";
  const char *base = path;
  if (slash) {
    memcpy(dir, path, (size_t)(slash - path));
    dir[slash - path] = 0;
    base = slash + 1;
  }
  _cleanup_close_ int parent = extract_dir_open(x, dir, e);
  if (parent < 0)
    return -1;
  if (!strncmp(base, WH_PREFIX, strlen(WH_PREFIX)))
    return extract_whiteout(x, parent, dir, base, path, e);
  const char *hardlink = archive_entry_hardlink(en);
  if (hardlink) {
    if (extract_clear(x, parent, base, false, path, e) < 0)
      return -1;
    return extract_hardlink(x, parent, base, hardlink, path, e);
  }
  int r = extract_make(x, parent, dir, base, en, path, e);
  if (r != 0)
    return r < 0 ? -1 : 0;
  return extract_meta(x, parent, base, en, archive_entry_filetype(en) == AE_IFLNK, path, e);
}

int img_layer_extract(struct archive *a, int rootfd, bool is_root, const char *what,
                      img_layer_stats *st, rr_err *e) {
  extract_ctx x = {.a = a, .rootfd = rootfd, .is_root = is_root, .what = what, .st = st};
  struct archive_entry *en;
  int r;
  while ((r = archive_read_next_header(a, &en)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
    if (extract_entry(&x, en, e) < 0)
      return -1;
  }
  if (r != ARCHIVE_EOF)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: not a readable tar: %s", what,
                      archive_error_string(a) ? archive_error_string(a) : "unknown error");
  return 0;
}
