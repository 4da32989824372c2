#include "auth/secrets_acl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/authz.h"
#include "auth/secrets.h"
#include "common/util.h"

void secrets_acl_free(secrets_acl *a) {
  for (size_t i = 0; i < a->n; i++) {
    free(a->v[i].name);
    free(a->v[i].principal);
  }
  free(a->v);
  *a = (secrets_acl){0};
}

static ssize_t acl_find(const secrets_acl *a, const char *name, const char *principal) {
  for (size_t i = 0; i < a->n; i++)
    if (!strcmp(a->v[i].name, name) && authz_principal_equal(a->v[i].principal, principal))
      return (ssize_t)i;
  return -1;
}

int secrets_acl_add(secrets_acl *a, const char *name, const char *principal, rr_err *e) {
  if (secrets_name_check(name, e) < 0 || authz_principal_check(principal, e) < 0)
    return -1;
  if (acl_find(a, name, principal) >= 0)
    return 0;
  if (a->n == a->cap) {
    size_t cap = a->cap ? a->cap * 2 : 16;
    secrets_grant *v = realloc(a->v, cap * sizeof *v);
    if (!v)
      return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
    a->v = v;
    a->cap = cap;
  }
  secrets_grant g = {strdup(name), strdup(principal)};
  if (!g.name || !g.principal) {
    free(g.name);
    free(g.principal);
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  }
  a->v[a->n++] = g;
  return 0;
}

bool secrets_acl_remove(secrets_acl *a, const char *name, const char *principal) {
  ssize_t i = acl_find(a, name, principal);
  if (i < 0)
    return false;
  free(a->v[i].name);
  free(a->v[i].principal);
  memmove(&a->v[i], &a->v[i + 1], (a->n - (size_t)i - 1) * sizeof *a->v);
  a->n--;
  return true;
}

bool secrets_acl_allows(const secrets_acl *a, const char *name, char *const *principals, size_t n) {
  for (size_t i = 0; i < a->n; i++) {
    if (strcmp(a->v[i].name, name) != 0)
      continue;
    for (size_t k = 0; k < n; k++)
      if (authz_principal_equal(a->v[i].principal, principals[k]))
        return true;
  }
  return false;
}

int secrets_acl_parse(const char *buf, size_t len, const char *origin, secrets_acl *ret,
                      rr_err *e) {
  secrets_acl a = {0};
  size_t lineno = 0;
  for (size_t off = 0; off < len;) {
    const char *nl = memchr(buf + off, '\n', len - off);
    size_t n = nl ? (size_t)(nl - (buf + off)) : len - off;
    char line[SECRETS_NAME_MAX + AUTHZ_PRINCIPAL_MAX + 64];
    lineno++;
    if (n >= sizeof line) {
      rr_err_set(e, RR_INVALID_ARGUMENT, "%s line %zu: longer than %zu bytes", origin, lineno,
                 sizeof line - 1);
      goto fail;
    }
    memcpy(line, buf + off, n);
    line[n] = '\0';
    off += n + 1;
    if (memchr(line, '\0', n)) {
      rr_err_set(e, RR_INVALID_ARGUMENT, "%s line %zu: contains a NUL byte", origin, lineno);
      goto fail;
    }
    char *save = NULL, *name = strtok_r(line, " \t\r", &save);
    if (!name || name[0] == '#')
      continue;
    char *principal = strtok_r(NULL, " \t\r", &save), *extra = strtok_r(NULL, " \t\r", &save);
    if (!principal || extra) {
      rr_err_set(e, RR_INVALID_ARGUMENT, "%s line %zu: want \"NAME PRINCIPAL\"", origin, lineno);
      goto fail;
    }
    if (secrets_acl_add(&a, name, principal, e) < 0) {
      rr_err_wrap(e, "%s line %zu", origin, lineno);
      goto fail;
    }
  }
  *ret = a;
  return 0;
fail:
  secrets_acl_free(&a);
  return -1;
}

