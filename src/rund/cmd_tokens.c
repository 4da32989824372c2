/* rund tokens create IDENTITY | revoke IDENTITY | list [--token-file F]
 * [--state-dir DIR]: the token file (hashes only), changed under a lock; a
 * running rund sees each change at its next call. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/tokens.h"
#include "common/util.h"
#include "rund/opts.h"

#define HELP "rund tokens --help"

static void tokens_usage(FILE *f) {
  fprintf(f, "Usage: rund tokens create IDENTITY [--token-file F] [--state-dir DIR]\n"
             "       rund tokens revoke IDENTITY [--token-file F] [--state-dir DIR]\n"
             "       rund tokens list [--token-file F] [--state-dir DIR]\n"
             "\n"
             "create makes a bearer token for IDENTITY ([A-Za-z0-9._@:-]{1,128}; callers\n"
             "using it are the principal token:IDENTITY), appends its SHA-256 to the token\n"
             "file (default STATE/tokens, created with mode 0600) and prints the token on\n"
             "stdout. It is shown only this once.\n"
             "revoke removes every token of IDENTITY (exit 1 if it has none).\n"
             "list prints each token's identity and the start of its hash.\n"
             "A running rund uses the file as it is at each call: no signal or restart.\n");
}

/* The token file opened and locked (flock on the file that is at path now:
 * revoke replaces it), its content in *ret_buf, checked like rund checks it. */
static int tokens_file_lock(const char *path, bool create, int *ret_fd, char **ret_buf,
                            size_t *ret_len, rr_err *e) {
  for (int tries = 0; tries < 100; tries++) {
    int flags = O_RDWR | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | (create ? O_CREAT : 0);
    _cleanup_close_ int fd = open(path, flags, 0600);
    if (fd < 0)
      return rr_err_sys(e, errno == ENOENT ? RR_NOT_FOUND : RR_FAILED_PRECONDITION, errno,
                        "cannot open token file \"%s\"", path);
    if (flock(fd, LOCK_EX) < 0)
      return rr_err_sys(e, RR_INTERNAL, errno, "cannot lock \"%s\"", path);
    struct stat st, now;
    if (fstat(fd, &st) < 0)
      return rr_err_sys(e, RR_INTERNAL, errno, "cannot stat \"%s\"", path);
    if (stat(path, &now) < 0 || now.st_ino != st.st_ino || now.st_dev != st.st_dev)
      continue; /* replaced while we waited for the lock */
    if (tokens_file_check_perms(fd, path, e) < 0)
      return rr_err_wrap(e, "token file");
    if ((uint64_t)st.st_size > TOKENS_FILE_MAX - TOKENS_LINE_MAX)
      return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "token file \"%s\" is full", path);
    _cleanup_free_ char *buf = malloc((size_t)st.st_size + 1);
    if (!buf)
      return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
    size_t len = 0;
    ssize_t n;
    while (len < (size_t)st.st_size &&
           (n = pread(fd, buf + len, (size_t)st.st_size - len, (off_t)len)) > 0)
      len += (size_t)n;
    char origin[300];
    snprintf(origin, sizeof origin, "token file \"%.280s\"", path);
    token_file t;
    if (tokens_parse(buf, len, origin, &t, e) < 0)
      return -1;
    tokens_free(&t);
    *ret_fd = TAKE_FD(fd);
    *ret_buf = TAKE_PTR(buf);
    *ret_len = len;
    return 0;
  }
  return rr_err_set(e, RR_UNAVAILABLE, "token file \"%s\" keeps being replaced", path);
}

static int tokens_append(const char *path, const char *line, rr_err *e) {
  _cleanup_close_ int fd = -1;
  _cleanup_free_ char *buf = NULL;
  size_t len;
  if (tokens_file_lock(path, true, &fd, &buf, &len, e) < 0)
    return -1;
  if (len && buf[len - 1] != '\n' && rr_write_all(fd, "\n", 1) < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot write \"%s\"", path);
  if (rr_write_all(fd, line, strlen(line)) < 0 || fsync(fd) < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot write \"%s\"", path);
  return 0;
}

/* The identity a line holds, or NULL for blank and comment lines. */
static bool line_is_identity(const char *s, size_t n, const char *identity) {
  size_t i = 0, k = strlen(identity);
  while (i < n && (s[i] == ' ' || s[i] == '\t'))
    i++;
  return n - i > k && !memcmp(s + i, identity, k) && (s[i + k] == ' ' || s[i + k] == '\t');
}

/* Write buf without identity's lines to path.tmp, then rename it over path
 * (under the old file's lock). *removed counts the lines dropped. */
