/* TLS helpers (src/rpc/tls.c): SAN extraction from certificates made here
 * with the OpenSSL API, verify-error strings, ALPN selection, context
 * configuration errors (missing file, key not matching the certificate). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rpc/tls.h"

static EVP_PKEY *key_new(void) {
  EVP_PKEY *k = EVP_EC_gen("P-384");
  assert_non_null(k);
  return k;
}

/* Self-signed certificate with subjectAltName san (NULL: none). */
static X509 *cert_new(EVP_PKEY *key, const char *san) {
  X509 *x = X509_new();
  assert_non_null(x);
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, key);
  X509_NAME *name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"test", -1, -1, 0);
  X509_set_issuer_name(x, name);
  if (san) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san);
    assert_non_null(ext);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
  }
  assert_true(X509_sign(x, key, EVP_sha384()) > 0);
  return x;
}

static void test_sans_all_kinds(void **state) {
  EVP_PKEY *k = key_new();
  X509 *x = cert_new(k, "URI:runrpc:alice,DNS:alice.example,email:a@example.com,IP:127.0.0.1,"
                        "IP:::1,DNS:second.example");
  char **sans;
  size_t n;
  rr_err e = {0};
  assert_int_equal(rpc_tls_cert_sans(x, &sans, &n, &e), 0);
  assert_int_equal(n, 6);
  assert_string_equal(sans[0], "uri:runrpc:alice");
  assert_string_equal(sans[1], "dns:alice.example");
  assert_string_equal(sans[2], "email:a@example.com");
  assert_string_equal(sans[3], "ip:127.0.0.1");
  assert_string_equal(sans[4], "ip:::1");
  assert_string_equal(sans[5], "dns:second.example");
  rpc_tls_sans_free(sans, n);
  X509_free(x);
  EVP_PKEY_free(k);
}

static void test_sans_none(void **state) {
  EVP_PKEY *k = key_new();
  X509 *x = cert_new(k, NULL);
  char **sans = (char **)1;
  size_t n = 7;
  assert_int_equal(rpc_tls_cert_sans(x, &sans, &n, NULL), 0);
  assert_null(sans);
  assert_int_equal(n, 0);
  X509_free(x);
  /* kinds we do not map (registered ids, otherName) are skipped */
  x = cert_new(k, "RID:1.2.3.4,otherName:1.2.3.4;UTF8:x,URI:spiffe://a/b");
  assert_int_equal(rpc_tls_cert_sans(x, &sans, &n, NULL), 0);
  assert_int_equal(n, 1);
  assert_string_equal(sans[0], "uri:spiffe://a/b");
  rpc_tls_sans_free(sans, n);
  X509_free(x);
  EVP_PKEY_free(k);
}

/* A SAN with a NUL or a space must not turn into an identity that a prefix
 * or split comparison could confuse. */
static void test_sans_bad_values_skipped(void **state) {
  EVP_PKEY *k = key_new();
  X509 *x = cert_new(k, "DNS:ok.example");
  GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
  const char *bad[] = {"evil\0.example", "with space", "tab\there"};
  size_t lens[] = {13, 10, 8};
  for (size_t i = 0; i < 3; i++) {
    GENERAL_NAME *g = GENERAL_NAME_new();
    ASN1_IA5STRING *s = ASN1_IA5STRING_new();
    ASN1_STRING_set(s, bad[i], (int)lens[i]);
    GENERAL_NAME_set0_value(g, GEN_DNS, s);
    sk_GENERAL_NAME_push(gens, g);
  }
  GENERAL_NAME *g = GENERAL_NAME_new();
  ASN1_IA5STRING *s = ASN1_IA5STRING_new();
  ASN1_STRING_set(s, "good.example", -1);
  GENERAL_NAME_set0_value(g, GEN_DNS, s);
  sk_GENERAL_NAME_push(gens, g);
  assert_int_equal(X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_REPLACE), 1);
  GENERAL_NAMES_free(gens);
  char **sans;
  size_t n;
  assert_int_equal(rpc_tls_cert_sans(x, &sans, &n, NULL), 0);
  assert_int_equal(n, 1);
  assert_string_equal(sans[0], "dns:good.example");
  rpc_tls_sans_free(sans, n);
  X509_free(x);
  EVP_PKEY_free(k);
}

