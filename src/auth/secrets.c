#include "auth/secrets.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/secrets_acl.h"
#include "common/util.h"

struct secrets {
  char *dir;
  int dirfd;
};

int secrets_file_check(const struct stat *st, const char *what, const char *path, rr_err *e) {
  if (st->st_uid != geteuid())
    return rr_err_set(e, RR_FAILED_PRECONDITION,
                      "secret store: %s \"%s\" is owned by uid %u, not by rund (uid %u)", what,
                      path, (unsigned)st->st_uid, (unsigned)geteuid());
  if (st->st_mode & 077)
    return rr_err_set(e, RR_FAILED_PRECONDITION,
                      "secret store: %s \"%s\" is accessible by group or others (mode %04o; run "
                      "chmod %s)",
                      what, path, (unsigned)(st->st_mode & 07777),
                      S_ISDIR(st->st_mode) ? "700" : "600");
  return 0;
}

int secrets_open(const char *dir, secrets **ret, rr_err *e) {
  _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return rr_err_sys(e, RR_FAILED_PRECONDITION, errno, "secret store \"%s\"", dir);
  struct stat st;
  if (fstat(fd, &st) < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot stat \"%s\"", dir);
  if (secrets_file_check(&st, "directory", dir, e) < 0)
    return -1;
  int fd2 = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d = fd2 >= 0 ? fdopendir(fd2) : NULL;
  if (!d) {
    if (fd2 >= 0)
      close(fd2);
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot read \"%s\"", dir);
  }
  struct dirent *de;
  int rc = 0;
  while (rc == 0 && (de = readdir(d))) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
      continue;
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
    if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
      rc = rr_err_sys(e, RR_INTERNAL, errno, "cannot stat \"%s\"", path);
    else
      rc = secrets_file_check(&st, S_ISDIR(st.st_mode) ? "directory" : "file", path, e);
  }
  closedir(d);
  if (rc < 0)
    return -1;
  secrets_acl acl;
  if (secrets_acl_load(fd, dir, &acl, e) < 0)
    return -1;
  secrets_acl_free(&acl);
  secrets *s = calloc(1, sizeof *s);
  if (!s || !(s->dir = strdup(dir))) {
    free(s);
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  }
  s->dirfd = TAKE_FD(fd);
  *ret = s;
  return 0;
}

void secrets_free(secrets *s) {
  if (!s)
    return;
  close(s->dirfd);
  free(s->dir);
  free(s);
}

bool secrets_is_ref(const char *value) {
  return strncmp(value, SECRETS_PREFIX, sizeof SECRETS_PREFIX - 1) == 0;
}

int secrets_name_check(const char *name, rr_err *e) {
  size_t n = strlen(name);
  bool dots = true;
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '_' || c == '-'))
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "secret name \"%.140s\" has a character outside [A-Za-z0-9._-]", name);
    dots &= c == '.';
  }
  if (n == 0 || n > SECRETS_NAME_MAX)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "secret name \"%.140s\" must be 1..%d characters",
                      name, SECRETS_NAME_MAX);
  if (dots && n <= 2)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "secret name \"%s\" is not allowed", name);
  if (!strncmp(name, SECRETS_ACL_FILE, sizeof SECRETS_ACL_FILE - 1))
    return rr_err_set(e, RR_INVALID_ARGUMENT,
                      "secret name \"%s\" is reserved (%s is the list of owners)", name,
                      SECRETS_ACL_FILE);
  return 0;
}

static int secrets_not_found(secrets_resolution *r, size_t i, const char *name, bool refused,
                             rr_err *e) {
  r->refused = refused;
  /* the same words whether it is missing or refused: names cannot be probed */
  return rr_err_set(e, RR_NOT_FOUND, "env \"%.100s\": secret \"%s\" not found", r->keys[i], name);
}

/* Read secret name into *ret (NUL-terminated, *len bytes) when it has at
 * most limit bytes (one trailing newline not counted); 1 with *len its size
 * when larger (nothing read). */
