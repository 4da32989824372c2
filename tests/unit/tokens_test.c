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

#include "auth/tokens.h"

#define H64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define H64B "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"

/* Parse text; expect failure with a message containing want. */
static void parse_fails(const char *text, const char *want) {
  token_file t = {0};
  rr_err e = {0};
  assert_int_equal(tokens_parse(text, strlen(text), "tokens", &t, &e), -1);
  if (!strstr(e.msg, want))
    fail_msg("error \"%s\" lacks \"%s\"", e.msg, want);
  assert_int_equal(t.n, 0);
  assert_null(t.entries);
}

static void test_parse_good(void **state) {
  const char *text = "# comment\n"
                     "\n"
                     "   \t\n"
                     "  # indented comment\n"
                     "alice sha256:" H64 "\n"
                     "ci.bot@example:x-1\tsha256:" H64B; /* no newline at EOF */
  token_file t;
  rr_err e = {0};
  assert_int_equal(tokens_parse(text, strlen(text), "tokens", &t, &e), 0);
  assert_int_equal(t.n, 2);
  assert_string_equal(t.entries[0].identity, "alice");
  assert_int_equal(t.entries[0].hash[0], 0x01);
  assert_int_equal(t.entries[0].hash[31], 0xef);
  assert_string_equal(t.entries[1].identity, "ci.bot@example:x-1");
  tokens_free(&t);
  /* empty file: no tokens */
  assert_int_equal(tokens_parse("", 0, "tokens", &t, &e), 0);
  assert_int_equal(t.n, 0);
  tokens_free(&t);
}

static void test_parse_bad(void **state) {
  parse_fails("alice\n", "line 1: want \"IDENTITY sha256:HEX\"");
  parse_fails("# c\nalice md5:" H64 "\n", "line 2: hash must start with \"sha256:\"");
  parse_fails("alice sha256:abc\n", "line 1: hash must be 64 hex digits");
  parse_fails("alice sha256:" H64 "00\n", "hash must be 64 hex digits");
  parse_fails("alice sha256:"
              "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg\n",
              "not hex");
  parse_fails("al/ice sha256:" H64 "\n", "line 1: identity \"al/ice\" has a character outside");
  parse_fails("alice sha256:" H64 " extra\n", "extra text after the hash");
  parse_fails("alice sha256:" H64 "\r\n", "line 1: ends with CR");
  parse_fails("a sha256:" H64 "\nb sha256:" H64 "\n", "line 2: duplicate hash");
  char id[200];
  memset(id, 'x', 129);
  id[129] = '\0';
  char line[400];
  snprintf(line, sizeof line, "%s sha256:" H64 "\n", id);
  parse_fails(line, "identity longer than 128");
  char *big = malloc(TOKENS_LINE_MAX + 10);
  memset(big, '#', TOKENS_LINE_MAX + 5);
  big[TOKENS_LINE_MAX + 5] = '\0';
  parse_fails(big, "line 1: longer than 512 bytes");
  free(big);
  token_file t = {0};
  rr_err e = {0};
  const char nul[] = "alice sha256:" H64 "\0\n";
  assert_int_equal(tokens_parse(nul, sizeof nul - 1, "tokens", &t, &e), -1);
  assert_non_null(strstr(e.msg, "NUL"));
}

static void test_identity_check(void **state) {
  assert_int_equal(tokens_identity_check("a", NULL), 0);
  assert_int_equal(tokens_identity_check("A.b_c@d:e-9", NULL), 0);
  assert_int_equal(tokens_identity_check("", NULL), -1);
  assert_int_equal(tokens_identity_check("a b", NULL), -1);
  assert_int_equal(tokens_identity_check("é", NULL), -1);
  char id[130];
  memset(id, 'a', 128);
  id[128] = '\0';
  assert_int_equal(tokens_identity_check(id, NULL), 0);
  id[128] = 'a';
  id[129] = '\0';
  assert_int_equal(tokens_identity_check(id, NULL), -1);
}