static void test_verify_reasons(void **state) {
  assert_string_equal(rpc_tls_verify_reason(X509_V_ERR_CERT_HAS_EXPIRED),
                      "certificate has expired");
  assert_string_equal(rpc_tls_verify_reason(X509_V_ERR_CERT_NOT_YET_VALID),
                      "certificate is not yet valid");
  assert_string_equal(rpc_tls_verify_reason(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY),
                      "unable to get local issuer certificate");
  assert_string_equal(rpc_tls_verify_reason(X509_V_ERR_INVALID_PURPOSE),
                      "unsuitable certificate purpose");
  assert_string_equal(rpc_tls_verify_reason(X509_V_ERR_EE_KEY_TOO_SMALL),
                      "EE certificate key too weak");
  assert_string_equal(rpc_tls_verify_reason(X509_V_ERR_HOSTNAME_MISMATCH), "hostname mismatch");
}

static void test_alpn_select(void **state) {
  const unsigned char *out = NULL;
  unsigned char outlen = 0;
  const unsigned char both[] = "\x08http/1.1\x02h2";
  assert_int_equal(rpc_tls_alpn_select_h2(both, sizeof both - 1, &out, &outlen), 0);
  assert_int_equal(outlen, 2);
  assert_memory_equal(out, "h2", 2);
  const unsigned char h1[] = "\x08http/1.1";
  assert_int_equal(rpc_tls_alpn_select_h2(h1, sizeof h1 - 1, &out, &outlen), -1);
  const unsigned char h2c[] = "\x03h2c";
  assert_int_equal(rpc_tls_alpn_select_h2(h2c, sizeof h2c - 1, &out, &outlen), -1);
  const unsigned char truncated[] = "\x08h2";
  assert_int_equal(rpc_tls_alpn_select_h2(truncated, sizeof truncated - 1, &out, &outlen), -1);
  const unsigned char zero[] = "\x00\x02h2";
  assert_int_equal(rpc_tls_alpn_select_h2(zero, 4, &out, &outlen), -1);
  assert_int_equal(rpc_tls_alpn_select_h2(NULL, 0, &out, &outlen), -1);
}

typedef struct files {
  char dir[64];
  char cert[96], key[96], other_key[96];
} files;

static void write_pem(const char *path, X509 *x, EVP_PKEY *k) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  if (x)
    PEM_write_X509(f, x);
  if (k)
    PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
  fclose(f);
}

