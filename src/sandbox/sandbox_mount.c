/* The mount namespace of sb_spawn's child: / private, the root bound onto
 * itself (or "/" onto a staging dir), the spec's mounts inside it with
 * destinations resolved in the root (openat2 RESOLVE_IN_ROOT, else a walk
 * that refuses symlinks) and created as needed, runc's default devices on a
 * tmpfs /dev, pivot_root(".", ".") and the old root detached, masked and
 * read-only paths, the root read-only. Read-only remounts keep the flags
 * the kernel locks (nosuid, nodev, noexec, atime) in a user namespace. */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox/sandbox_internal.h"

enum { SB_NO_CREATE, SB_CREATE_DIR, SB_CREATE_FILE };

static bool sb_no_openat2;

void sb_set_openat2_disabled(bool disabled) { sb_no_openat2 = disabled; }

/* rel (no leading '/') under rootfd as an O_PATH fd, never outside it. */
static int sb_open_in_root(int rootfd, const char *rel) {
  if (!sb_no_openat2) {
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = O_PATH | O_CLOEXEC;
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    int fd = (int)syscall(SYS_openat2, rootfd, rel, &how, sizeof how);
    if (fd >= 0 || errno != ENOSYS)
      return fd;
    sb_no_openat2 = true;
  }
  /* before Linux 5.6: one component at a time, refusing symlinks and ".." */
  char buf[4096];
  size_t len = strlen(rel);
  if (len >= sizeof buf)
    return errno = ENAMETOOLONG, -1;
  memcpy(buf, rel, len + 1);
  int fd = openat(rootfd, ".", O_PATH | O_CLOEXEC);
  for (char *p = buf, *next; fd >= 0 && *p; p = next) {
    size_t n = strcspn(p, "/");
    next = p + n + (p[n] == '/');
    p[n] = '\0';
    if (!*p || strcmp(p, ".") == 0)
      continue;
    int nfd =
        strcmp(p, "..") ? openat(fd, p, O_PATH | O_NOFOLLOW | O_CLOEXEC) : (errno = EXDEV, -1);
    struct stat st;
    if (nfd >= 0 && (fstat(nfd, &st) < 0 || S_ISLNK(st.st_mode))) {
      close(nfd);
      nfd = (errno = ELOOP, -1);
    }
    int saved = errno;
    close(fd);
    errno = saved;
    fd = nfd;
  }
  return fd;
}

/* path inside the root as an O_PATH fd, creating what is missing (dirs,
 * and the last component as create says); -1 with errno. */
