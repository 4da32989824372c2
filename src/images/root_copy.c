/* The root of a command without overlayfs: the image's layers copied,
 * bottom first, into one directory, each layer's whiteouts applied as
 * overlayfs would (a 0/0 character device removes the name below it, an
 * opaque directory hides what lower layers put in it). File data is
 * reflinked where the filesystem shares extents (FICLONE), else copied in
 * the kernel (copy_file_range). Hard links inside a layer stay links. The
 * layers are the store's own (checked when unpacked); every call is still
 * relative to a directory fd and never follows a symlink. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/util.h"
#include "images/images_internal.h"

typedef struct copy_link {
  dev_t dev;
  ino_t ino;
  char *path; /* below the destination root */
} copy_link;

typedef struct copy_ctx {
  bool is_root;
  const char *what; /* "layer sha256:0123456789ab" */
  int dstroot;
  copy_link *links; /* this layer's files with several names, as copied */
  size_t nlinks, caplinks;
  unsigned depth;
  char path[PATH_MAX]; /* the entry being copied, relative to the root */
} copy_ctx;

/* Each level holds three fds and a frame: a bound, not PATH_MAX/2 levels. */
#define COPY_MAX_DEPTH 256

static void copy_links_clear(copy_ctx *c) {
  for (size_t i = 0; i < c->nlinks; i++)
    free(c->links[i].path);
  c->nlinks = 0;
}

static __attribute__((noinline)) int copy_data(copy_ctx *c, int in, int out, off_t size,
                                               rr_err *e) {
  if (ioctl(out, FICLONE, in) == 0)
    return 0;
  off_t left = size;
  bool kernel = true;
  char buf[64 << 10];
  while (left > 0) {
    ssize_t n = -1;
    if (kernel) {
      n = copy_file_range(in, NULL, out, NULL, (size_t)left, 0);
      if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL)) {
        kernel = false;
        continue;
      }
    } else {
      n = rr_read(in, buf, sizeof buf);
      if (n > 0 && rr_write_all(out, buf, (size_t)n) < 0)
        n = -1;
    }
    if (n < 0)
      return rr_err_sys(e, errno == ENOSPC || errno == EDQUOT ? RR_RESOURCE_EXHAUSTED : RR_INTERNAL,
                        errno, "image root (copy): %s: cannot copy \"%s\"", c->what, c->path);
    if (n == 0)
      break; /* the layer's file is never shorter than it was: nothing more */
    left -= n;
  }
  return 0;
}