static int secrets_read(const secrets *s, secrets_resolution *r, size_t i, const char *name,
                        size_t limit, char **ret, size_t *len, rr_err *e) {
  const char *key = r->keys[i];
  _cleanup_close_ int fd =
      openat(s->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
  if (fd < 0 && errno == ENOENT)
    return secrets_not_found(r, i, name, false, e);
  if (fd < 0)
    return rr_err_sys(e, RR_FAILED_PRECONDITION, errno, "env \"%.100s\": secret \"%s\"", key, name);
  struct stat st;
  if (fstat(fd, &st) < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "env \"%.100s\": secret \"%s\"", key, name);
  if (!S_ISREG(st.st_mode))
    return rr_err_set(e, RR_FAILED_PRECONDITION,
                      "env \"%.100s\": secret \"%s\" is not a regular file", key, name);
  char path[4200];
  snprintf(path, sizeof path, "%s/%s", s->dir, name);
  if (secrets_file_check(&st, "file", path, e) < 0)
    return rr_err_wrap(e, "env \"%.100s\"", key);
  size_t size = (size_t)st.st_size;
  if ((uint64_t)st.st_size > (uint64_t)limit + 1) {
    *len = size;
    return 1;
  }
  char *buf = malloc(size + 2);
  if (!buf)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  size_t got = 0;
  for (;;) { /* one byte more than it had tells a file that grew */
    ssize_t n = rr_read(fd, buf + got, size + 1 - got);
    if (n < 0 || (n > 0 && got + (size_t)n > size)) {
      int err = n < 0 ? errno : 0;
      OPENSSL_clear_free(buf, size + 2);
      if (err)
        return rr_err_sys(e, RR_INTERNAL, err, "env \"%.100s\": cannot read secret \"%s\"", key,
                          name);
      return rr_err_set(e, RR_UNAVAILABLE, "env \"%.100s\": secret \"%s\" changed while read", key,
                        name);
    }
    if (n == 0)
      break;
    got += (size_t)n;
  }
  if (got && buf[got - 1] == '\n')
    got--;
  buf[got] = '\0';
  if (got > limit) {
    OPENSSL_clear_free(buf, size + 2);
    *len = got;
    return 1;
  }
  if (memchr(buf, '\0', got)) {
    OPENSSL_clear_free(buf, size + 2);
    return rr_err_set(e, RR_FAILED_PRECONDITION,
                      "env \"%.100s\": secret \"%s\" contains a NUL byte (env values cannot)", key,
                      name);
  }
  *ret = buf;
  *len = got;
  return 0;
}

/* Which limit a value of size bytes broke (limit was the least of them). */
static int secrets_too_big(const secrets_resolution *r, size_t i, const char *name, size_t size,
                           size_t item_room, rr_err *e) {
  const char *key = r->keys[i];
  if (size > SECRETS_VALUE_MAX)
    return rr_err_set(e, RR_FAILED_PRECONDITION,
                      "env \"%.100s\": secret \"%s\" is larger than %u bytes", key, name,
                      SECRETS_VALUE_MAX);
  if (size > item_room)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED,
                      "env \"%.100s\" with secret \"%s\" resolved is longer than %zu bytes (the "
                      "limit of one env entry)",
                      key, name, r->item_max);
  return rr_err_set(e, RR_RESOURCE_EXHAUSTED,
                    "command.args and command.env with secret \"%s\" resolved (env \"%.100s\") "
                    "exceed %zu bytes (the request size limit counts resolved secrets)",
                    name, key, r->total_max);
}

/* Bytes of the request without the secrets; refs counted. */
static size_t secrets_request_bytes(const secrets_resolution *r, size_t *nrefs) {
  size_t total = r->other_bytes;
  *nrefs = 0;
  for (size_t i = 0; i < r->n; i++) {
    total += strlen(r->keys[i]) + 2;
    if (secrets_is_ref(r->values[i]))
      ++*nrefs;
    else
      total += strlen(r->values[i]);
  }
  return total;
}

/* Resolve reference i into *ret, taking its size from *budget. */
static int secrets_resolve_one(const secrets *s, const secrets_acl *acl, secrets_resolution *r,
                               size_t i, size_t *budget, char **ret, rr_err *e) {
  const char *name = r->values[i] + sizeof SECRETS_PREFIX - 1;
  if (secrets_name_check(name, e) < 0)
    return rr_err_wrap(e, "env \"%.100s\"", r->keys[i]);
  const authz_identity *c = r->caller;
  bool admin = c && c->admin;
  if (!admin && !(c && secrets_acl_allows(acl, name, c->principals, c->n)))
    return secrets_not_found(r, i, name, true, e);
  if (!s)
    return secrets_not_found(r, i, name, false, e);
  size_t key_len = strlen(r->keys[i]) + 2;
  size_t item_room = r->item_max > key_len ? r->item_max - key_len : 0;
  size_t limit = SECRETS_VALUE_MAX;
  limit = limit < item_room ? limit : item_room;
  limit = limit < *budget ? limit : *budget;
  size_t len = 0;
  int rc = secrets_read(s, r, i, name, limit, ret, &len, e);
  if (rc < 0)
    return -1;
  if (rc > 0)
    return secrets_too_big(r, i, name, len, item_room, e);
  *budget -= len;
  return 0;
}

int secrets_resolve_env(const secrets *s, secrets_resolution *r, char ***ret, rr_err *e) {
  r->failed = r->n;
  r->refused = r->store_error = false;
  size_t nrefs = 0, base = secrets_request_bytes(r, &nrefs);
  if (nrefs > SECRETS_MAX_REFS)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED,
                      "command.env has %zu secret:// references (max %d per request)", nrefs,
                      SECRETS_MAX_REFS);
  size_t budget = base < r->total_max ? r->total_max - base : 0;
  secrets_acl acl = {0};
  /* the owner list is read at each use: an edit needs no restart */
  if (nrefs && s && !(r->caller && r->caller->admin) &&
      secrets_acl_load(s->dirfd, s->dir, &acl, e) < 0) {
    r->store_error = true;
    return -1;
  }
  char **v = calloc(r->n + 1, sizeof *v);
  if (!v) {
    secrets_acl_free(&acl);
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  }
  for (size_t i = 0; i < r->n; i++) {
    if (secrets_is_ref(r->values[i])) {
      if (secrets_resolve_one(s, &acl, r, i, &budget, &v[i], e) < 0) {
        r->failed = i;
        goto fail;
      }
    } else if (!(v[i] = strdup(r->values[i]))) {
      rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
      goto fail;
    }
  }
  secrets_acl_free(&acl);
  *ret = v;
  return 0;
fail:
  secrets_acl_free(&acl);
  secrets_values_free(v, r->n);
  return -1;
}

void secrets_values_free(char **values, size_t n) {
  if (!values)
    return;
  for (size_t i = 0; i < n; i++)
    if (values[i]) {
      OPENSSL_cleanse(values[i], strlen(values[i]));
      free(values[i]);
    }
  free(values);
}

bool secrets_values_leak(const char *msg, const char *const *values, const char *const *resolved,
                         size_t n) {
  for (size_t i = 0; i < n; i++)
    if (secrets_is_ref(values[i]) && resolved[i][0] && strstr(msg, resolved[i]))
      return true;
  return false;
}