static void test_generate_and_verify(void **state) {
  char tok[TOKENS_TOKEN_LEN + 1], tok2[TOKENS_TOKEN_LEN + 1];
  uint8_t h[TOKENS_HASH_LEN], h2[TOKENS_HASH_LEN];
  assert_int_equal(tokens_generate(tok, h, NULL), 0);
  assert_int_equal(tokens_generate(tok2, h2, NULL), 0);
  assert_int_equal(strlen(tok), TOKENS_TOKEN_LEN);
  assert_memory_equal(tok, "rr_", 3);
  assert_string_not_equal(tok, tok2);
  for (const char *p = tok + 3; *p; p++)
    assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", *p));
  char text[2 * TOKENS_LINE_MAX];
  tokens_format_line("alice", h, text, TOKENS_LINE_MAX);
  tokens_format_line("bob", h2, text + strlen(text), TOKENS_LINE_MAX);
  token_file t;
  assert_int_equal(tokens_parse(text, strlen(text), "tokens", &t, NULL), 0);
  const char *who = tokens_verify(&t, tok, strlen(tok));
  assert_non_null(who);
  assert_string_equal(who, "alice");
  assert_string_equal(tokens_verify(&t, tok2, strlen(tok2)), "bob");
  /* wrong tokens: one byte changed, truncated, longer, empty */
  tok[10] = tok[10] == 'A' ? 'B' : 'A';
  assert_null(tokens_verify(&t, tok, strlen(tok)));
  assert_null(tokens_verify(&t, tok2, strlen(tok2) - 1));
  char longer[64];
  snprintf(longer, sizeof longer, "%sx", tok2);
  assert_null(tokens_verify(&t, longer, strlen(longer)));
  assert_null(tokens_verify(&t, "", 0));
  assert_null(tokens_verify(NULL, tok2, strlen(tok2)));
  /* known vector: sha256("abc") */
  uint8_t abc[TOKENS_HASH_LEN];
  assert_int_equal(tokens_hash("abc", 3, abc, NULL), 0);
  assert_int_equal(abc[0], 0xba);
  assert_int_equal(abc[31], 0xad);
  tokens_free(&t);
}

static void test_load_perms(void **state) {
  char dir[] = "/tmp/tokens_test_XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[64];
  snprintf(path, sizeof path, "%s/tokens", dir);
  int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  assert_true(fd >= 0);
  const char text[] = "alice sha256:" H64 "\n";
  assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
  close(fd);
  token_file t;
  rr_err e = {0};
  assert_int_equal(tokens_load(path, &t, &e), 0);
  assert_int_equal(t.n, 1);
  tokens_free(&t);
  static const mode_t bad[] = {0640, 0604, 0620, 0602, 0660};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    chmod(path, bad[i]);
    assert_int_equal(tokens_load(path, &t, &e), -1);
    assert_non_null(strstr(e.msg, "accessible by group or others"));
  }
  chmod(path, 0400);
  assert_int_equal(tokens_load(path, &t, &e), 0);
  tokens_free(&t);
  /* a symlink is not followed; a missing file is NOT_FOUND */
  char link[80];
  snprintf(link, sizeof link, "%s/link", dir);
  assert_int_equal(symlink(path, link), 0);
  assert_int_equal(tokens_load(link, &t, &e), -1);
  char missing[80];
  snprintf(missing, sizeof missing, "%s/missing", dir);
  assert_int_equal(tokens_load(missing, &t, &e), -1);
  assert_int_equal(e.code, RR_NOT_FOUND);
  /* a malformed file names its path and line */
  chmod(path, 0600);
  fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
  assert_int_equal(write(fd, "bob sha256:zz\n", 14), 14);
  close(fd);
  assert_int_equal(tokens_load(path, &t, &e), -1);
  assert_non_null(strstr(e.msg, "line 2"));
  assert_non_null(strstr(e.msg, path));
  unlink(link);
  unlink(path);
  rmdir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_good),     cmocka_unit_test(test_parse_bad),
      cmocka_unit_test(test_identity_check), cmocka_unit_test(test_generate_and_verify),
      cmocka_unit_test(test_load_perms),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
