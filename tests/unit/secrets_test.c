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

#include "auth/secrets.h"
#include "auth/secrets_acl.h"

/* rund passes its request bounds (jobs/request.h): the same here */
#define ITEM_MAX (128u * 1024u)
#define TOTAL_MAX (1024u * 1024u)

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

static char *admin_principals[] = {"uid:0"};
static const authz_identity admin = {admin_principals, 1, true};
static char *alice_principals[] = {"san:uri:runrpc:alice", "san:dns:alice.test"};
static const authz_identity alice = {alice_principals, 2, false};
static char *bob_principals[] = {"uid:1000"};
static const authz_identity bob = {bob_principals, 1, false};

static int resolve(const secrets *s, const authz_identity *who, const char *const *keys,
                   const char *const *values, size_t n, size_t other, char ***out,
                   secrets_resolution *res, rr_err *e) {
  *res = (secrets_resolution){.caller = who,
                              .keys = keys,
                              .values = values,
                              .n = n,
                              .item_max = ITEM_MAX,
                              .total_max = TOTAL_MAX,
                              .other_bytes = other};
  return secrets_resolve_env(s, res, out, e);
}

static secrets_resolution resolve_fails_as(const secrets *s, const authz_identity *who,
                                           const char *key, const char *value, int code,
                                           const char *msg) {
  const char *keys[] = {"A", key};
  const char *values[] = {"plain", value};
  char **out = NULL;
  rr_err e = {0};
  secrets_resolution res;
  assert_int_equal(resolve(s, who, keys, values, 2, 10, &out, &res, &e), -1);
  assert_null(out);
  assert_int_equal(e.code, code);
  if (!strstr(e.msg, msg))
    fail_msg("error \"%s\" lacks \"%s\"", e.msg, msg);
  return res;
}

static void resolve_fails(const secrets *s, const char *key, const char *value, int code,
                          const char *msg) {
  resolve_fails_as(s, &admin, key, value, code, msg);
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
  secrets_resolution res;
  assert_int_equal(resolve(s, &admin, keys, values, 6, 10, &out, &res, &e), 0);
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
  res = resolve_fails_as(s, &admin, "DB_PASS", "secret://nope", RR_NOT_FOUND,
                         "env \"DB_PASS\": secret \"nope\" not found");
  assert_int_equal(res.failed, 1);
  assert_false(res.refused);
  resolve_fails(s, "X", "secret://../etc", RR_INVALID_ARGUMENT,
                "env \"X\": secret name \"../etc\" has a character outside");
  resolve_fails(s, "X", "secret://..", RR_INVALID_ARGUMENT, "secret name \"..\" is not allowed");
  resolve_fails(s, "X", "secret://.", RR_INVALID_ARGUMENT, "secret name \".\" is not allowed");
  resolve_fails(s, "X", "secret://", RR_INVALID_ARGUMENT, "must be 1..128 characters");
  resolve_fails(s, "X", "secret://secrets.acl", RR_INVALID_ARGUMENT, "is reserved");
  resolve_fails(s, "X", "secret://secrets.acl.new", RR_INVALID_ARGUMENT, "is reserved");
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
  resolve_fails(NULL, "DB_PASS", "secret://db", RR_NOT_FOUND,
                "env \"DB_PASS\": secret \"db\" not found");
}

static void test_owners(void **state) {
  fx *f = *state;
  secrets *s = NULL;
  rr_err e = {0};
  assert_int_equal(secrets_open(f->dir, &s, &e), 0);
  /* no owner list: admins only; refused reads exactly like missing */
  secrets_resolution r1 = resolve_fails_as(s, &alice, "K", "secret://db", RR_NOT_FOUND,
                                           "env \"K\": secret \"db\" not found");
  assert_true(r1.refused);
  secrets_resolution r2 = resolve_fails_as(s, &alice, "K", "secret://nope", RR_NOT_FOUND,
                                           "env \"K\": secret \"nope\" not found");
  assert_true(r2.refused);
  /* granted after the store was opened: read at each use */
  const char *acl = "# owners\n\ndb san:dns:ALICE.test\n  nope\tsan:uri:runrpc:alice \n"
                    "raw uid:1000\n";
  put(f, "secrets.acl", acl, strlen(acl), 0600);
  const char *keys[] = {"K"};
  const char *values[] = {"secret://db"};
  char **out = NULL;
  secrets_resolution res;
  assert_int_equal(resolve(s, &alice, keys, values, 1, 10, &out, &res, &e), 0);
  assert_string_equal(out[0], "hunter2");
  secrets_values_free(out, 1);
  r2 = resolve_fails_as(s, &alice, "K", "secret://nope", RR_NOT_FOUND,
                        "env \"K\": secret \"nope\" not found");
  assert_false(r2.refused); /* allowed, but missing: same words */
  resolve_fails_as(s, &bob, "K", "secret://db", RR_NOT_FOUND, "env \"K\": secret \"db\" not found");
  const char *v2[] = {"secret://raw"};
  assert_int_equal(resolve(s, &bob, keys, v2, 1, 10, &out, &res, &e), 0);
  assert_string_equal(out[0], "x");
  secrets_values_free(out, 1);
  /* an unsafe or malformed list fails closed, for rund's log */
  put(f, "secrets.acl", acl, strlen(acl), 0644);
  res = resolve_fails_as(s, &bob, "K", "secret://raw", RR_FAILED_PRECONDITION,
                         "secrets.acl\" is accessible by group or others");
  assert_true(res.store_error);
  put(f, "secrets.acl", "raw\n", 4, 0600);
  res = resolve_fails_as(s, &bob, "K", "secret://raw", RR_INVALID_ARGUMENT, "line 1");
  assert_true(res.store_error);
  /* admins never need it */
  assert_int_equal(resolve(s, &admin, keys, v2, 1, 10, &out, &res, &e), 0);
  secrets_values_free(out, 1);
  secrets_free(s);
  /* and rund refuses to start on it */
  assert_int_equal(secrets_open(f->dir, &s, &e), -1);
  assert_non_null(strstr(e.msg, "secrets.acl\" line 1: want \"NAME PRINCIPAL\""));
}

