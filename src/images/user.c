/* An image config's User, resolved as docker resolves it: "NAME", "UID",
 * "NAME:GROUP", "UID:GID" (and mixes), names looked up in the image's own
 * etc/passwd and etc/group, read from its root with openat2
 * (RESOLVE_IN_ROOT: an image's symlinks resolve inside it). A numeric user
 * that passwd does not list is that uid with gid 0 and home "/". The
 * supplementary groups are podman's (measured with podman 4.3 + runc): a
 * user named or found in passwd, with no group given, gets its primary gid
 * and every group of etc/group that lists its name; any other form only the
 * one gid it runs with. */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/util.h"
#include "images/images.h"

#define USER_FILE_MAX (4u << 20)  /* a passwd or group file larger is refused */
#define USER_LINE_MAX (64u << 10) /* a group line longer is skipped (never matches) */

/* The whole file path of the root (NULL in *ret when it does not exist). */
static int user_file_read(int rootfd, const char *path, char **ret, rr_err *e) {
  *ret = NULL;
  struct open_how how = {.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
                         .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV};
  _cleanup_close_ int fd = -1;
  do
    fd = (int)syscall(SYS_openat2, rootfd, path, &how, sizeof how);
  while (fd < 0 && errno == EAGAIN);
  if (fd < 0)
    return errno == ENOENT || errno == ENOTDIR
               ? 0
               : rr_err_sys(e, RR_FAILED_PRECONDITION, errno, "cannot open the image's /%s", path);
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
    return rr_err_set(e, RR_FAILED_PRECONDITION, "the image's /%s is not a regular file", path);
  if ((uint64_t)st.st_size > USER_FILE_MAX)
    return rr_err_set(e, RR_FAILED_PRECONDITION, "the image's /%s is larger than %u bytes", path,
                      USER_FILE_MAX);
  _cleanup_free_ char *buf = malloc((size_t)st.st_size + 1);
  if (!buf)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  size_t len = 0;
  for (;;) {
    ssize_t n = rr_read(fd, buf + len, (size_t)st.st_size - len);
    if (n < 0)
      return rr_err_sys(e, RR_FAILED_PRECONDITION, errno, "cannot read the image's /%s", path);
    if (n == 0)
      break;
    len += (size_t)n;
    if (len == (size_t)st.st_size)
      break;
  }
  buf[len] = 0;
  *ret = TAKE_PTR(buf);
  return 0;
}

/* A decimal id (0 .. 2^32-2); false when s is no such number. */
static bool user_id_parse(const char *s, size_t n, uint32_t *ret) {
  if (!n || n > 10)
    return false;
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return false;
    v = v * 10 + (uint64_t)(s[i] - '0');
  }
  if (v >= UINT32_MAX)
    return false;
  *ret = (uint32_t)v;
  return true;
}

/* Split one colon-separated line into at most max fields (pointers into
 * line, NUL-terminated in place); the count. */
static size_t user_fields(char *line, char **f, size_t max) {
  size_t n = 0;
  f[n++] = line;
  for (char *p = line; *p && n < max; p++)
    if (*p == ':') {
      *p = 0;
      f[n++] = p + 1;
    }
  return n;
}

/* The passwd entry whose name is name (or, when by_uid, whose uid is uid):
 * its fields into ret, its whole name (in text) into *ret_name. true when
 * found. */
static bool passwd_find(char *text, const char *name, size_t nlen, bool by_uid, uint32_t uid,
                        img_user *ret, const char **ret_name) {
  for (char *line = text; line && *line;) {
    char *next = strchr(line, '\n');
    if (next)
      *next++ = 0;
    char *f[7] = {0}; /* a short line leaves the last ones NULL */
    uint32_t u, g;
    if (user_fields(line, f, 7) >= 4 && user_id_parse(f[2], strlen(f[2]), &u) &&
        user_id_parse(f[3], strlen(f[3]), &g) &&
        (by_uid ? u == uid : strlen(f[0]) == nlen && !strncmp(f[0], name, nlen))) {
      ret->uid = u;
      ret->gid = g;
      snprintf(ret->name, sizeof ret->name, "%s", f[0]);
      *ret_name = f[0];
      snprintf(ret->home, sizeof ret->home, "%s", f[5] && *f[5] ? f[5] : "/");
      snprintf(ret->shell, sizeof ret->shell, "%s", f[6] ? f[6] : "");
      return true;
    }
    line = next;
  }
  return false;
}