static int sb_resolve(int rootfd, const char *path, int create) {
  char rel[4096];
  while (*path == '/')
    path++;
  size_t len = strlen(path);
  if (len >= sizeof rel)
    return errno = ENAMETOOLONG, -1;
  memcpy(rel, *path ? path : ".", *path ? len + 1 : 2);
  int fd = sb_open_in_root(rootfd, rel);
  if (fd >= 0 || errno != ENOENT || create == SB_NO_CREATE)
    return fd;
  int parent = -1;
  for (size_t i = 0; rel[i];) {
    size_t start = i;
    while (rel[i] && rel[i] != '/')
      i++;
    bool last = !rel[i] || !rel[i + 1];
    char saved = rel[i];
    rel[i] = '\0';
    fd = sb_open_in_root(rootfd, rel);
    if (fd < 0 && errno == ENOENT) {
      int dir = parent >= 0 ? parent : rootfd;
      int r;
      if (last && create == SB_CREATE_FILE) {
        r = openat(dir, rel + start, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (r >= 0)
          close(r);
      } else
        r = mkdirat(dir, rel + start, 0755);
      fd = r < 0 && errno != EEXIST ? -1 : sb_open_in_root(rootfd, rel);
    }
    rel[i] = saved;
    int err = errno;
    if (parent >= 0)
      close(parent);
    errno = err;
    if (fd < 0)
      return -1;
    parent = fd;
    while (rel[i] == '/')
      i++;
  }
  return parent;
}

/* "/proc/self/fd/N": what mount(2) takes for an fd. */
static const char *sb_fd_path(char buf[40], int fd) {
  char num[24];
  memcpy(buf, "/proc/self/fd/", 15);
  strcat(buf, sb_fmt_u64(num, (unsigned)fd));
  return buf;
}

/* Mount flags of fd's mount that a read-only remount must keep. */
static unsigned long sb_locked_flags(int fd, const char *path) {
  struct statvfs sv;
  if ((fd >= 0 ? fstatvfs(fd, &sv) : statvfs(path, &sv)) < 0)
    return 0;
  static const unsigned long map[][2] = {{ST_NOSUID, MS_NOSUID},         {ST_NODEV, MS_NODEV},
                                         {ST_NOEXEC, MS_NOEXEC},         {ST_NOATIME, MS_NOATIME},
                                         {ST_NODIRATIME, MS_NODIRATIME}, {ST_RELATIME, MS_RELATIME},
                                         {ST_RDONLY, MS_RDONLY}};
  unsigned long fl = 0;
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
    if (sv.f_flag & map[i][0])
      fl |= map[i][1];
  return fl;
}

/* Every mount below fd read-only too (Linux 5.12): a read-only rbind or
 * host root must not leave the host's submounts writable. Before 5.12 only
 * the top one is (ENOSYS ignored). */
static int sb_rdonly_tree(int fd) {
  struct mount_attr a;
  memset(&a, 0, sizeof a);
  a.attr_set = MOUNT_ATTR_RDONLY;
  if (mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof a) < 0 && errno != ENOSYS)
    return -1;
  return 0;
}

#define SB_MOUNT_FAIL(c, err, m)                                                                   \
  sb_child_fail(c, err, (m)->bind ? "bind " : "mount ",                                            \
                (m)->bind   ? ((m)->source ? (m)->source : "")                                     \
                : (m)->type ? (m)->type                                                            \
                            : "none",                                                              \
                " on ", (m)->destination, NULL)

/* srcfd: the bind source opened before the root covered anything; a
 * detached tree (open_tree) when tree. */
static void sb_mount_one(const struct sb_child *c, int rootfd, const sb_mount *m, int srcfd,
                         bool tree) {
  char target[40], source[40];
  int create = SB_CREATE_DIR;
  struct stat st;
  if (m->bind && fstat(srcfd, &st) == 0 && !S_ISDIR(st.st_mode))
    create = SB_CREATE_FILE;
  int fd = sb_resolve(rootfd, m->destination, create);
  if (fd < 0)
    SB_MOUNT_FAIL(c, errno, m);
  unsigned long extra = m->flags & ~(MS_BIND | MS_REC | MS_REMOUNT);
  bool remount = m->bind && (m->readonly || extra);
  int r;
  if (tree)
    r = move_mount(srcfd, "", fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
  else if (m->bind)
    r = mount(sb_fd_path(source, srcfd), sb_fd_path(target, fd), NULL,
              MS_BIND | (m->flags & MS_REC), NULL);
  else {
    r = mount(m->source ? m->source : m->type, sb_fd_path(target, fd), m->type, m->flags & ~MS_REC,
              m->data);
    /* the same superblock is mounted there already (the host's sysfs in a
     * copy of the host root, same net namespace): the kernel refuses it on
     * itself; a bind of it with the flags asked is the same view (not
     * recursive: the host's cgroup mounts below stay out) */
    if (r < 0 && errno == EBUSY) {
      r = mount(target, target, NULL, MS_BIND, NULL);
      remount = true;
    }
  }
  int err = errno;
  close(fd);
  if (r < 0)
    SB_MOUNT_FAIL(c, err, m);
  if (!remount && !m->propagation)
    return;
  /* the fd resolved before the mount names what is under it: look again */
  if ((fd = sb_resolve(rootfd, m->destination, SB_NO_CREATE)) < 0)
    SB_MOUNT_FAIL(c, errno, m);
  sb_fd_path(target, fd);
  if (remount) {
    unsigned long fl = extra | (m->readonly ? MS_RDONLY : 0) | sb_locked_flags(fd, NULL);
    if (mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | fl, NULL) < 0 ||
        (m->bind && m->readonly && (m->flags & MS_REC) && sb_rdonly_tree(fd) < 0))
      sb_child_fail(c, errno, "remount ", m->destination, m->readonly ? " read-only" : "", NULL);
  }
  if (m->propagation && mount(NULL, target, NULL, m->propagation, NULL) < 0)
    sb_child_fail(c, errno, "set the propagation of ", m->destination, NULL);
  close(fd);
}

