#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/certs.h"

static X509 *load_cert(const char *path) {
  FILE *f = fopen(path, "re");
  assert_non_null(f);
  X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
  fclose(f);
  assert_non_null(x);
  return x;
}

/* Verify x against ca for purpose (X509_PURPOSE_SSL_CLIENT/SERVER). */
static int verify(X509 *ca, X509 *x, int purpose) {
  X509_STORE *st = X509_STORE_new();
  X509_STORE_add_cert(st, ca);
  X509_STORE_CTX *ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, st, x, NULL);
  X509_STORE_CTX_set_purpose(ctx, purpose);
  int ok = X509_verify_cert(ctx);
  int err = X509_STORE_CTX_get_error(ctx);
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(st);
  return ok == 1 ? 0 : err;
}

/* SANs as "dns:x,ip:127.0.0.1,..." */
static void sans_string(X509 *x, char *buf, size_t size) {
  buf[0] = '\0';
  GENERAL_NAMES *g = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
  for (int i = 0; g && i < sk_GENERAL_NAME_num(g); i++) {
    GENERAL_NAME *n = sk_GENERAL_NAME_value(g, i);
    size_t l = strlen(buf);
    if (n->type == GEN_IPADD) {
      const unsigned char *d = ASN1_STRING_get0_data(n->d.ip);
      int len = ASN1_STRING_length(n->d.ip);
      if (len == 4)
        snprintf(buf + l, size - l, "%sip:%d.%d.%d.%d", l ? "," : "", d[0], d[1], d[2], d[3]);
      else
        snprintf(buf + l, size - l, "%sip6:%d", l ? "," : "", d[15]);
      continue;
    }
    const char *kind = n->type == GEN_DNS ? "dns" : n->type == GEN_URI ? "uri" : "email";
    snprintf(buf + l, size - l, "%s%s:%s", l ? "," : "", kind,
             (const char *)ASN1_STRING_get0_data(n->d.ia5));
  }
  GENERAL_NAMES_free(g);
}

static void assert_mode_0600(const char *path) {
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0600);
}

