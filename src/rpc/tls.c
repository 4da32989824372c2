/* TLS policy and helpers (see tls.h). */
#include "rpc/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TLS_SECURITY_LEVEL 3
#define TLS12_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20"
#define TLS_SESSION_ID_CTX "runrpc"

static int tls_error_code_fail(rr_err *e, int code, const char *what, const char *file) {
  char why[256];
  rpc_tls_error_string(why, sizeof why);
  return rr_err_set(e, code, "%s \"%s\": %s", what, file, why[0] ? why : "unknown OpenSSL error");
}

void rpc_tls_error_string(char *buf, size_t len) {
  unsigned long err;
  buf[0] = '\0';
  /* the last queued error is the most specific */
  while ((err = ERR_get_error()) != 0) {
    const char *r = ERR_reason_error_string(err);
    if (r)
      snprintf(buf, len, "%s", r);
    else
      snprintf(buf, len, "OpenSSL error 0x%lx", err);
  }
}

/* Level 3 disables session tickets; keep every other level-3 rule (key
 * sizes, forward secrecy) but allow TLS 1.3 tickets (PSK with (EC)DHE). */
static int tls_security_cb(const SSL *s, const SSL_CTX *ctx, int op, int bits, int nid, void *other,
                           void *ex) {
  if (op == SSL_SECOP_TICKET)
    return 1;
  int (*dflt)(const SSL *, const SSL_CTX *, int, int, int, void *, void *) = ex;
  return dflt(s, ctx, op, bits, nid, other, NULL);
}

static void tls_ctx_common(SSL_CTX *ctx) {
  SSL_CTX_set_security_level(ctx, TLS_SECURITY_LEVEL);
  SSL_CTX_set0_security_ex_data(ctx, (void *)SSL_CTX_get_security_callback(ctx));
  SSL_CTX_set_security_callback(ctx, tls_security_cb);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  /* conn.c and the client retry a short write from a moved copy of the bytes */
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
}

int rpc_tls_alpn_select_h2(const unsigned char *in, unsigned int inlen, const unsigned char **out,
                           unsigned char *outlen) {
  for (unsigned int i = 0; i < inlen;) {
    unsigned int n = in[i];
    if (n == 0 || i + 1 + n > inlen)
      return -1; /* malformed list */
    if (n == 2 && memcmp(in + i + 1, "h2", 2) == 0) {
      *out = in + i + 1;
      *outlen = 2;
      return 0;
    }
    i += 1 + n;
  }
  return -1;
}

static int tls_alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg) {
  return rpc_tls_alpn_select_h2(in, inlen, out, outlen) == 0 ? SSL_TLSEXT_ERR_OK
                                                             : SSL_TLSEXT_ERR_ALERT_FATAL;
}

bool rpc_tls_alpn_is_h2(const SSL *ssl) {
  const unsigned char *p = NULL;
  unsigned int n = 0;
  SSL_get0_alpn_selected(ssl, &p, &n);
  return n == 2 && memcmp(p, "h2", 2) == 0;
}

/* A missing or unreadable file gets errno's words, not OpenSSL's queue. */
static int tls_file_check(const char *what, const char *file, rr_err *e) {
  if (access(file, R_OK) < 0)
    return rr_err_sys(e, RR_FAILED_PRECONDITION, errno, "cannot read %s \"%s\"", what, file);
  return 0;
}

static int tls_load_identity(SSL_CTX *ctx, const char *cert, const char *key, rr_err *e) {
  if (tls_file_check("TLS certificate", cert, e) < 0 ||
      tls_file_check("TLS private key", key, e) < 0)
    return -1;
  if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
    return tls_error_code_fail(e, RR_FAILED_PRECONDITION, "cannot load TLS certificate", cert);
  if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
    if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
      ERR_clear_error();
      return rr_err_set(e, RR_FAILED_PRECONDITION,
                        "TLS private key \"%s\" does not match certificate \"%s\"", key, cert);
    }
    return tls_error_code_fail(e, RR_FAILED_PRECONDITION, "cannot load TLS private key", key);
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    ERR_clear_error();
    return rr_err_set(e, RR_FAILED_PRECONDITION,
                      "TLS private key \"%s\" does not match certificate \"%s\"", key, cert);
  }
  return 0;
}