static const char *const sb_devices[] = {"/dev/null",   "/dev/zero",    "/dev/full",
                                         "/dev/random", "/dev/urandom", "/dev/tty"};
#define SB_NDEVICES (sizeof sb_devices / sizeof sb_devices[0])

/* runc's default devices on a tmpfs /dev: bound from the host's (devfds,
 * opened before the root covered anything; mknod is refused in a user
 * namespace, a bind never is), and the usual links. */
static void sb_mount_devices(const struct sb_child *c, int rootfd, const int *devfds) {
  static const char *const links[][2] = {{"ptmx", "pts/ptmx"},
                                         {"fd", "/proc/self/fd"},
                                         {"stdin", "/proc/self/fd/0"},
                                         {"stdout", "/proc/self/fd/1"},
                                         {"stderr", "/proc/self/fd/2"}};
  char source[40], target[40];
  for (size_t i = 0; i < SB_NDEVICES; i++) {
    if (devfds[i] < 0)
      continue; /* the host has none */
    int fd = sb_resolve(rootfd, sb_devices[i], SB_CREATE_FILE);
    if (fd < 0 ||
        mount(sb_fd_path(source, devfds[i]), sb_fd_path(target, fd), NULL, MS_BIND, NULL) < 0)
      sb_child_fail(c, errno, "bind ", sb_devices[i], " on ", sb_devices[i], NULL);
    close(fd);
    close(devfds[i]);
  }
  int dev = sb_resolve(rootfd, "/dev", SB_NO_CREATE);
  if (dev < 0)
    sb_child_fail(c, errno, "open /dev", NULL);
  for (size_t i = 0; i < sizeof links / sizeof links[0]; i++)
    if (symlinkat(links[i][1], dev, links[i][0]) < 0 && errno != EEXIST)
      sb_child_fail(c, errno, "symlink /dev/", links[i][0], NULL);
  close(dev);
}

/* runc's pivot_root(".", "."): the old root ends up on top of the new one,
 * where it is made a slave (nothing propagates back) and detached. */