static int tokens_rewrite(const char *path, const char *buf, size_t len, const char *identity,
                          size_t *removed, rr_err *e) {
  char tmp[4200];
  if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "token file path too long");
  unlink(tmp);
  _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    return rr_err_sys(e, RR_FAILED_PRECONDITION, errno, "cannot create \"%s\"", tmp);
  *removed = 0;
  int rc = 0;
  for (const char *p = buf, *end = buf + len; p < end && rc == 0;) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
    if (line_is_identity(p, n, identity))
      (*removed)++;
    else if (rr_write_all(fd, p, n) < 0 || rr_write_all(fd, "\n", 1) < 0)
      rc = -1;
    p += n + 1;
  }
  if (rc < 0 || fsync(fd) < 0 || (*removed && rename(tmp, path) < 0)) {
    int err = errno;
    unlink(tmp);
    return rr_err_sys(e, RR_INTERNAL, err, "cannot rewrite \"%s\"", path);
  }
  if (!*removed)
    unlink(tmp);
  return 0;
}

static int tokens_fail(const char *verb, const rr_err *e) {
  fprintf(stderr, "rund tokens %s: %s\n", verb, e->msg);
  return 1;
}

static int tokens_create(const char *file, const char *identity) {
  char token[TOKENS_TOKEN_LEN + 1], line[TOKENS_LINE_MAX];
  uint8_t hash[TOKENS_HASH_LEN];
  rr_err e = {0};
  if (tokens_generate(token, hash, &e) < 0)
    return tokens_fail("create", &e);
  tokens_format_line(identity, hash, line, sizeof line);
  if (tokens_append(file, line, &e) < 0) {
    OPENSSL_cleanse(token, sizeof token);
    return tokens_fail("create", &e);
  }
  printf("%s\n", token);
  fflush(stdout);
  OPENSSL_cleanse(token, sizeof token);
  fprintf(stderr,
          "rund: token for \"%s\" added to %s (it is not stored; keep it now); a running rund "
          "accepts it from its next call\n",
          identity, file);
  return 0;
}

static int tokens_revoke(const char *file, const char *identity) {
  _cleanup_close_ int fd = -1;
  _cleanup_free_ char *buf = NULL;
  size_t len, removed = 0;
  rr_err e = {0};
  if (tokens_file_lock(file, false, &fd, &buf, &len, &e) < 0 ||
      tokens_rewrite(file, buf, len, identity, &removed, &e) < 0)
    return tokens_fail("revoke", &e);
  if (!removed) {
    fprintf(stderr, "rund tokens revoke: no token of \"%s\" in %s (see rund tokens list)\n",
            identity, file);
    return 1;
  }
  fprintf(stderr,
          "rund: %zu token%s of \"%s\" removed from %s; a running rund refuses %s from "
          "its next call\n",
          removed, removed == 1 ? "" : "s", identity, file, removed == 1 ? "it" : "them");
  return 0;
}

static int tokens_list(const char *file) {
  token_file t = {0};
  rr_err e = {0};
  if (tokens_load(file, &t, &e) < 0)
    return tokens_fail("list", &e);
  for (size_t i = 0; i < t.n; i++)
    printf("%s sha256:%02x%02x%02x%02x%02x%02x...\n", t.entries[i].identity, t.entries[i].hash[0],
           t.entries[i].hash[1], t.entries[i].hash[2], t.entries[i].hash[3], t.entries[i].hash[4],
           t.entries[i].hash[5]);
  tokens_free(&t);
  return 0;
}

int rund_cmd_tokens(int argc, char **argv) {
  const char *file = NULL, *state = RUND_DEFAULT_STATE;
  int rc = rund_subcmd_flags(argc, argv, "token-file", &file, &state, tokens_usage, HELP,
                             "create, revoke or list");
  if (rc)
    return rc < 0 ? 0 : rc;
  const char *verb = argv[optind];
  bool list = !strcmp(verb, "list");
  if (!list && strcmp(verb, "create") && strcmp(verb, "revoke"))
    return rund_bad_flag(HELP, "tokens: unknown verb \"%s\" (want create, revoke or list)", verb);
  int want = list ? 1 : 2;
  if (optind + want > argc)
    return rund_bad_flag(HELP, "tokens %s: missing IDENTITY", verb);
  if (optind + want < argc)
    return rund_bad_flag(HELP, "tokens: unexpected argument \"%s\"", argv[optind + want]);
  char path[4200];
  if (!file) {
    snprintf(path, sizeof path, "%s/tokens", state);
    file = path;
  }
  if (list)
    return tokens_list(file);
  const char *identity = argv[optind + 1];
  rr_err e = {0};
  if (tokens_identity_check(identity, &e) < 0)
    return rund_bad_flag(HELP, "tokens: %s", e.msg);
  return !strcmp(verb, "create") ? tokens_create(file, identity) : tokens_revoke(file, identity);
}