static int tls_load_ca(SSL_CTX *ctx, const char *ca, rr_err *e) {
  if (tls_file_check("CA file", ca, e) < 0)
    return -1;
  if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)
    return tls_error_code_fail(e, RR_FAILED_PRECONDITION, "cannot load CA file", ca);
  return 0;
}

int rpc_tls_server_ctx_new(SSL_CTX **ret, const rpc_tls_server_files *f, rr_err *e) {
  if (!f || !f->cert_file || !f->key_file || !f->client_ca_file)
    return rr_err_set(e, RR_INVALID_ARGUMENT,
                      "TLS needs a certificate, its key and a client CA file (all three)");
  ERR_clear_error();
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "cannot create a TLS context");
  tls_ctx_common(ctx);
  SSL_CTX_set_min_proto_version(ctx, f->allow_tls12 ? TLS1_2_VERSION : TLS1_3_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (f->allow_tls12 && SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1) {
    SSL_CTX_free(ctx);
    return rr_err_set(e, RR_INTERNAL, "cannot set TLS 1.2 cipher suites");
  }
  if (tls_load_identity(ctx, f->cert_file, f->key_file, e) < 0 ||
      tls_load_ca(ctx, f->client_ca_file, e) < 0) {
    SSL_CTX_free(ctx);
    return -1;
  }
  STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(f->client_ca_file);
  if (names)
    SSL_CTX_set_client_CA_list(ctx, names);
  ERR_clear_error();
  SSL_CTX_set_verify(
      ctx, SSL_VERIFY_PEER | (f->client_cert_optional ? 0 : SSL_VERIFY_FAIL_IF_NO_PEER_CERT), NULL);
  SSL_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
  /* resumption with client certificates needs a session id context */
  SSL_CTX_set_session_id_context(ctx, (const unsigned char *)TLS_SESSION_ID_CTX,
                                 sizeof TLS_SESSION_ID_CTX - 1);
  SSL_CTX_set_alpn_select_cb(ctx, tls_alpn_cb, NULL);
  /* a resumed session skips certificate verification: keep tickets short */
  SSL_CTX_set_timeout(ctx, RPC_TLS_TICKET_LIFETIME_S);
  *ret = ctx;
  return 0;
}

int rpc_tls_client_ctx_new(SSL_CTX **ret, const rpc_tls_client_files *f, rr_err *e) {
  if (!f || !f->ca_file)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "TLS needs a CA file to verify the server");
  if (!f->cert_file != !f->key_file)
    return rr_err_set(e, RR_INVALID_ARGUMENT,
                      "TLS client certificate and key go together (got only the %s)",
                      f->cert_file ? "certificate" : "key");
  ERR_clear_error();
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "cannot create a TLS context");
  tls_ctx_common(ctx);
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  if (tls_load_ca(ctx, f->ca_file, e) < 0 ||
      (f->cert_file && tls_load_identity(ctx, f->cert_file, f->key_file, e) < 0)) {
    SSL_CTX_free(ctx);
    return -1;
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  SSL_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
  SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)"\x02h2", 3);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  *ret = ctx;
  return 0;
}

static bool san_value_ok(const unsigned char *p, int n) {
  if (n <= 0 || n > RPC_TLS_MAX_SAN_LEN)
    return false;
  for (int i = 0; i < n; i++)
    if (p[i] < 0x21 || p[i] > 0x7e) /* no NUL tricks, spaces or controls in an identity */
      return false;
  return true;
}

void rpc_tls_sans_free(char **sans, size_t n) {
  for (size_t i = 0; sans && i < n; i++)
    free(sans[i]);
  free(sans);
}