static void sb_pivot(const struct sb_child *c, int newroot) {
  int oldroot = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (oldroot < 0 || fchdir(newroot) < 0 || syscall(SYS_pivot_root, ".", ".") < 0)
    sb_child_fail(c, errno, "pivot_root to \"", c->s->root_path, "\"", NULL);
  if (fchdir(oldroot) < 0 || mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0 ||
      umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
    sb_child_fail(c, errno, "detach the old root", NULL);
  close(oldroot);
}

static void sb_mount_masked(const struct sb_child *c) {
  const sb_spec *s = c->s;
  struct stat st;
  for (size_t i = 0; i < s->nmasked_paths; i++) {
    const char *p = s->masked_paths[i];
    if (stat(p, &st) < 0) {
      if (errno == ENOENT || errno == ENOTDIR)
        continue;
      sb_child_fail(c, errno, "mask ", p, NULL);
    }
    int r = S_ISDIR(st.st_mode) ? mount("tmpfs", p, "tmpfs", MS_RDONLY, NULL)
                                : mount("/dev/null", p, NULL, MS_BIND, NULL);
    if (r < 0)
      sb_child_fail(c, errno, "mask ", p, NULL);
  }
  for (size_t i = 0; i < s->nreadonly_paths; i++) {
    const char *p = s->readonly_paths[i];
    if (stat(p, &st) < 0) {
      if (errno == ENOENT || errno == ENOTDIR)
        continue;
      sb_child_fail(c, errno, "make ", p, " read-only", NULL);
    }
    if (mount(p, p, NULL, MS_BIND | MS_REC, NULL) < 0 ||
        mount(NULL, p, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | sb_locked_flags(-1, p), NULL) < 0)
      sb_child_fail(c, errno, "make ", p, " read-only", NULL);
  }
}

/* Where "/" is bound before the pivot: onto itself a lookup of "/" would
 * not cross the new mount. What it covers was opened before. */
static const char *sb_staging_dir(const char *root) {
  if (strcmp(root, "/") != 0)
    return root;
  struct stat st;
  return stat("/tmp", &st) == 0 && S_ISDIR(st.st_mode) ? "/tmp" : "/mnt";
}

/* Without a detached copy of a checked source: its path opened here, in
 * our namespace, and used only if it still is the object that was checked
 * (checked_fd); else the source changed since (ESTALE). */
static int sb_open_checked(const char *path, int checked_fd) {
  struct stat now, checked;
  int fd = open(path, O_PATH | O_CLOEXEC);
  if (fd < 0)
    return -1;
  if (fstat(fd, &now) < 0 || fstat(checked_fd, &checked) < 0 || now.st_dev != checked.st_dev ||
      now.st_ino != checked.st_ino) {
    close(fd);
    return errno = ESTALE, -1;
  }
  return fd;
}

/* A detached copy of the tree at path as it is now (-1 where open_tree is
 * missing: the caller opens the path instead). Taken before the host root's
 * staging mount on /tmp exists, so that a (recursive) bind of /tmp or of /
 * does not take that mount along: it showed the host's root, read-only, on
 * the sandbox's /tmp when the working directory was /tmp. */
static int sb_open_tree_now(const char *path, bool recursive) {
  return open_tree(AT_FDCWD, path,
                   OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (recursive ? AT_RECURSIVE : 0));
}

/* The root bound onto its place (the staging dir for "/" and for a
 * checked root, whose path may name something else by now). */
static const char *sb_mount_root(const struct sb_child *c) {
  const sb_spec *s = c->s;
  char source[40];
  const char *root = sb_staging_dir(s->has_root_fd ? "/" : s->root_path);
  int r;
  if (c->root_tree >= 0)
    r = move_mount(c->root_tree, "", AT_FDCWD, root, MOVE_MOUNT_F_EMPTY_PATH);
  else if (s->has_root_fd) {
    int fd = sb_open_checked(s->root_path, s->root_fd);
    r = fd < 0 ? -1 : mount(sb_fd_path(source, fd), root, NULL, MS_BIND | MS_REC, NULL);
    if (fd >= 0) {
      int err = errno;
      close(fd);
      errno = err;
    }
  } else
    r = mount(s->root_path, root, NULL, MS_BIND | MS_REC, NULL);
  if (r < 0)
    sb_child_fail(c, errno, "bind the root \"", s->root_path, "\"", NULL);
  if (c->root_tree >= 0)
    close(c->root_tree);
  if (s->has_root_fd)
    close(s->root_fd); /* not the command's (nor the init's) */
  return root;
}

void sb_mount_setup(const struct sb_child *c) {
  const sb_spec *s = c->s;
  if (!c->new_ns[SB_NS_MOUNT] && c->ns_fds[SB_NS_MOUNT] < 0) {
    if (s->nmounts || s->nmasked_paths || s->nreadonly_paths)
      sb_child_fail(c, EINVAL, "mounts without a mount namespace", NULL);
    sb_child_setup_pause(c);
    return;
  }
  /* a mount namespace joined with nothing to mount (runproc exec): its
   * propagation and root are the container's, left as they are */
  if (!c->new_ns[SB_NS_MOUNT] && !s->root_path && !s->nmounts && !s->nmasked_paths &&
      !s->nreadonly_paths)
    return;
  unsigned long prop = s->rootfs_propagation ? s->rootfs_propagation : MS_PRIVATE | MS_REC;
  /* a shared / would make pivot_root fail: shared again after it */
  if (mount(NULL, "/", NULL, prop & MS_SHARED ? MS_SLAVE | MS_REC : prop, NULL) < 0)
    sb_child_fail(c, errno, "make / private", NULL);
  /* host paths (bind sources, devices) are opened before the root (or its
   * staging dir) may cover them */
  int srcfds[SB_MAX_MOUNTS], devfds[SB_NDEVICES];
  bool trees[SB_MAX_MOUNTS];
  bool dev_tmpfs = false;
  for (size_t i = 0; i < s->nmounts && i < SB_MAX_MOUNTS; i++) {
    const sb_mount *m = &s->mounts[i];
    srcfds[i] = -1;
    trees[i] = m->bind && c->trees && c->trees[i] >= 0;
    if (trees[i])
      srcfds[i] = c->trees[i];
    else if (m->bind && m->has_source_fd &&
             (srcfds[i] = sb_open_checked(m->source ? m->source : "", m->source_fd)) < 0)
      SB_MOUNT_FAIL(c, errno, m);
    else if (m->bind && !m->has_source_fd && m->source &&
             (srcfds[i] = sb_open_tree_now(m->source, m->flags & MS_REC)) >= 0)
      trees[i] = true;
    else if (m->bind && !m->has_source_fd &&
             (!m->source || (srcfds[i] = open(m->source, O_PATH | O_CLOEXEC)) < 0))
      SB_MOUNT_FAIL(c, m->source ? errno : EINVAL, m);
    if (m->has_source_fd)
      close(m->source_fd); /* not the command's (nor the init's) */
    if (!m->bind && m->type && strcmp(m->type, "tmpfs") == 0 && strcmp(m->destination, "/dev") == 0)
      dev_tmpfs = true;
  }
  for (size_t i = 0; dev_tmpfs && i < SB_NDEVICES; i++)
    if ((devfds[i] = open(sb_devices[i], O_PATH | O_CLOEXEC)) < 0 && errno != ENOENT)
      sb_child_fail(c, errno, "open ", sb_devices[i], NULL);
  const char *root = s->root_path ? sb_mount_root(c) : "/";
  int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0)
    sb_child_fail(c, errno, "open the root \"", root, "\"", NULL);
  /* the host's root read-only with all its mounts, before ours are added
   * (and so no mountpoint is ever created on the host) */
  if (s->root_path && s->root_readonly && strcmp(s->root_path, "/") == 0 &&
      sb_rdonly_tree(rootfd) < 0)
    sb_child_fail(c, errno, "make the host root read-only", NULL);
  for (size_t i = 0; i < s->nmounts && i < SB_MAX_MOUNTS; i++) {
    sb_mount_one(c, rootfd, &s->mounts[i], srcfds[i], trees[i]);
    if (srcfds[i] >= 0)
      close(srcfds[i]);
  }
  if (dev_tmpfs)
    sb_mount_devices(c, rootfd, devfds);
  sb_child_setup_pause(c);
  if (s->root_path)
    sb_pivot(c, rootfd);
  close(rootfd);
  if (prop & MS_SHARED && mount(NULL, "/", NULL, prop, NULL) < 0)
    sb_child_fail(c, errno, "set the propagation of /", NULL);
}

void sb_mount_finish(const struct sb_child *c) {
  const sb_spec *s = c->s;
  if (!c->new_ns[SB_NS_MOUNT] && c->ns_fds[SB_NS_MOUNT] < 0)
    return;
  sb_mount_masked(c);
  if (s->root_readonly &&
      mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | sb_locked_flags(-1, "/"), NULL) < 0)
    sb_child_fail(c, errno, "remount / read-only", NULL);
}
