/* rund tokens create IDENTITY [--token-file F] [--state-dir DIR]: append a
 * new token's hash to the token file and print the token, once. */
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
             "\n"
             "Make a bearer token for IDENTITY ([A-Za-z0-9._@:-]{1,128}; callers using it\n"
             "are the principal token:IDENTITY), append its SHA-256 to the token file\n"
             "(default STATE/tokens, created with mode 0600) and print the token on stdout.\n"
             "It is shown only this once. A running rund reads the file again on SIGHUP.\n");
}

static int tokens_fail(const rr_err *e) {
  fprintf(stderr, "rund tokens create: %s\n", e->msg);
  return 1;
}

/* Append the line under an exclusive lock, after checking the file is safe
 * and well formed (rund would refuse it otherwise). */
static int tokens_append(const char *path, const char *line, rr_err *e) {
  _cleanup_close_ int fd =
      open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
  if (fd < 0)
    return rr_err_sys(e, RR_FAILED_PRECONDITION, errno, "cannot open token file \"%s\"", path);
  if (flock(fd, LOCK_EX) < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot lock \"%s\"", path);
  if (tokens_file_check_perms(fd, path, e) < 0)
    return rr_err_wrap(e, "token file");
  struct stat st;
  if (fstat(fd, &st) < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot stat \"%s\"", path);
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
  if (len && buf[len - 1] != '\n' && rr_write_all(fd, "\n", 1) < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot write \"%s\"", path);
  if (rr_write_all(fd, line, strlen(line)) < 0 || fsync(fd) < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot write \"%s\"", path);
  return 0;
}

int rund_cmd_tokens(int argc, char **argv) {
  const char *file = NULL, *state = RUND_DEFAULT_STATE;
  int rc = rund_subcmd_flags(argc, argv, "token-file", &file, &state, tokens_usage, HELP, "create");
  if (rc)
    return rc < 0 ? 0 : rc;
  if (strcmp(argv[optind], "create") != 0)
    return rund_bad_flag(HELP, "tokens: unknown verb \"%s\" (want create)", argv[optind]);
  if (optind + 1 >= argc)
    return rund_bad_flag(HELP, "%s", "tokens create: missing IDENTITY");
  if (optind + 2 < argc)
    return rund_bad_flag(HELP, "tokens create: unexpected argument \"%s\"", argv[optind + 2]);
  const char *identity = argv[optind + 1];
  rr_err e = {0};
  if (tokens_identity_check(identity, &e) < 0)
    return rund_bad_flag(HELP, "tokens create: %s", e.msg);
  char path[4200];
  if (!file) {
    snprintf(path, sizeof path, "%s/tokens", state);
    file = path;
  }
  char token[TOKENS_TOKEN_LEN + 1], line[TOKENS_LINE_MAX];
  uint8_t hash[TOKENS_HASH_LEN];
  if (tokens_generate(token, hash, &e) < 0)
    return tokens_fail(&e);
  tokens_format_line(identity, hash, line, sizeof line);
  if (tokens_append(file, line, &e) < 0) {
    OPENSSL_cleanse(token, sizeof token);
    return tokens_fail(&e);
  }
  printf("%s\n", token);
  fflush(stdout);
  OPENSSL_cleanse(token, sizeof token);
  fprintf(stderr, "rund: token for \"%s\" added to %s (it is not stored; keep it now)\n", identity,
          file);
  return 0;
}
