/* Client certificates from the embedded CA, handed out with the CA's own
 * certificate so that the client has every file it needs in one step. */
#include <errno.h>
#include <openssl/err.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "auth/certs.h"

/* out_dir/ca.pem may be written: missing, or already this CA. *write says
 * whether it is missing. */
static int ca_copy_check(const char *path, X509 *ca, bool *write, rr_err *e) {
  X509 *old = NULL;
  *write = false;
  if (access(path, F_OK) < 0) {
    if (errno != ENOENT)
      return rr_err_sys(e, RR_FAILED_PRECONDITION, errno, "cannot check \"%s\"", path);
    *write = true;
    return 0;
  }
  if (certs_load_cert(path, &old, e) < 0)
    return rr_err_wrap(e, "\"%s\" is in the way of the CA's certificate (move it away)", path);
  int same = X509_cmp(old, ca) == 0;
  X509_free(old);
  ERR_clear_error();
  if (!same)
    return rr_err_set(e, RR_ALREADY_EXISTS,
                      "\"%s\" is another CA's certificate (not overwritten; use another --out)",
                      path);
  return 0;
}

static int issue_paths(const char *out_dir, const char *name, char *cert_path, char *key_path,
                       char *ca_path, size_t size, rr_err *e) {
  if ((size_t)snprintf(cert_path, size, "%s/%s.pem", out_dir, name) >= size ||
      (size_t)snprintf(key_path, size, "%s/%s.key", out_dir, name) >= size ||
      (size_t)snprintf(ca_path, size, "%s/ca.pem", out_dir) >= size)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "--out path too long");
  if (!strcmp(name, "ca"))
    return rr_err_set(e, RR_INVALID_ARGUMENT,
                      "certificate name \"ca\" is taken by the CA's own ca.pem; choose another");
  return 0;
}

int certs_issue_client(const char *state_dir, const char *name, const char *const *sans,
                       size_t nsans, int days, const char *out_dir, char *cert_path, char *key_path,
                       char *ca_path, size_t path_size, rr_err *e) {
  if (certs_name_check(name, e) < 0 ||
      issue_paths(out_dir, name, cert_path, key_path, ca_path, path_size, e) < 0)
    return -1;
  if (nsans == 0)
    return rr_err_set(e, RR_INVALID_ARGUMENT,
                      "at least one --san is needed (it is the client's identity)");
  certs_paths p;
  certs_paths_init(&p, state_dir);
  X509 *ca = NULL, *x = NULL;
  EVP_PKEY *ca_key = NULL, *k = NULL;
  if (certs_load_pair(p.ca, p.ca_key, &ca, &ca_key, e) < 0)
    return rr_err_wrap(e, "cannot load the CA (start rund once, or run rund certs init)");
  bool write_ca = false;
  certs_spec spec = {.kind = CERTS_CLIENT, .cn = name, .sans = sans, .nsans = nsans, .days = days};
  int rc = ca_copy_check(ca_path, ca, &write_ca, e);
  if (rc == 0)
    rc = certs_make(&spec, ca, ca_key, &x, &k, e);
  if (rc == 0)
    rc = certs_write_pair(cert_path, key_path, x, k, true, e);
  if (rc == 0 && write_ca && (rc = certs_write_cert(ca_path, ca, true, e)) < 0) {
    unlink(cert_path);
    unlink(key_path);
  }
  X509_free(x);
  EVP_PKEY_free(k);
  X509_free(ca);
  EVP_PKEY_free(ca_key);
  return rc;
}
