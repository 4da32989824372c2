#include "auth/certs.h"

#include <arpa/inet.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

static int certs_ssl_fail(rr_err *e, const char *what) {
  unsigned long err = ERR_get_error();
  char buf[256] = "unknown error";
  if (err)
    ERR_error_string_n(err, buf, sizeof buf);
  ERR_clear_error();
  return rr_err_set(e, RR_INTERNAL, "%s: %s", what, buf);
}

static bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* A DNS name for a certificate: LDH labels of 1..63, at most 253, no
 * wildcards, no trailing dot. */
static bool dns_name_valid(const char *s) {
  size_t n = strlen(s), label = 0;
  if (n == 0 || n > 253)
    return false;
  for (size_t i = 0; i <= n; i++) {
    char c = s[i];
    if (c == '.' || c == '\0') {
      if (label == 0 || label > 63 || s[i - 1] == '-')
        return false;
      label = 0;
      continue;
    }
    if (!(is_alnum(c) || c == '-') || (label == 0 && c == '-'))
      return false;
    label++;
  }
  return true;
}

static bool printable_nospace(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f)
      return false;
  return true;
}

int certs_san_check(const char *san, rr_err *e) {
  const char *colon = strchr(san, ':');
  if (strlen(san) > CERTS_SAN_MAX)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "--san \"%.60s...\" is longer than %d bytes", san,
                      CERTS_SAN_MAX);
  if (!colon || !colon[1])
    return rr_err_set(e, RR_INVALID_ARGUMENT,
                      "--san \"%s\": want uri:VALUE, dns:NAME, email:ADDRESS or ip:ADDRESS", san);
  size_t kl = (size_t)(colon - san);
  const char *v = colon + 1;
  if (kl == 3 && !strncmp(san, "uri", 3)) {
    const char *sc = strchr(v, ':');
    char first = (char)(v[0] | 0x20);
    bool ok = sc && sc > v && sc[1] && first >= 'a' && first <= 'z' && printable_nospace(v);
    for (const char *c = v; ok && c < sc; c++)
      ok = is_alnum(*c) || *c == '+' || *c == '.' || *c == '-';
    if (!ok)
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "--san \"%s\": a URI needs SCHEME:REST with no spaces (e.g. "
                        "uri:spiffe://example/ci)",
                        san);
    return 0;
  }
  if (kl == 3 && !strncmp(san, "dns", 3)) {
    if (!dns_name_valid(v))
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "--san \"%s\": not a DNS name (letters, digits, '-' in labels of 1..63 "
                        "joined by '.'; no wildcards)",
                        san);
    return 0;
  }
  if (kl == 5 && !strncmp(san, "email", 5)) {
    const char *at = strchr(v, '@');
    if (!at || at == v || (size_t)(at - v) > 64 || strchr(at + 1, '@') || !printable_nospace(v) ||
        !dns_name_valid(at + 1))
      return rr_err_set(e, RR_INVALID_ARGUMENT, "--san \"%s\": not an email address (LOCAL@DOMAIN)",
                        san);
    return 0;
  }
  if (kl == 2 && !strncmp(san, "ip", 2)) {
    unsigned char buf[16];
    if (inet_pton(AF_INET, v, buf) != 1 && inet_pton(AF_INET6, v, buf) != 1)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "--san \"%s\": not an IPv4 or IPv6 address", san);
    return 0;
  }
  return rr_err_set(e, RR_INVALID_ARGUMENT,
                    "--san \"%s\": unknown kind \"%.*s\" (want uri, dns, email or ip)", san,
                    (int)kl, san);
}

int certs_name_check(const char *name, rr_err *e) {
  size_t n = strlen(name);
  if (n == 0 || n > 64 || name[0] == '.')
    return rr_err_set(e, RR_INVALID_ARGUMENT,
                      "certificate name \"%.80s\" must be 1..64 characters, not starting with '.'",
                      name);
  for (size_t i = 0; i < n; i++)
    if (!(is_alnum(name[i]) || strchr("._-", name[i])))
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "certificate name \"%s\" has a character outside [A-Za-z0-9._-]", name);
  return 0;
}

/* One SAN as a GENERAL_NAME (syntax already checked). */
static GENERAL_NAME *san_to_general_name(const char *san) {
  const char *v = strchr(san, ':') + 1;
  GENERAL_NAME *g = GENERAL_NAME_new();
  if (!g)
    return NULL;
  if (!strncmp(san, "ip:", 3)) {
    unsigned char buf[16];
    int len = inet_pton(AF_INET, v, buf) == 1 ? 4 : inet_pton(AF_INET6, v, buf) == 1 ? 16 : 0;
    ASN1_OCTET_STRING *ip = ASN1_OCTET_STRING_new();
    if (!len || !ip || !ASN1_OCTET_STRING_set(ip, buf, len)) {
      ASN1_OCTET_STRING_free(ip);
      GENERAL_NAME_free(g);
      return NULL;
    }
    GENERAL_NAME_set0_value(g, GEN_IPADD, ip);
    return g;
  }
  int type = !strncmp(san, "uri:", 4) ? GEN_URI : !strncmp(san, "dns:", 4) ? GEN_DNS : GEN_EMAIL;
  ASN1_IA5STRING *s = ASN1_IA5STRING_new();
  if (!s || !ASN1_STRING_set(s, v, (int)strlen(v))) {
    ASN1_IA5STRING_free(s);
    GENERAL_NAME_free(g);
    return NULL;
  }
  GENERAL_NAME_set0_value(g, type, s);
  return g;
}