static void test_limits(void **state) {
  fx *f = *state;
  secrets *s = NULL;
  rr_err e = {0};
  static char big[300 * 1024];
  memset(big, 'b', sizeof big);
  put(f, "big", big, sizeof big, 0600);
  put(f, "item", big, ITEM_MAX, 0600);
  put(f, "half", big, 100 * 1024, 0600);
  assert_int_equal(secrets_open(f->dir, &s, &e), 0);
  /* too many references: refused before anything is read */
  const char *keys[SECRETS_MAX_REFS + 1], *values[SECRETS_MAX_REFS + 1];
  char names[SECRETS_MAX_REFS + 1][16];
  for (size_t i = 0; i <= SECRETS_MAX_REFS; i++) {
    snprintf(names[i], sizeof names[i], "K%zu", i);
    keys[i] = names[i];
    values[i] = "secret://db";
  }
  char **out = NULL;
  secrets_resolution res;
  assert_int_equal(resolve(s, &admin, keys, values, SECRETS_MAX_REFS, 10, &out, &res, &e), 0);
  secrets_values_free(out, SECRETS_MAX_REFS);
  assert_int_equal(resolve(s, &admin, keys, values, SECRETS_MAX_REFS + 1, 10, &out, &res, &e), -1);
  assert_int_equal(e.code, RR_RESOURCE_EXHAUSTED);
  assert_string_equal(e.msg, "command.env has 33 secret:// references (max 32 per request)");
  resolve_fails(s, "B", "secret://big", RR_FAILED_PRECONDITION, "is larger than 262144 bytes");
  resolve_fails(s, "I", "secret://item", RR_RESOURCE_EXHAUSTED,
                "env \"I\" with secret \"item\" resolved is longer than 131072 bytes");
  /* the request's size limit counts resolved secrets */
  const char *hk[] = {"H1", "H2"}, *hv[] = {"secret://half", "secret://half"};
  assert_int_equal(resolve(s, &admin, hk, hv, 2, 10, &out, &res, &e), 0);
  assert_int_equal(strlen(out[1]), 100 * 1024);
  secrets_values_free(out, 2);
  assert_int_equal(resolve(s, &admin, hk, hv, 2, TOTAL_MAX - 150 * 1024, &out, &res, &e), -1);
  assert_int_equal(e.code, RR_RESOURCE_EXHAUSTED);
  assert_int_equal(res.failed, 1);
  if (!strstr(e.msg, "with secret \"half\" resolved (env \"H2\") exceed 1048576 bytes"))
    fail_msg("unexpected: %s", e.msg);
  secrets_free(s);
}

static void test_acl(void **state) {
  fx *f = *state;
  secrets_acl a = {0};
  rr_err e = {0};
  const char *bad[] = {"db",        "db uid:1 extra", "../x uid:1",
                       "db user:1", "db uid:01",      "secrets.acl uid:1"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    char text[64];
    snprintf(text, sizeof text, "# c\n%s\n", bad[i]);
    assert_int_equal(secrets_acl_parse(text, strlen(text), "acl", &a, &e), -1);
    if (!strstr(e.msg, "acl line 2"))
      fail_msg("\"%s\": %s", bad[i], e.msg);
  }
  assert_int_equal(secrets_acl_add(&a, "db", "uid:5", &e), 0);
  assert_int_equal(secrets_acl_add(&a, "db", "uid:5", &e), 0); /* no duplicate */
  assert_int_equal(secrets_acl_add(&a, "api", "token:ci", &e), 0);
  assert_int_equal(secrets_acl_add(&a, "db", "san:dns:Host.Test", &e), 0);
  assert_int_equal(a.n, 3);
  char *dns[] = {"san:dns:host.TEST"};
  assert_true(secrets_acl_allows(&a, "db", dns, 1));
  assert_false(secrets_acl_allows(&a, "api", dns, 1));
  int dirfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_int_equal(secrets_acl_store(dirfd, f->dir, &a, &e), 0);
  secrets_acl b;
  assert_int_equal(secrets_acl_load(dirfd, f->dir, &b, &e), 0);
  assert_int_equal(b.n, 3);
  assert_string_equal(b.v[0].name, "api"); /* sorted */
  assert_true(secrets_acl_remove(&b, "db", "san:dns:host.test"));
  assert_false(secrets_acl_remove(&b, "db", "san:dns:host.test"));
  assert_int_equal(b.n, 2);
  struct stat st;
  assert_int_equal(fstatat(dirfd, SECRETS_ACL_FILE, &st, 0), 0);
  assert_int_equal(st.st_mode & 07777, 0600);
  assert_int_equal(fstatat(dirfd, SECRETS_ACL_TMP, &st, 0), -1);
  close(dirfd);
  secrets_acl_free(&a);
  secrets_acl_free(&b);
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
      cmocka_unit_test_setup_teardown(test_owners, setup, teardown),
      cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
      cmocka_unit_test_setup_teardown(test_acl, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
