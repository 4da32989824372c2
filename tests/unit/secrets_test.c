#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rund/secrets.h"

typedef struct fx {
  char dir[64];
} fx;

static void put(fx *f, const char *name, const void *data, size_t len, mode_t mode) {
  char p[128];
  snprintf(p, sizeof p, "%s/%s", f->dir, name);
  int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, data, len), (ssize_t)len);
  fchmod(fd, mode);
  close(fd);
}

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/secrets_test_XXXXXX");
  if (!mkdtemp(f->dir))
    return -1;
  put(f, "db", "hunter2\n", 8, 0600);
  put(f, "two-lines", "a\nb\n\n", 5, 0600);
  put(f, "raw", "x", 1, 0400);
  put(f, "empty", "", 0, 0600);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
  int rc = system(cmd);
  free(f);
  return rc;
}

static void resolve_fails(const secrets *s, const char *key, const char *value, int code,
                          const char *msg) {
  const char *keys[] = {"A", key};
  const char *values[] = {"plain", value};
  char **out = NULL;
  rr_err e = {0};
  assert_int_equal(secrets_resolve_env(s, keys, values, 2, &out, &e), -1);
  assert_null(out);
  assert_int_equal(e.code, code);
  if (!strstr(e.msg, msg))
    fail_msg("error \"%s\" lacks \"%s\"", e.msg, msg);
}

static void test_resolve(void **state) {
  fx *f = *state;
  secrets *s = NULL;
  rr_err e = {0};
  assert_int_equal(secrets_open(f->dir, &s, &e), 0);
  const char *keys[] = {"A", "DB_PASS", "T", "R", "E", "NOT"};
  const char *values[] = {"plain",        "secret://db",    "secret://two-lines",
                          "secret://raw", "secret://empty", "secret:/db"};
  char **out = NULL;
  assert_int_equal(secrets_resolve_env(s, keys, values, 6, &out, &e), 0);
  assert_string_equal(out[0], "plain");
  assert_string_equal(out[1], "hunter2"); /* one trailing newline stripped */
  assert_string_equal(out[2], "a\nb\n");  /* only one */
  assert_string_equal(out[3], "x");
  assert_string_equal(out[4], "");
  assert_string_equal(out[5], "secret:/db"); /* not a reference */
  assert_null(out[6]);
  assert_true(secrets_values_leak("bad PATH \"hunter2\"", values, (const char *const *)out, 6));
  assert_false(secrets_values_leak("command \"y\" not found", values, (const char *const *)out, 6));
  secrets_values_free(out, 6);
  resolve_fails(s, "DB_PASS", "secret://nope", RR_FAILED_PRECONDITION,
                "env \"DB_PASS\": secret \"nope\" not found");
  resolve_fails(s, "X", "secret://../etc", RR_INVALID_ARGUMENT,
                "env \"X\": secret name \"../etc\" has a character outside");
  resolve_fails(s, "X", "secret://..", RR_INVALID_ARGUMENT, "secret name \"..\" is not allowed");
  resolve_fails(s, "X", "secret://.", RR_INVALID_ARGUMENT, "secret name \".\" is not allowed");
  resolve_fails(s, "X", "secret://", RR_INVALID_ARGUMENT, "must be 1..128 characters");
  /* a NUL byte cannot go into an env value */
  put(f, "nul", "ab\0cd", 5, 0600);
  resolve_fails(s, "N", "secret://nul", RR_FAILED_PRECONDITION,
                "env \"N\": secret \"nul\" contains a NUL byte");
  /* a file made unsafe after start is refused at use, without its value */
  put(f, "loose", "topsecret", 9, 0644);
  resolve_fails(s, "L", "secret://loose", RR_FAILED_PRECONDITION,
                "is accessible by group or others");
  char sub[128];
  snprintf(sub, sizeof sub, "%s/subdir", f->dir);
  mkdir(sub, 0700);
  resolve_fails(s, "D", "secret://subdir", RR_FAILED_PRECONDITION, "not a regular file");
  rmdir(sub);
  char link[128], target[128];
  snprintf(link, sizeof link, "%s/lnk", f->dir);
  snprintf(target, sizeof target, "%s/db", f->dir);
  assert_int_equal(symlink(target, link), 0);
  resolve_fails(s, "S", "secret://lnk", RR_FAILED_PRECONDITION, "env \"S\": secret \"lnk\"");
  secrets_free(s);
  /* no store: every reference is "not found" */
  resolve_fails(NULL, "DB_PASS", "secret://db", RR_FAILED_PRECONDITION,
                "env \"DB_PASS\": secret \"db\" not found");
}

static void test_open_perms(void **state) {
  fx *f = *state;
  secrets *s = NULL;
  rr_err e = {0};
  chmod(f->dir, 0750);
  assert_int_equal(secrets_open(f->dir, &s, &e), -1);
  assert_non_null(strstr(e.msg, "directory"));
  assert_non_null(strstr(e.msg, "accessible by group or others"));
  chmod(f->dir, 0700);
  put(f, "db", "hunter2\n", 8, 0604);
  assert_int_equal(secrets_open(f->dir, &s, &e), -1);
  assert_non_null(strstr(e.msg, "/db\" is accessible by group or others"));
  assert_null(strstr(e.msg, "hunter2"));
  put(f, "db", "hunter2\n", 8, 0600);
  assert_int_equal(secrets_open(f->dir, &s, &e), 0);
  secrets_free(s);
  char missing[128];
  snprintf(missing, sizeof missing, "%s/missing", f->dir);
  assert_int_equal(secrets_open(missing, &s, &e), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_resolve, setup, teardown),
      cmocka_unit_test_setup_teardown(test_open_perms, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
