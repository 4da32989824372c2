/* The private CA (OpenSSL 3): ECDSA P-256 keys, SHA-256 signatures, random
 * 128-bit serials, v3 extensions; the embedded default's files in
 * STATE/tls (0700, files 0600, written atomically) and client certificates
 * issued from it. Nothing here logs. */
#pragma once
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

#define CERTS_MAX_SANS 32
#define CERTS_SAN_MAX 1024
#define CERTS_CA_DAYS 3650
#define CERTS_LEAF_DAYS 365
#define CERTS_MAX_DAYS 3650
#define CERTS_ADMIN_SAN "uri:runrpc:admin"
#define CERTS_ADMIN_PRINCIPAL "san:uri:runrpc:admin"

typedef enum certs_kind { CERTS_CA, CERTS_SERVER, CERTS_CLIENT } certs_kind;

typedef struct certs_spec {
  certs_kind kind;
  const char *cn;
  const char *const *sans; /* "uri:X", "dns:X", "email:X", "ip:X" */
  size_t nsans;
  int days;
} certs_spec;

/* Strict syntax check of one "KIND:VALUE" SAN. */
int certs_san_check(const char *san, rr_err *e);
/* A certificate NAME (file name and CN): [A-Za-z0-9._-]{1,64}, no leading dot. */
int certs_name_check(const char *name, rr_err *e);
/* New key and certificate; issuer/issuer_key NULL makes a self-signed CA. */
int certs_make(const certs_spec *spec, X509 *issuer, EVP_PKEY *issuer_key, X509 **ret_cert,
               EVP_PKEY **ret_key, rr_err *e);
/* Write cert and key as PEM, mode 0600, each atomically (temp file +
 * rename); no_replace refuses to overwrite existing files. */
int certs_write_pair(const char *cert_path, const char *key_path, X509 *cert, EVP_PKEY *key,
                     bool no_replace, rr_err *e);
/* Load a PEM certificate and its key (which must match). */
int certs_load_pair(const char *cert_path, const char *key_path, X509 **ret_cert,
                    EVP_PKEY **ret_key, rr_err *e);

/* Load one PEM certificate. */
int certs_load_cert(const char *path, X509 **ret, rr_err *e);
/* Write cert as PEM, mode 0600, atomically. */
int certs_write_cert(const char *path, X509 *cert, bool no_replace, rr_err *e);

/* A set of "KIND:VALUE" names for one certificate (no duplicates). */
#define CERTS_SAN_TEXT 272
typedef struct certs_san_list {
  char items[CERTS_MAX_SANS][CERTS_SAN_TEXT];
  size_t n;
} certs_san_list;

/* True if l holds san (exact text). */
bool certs_san_list_has(const certs_san_list *l, const char *san);
/* Add san (checked) unless l has it; at most CERTS_MAX_SANS names. */
int certs_san_list_add(certs_san_list *l, const char *san, rr_err *e);
/* Add this host's names: localhost, 127.0.0.1, ::1, its host name (when it
 * is a DNS name) and the addresses of its interfaces (not IPv6 link-local),
 * as many as fit. */
int certs_host_sans(certs_san_list *l, rr_err *e);
/* Add the subjectAltNames of x that certs_san_check accepts. */
int certs_san_list_of_cert(X509 *x, certs_san_list *l);

/* The embedded default's files. */
typedef struct certs_paths {
  char dir[4096];
  char ca[4200], ca_key[4200];
  char server[4200], server_key[4200];
  char client[4200], client_key[4200];
} certs_paths;

void certs_paths_init(certs_paths *p, const char *state_dir);
/* Make STATE/tls and whatever is missing, expired or not from the current
 * CA. The server certificate must name every one of server_sans (NULL:
 * localhost and loopback only); one that misses a name is remade with its
 * old names and the missing ones. *made (may be NULL) gets a short note of
 * what was generated ("" if nothing). */
int certs_ensure_default(const char *state_dir, const certs_san_list *server_sans, certs_paths *ret,
                         char *made, size_t made_size, rr_err *e);
/* Issue a client certificate NAME with sans from STATE/tls/ca.*, written to
 * out_dir/NAME.pem and NAME.key (never overwritten), with the CA's
 * certificate as out_dir/ca.pem (kept if it is already that CA's; another
 * CA's is refused before anything is written). ca_path gets its path. */
int certs_issue_client(const char *state_dir, const char *name, const char *const *sans,
                       size_t nsans, int days, const char *out_dir, char *cert_path, char *key_path,
                       char *ca_path, size_t path_size, rr_err *e);