static int copy_meta(copy_ctx *c, int dst, const char *name, const struct stat *st, rr_err *e) {
  if (c->is_root && fchownat(dst, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "image root (copy): cannot chown \"%s\"", c->path);
  if (!S_ISLNK(st->st_mode) && fchmodat(dst, name, st->st_mode & 07777, 0) < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "image root (copy): cannot chmod \"%s\"", c->path);
  struct timespec ts[2] = {st->st_atim, st->st_mtim};
  if (utimensat(dst, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "image root (copy): cannot set times of \"%s\"",
                      c->path);
  return 0;
}

static int copy_file(copy_ctx *c, int src, int dst, const char *name, const struct stat *st,
                     rr_err *e) {
  if (st->st_nlink > 1) {
    for (size_t i = 0; i < c->nlinks; i++)
      if (c->links[i].dev == st->st_dev && c->links[i].ino == st->st_ino) {
        if (linkat(c->dstroot, c->links[i].path, dst, name, 0) < 0)
          return rr_err_sys(e, RR_INTERNAL, errno, "image root (copy): cannot link \"%s\"",
                            c->path);
        return 1; /* the link shares the first name's metadata */
      }
  }
  _cleanup_close_ int in = openat(src, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  _cleanup_close_ int out =
      openat(dst, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (in < 0 || out < 0)
    return rr_err_sys(e, errno == ENOSPC ? RR_RESOURCE_EXHAUSTED : RR_INTERNAL, errno,
                      "image root (copy): cannot copy \"%s\"", c->path);
  if (copy_data(c, in, out, st->st_size, e) < 0)
    return -1;
  if (st->st_nlink > 1) {
    if (c->nlinks == c->caplinks) {
      size_t cap = c->caplinks ? c->caplinks * 2 : 16;
      copy_link *more = realloc(c->links, cap * sizeof *more);
      if (!more)
        return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
      c->links = more;
      c->caplinks = cap;
    }
    char *p = strdup(c->path);
    if (!p)
      return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
    c->links[c->nlinks++] = (copy_link){st->st_dev, st->st_ino, p};
  }
  return 0;
}

/* Empty the directory name below dst (an opaque directory of a higher layer). */
static int copy_empty_dir(copy_ctx *c, int dst, const char *name, rr_err *e) {
  int fd = openat(dst, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
  if (!d) {
    rr_closep(&fd);
    return rr_err_sys(e, RR_INTERNAL, errno, "image root (copy): cannot open \"%s\"", c->path);
  }
  int r = 0;
  for (struct dirent *de; r == 0 && (de = readdir(d));)
    if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
        img_rmtree_at(dirfd(d), de->d_name) < 0)
      r = rr_err_sys(e, RR_INTERNAL, errno, "image root (copy): cannot clear \"%s\"", c->path);
  closedir(d);
  return r;
}

static int copy_tree(copy_ctx *c, int src, int dst, rr_err *e);

/* Out of copy_entry's frame: its buffer is not on the stack of every level. */
static __attribute__((noinline)) int copy_symlink(copy_ctx *c, int src, int dst, const char *name,
                                                  rr_err *e) {
  char target[PATH_MAX];
  ssize_t n = readlinkat(src, name, target, sizeof target - 1);
  if (n < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "image root (copy): cannot read \"%s\"", c->path);
  target[n] = 0;
  if (symlinkat(target, dst, name) < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "image root (copy): cannot make \"%s\"", c->path);
  return 0;
}

/* One entry name of the layer directory src onto dst. */
static int copy_entry(copy_ctx *c, int src, int dst, const char *name, rr_err *e) {
  struct stat st, have;
  if (fstatat(src, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "image root (copy): %s: cannot stat \"%s\"", c->what,
                      c->path);
  bool exists = fstatat(dst, name, &have, AT_SYMLINK_NOFOLLOW) == 0;
  if (S_ISCHR(st.st_mode) && st.st_rdev == 0) /* a whiteout: the name goes */
    return exists && img_rmtree_at(dst, name) < 0
               ? rr_err_sys(e, RR_INTERNAL, errno, "image root (copy): cannot remove \"%s\"",
                            c->path)
               : 0;
  if (exists && !(S_ISDIR(st.st_mode) && S_ISDIR(have.st_mode))) {
    if (img_rmtree_at(dst, name) < 0)
      return rr_err_sys(e, RR_INTERNAL, errno, "image root (copy): cannot replace \"%s\"", c->path);
    exists = false;
  }
  int r = 0;
  switch (st.st_mode & S_IFMT) {
  case S_IFDIR: {
    if (!exists && mkdirat(dst, name, 0700) < 0)
      return rr_err_sys(e, RR_INTERNAL, errno, "image root (copy): cannot make \"%s\"", c->path);
    _cleanup_close_ int s = openat(src, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    char opaque[2];
    if (s < 0)
      return rr_err_sys(e, RR_INTERNAL, errno, "image root (copy): cannot open \"%s\"", c->path);
    if (exists && fgetxattr(s, "trusted.overlay.opaque", opaque, sizeof opaque) == 1 &&
        opaque[0] == 'y' && copy_empty_dir(c, dst, name, e) < 0)
      return -1;
    _cleanup_close_ int d = openat(dst, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (d < 0)
      return rr_err_sys(e, RR_INTERNAL, errno, "image root (copy): cannot open \"%s\"", c->path);
    if (++c->depth > COPY_MAX_DEPTH)
      return rr_err_set(e, RR_FAILED_PRECONDITION,
                        "image root (copy): %s: \"%.100s...\" is more than %d directories deep",
                        c->what, c->path, COPY_MAX_DEPTH);
    r = copy_tree(c, s, d, e);
    c->depth--;
    if (r < 0)
      return -1;
    break;
  }
  case S_IFREG:
    r = copy_file(c, src, dst, name, &st, e);
    break;
  case S_IFLNK:
    if (copy_symlink(c, src, dst, name, e) < 0)
      return -1;
    break;
  case S_IFIFO:
  case S_IFCHR:
  case S_IFBLK:
    if (mknodat(dst, name, (st.st_mode & S_IFMT) | 0600, st.st_rdev) < 0)
      return rr_err_sys(e, RR_INTERNAL, errno, "image root (copy): cannot make \"%s\"", c->path);
    break;
  default:
    return 0; /* a socket: nothing to copy */
  }
  if (r != 0)
    return r < 0 ? -1 : 0;
  return copy_meta(c, dst, name, &st, e);
}

static int copy_tree(copy_ctx *c, int src, int dst, rr_err *e) {
  int fd = openat(src, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
  if (!d) {
    rr_closep(&fd);
    return rr_err_sys(e, RR_INTERNAL, errno, "image root (copy): cannot read \"%s\"", c->path);
  }
  size_t base = strlen(c->path);
  int r = 0;
  for (struct dirent *de; r == 0 && (de = readdir(d));) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
      continue;
    int n = snprintf(c->path + base, sizeof c->path - base, "%s%s", base ? "/" : "", de->d_name);
    if (n < 0 || (size_t)n >= sizeof c->path - base)
      r = rr_err_set(e, RR_INTERNAL, "image root (copy): a path longer than %d bytes", PATH_MAX);
    else
      r = copy_entry(c, src, dst, de->d_name, e);
    c->path[base] = 0;
  }
  closedir(d);
  return r;
}

int img_root_copy(img_store *s, const char *const *hexes, size_t n, int dstfd, rr_err *e) {
  copy_ctx *c = calloc(1, sizeof *c);
  if (!c)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  c->is_root = s->is_root;
  c->dstroot = dstfd;
  int r = 0;
  for (size_t i = 0; r == 0 && i < n; i++) {
    char path[80], what[48];
    snprintf(path, sizeof path, "layers/%.64s", hexes[i]);
    snprintf(what, sizeof what, "layer sha256:%.12s", hexes[i]);
    c->what = what;
    c->path[0] = 0;
    _cleanup_close_ int src =
        openat(s->dirfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (src < 0)
      r = rr_err_sys(e, RR_FAILED_PRECONDITION, errno, "image root (copy): %s is not in the store",
                     what);
    else
      r = copy_tree(c, src, dstfd, e);
    copy_links_clear(c);
  }
  free(c->links);
  free(c);
  return r;
}

int img_root_copy_named(img_store *s, const char *name, rr_err *e) {
  char path[128];
  if (!*name || strlen(name) > 64 || strchr(name, '/') || name[0] == '.')
    return rr_err_set(e, RR_INVALID_ARGUMENT, "image root (copy): bad root name \"%.80s\"", name);
  snprintf(path, sizeof path, "roots/%s/layers", name);
  _cleanup_close_ int lfd = openat(s->dirfd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (lfd < 0)
    return rr_err_sys(e, RR_NOT_FOUND, errno, "image root (copy): cannot open \"%s\"", path);
  FILE *f = fdopen(lfd, "r");
  if (!f)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  lfd = -1;
  char **hexes = NULL, line[128];
  size_t n = 0;
  int r = 0;
  char hex[65];
  while (r == 0 && fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0;
    if (img_digest_parse(line, "image root (copy): a layer", hex, e) < 0) {
      r = -1;
      break;
    }
    char **h = n < 4096 ? realloc(hexes, (n + 1) * sizeof *hexes) : NULL;
    if (!h) {
      r = rr_err_set(e, RR_RESOURCE_EXHAUSTED, "image root (copy): too many layers");
      break;
    }
    hexes = h;
    if (!(hexes[n] = strdup(hex)))
      r = rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
    else
      n++;
  }
  fclose(f);
  snprintf(path, sizeof path, "roots/%s/merged", name);
  _cleanup_close_ int dst =
      r ? -1 : openat(s->dirfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (!r && dst < 0)
    r = rr_err_sys(e, RR_INTERNAL, errno, "image root (copy): cannot open \"%s\"", path);
  if (!r)
    r = img_root_copy(s, (const char *const *)hexes, n, dst, e);
  /* the sandbox's mount points (a strict sandbox's ids may not make them) */
  for (const char *const *d = (const char *const[]){"proc", "dev", "sys", "tmp", NULL}; !r && *d;
       d++)
    if (mkdirat(dst, *d, 0755) < 0 && errno != EEXIST)
      r = rr_err_sys(e, RR_FAILED_PRECONDITION, errno, "image root: cannot make /%s", *d);
  for (size_t i = 0; i < n; i++)
    free(hexes[i]);
  free(hexes);
  return r;
}