static int add_sans(X509 *x, const char *const *sans, size_t n, rr_err *e) {
  GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
  if (!gens)
    return certs_ssl_fail(e, "cannot build subjectAltName");
  for (size_t i = 0; i < n; i++) {
    GENERAL_NAME *g = san_to_general_name(sans[i]);
    if (!g || !sk_GENERAL_NAME_push(gens, g)) {
      GENERAL_NAME_free(g);
      sk_GENERAL_NAME_pop_free(gens, GENERAL_NAME_free);
      return certs_ssl_fail(e, "cannot build subjectAltName");
    }
  }
  int ok = X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT);
  sk_GENERAL_NAME_pop_free(gens, GENERAL_NAME_free);
  return ok == 1 ? 0 : certs_ssl_fail(e, "cannot add subjectAltName");
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value, rr_err *e) {
  X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
  if (!ext || !X509_add_ext(x, ext, -1)) {
    X509_EXTENSION_free(ext);
    return certs_ssl_fail(e, "cannot add a certificate extension");
  }
  X509_EXTENSION_free(ext);
  return 0;
}

/* Random positive 128-bit serial. */
static int set_serial(X509 *x, rr_err *e) {
  unsigned char raw[16];
  if (RAND_bytes(raw, sizeof raw) != 1)
    return certs_ssl_fail(e, "cannot get random bytes");
  raw[0] = (unsigned char)((raw[0] & 0x7f) | 0x01); /* positive, never zero, full length */
  BIGNUM *bn = BN_bin2bn(raw, sizeof raw, NULL);
  int ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
  BN_free(bn);
  return ok ? 0 : certs_ssl_fail(e, "cannot set the serial number");
}

static int certs_fill(X509 *x, const certs_spec *spec, X509 *issuer, EVP_PKEY *key, rr_err *e) {
  if (!X509_set_version(x, X509_VERSION_3) || set_serial(x, e) < 0)
    return -1;
  /* a little back in time: clocks of other machines are not exact */
  if (!X509_gmtime_adj(X509_getm_notBefore(x), -300) ||
      !X509_time_adj_ex(X509_getm_notAfter(x), spec->days, 0, NULL))
    return certs_ssl_fail(e, "cannot set the validity period");
  X509_NAME *name = X509_get_subject_name(x);
  if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)spec->cn, -1,
                                  -1, 0) ||
      !X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name) ||
      !X509_set_pubkey(x, key))
    return certs_ssl_fail(e, "cannot set the certificate's names");
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
  if (add_ext(x, &ctx, NID_subject_key_identifier, "hash", e) < 0 ||
      add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always", e) < 0)
    return -1;
  if (spec->kind == CERTS_CA)
    return add_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0", e) < 0 ||
                   add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign", e) < 0
               ? -1
               : 0;
  if (add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE", e) < 0 ||
      add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature", e) < 0 ||
      add_ext(x, &ctx, NID_ext_key_usage, spec->kind == CERTS_SERVER ? "serverAuth" : "clientAuth",
              e) < 0)
    return -1;
  return spec->nsans ? add_sans(x, spec->sans, spec->nsans, e) : 0;
}

int certs_make(const certs_spec *spec, X509 *issuer, EVP_PKEY *issuer_key, X509 **ret_cert,
               EVP_PKEY **ret_key, rr_err *e) {
  if (spec->days < 1 || spec->days > CERTS_MAX_DAYS)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "validity of %d days is out of range (1..%d)",
                      spec->days, CERTS_MAX_DAYS);
  if (spec->nsans > CERTS_MAX_SANS)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%zu SANs (max %d)", spec->nsans, CERTS_MAX_SANS);
  for (size_t i = 0; i < spec->nsans; i++)
    if (certs_san_check(spec->sans[i], e) < 0)
      return -1;
  if ((issuer == NULL) != (spec->kind == CERTS_CA))
    return rr_err_set(e, RR_INTERNAL, "a CA is self-signed and nothing else is");
  /* P-256: 128-bit strength like the X25519 key exchange and TLS security
   * level 3, and ~40x cheaper to sign than P-384 (docs/dev/SECURITY.md) */
  EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  if (!key)
    return certs_ssl_fail(e, "cannot generate an EC P-256 key");
  X509 *x = X509_new();
  if (!x) {
    EVP_PKEY_free(key);
    return certs_ssl_fail(e, "out of memory");
  }
  if (certs_fill(x, spec, issuer, key, e) < 0)
    goto fail;
  EVP_PKEY *signer = issuer_key ? issuer_key : key;
  /* the digest matching the signer's curve (a CA made before is P-384) */
  if (!X509_sign(x, signer, EVP_PKEY_get_bits(signer) > 256 ? EVP_sha384() : EVP_sha256())) {
    certs_ssl_fail(e, "cannot sign the certificate");
    goto fail;
  }
  *ret_cert = x;
  *ret_key = key;
  return 0;
fail:
  X509_free(x);
  EVP_PKEY_free(key);
  return -1;
}