int secrets_acl_load(int dirfd, const char *dir, secrets_acl *ret, rr_err *e) {
  char path[4200];
  snprintf(path, sizeof path, "%s/%s", dir, SECRETS_ACL_FILE);
  _cleanup_close_ int fd =
      openat(dirfd, SECRETS_ACL_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
  if (fd < 0 && errno == ENOENT) {
    *ret = (secrets_acl){0};
    return 0;
  }
  if (fd < 0)
    return rr_err_sys(e, RR_FAILED_PRECONDITION, errno, "owner list \"%s\"", path);
  struct stat st;
  if (fstat(fd, &st) < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot stat \"%s\"", path);
  if (!S_ISREG(st.st_mode))
    return rr_err_set(e, RR_FAILED_PRECONDITION, "owner list \"%s\" is not a regular file", path);
  if (secrets_file_check(&st, "owner list", path, e) < 0)
    return -1;
  if ((uint64_t)st.st_size > SECRETS_ACL_MAX)
    return rr_err_set(e, RR_FAILED_PRECONDITION, "owner list \"%s\" is larger than %u bytes", path,
                      SECRETS_ACL_MAX);
  _cleanup_free_ char *buf = NULL;
  size_t len;
  if (rr_read_sized(fd, (size_t)st.st_size, &buf, &len) < 0)
    return errno == EFBIG
               ? rr_err_set(e, RR_UNAVAILABLE, "owner list \"%s\" changed while read", path)
           : errno == ENOMEM ? rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory")
                             : rr_err_sys(e, RR_INTERNAL, errno, "cannot read \"%s\"", path);
  char origin[4300];
  snprintf(origin, sizeof origin, "owner list \"%s\"", path);
  return secrets_acl_parse(buf, len, origin, ret, e);
}

static int grant_cmp(const void *x, const void *y) {
  const secrets_grant *a = x, *b = y;
  int c = strcmp(a->name, b->name);
  return c ? c : strcmp(a->principal, b->principal);
}

int secrets_acl_format(secrets_acl *a, char **ret, size_t *len, rr_err *e) {
  if (a->n)
    qsort(a->v, a->n, sizeof *a->v, grant_cmp);
  char *buf = NULL;
  size_t size = 0;
  FILE *f = open_memstream(&buf, &size);
  if (!f)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  fputs("# NAME PRINCIPAL: who may use which secret (rund secrets allow|deny|list)\n", f);
  for (size_t i = 0; i < a->n; i++)
    fprintf(f, "%s %s\n", a->v[i].name, a->v[i].principal);
  if (fclose(f) != 0) {
    free(buf);
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  }
  *ret = buf;
  *len = size;
  return 0;
}

int secrets_acl_store(int dirfd, const char *dir, secrets_acl *a, rr_err *e) {
  _cleanup_free_ char *text = NULL;
  size_t len = 0;
  if (secrets_acl_format(a, &text, &len, e) < 0)
    return -1;
  if (len > SECRETS_ACL_MAX)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "owner list of %s would be larger than %u bytes",
                      dir, SECRETS_ACL_MAX);
  if (unlinkat(dirfd, SECRETS_ACL_TMP, 0) < 0 && errno != ENOENT)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot remove \"%s/%s\"", dir, SECRETS_ACL_TMP);
  _cleanup_close_ int fd =
      openat(dirfd, SECRETS_ACL_TMP, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot create \"%s/%s\"", dir, SECRETS_ACL_TMP);
  if (rr_write_all(fd, text, len) < 0 || fsync(fd) < 0) {
    int err = errno;
    unlinkat(dirfd, SECRETS_ACL_TMP, 0);
    return rr_err_sys(e, RR_INTERNAL, err, "cannot write \"%s/%s\"", dir, SECRETS_ACL_TMP);
  }
  if (renameat(dirfd, SECRETS_ACL_TMP, dirfd, SECRETS_ACL_FILE) < 0) {
    int err = errno;
    unlinkat(dirfd, SECRETS_ACL_TMP, 0);
    return rr_err_sys(e, RR_INTERNAL, err, "cannot replace \"%s/%s\"", dir, SECRETS_ACL_FILE);
  }
  fsync(dirfd); /* the rename itself; the data is already safe */
  return 0;
}