static void test_default_files(void **state) {
  char dir[] = "/tmp/certs_test_XXXXXX";
  assert_non_null(mkdtemp(dir));
  certs_paths p;
  char made[64];
  rr_err e = {0};
  if (certs_ensure_default(dir, NULL, &p, made, sizeof made, &e) < 0)
    fail_msg("%s", e.msg);
  assert_string_equal(made, "ca server client");
  struct stat st;
  assert_int_equal(stat(p.dir, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0700);
  const char *files[] = {p.ca, p.ca_key, p.server, p.server_key, p.client, p.client_key};
  for (size_t i = 0; i < 6; i++)
    assert_mode_0600(files[i]);
  X509 *ca = load_cert(p.ca), *srv = load_cert(p.server), *cli = load_cert(p.client);
  assert_int_equal(verify(ca, srv, X509_PURPOSE_SSL_SERVER), 0);
  assert_int_equal(verify(ca, cli, X509_PURPOSE_SSL_CLIENT), 0);
  /* the EKU restricts each to its role */
  assert_int_not_equal(verify(ca, srv, X509_PURPOSE_SSL_CLIENT), 0);
  assert_int_not_equal(verify(ca, cli, X509_PURPOSE_SSL_SERVER), 0);
  char sans[256];
  sans_string(srv, sans, sizeof sans);
  assert_string_equal(sans, "dns:localhost,ip:127.0.0.1,ip6:1");
  sans_string(cli, sans, sizeof sans);
  assert_string_equal(sans, "uri:runrpc:admin");
  assert_true(X509_check_ca(ca) > 0);
  assert_int_equal(X509_check_ca(srv), 0);
  /* P-256, SHA-256, 128-bit serials */
  EVP_PKEY *k = X509_get0_pubkey(srv);
  assert_int_equal(EVP_PKEY_get_bits(k), 256);
  assert_int_equal(X509_get_signature_nid(srv), NID_ecdsa_with_SHA256);
  assert_int_equal(ASN1_STRING_length(X509_get0_serialNumber(srv)), 16);
  assert_int_equal(X509_check_host(srv, "localhost", 0, 0, NULL), 1);
  assert_int_equal(X509_check_ip_asc(srv, "127.0.0.1", 0), 1);
  assert_int_equal(X509_check_ip_asc(srv, "::1", 0), 1);
  /* second start: nothing to make */
  assert_int_equal(certs_ensure_default(dir, NULL, &p, made, sizeof made, &e), 0);
  assert_string_equal(made, "");
  /* a broken server cert is remade, the CA kept */
  FILE *f = fopen(p.server, "we");
  fputs("junk\n", f);
  fclose(f);
  assert_int_equal(certs_ensure_default(dir, NULL, &p, made, sizeof made, &e), 0);
  assert_string_equal(made, "server");
  X509 *srv2 = load_cert(p.server);
  assert_int_equal(verify(ca, srv2, X509_PURPOSE_SSL_SERVER), 0);
  /* issue a client cert from that CA */
  const char *csans[] = {"dns:ci.example", "uri:spiffe://x/ci", "email:ci@example.org",
                         "ip:10.0.0.1"};
  char cp[4200], kp[4200], cap[4200];
  if (certs_issue_client(dir, "ci", csans, 4, 30, dir, cp, kp, cap, sizeof cp, &e) < 0)
    fail_msg("%s", e.msg);
  /* the CA's certificate comes with it, and is kept on the next issue */
  X509 *ca_copy = load_cert(cap);
  assert_int_equal(X509_cmp(ca_copy, ca), 0);
  X509_free(ca_copy);
  const char *dsans[] = {"dns:ci2.example"};
  char cp2[4200], kp2[4200];
  if (certs_issue_client(dir, "ci2", dsans, 1, 30, dir, cp2, kp2, cap, sizeof cp2, &e) < 0)
    fail_msg("%s", e.msg);
  assert_mode_0600(cp);
  assert_mode_0600(kp);
  X509 *ci = load_cert(cp);
  assert_int_equal(verify(ca, ci, X509_PURPOSE_SSL_CLIENT), 0);
  sans_string(ci, sans, sizeof sans);
  assert_string_equal(sans, "dns:ci.example,uri:spiffe://x/ci,email:ci@example.org,ip:10.0.0.1");
  /* never overwritten */
  assert_int_equal(certs_issue_client(dir, "ci", csans, 1, 30, dir, cp, kp, cap, sizeof cp, &e),
                   -1);
  assert_int_equal(e.code, RR_ALREADY_EXISTS);
  /* "ca" would be the CA's own file */
  assert_int_equal(certs_issue_client(dir, "ca", csans, 1, 30, dir, cp, kp, cap, sizeof cp, &e),
                   -1);
  assert_int_equal(e.code, RR_INVALID_ARGUMENT);
  /* a certificate from another CA does not verify */
  char dir2[] = "/tmp/certs_test_XXXXXX";
  assert_non_null(mkdtemp(dir2));
  certs_paths p2;
  assert_int_equal(certs_ensure_default(dir2, NULL, &p2, NULL, 0, &e), 0);
  X509 *other = load_cert(p2.client);
  assert_int_not_equal(verify(ca, other, X509_PURPOSE_SSL_CLIENT), 0);
  /* another CA's ca.pem in the way: refused before anything is written */
  if (certs_issue_client(dir2, "dx", dsans, 1, 30, dir, cp2, kp2, cap, sizeof cp2, &e) == 0)
    fail_msg("issued next to another CA's ca.pem");
  assert_int_equal(e.code, RR_ALREADY_EXISTS);
  assert_int_equal(access(cp2, F_OK), -1);
  assert_int_equal(access(kp2, F_OK), -1);
  X509_free(other);
  X509_free(ci);
  X509_free(srv2);
  X509_free(ca);
  X509_free(srv);
  X509_free(cli);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s %s", dir, dir2);
  assert_int_equal(system(cmd), 0);
}

/* The server certificate gains wanted names and keeps the ones it had. */
static void test_server_names(void **state) {
  char dir[] = "/tmp/certs_test_XXXXXX";
  assert_non_null(mkdtemp(dir));
  certs_paths p;
  char made[64];
  rr_err e = {0};
  assert_int_equal(certs_ensure_default(dir, NULL, &p, made, sizeof made, &e), 0);
  certs_san_list want = {.n = 0};
  assert_int_equal(certs_san_list_add(&want, "dns:build.example", &e), 0);
  assert_int_equal(certs_san_list_add(&want, "ip:10.99.0.1", &e), 0);
  assert_int_equal(certs_san_list_add(&want, "ip:10.99.0.1", &e), 0); /* no duplicate */
  assert_int_equal(want.n, 2);
  assert_int_equal(certs_san_list_add(&want, "dns:bad_name", &e), -1);
  assert_int_equal(certs_ensure_default(dir, &want, &p, made, sizeof made, &e), 0);
  assert_string_equal(made, "server");
  X509 *ca = load_cert(p.ca), *srv = load_cert(p.server);
  assert_int_equal(verify(ca, srv, X509_PURPOSE_SSL_SERVER), 0);
  assert_int_equal(X509_check_host(srv, "build.example", 0, 0, NULL), 1);
  assert_int_equal(X509_check_ip_asc(srv, "10.99.0.1", 0), 1);
  assert_int_equal(X509_check_host(srv, "localhost", 0, 0, NULL), 1);
  X509_free(srv);
  /* names it has: kept as is */
  assert_int_equal(certs_ensure_default(dir, &want, &p, made, sizeof made, &e), 0);
  assert_string_equal(made, "");
  /* one more: remade with the old names too */
  certs_san_list more = {.n = 0};
  assert_int_equal(certs_san_list_add(&more, "dns:other.example", &e), 0);
  assert_int_equal(certs_ensure_default(dir, &more, &p, made, sizeof made, &e), 0);
  assert_string_equal(made, "server");
  srv = load_cert(p.server);
  assert_int_equal(X509_check_host(srv, "other.example", 0, 0, NULL), 1);
  assert_int_equal(X509_check_host(srv, "build.example", 0, 0, NULL), 1);
  assert_int_equal(X509_check_ip_asc(srv, "10.99.0.1", 0), 1);
  X509_free(srv);
  /* this host's names include loopback and fit in one certificate */
  certs_san_list host = {.n = 0};
  assert_int_equal(certs_host_sans(&host, &e), 0);
  assert_true(certs_san_list_has(&host, "ip:127.0.0.1"));
  assert_true(host.n >= 3 && host.n <= CERTS_MAX_SANS);
  X509_free(ca);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

static void test_san_syntax(void **state) {
  static const char *const good[] = {"uri:runrpc:admin",
                                     "uri:spiffe://example.org/ns/a",
                                     "dns:a",
                                     "dns:a-b.example.COM",
                                     "email:a.b+c@x.io",
                                     "ip:127.0.0.1",
                                     "ip:::1",
                                     "ip:fe80::1"};
  for (size_t i = 0; i < sizeof good / sizeof *good; i++)
    if (certs_san_check(good[i], NULL) < 0)
      fail_msg("refused %s", good[i]);
  static const char *const bad[] = {
      "",         "dns",          "dns:",     "DNS:a",        "dns:*.example",
      "dns:-a",   "dns:a-",       "dns:a..b", "dns:a.",       "dns:a_b",
      "uri:",     "uri:noscheme", "uri:1a:x", "uri:a b:c",    "uri:x:",
      "email:a",  "email:@x.io",  "email:a@", "email:a@b@c",  "email:a b@x.io",
      "ip:1.2.3", "ip:256.0.0.1", "ip:::g",   "ip:localhost", "cn:x",
      "dns:a\nb", "uri:x:\x01"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    if (certs_san_check(bad[i], NULL) == 0)
      fail_msg("accepted \"%s\"", bad[i]);
  char label[80];
  memset(label, 'a', 64);
  snprintf(label, sizeof label, "dns:%.64s",
           "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
  assert_int_equal(certs_san_check(label, NULL), -1); /* a 64-character label */
  assert_int_equal(certs_name_check("ci-01.x_y", NULL), 0);
  assert_int_equal(certs_name_check(".hidden", NULL), -1);
  assert_int_equal(certs_name_check("a/b", NULL), -1);
  assert_int_equal(certs_name_check("", NULL), -1);
}

static void test_make_limits(void **state) {
  X509 *x = NULL;
  EVP_PKEY *k = NULL;
  rr_err e = {0};
  certs_spec ca = {.kind = CERTS_CA, .cn = "t", .days = 0};
  assert_int_equal(certs_make(&ca, NULL, NULL, &x, &k, &e), -1);
  ca.days = CERTS_MAX_DAYS + 1;
  assert_int_equal(certs_make(&ca, NULL, NULL, &x, &k, &e), -1);
  ca.days = 1;
  assert_int_equal(certs_make(&ca, NULL, NULL, &x, &k, &e), 0);
  const char *sans[] = {"dns:bad_name"};
  certs_spec leaf = {.kind = CERTS_CLIENT, .cn = "c", .sans = sans, .nsans = 1, .days = 1};
  X509 *y = NULL;
  EVP_PKEY *yk = NULL;
  assert_int_equal(certs_make(&leaf, x, k, &y, &yk, &e), -1);
  assert_null(y);
  X509_free(x);
  EVP_PKEY_free(k);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_default_files),
      cmocka_unit_test(test_server_names),
      cmocka_unit_test(test_san_syntax),
      cmocka_unit_test(test_make_limits),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
