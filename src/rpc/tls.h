/* TLS helpers shared by the gRPC server and client (OpenSSL 3): contexts
 * built from PEM files with our policy (docs/dev/SECURITY.md), ALPN "h2",
 * client-certificate SANs as identity strings, readable refusal reasons.
 * Library code: nothing here logs. */
#pragma once
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

/* Most SANs taken from one certificate, and longest value kept. */
#define RPC_TLS_MAX_SANS 64
#define RPC_TLS_MAX_SAN_LEN 1024
/* Lifetime of the server's session tickets (resumption without verification). */
#define RPC_TLS_TICKET_LIFETIME_S 3600

typedef struct rpc_tls_server_files {
  const char *cert_file;      /* chain, PEM */
  const char *key_file;       /* private key, PEM */
  const char *client_ca_file; /* CAs client certificates must chain to */
  bool allow_tls12;           /* else TLS 1.3 only */
  /* Ask for a client certificate but accept a client without one (the
   * application then needs another credential, e.g. a bearer token); a
   * certificate that is presented must still verify. */
  bool client_cert_optional;
} rpc_tls_server_files;

typedef struct rpc_tls_client_files {
  const char *ca_file;   /* CAs the server certificate must chain to (required) */
  const char *cert_file; /* client certificate chain (optional, with key_file) */
  const char *key_file;
} rpc_tls_client_files;

/* Server context: TLS 1.3 (1.2 with ECDHE+AEAD if allowed), security level 3,
 * client certificate required (unless optional) and verified (purpose
 * sslclient), ALPN h2 only,
 * session tickets on. Errors name the file and OpenSSL's reason. */
int rpc_tls_server_ctx_new(SSL_CTX **ret, const rpc_tls_server_files *f, rr_err *e);
/* Client context: TLS 1.3 only, security level 3, server verified against
 * ca_file (purpose sslserver), ALPN h2 offered, client session cache on. */
int rpc_tls_client_ctx_new(SSL_CTX **ret, const rpc_tls_client_files *f, rr_err *e);

/* Pick "h2" from a client's ALPN list (wire format). Returns 0 and points
 * *out at it, or -1 if h2 is not offered. */
int rpc_tls_alpn_select_h2(const unsigned char *in, unsigned int inlen, const unsigned char **out,
                           unsigned char *outlen);
/* True if the connection negotiated ALPN "h2". */
bool rpc_tls_alpn_is_h2(const SSL *ssl);

/* SANs of cert as "uri:V", "dns:V", "email:V", "ip:V" (other kinds and values
 * with control characters are skipped). *ret is NULL when there are none. */
int rpc_tls_cert_sans(X509 *cert, char ***ret, size_t *ret_n, rr_err *e);
void rpc_tls_sans_free(char **sans, size_t n);

/* Readable reason for a verify result ("certificate has expired"). */
const char *rpc_tls_verify_reason(long verify_result);
/* Why a server-side handshake failed, from the verify result and OpenSSL's
 * error queue (which it drains): "no client certificate", "client offered no
 * h2 ALPN", "TLS 1.2 or older refused (TLS 1.3 required)", a verify string... */
void rpc_tls_server_failure(SSL *ssl, char *buf, size_t len);
/* Same for the client side: "certificate verify failed (hostname mismatch)". */
void rpc_tls_client_failure(SSL *ssl, char *buf, size_t len);
/* Drain OpenSSL's error queue into "reason" text (empty if nothing queued). */
void rpc_tls_error_string(char *buf, size_t len);
