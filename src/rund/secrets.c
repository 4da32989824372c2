#include "rund/secrets.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"

struct secrets {
  char *dir;
  int dirfd;
};

static int secrets_check_stat(const struct stat *st, const char *what, const char *path,
                              rr_err *e) {
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
  if (secrets_check_stat(&st, "directory", dir, e) < 0)
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
      rc = secrets_check_stat(&st, S_ISDIR(st.st_mode) ? "directory" : "file", path, e);
  }
  closedir(d);
  if (rc < 0)
    return -1;
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
  return 0;
}

int secrets_read(const secrets *s, const char *key, const char *name, char **ret, rr_err *e) {
  if (secrets_name_check(name, e) < 0)
    return rr_err_wrap(e, "env \"%.100s\"", key);
  if (!s)
    return rr_err_set(e, RR_FAILED_PRECONDITION, "env \"%.100s\": secret \"%s\" not found", key,
                      name);
  _cleanup_close_ int fd =
      openat(s->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ENOENT)
      return rr_err_set(e, RR_FAILED_PRECONDITION, "env \"%.100s\": secret \"%s\" not found", key,
                        name);
    return rr_err_sys(e, RR_FAILED_PRECONDITION, errno, "env \"%.100s\": secret \"%s\"", key, name);
  }
  struct stat st;
  if (fstat(fd, &st) < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "env \"%.100s\": secret \"%s\"", key, name);
  if (!S_ISREG(st.st_mode))
    return rr_err_set(e, RR_FAILED_PRECONDITION,
                      "env \"%.100s\": secret \"%s\" is not a regular file", key, name);
  char path[4200];
  snprintf(path, sizeof path, "%s/%s", s->dir, name);
  if (secrets_check_stat(&st, "file", path, e) < 0)
    return rr_err_wrap(e, "env \"%.100s\"", key);
  if ((uint64_t)st.st_size > SECRETS_VALUE_MAX)
    return rr_err_set(e, RR_FAILED_PRECONDITION,
                      "env \"%.100s\": secret \"%s\" is larger than %u bytes", key, name,
                      SECRETS_VALUE_MAX);
  char *buf = malloc(SECRETS_VALUE_MAX + 2);
  if (!buf)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  size_t len = 0;
  for (;;) {
    ssize_t n = rr_read(fd, buf + len, SECRETS_VALUE_MAX + 1 - len);
    if (n < 0) {
      int err = errno;
      OPENSSL_clear_free(buf, SECRETS_VALUE_MAX + 2);
      return rr_err_sys(e, RR_INTERNAL, err, "env \"%.100s\": cannot read secret \"%s\"", key,
                        name);
    }
    if (n == 0)
      break;
    len += (size_t)n;
    if (len > SECRETS_VALUE_MAX) {
      OPENSSL_clear_free(buf, SECRETS_VALUE_MAX + 2);
      return rr_err_set(e, RR_FAILED_PRECONDITION,
                        "env \"%.100s\": secret \"%s\" is larger than %u bytes", key, name,
                        SECRETS_VALUE_MAX);
    }
  }
  if (len && buf[len - 1] == '\n')
    len--;
  buf[len] = '\0';
  if (memchr(buf, '\0', len)) {
    OPENSSL_clear_free(buf, SECRETS_VALUE_MAX + 2);
    return rr_err_set(e, RR_FAILED_PRECONDITION,
                      "env \"%.100s\": secret \"%s\" contains a NUL byte (env values cannot)", key,
                      name);
  }
  *ret = buf;
  return 0;
}

int secrets_resolve_env(const secrets *s, const char *const *keys, const char *const *values,
                        size_t n, char ***ret, rr_err *e) {
  char **v = calloc(n + 1, sizeof *v);
  if (!v)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  for (size_t i = 0; i < n; i++) {
    if (secrets_is_ref(values[i])) {
      if (secrets_read(s, keys[i], values[i] + sizeof SECRETS_PREFIX - 1, &v[i], e) < 0)
        goto fail;
    } else if (!(v[i] = strdup(values[i]))) {
      rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
      goto fail;
    }
  }
  *ret = v;
  return 0;
fail:
  secrets_values_free(v, n);
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