static bool group_find(char *text, const char *name, size_t nlen, uint32_t *gid) {
  for (char *line = text; line && *line;) {
    char *next = strchr(line, '\n');
    if (next)
      *next++ = 0;
    char *f[4];
    if (user_fields(line, f, 4) >= 3 && strlen(f[0]) == nlen && !strncmp(f[0], name, nlen) &&
        user_id_parse(f[2], strlen(f[2]), gid))
      return true;
    line = next;
  }
  return false;
}

/* gid added to u's groups unless there; false when they are full. */
static bool user_group_add(img_user *u, uint32_t gid) {
  for (size_t i = 0; i < u->ngroups; i++)
    if (u->groups[i] == gid)
      return true;
  if (u->ngroups == IMG_USER_MAX_GROUPS)
    return false;
  u->groups[u->ngroups++] = gid;
  return true;
}

int img_user_groups_add(char *text, const char *name, img_user *u, rr_err *e) {
  size_t nlen = strlen(name);
  for (char *line = text; nlen && line && *line;) {
    char *next = strchr(line, '\n');
    if (next)
      *next++ = 0;
    char *f[4];
    uint32_t gid;
    if ((next ? (size_t)(next - line) : strlen(line)) <= USER_LINE_MAX &&
        user_fields(line, f, 4) == 4 && user_id_parse(f[2], strlen(f[2]), &gid))
      for (char *m = f[3], *end; m; m = end ? end + 1 : NULL) {
        end = strchr(m, ',');
        size_t mlen = end ? (size_t)(end - m) : strlen(m);
        if (mlen == nlen && !strncmp(m, name, nlen)) {
          if (!user_group_add(u, gid))
            return rr_err_set(e, RR_FAILED_PRECONDITION,
                              "user \"%.64s\" is in more than %d groups of the image's /etc/group",
                              name, IMG_USER_MAX_GROUPS);
          break;
        }
      }
    line = next;
  }
  return 0;
}

int img_user_resolve(int rootfd, const char *spec, img_user *ret, rr_err *e) {
  *ret = (img_user){.home = "/"};
  const char *colon = strchr(spec, ':');
  size_t ulen = colon ? (size_t)(colon - spec) : strlen(spec);
  if (!ulen || (colon && !colon[1]) || strlen(spec) > 512)
    return rr_err_set(e, RR_FAILED_PRECONDITION,
                      "User \"%.100s\": want NAME, UID, NAME:GROUP or UID:GID", spec);
  _cleanup_free_ char *passwd = NULL;
  if (user_file_read(rootfd, "etc/passwd", &passwd, e) < 0)
    return rr_err_wrap(e, "User \"%.100s\"", spec);
  uint32_t uid;
  bool numeric = user_id_parse(spec, ulen, &uid);
  bool found = false;
  const char *name = NULL; /* in passwd, whole (ret->name may be cut) */
  _cleanup_free_ char *copy = passwd ? strdup(passwd) : NULL;
  if (passwd && !copy)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  if (passwd) /* a name first (docker's order), then a uid */
    found = passwd_find(copy, spec, ulen, false, 0, ret, &name) ||
            (numeric && passwd_find(passwd, NULL, 0, true, uid, ret, &name));
  if (!found) {
    if (!numeric)
      return rr_err_set(e, RR_FAILED_PRECONDITION,
                        "User \"%.100s\": no user \"%.*s\" in the image's /etc/passwd%s", spec,
                        (int)(ulen > 100 ? 100 : ulen), spec, passwd ? "" : " (it has none)");
    ret->uid = uid;
    ret->gid = 0;
  }
  _cleanup_free_ char *groups = NULL;
  if ((colon || found) && user_file_read(rootfd, "etc/group", &groups, e) < 0)
    return rr_err_wrap(e, "User \"%.100s\"", spec);
  if (!colon) { /* docker's implicit form: the user's groups when passwd knows it */
    ret->groups[ret->ngroups++] = ret->gid;
    if (found && groups && img_user_groups_add(groups, name, ret, e) < 0)
      return rr_err_wrap(e, "User \"%.100s\"", spec);
    return 0;
  }
  const char *group = colon + 1;
  size_t glen = strlen(group);
  if ((groups && group_find(groups, group, glen, &ret->gid)) ||
      user_id_parse(group, glen, &ret->gid)) {
    ret->groups[ret->ngroups++] = ret->gid;
    return 0;
  }
  return rr_err_set(e, RR_FAILED_PRECONDITION,
                    "User \"%.100s\": no group \"%.100s\" in the image's /etc/group%s", spec, group,
                    groups ? "" : " (it has none)");
}