int rpc_tls_cert_sans(X509 *cert, char ***ret, size_t *ret_n, rr_err *e) {
  *ret = NULL;
  *ret_n = 0;
  GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
  if (!gens)
    return 0;
  int total = sk_GENERAL_NAME_num(gens);
  char **out = calloc(total > 0 ? (size_t)total : 1, sizeof *out);
  size_t n = 0;
  if (!out) {
    GENERAL_NAMES_free(gens);
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory for certificate names");
  }
  for (int i = 0; i < total && n < RPC_TLS_MAX_SANS; i++) {
    const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
    const char *kind = NULL;
    const ASN1_STRING *s = NULL;
    char ip[INET6_ADDRSTRLEN] = "";
    switch (g->type) {
    case GEN_URI:
      kind = "uri", s = g->d.uniformResourceIdentifier;
      break;
    case GEN_DNS:
      kind = "dns", s = g->d.dNSName;
      break;
    case GEN_EMAIL:
      kind = "email", s = g->d.rfc822Name;
      break;
    case GEN_IPADD: {
      int len = ASN1_STRING_length(g->d.iPAddress);
      const unsigned char *p = ASN1_STRING_get0_data(g->d.iPAddress);
      if (len == 4 || len == 16) {
        inet_ntop(len == 4 ? AF_INET : AF_INET6, p, ip, sizeof ip);
        kind = "ip";
      }
      break;
    }
    default:
      break;
    }
    if (!kind)
      continue;
    char *v = NULL;
    if (s) {
      const unsigned char *p = ASN1_STRING_get0_data(s);
      int len = ASN1_STRING_length(s);
      if (!san_value_ok(p, len))
        continue;
      if (asprintf(&v, "%s:%.*s", kind, len, (const char *)p) < 0)
        v = NULL;
    } else if (asprintf(&v, "ip:%s", ip) < 0) {
      v = NULL;
    }
    if (!v) {
      rpc_tls_sans_free(out, n);
      GENERAL_NAMES_free(gens);
      return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory for certificate names");
    }
    out[n++] = v;
  }
  GENERAL_NAMES_free(gens);
  if (n == 0) {
    free(out);
    return 0;
  }
  *ret = out;
  *ret_n = n;
  return 0;
}

const char *rpc_tls_verify_reason(long verify_result) {
  return X509_verify_cert_error_string(verify_result);
}

void rpc_tls_server_failure(SSL *ssl, char *buf, size_t len) {
  unsigned long err, found = 0;
  while ((err = ERR_get_error()) != 0)
    if (ERR_GET_LIB(err) == ERR_LIB_SSL || !found)
      found = err; /* the SSL-level reason says what went wrong in the handshake */
  long vr = SSL_get_verify_result(ssl);
  int reason = found ? ERR_GET_REASON(found) : 0;
  if (found && ERR_GET_LIB(found) == ERR_LIB_SSL) {
    switch (reason) {
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
      snprintf(buf, len, "no client certificate");
      return;
    case SSL_R_NO_APPLICATION_PROTOCOL:
      snprintf(buf, len, "client offered no h2 ALPN");
      return;
    case SSL_R_UNSUPPORTED_PROTOCOL:
      snprintf(buf, len, "TLS 1.2 or older refused (TLS 1.3 required)");
      return;
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
      snprintf(buf, len, "not TLS (%s)", ERR_reason_error_string(found));
      return;
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
      snprintf(buf, len, "%s",
               rpc_tls_verify_reason(vr != X509_V_OK ? vr : X509_V_ERR_UNSPECIFIED));
      return;
    default:
      break;
    }
  }
  if (vr != X509_V_OK && SSL_get0_peer_certificate(ssl)) {
    snprintf(buf, len, "%s", rpc_tls_verify_reason(vr));
    return;
  }
  if (found) {
    const char *r = ERR_reason_error_string(found);
    if (r)
      snprintf(buf, len, "%s", r);
    else
      snprintf(buf, len, "OpenSSL error 0x%lx", found);
    return;
  }
  snprintf(buf, len, "connection closed during the handshake");
}

void rpc_tls_client_failure(SSL *ssl, char *buf, size_t len) {
  char why[256];
  rpc_tls_error_string(why, sizeof why);
  long vr = SSL_get_verify_result(ssl);
  if (vr != X509_V_OK)
    snprintf(buf, len, "%s (%s)", why[0] ? why : "certificate verify failed",
             rpc_tls_verify_reason(vr));
  else
    snprintf(buf, len, "%s", why[0] ? why : "connection closed during the handshake");
}
