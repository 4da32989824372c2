#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "auth/authz.h"

static void test_principal_check(void **state) {
  static const char *const good[] = {"uid:0",
                                     "uid:1000",
                                     "uid:4294967295",
                                     "token:ops",
                                     "san:uri:runrpc:admin",
                                     "san:dns:a.example",
                                     "san:email:a@b",
                                     "san:ip:::1"};
  for (size_t i = 0; i < sizeof good / sizeof *good; i++)
    if (authz_principal_check(good[i], NULL) < 0)
      fail_msg("refused %s", good[i]);
  static const char *const bad[] = {
      "",        "uid:",          "uid:-1",    "uid:01",       "uid:4294967296",
      "uid:1x",  "token:",        "token:a b", "san:dns:",     "san:uri:a b",
      "san:x:y", "dns:a.example", "admin",     "san:dns:a\tb", "san:email:\x7f"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    if (authz_principal_check(bad[i], NULL) == 0)
      fail_msg("accepted \"%s\"", bad[i]);
}

static void test_principal_equal(void **state) {
  assert_true(authz_principal_equal("san:dns:A.Example", "san:dns:a.example"));
  assert_false(authz_principal_equal("san:dns:a.example", "san:dns:a.example."));
  assert_false(authz_principal_equal("san:dns:a.example", "san:dns:b.a.example"));
  assert_false(authz_principal_equal("san:uri:spiffe://X/a", "san:uri:spiffe://x/a"));
  assert_false(authz_principal_equal("san:email:A@b", "san:email:a@b"));
  assert_false(authz_principal_equal("token:Ops", "token:ops"));
  assert_false(authz_principal_equal("uid:1000", "uid:10000"));
  assert_false(authz_principal_equal("uid:1000", "uid:100"));
  /* kinds never match across: a DNS SAN is not a URI SAN with the same text */
  assert_false(authz_principal_equal("san:dns:a", "san:uri:a"));
  assert_false(authz_principal_equal("san:dns:a", "SAN:DNS:a"));
  assert_true(authz_principal_equal("uid:0", "uid:0"));
}

typedef struct fx {
  token_file tokens;
  authz_config cfg;
  char tok[TOKENS_TOKEN_LEN + 1];
  char bearer[80];
} fx;

static void fx_init(fx *f, char **admins, size_t nadmins) {
  memset(f, 0, sizeof *f);
  uint8_t h[TOKENS_HASH_LEN];
  char line[TOKENS_LINE_MAX];
  assert_int_equal(tokens_generate(f->tok, h, NULL), 0);
  tokens_format_line("ops", h, line, sizeof line);
  assert_int_equal(tokens_parse(line, strlen(line), "t", &f->tokens, NULL), 0);
  snprintf(f->bearer, sizeof f->bearer, "Bearer %s", f->tok);
  f->cfg = (authz_config){.tokens = &f->tokens, .admins = admins, .nadmins = nadmins};
}

static rpc_peer peer_unix(uid_t uid) {
  return (rpc_peer){.family = AF_UNIX, .has_cred = true, .uid = uid};
}

static void expect_fail(fx *f, const rpc_peer *p, const char *auth, const char *msg) {
  authz_identity id = {0};
  rr_err e = {0};
  assert_int_equal(authz_identify(&f->cfg, p, auth, &id, &e), -1);
  assert_int_equal(e.code, RR_UNAUTHENTICATED);
  assert_string_equal(e.msg, msg);
  assert_int_equal(id.n, 0);
  if (auth) /* never echoed */
    assert_null(strstr(e.msg, f->tok));
}

static void test_identify(void **state) {
  static char *admins[] = {"san:dns:root.example", "uid:1001"};
  fx f;
  fx_init(&f, admins, 2);
  authz_identity id;
  rr_err e = {0};
  rpc_peer u = peer_unix(1000);
  assert_int_equal(authz_identify(&f.cfg, &u, NULL, &id, &e), 0);
  assert_int_equal(id.n, 1);
  assert_string_equal(id.principals[0], "uid:1000");
  assert_false(id.admin);
  authz_identity_clear(&id);
  u = peer_unix(0);
  assert_int_equal(authz_identify(&f.cfg, &u, NULL, &id, &e), 0);
  assert_true(id.admin);
  authz_identity_clear(&id);
  u = peer_unix(1001); /* --admin uid:1001 */
  assert_int_equal(authz_identify(&f.cfg, &u, NULL, &id, &e), 0);
  assert_true(id.admin);
  authz_identity_clear(&id);
  char *sans[] = {"dns:ROOT.example", "uri:spiffe://x/y"};
  rpc_peer t = {.family = AF_INET, .tls = true, .tls_cert = true, .sans = sans, .nsans = 2};
  assert_int_equal(authz_identify(&f.cfg, &t, NULL, &id, &e), 0);
  assert_int_equal(id.n, 2);
  assert_string_equal(id.principals[0], "san:dns:ROOT.example");
  assert_string_equal(id.principals[1], "san:uri:spiffe://x/y");
  assert_true(id.admin); /* DNS names compare case-insensitively */
  authz_identity_clear(&id);
  /* a token replaces the connection's identity */
  assert_int_equal(authz_identify(&f.cfg, &t, f.bearer, &id, &e), 0);
  assert_int_equal(id.n, 1);
  assert_string_equal(id.principals[0], "token:ops");
  assert_false(id.admin);
  authz_identity_clear(&id);
  rpc_peer nocert = {.family = AF_INET, .tls = true};
  assert_int_equal(authz_identify(&f.cfg, &nocert, f.bearer, &id, &e), 0);
  assert_int_equal(id.n, 1);
  assert_string_equal(id.principals[0], "token:ops");
  authz_identity_clear(&id);
  char lower[80];
  snprintf(lower, sizeof lower, "bearer %s", f.tok);
  assert_int_equal(authz_identify(&f.cfg, &t, lower, &id, &e), 0);
  authz_identity_clear(&id);
  tokens_free(&f.tokens);
}

static void test_identify_refusals(void **state) {
  fx f;
  fx_init(&f, NULL, 0);
  rpc_peer u = peer_unix(0);
  rpc_peer h2c = {.family = AF_INET};
  rpc_peer t = {.family = AF_INET6, .tls = true, .tls_cert = true};
  rpc_peer nocert = {.family = AF_INET6, .tls = true};
  expect_fail(&f, &u, f.bearer, "bearer tokens are accepted only over TLS");
  expect_fail(&f, &h2c, f.bearer, "bearer tokens are accepted only over TLS");
  expect_fail(&f, &h2c, NULL,
              "no identity: plaintext TCP needs a bearer token (use TLS with a client "
              "certificate, or the unix socket)");
  expect_fail(&f, &t, NULL, "the client certificate has no subjectAltName to identify the caller");
  /* TLS without a certificate: a token or nothing */
  expect_fail(&f, &nocert, NULL,
              "no identity: a TLS client needs a client certificate or a bearer token "
              "(authorization: Bearer TOKEN; runctl --token)");
  expect_fail(&f, &nocert, "Bearer nope", "invalid bearer token");
  char wrong[160];
  /* one character changed (to another one, whatever the token holds there) */
  snprintf(wrong, sizeof wrong, "Bearer %.20s%c%s", f.tok, f.tok[20] == 'X' ? 'Y' : 'X',
           f.tok + 21);
  expect_fail(&f, &t, wrong, "invalid bearer token");
  expect_fail(&f, &t, "Bearer ", "invalid bearer token");
  expect_fail(&f, &t, "Basic dXNlcjpwYXNz", "invalid bearer token");
  snprintf(wrong, sizeof wrong, "Bearer %s extra", f.tok);
  expect_fail(&f, &t, wrong, "invalid bearer token");
  expect_fail(&f, &t, f.tok, "invalid bearer token"); /* no scheme */
  /* no token file: every token is invalid */
  f.cfg.tokens = NULL;
  expect_fail(&f, &t, f.bearer, "invalid bearer token");
  /* --allow-insecure-tokens: accepted on unix and h2c */
  f.cfg.tokens = &f.tokens;
  f.cfg.allow_insecure_tokens = true;
  authz_identity id;
  assert_int_equal(authz_identify(&f.cfg, &h2c, f.bearer, &id, NULL), 0);
  assert_string_equal(id.principals[0], "token:ops");
  authz_identity_clear(&id);
  assert_int_equal(authz_identify(&f.cfg, &u, f.bearer, &id, NULL), 0);
  assert_false(id.admin); /* the token replaced uid 0 */
  authz_identity_clear(&id);
  tokens_free(&f.tokens);
}

static void test_can_see(void **state) {
  char *p_alice[] = {"san:dns:alice.example", "san:uri:spiffe://x/alice"};
  authz_identity alice = {.principals = p_alice, .n = 2};
  char *p_bob[] = {"uid:1000"};
  authz_identity bob = {.principals = p_bob, .n = 1};
  authz_identity admin = {.admin = true};
  char *own_a[] = {"san:uri:spiffe://x/alice"};
  char *own_a_dns[] = {"san:dns:ALICE.example"};
  char *own_b[] = {"uid:1000"};
  char *own_b2[] = {"uid:10000"};
  assert_true(authz_can_see(&alice, own_a, 1));
  assert_true(authz_can_see(&alice, own_a_dns, 1));
  assert_false(authz_can_see(&alice, own_b, 1));
  assert_true(authz_can_see(&bob, own_b, 1));
  assert_false(authz_can_see(&bob, own_b2, 1));
  assert_false(authz_can_see(&bob, own_a, 1));
  /* jobs from before owners existed: admins only */
  assert_false(authz_can_see(&alice, NULL, 0));
  assert_false(authz_can_see(&bob, NULL, 0));
  assert_true(authz_can_see(&admin, NULL, 0));
  assert_true(authz_can_see(&admin, own_a, 1));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_principal_check), cmocka_unit_test(test_principal_equal),
      cmocka_unit_test(test_identify),        cmocka_unit_test(test_identify_refusals),
      cmocka_unit_test(test_can_see),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