static void files_make(files *f) {
  snprintf(f->dir, sizeof f->dir, "/tmp/tls_test.XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  snprintf(f->cert, sizeof f->cert, "%s/cert.pem", f->dir);
  snprintf(f->key, sizeof f->key, "%s/key.pem", f->dir);
  snprintf(f->other_key, sizeof f->other_key, "%s/other.pem", f->dir);
  EVP_PKEY *k = key_new(), *k2 = key_new();
  X509 *x = cert_new(k, "DNS:localhost");
  write_pem(f->cert, x, NULL);
  write_pem(f->key, NULL, k);
  write_pem(f->other_key, NULL, k2);
  X509_free(x);
  EVP_PKEY_free(k);
  EVP_PKEY_free(k2);
}

static void files_remove(files *f) {
  unlink(f->cert);
  unlink(f->key);
  unlink(f->other_key);
  rmdir(f->dir);
}

static void test_server_ctx_config(void **state) {
  files f;
  files_make(&f);
  SSL_CTX *ctx = NULL;
  rr_err e = {0};
  rpc_tls_server_files ok = {f.cert, f.key, f.cert, false, false};
  assert_int_equal(rpc_tls_server_ctx_new(&ctx, &ok, &e), 0);
  assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_3_VERSION);
  assert_int_equal(SSL_CTX_get_security_level(ctx), 3);
  assert_int_equal(SSL_CTX_get_verify_mode(ctx), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT);
  SSL_CTX_free(ctx);
  rpc_tls_server_files optional = {f.cert, f.key, f.cert, false, true};
  assert_int_equal(rpc_tls_server_ctx_new(&ctx, &optional, &e), 0);
  assert_int_equal(SSL_CTX_get_verify_mode(ctx), SSL_VERIFY_PEER);
  SSL_CTX_free(ctx);
  rpc_tls_server_files tls12 = {f.cert, f.key, f.cert, true, false};
  assert_int_equal(rpc_tls_server_ctx_new(&ctx, &tls12, &e), 0);
  assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
  SSL_CTX_free(ctx);

  rpc_tls_server_files missing = {"/nonexistent/cert.pem", f.key, f.cert, false, false};
  assert_int_equal(rpc_tls_server_ctx_new(&ctx, &missing, &e), -1);
  assert_int_equal(e.code, RR_FAILED_PRECONDITION);
  assert_string_equal(e.msg, "cannot read TLS certificate \"/nonexistent/cert.pem\": "
                             "No such file or directory");
  rpc_tls_server_files mismatch = {f.cert, f.other_key, f.cert, false, false};
  assert_int_equal(rpc_tls_server_ctx_new(&ctx, &mismatch, &e), -1);
  assert_non_null(strstr(e.msg, "does not match certificate"));
  assert_non_null(strstr(e.msg, f.other_key));
  rpc_tls_server_files not_pem = {f.cert, f.key, "/dev/null", false, false};
  assert_int_equal(rpc_tls_server_ctx_new(&ctx, &not_pem, &e), -1);
  assert_non_null(strstr(e.msg, "cannot load CA file \"/dev/null\""));
  rpc_tls_server_files partial = {f.cert, NULL, f.cert, false, false};
  assert_int_equal(rpc_tls_server_ctx_new(&ctx, &partial, &e), -1);
  assert_int_equal(e.code, RR_INVALID_ARGUMENT);
  files_remove(&f);
}

static void test_client_ctx_config(void **state) {
  files f;
  files_make(&f);
  SSL_CTX *ctx = NULL;
  rr_err e = {0};
  rpc_tls_client_files ok = {f.cert, f.cert, f.key};
  assert_int_equal(rpc_tls_client_ctx_new(&ctx, &ok, &e), 0);
  assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_3_VERSION);
  SSL_CTX_free(ctx);
  rpc_tls_client_files no_client_cert = {f.cert, NULL, NULL};
  assert_int_equal(rpc_tls_client_ctx_new(&ctx, &no_client_cert, &e), 0);
  SSL_CTX_free(ctx);
  rpc_tls_client_files no_ca = {NULL, f.cert, f.key};
  assert_int_equal(rpc_tls_client_ctx_new(&ctx, &no_ca, &e), -1);
  assert_int_equal(e.code, RR_INVALID_ARGUMENT);
  rpc_tls_client_files only_cert = {f.cert, f.cert, NULL};
  assert_int_equal(rpc_tls_client_ctx_new(&ctx, &only_cert, &e), -1);
  assert_non_null(strstr(e.msg, "go together"));
  rpc_tls_client_files mismatch = {f.cert, f.cert, f.other_key};
  assert_int_equal(rpc_tls_client_ctx_new(&ctx, &mismatch, &e), -1);
  assert_non_null(strstr(e.msg, "does not match certificate"));
  files_remove(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sans_all_kinds),
      cmocka_unit_test(test_sans_none),
      cmocka_unit_test(test_sans_bad_values_skipped),
      cmocka_unit_test(test_verify_reasons),
      cmocka_unit_test(test_alpn_select),
      cmocka_unit_test(test_server_ctx_config),
      cmocka_unit_test(test_client_ctx_config),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
