/* Certificate files: atomic 0600 PEM writes, loading, the embedded default
 * in STATE/tls and issuing client certificates from its CA. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth/certs.h"
#include "common/util.h"

#define CERTS_FILE_MAX (256u * 1024u)

static int write_atomic(const char *path, const char *data, size_t len, bool no_replace,
                        rr_err *e) {
  char tmp[PATH_MAX];
  if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "path too long: \"%s\"", path);
  unlink(tmp);
  _cleanup_close_ int fd =
      open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
  if (fd < 0)
    return rr_err_sys(e, RR_FAILED_PRECONDITION, errno, "cannot create \"%s\"", tmp);
  if (fchmod(fd, 0600) < 0 || rr_write_all(fd, data, len) < 0 || fsync(fd) < 0) {
    int err = errno;
    unlink(tmp);
    return rr_err_sys(e, RR_INTERNAL, err, "cannot write \"%s\"", tmp);
  }
  int rc =
      no_replace ? renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) : rename(tmp, path);
  if (rc < 0) {
    int err = errno;
    unlink(tmp);
    if (err == EEXIST)
      return rr_err_set(e, RR_ALREADY_EXISTS, "\"%s\" already exists (not overwritten)", path);
    return rr_err_sys(e, RR_INTERNAL, err, "cannot rename \"%s\" to \"%s\"", tmp, path);
  }
  return 0;
}

static int write_bio(const char *path, BIO *b, bool no_replace, rr_err *e) {
  char *data = NULL;
  long len = BIO_get_mem_data(b, &data);
  if (len <= 0)
    return rr_err_set(e, RR_INTERNAL, "cannot encode \"%s\" as PEM", path);
  return write_atomic(path, data, (size_t)len, no_replace, e);
}

int certs_write_pair(const char *cert_path, const char *key_path, X509 *cert, EVP_PKEY *key,
                     bool no_replace, rr_err *e) {
  if (no_replace && (access(cert_path, F_OK) == 0 || access(key_path, F_OK) == 0))
    return rr_err_set(e, RR_ALREADY_EXISTS, "\"%s\" or \"%s\" already exists (not overwritten)",
                      cert_path, key_path);
  BIO *kb = BIO_new(BIO_s_secmem()), *cb = BIO_new(BIO_s_mem());
  int rc = -1;
  if (!kb || !cb || !PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL) ||
      !PEM_write_bio_X509(cb, cert)) {
    ERR_clear_error();
    rr_err_set(e, RR_INTERNAL, "cannot encode the certificate or key as PEM");
  } else if (write_bio(key_path, kb, no_replace, e) == 0) {
    rc = write_bio(cert_path, cb, no_replace, e);
    if (rc < 0)
      unlink(key_path);
  }
  BIO_free(kb);
  BIO_free(cb);
  return rc;
}

/* The file's bytes in a memory BIO (opened CLOEXEC, size bounded). */
static int read_bio(const char *path, BIO **ret, rr_err *e) {
  _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return rr_err_sys(e, errno == ENOENT ? RR_NOT_FOUND : RR_FAILED_PRECONDITION, errno,
                      "cannot open \"%s\"", path);
  BIO *b = BIO_new(BIO_s_secmem());
  if (!b)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  char buf[4096];
  size_t total = 0;
  for (;;) {
    ssize_t n = rr_read(fd, buf, sizeof buf);
    if (n < 0 || (total += (size_t)(n > 0 ? n : 0)) > CERTS_FILE_MAX) {
      int err = errno;
      BIO_free(b);
      OPENSSL_cleanse(buf, sizeof buf);
      return n < 0 ? rr_err_sys(e, RR_INTERNAL, err, "cannot read \"%s\"", path)
                   : rr_err_set(e, RR_FAILED_PRECONDITION, "\"%s\" is larger than %u bytes", path,
                                CERTS_FILE_MAX);
    }
    if (n == 0 || BIO_write(b, buf, (int)n) != (int)n)
      break;
  }
  OPENSSL_cleanse(buf, sizeof buf);
  *ret = b;
  return 0;
}

int certs_load_pair(const char *cert_path, const char *key_path, X509 **ret_cert,
                    EVP_PKEY **ret_key, rr_err *e) {
  BIO *cb = NULL, *kb = NULL;
  X509 *x = NULL;
  EVP_PKEY *k = NULL;
  if (read_bio(cert_path, &cb, e) < 0 || read_bio(key_path, &kb, e) < 0)
    goto fail;
  if (!(x = PEM_read_bio_X509(cb, NULL, NULL, NULL))) {
    rr_err_set(e, RR_FAILED_PRECONDITION, "\"%s\" holds no PEM certificate", cert_path);
    goto fail;
  }
  if (!(k = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL))) {
    rr_err_set(e, RR_FAILED_PRECONDITION, "\"%s\" holds no (unencrypted) PEM private key",
               key_path);
    goto fail;
  }
  if (X509_check_private_key(x, k) != 1) {
    rr_err_set(e, RR_FAILED_PRECONDITION, "\"%s\" is not the key of \"%s\"", key_path, cert_path);
    goto fail;
  }
  BIO_free(cb);
  BIO_free(kb);
  ERR_clear_error();
  *ret_cert = x;
  *ret_key = k;
  return 0;
fail:
  ERR_clear_error();
  BIO_free(cb);
  BIO_free(kb);
  X509_free(x);
  EVP_PKEY_free(k);
  return -1;
}

int certs_load_cert(const char *path, X509 **ret, rr_err *e) {
  BIO *b = NULL;
  if (read_bio(path, &b, e) < 0)
    return -1;
  X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
  BIO_free(b);
  ERR_clear_error();
  if (!x)
    return rr_err_set(e, RR_FAILED_PRECONDITION, "\"%s\" holds no PEM certificate", path);
  *ret = x;
  return 0;
}

int certs_write_cert(const char *path, X509 *cert, bool no_replace, rr_err *e) {
  BIO *b = BIO_new(BIO_s_mem());
  int rc = -1;
  if (!b || !PEM_write_bio_X509(b, cert)) {
    ERR_clear_error();
    rr_err_set(e, RR_INTERNAL, "cannot encode the certificate as PEM");
  } else {
    rc = write_bio(path, b, no_replace, e);
  }
  BIO_free(b);
  return rc;
}

void certs_paths_init(certs_paths *p, const char *state_dir) {
  snprintf(p->dir, sizeof p->dir, "%s/tls", state_dir);
  snprintf(p->ca, sizeof p->ca, "%s/ca.pem", p->dir);
  snprintf(p->ca_key, sizeof p->ca_key, "%s/ca.key", p->dir);
  snprintf(p->server, sizeof p->server, "%s/server.pem", p->dir);
  snprintf(p->server_key, sizeof p->server_key, "%s/server.key", p->dir);
  snprintf(p->client, sizeof p->client, "%s/client.pem", p->dir);
  snprintf(p->client_key, sizeof p->client_key, "%s/client.key", p->dir);
}

/* STATE/tls exists, is ours and is 0700. */
static int tls_dir_prepare(const char *state_dir, const char *dir, rr_err *e) {
  if (rr_mkdirs(state_dir, e) < 0)
    return -1;
  if (mkdir(dir, 0700) < 0 && errno != EEXIST)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot create \"%s\"", dir);
  struct stat st;
  if (lstat(dir, &st) < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot stat \"%s\"", dir);
  if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid())
    return rr_err_set(e, RR_FAILED_PRECONDITION, "\"%s\" is not a directory owned by rund's user",
                      dir);
  if ((st.st_mode & 07777) != 0700 && chmod(dir, 0700) < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot chmod 700 \"%s\"", dir);
  return 0;
}

/* Still good for at least a day, issued by ca and signed by its key. */
static bool leaf_usable(X509 *x, X509 *ca) {
  time_t soon = time(NULL) + 86400, now = time(NULL);
  EVP_PKEY *pub = X509_get0_pubkey(ca);
  bool ok = X509_cmp_time(X509_get0_notAfter(x), &soon) > 0 &&
            X509_cmp_time(X509_get0_notBefore(x), &now) < 0 &&
            X509_check_issued(ca, x) == X509_V_OK && pub && X509_verify(x, pub) == 1;
  ERR_clear_error();
  return ok;
}

static void note_add(char *made, size_t size, const char *what) {
  if (!made)
    return;
  size_t n = strlen(made);
  snprintf(made + n, size - n, "%s%s", n ? " " : "", what);
}

/* True if x names every one of want. */
static bool leaf_has_sans(X509 *x, const certs_san_list *want) {
  certs_san_list have = {.n = 0};
  certs_san_list_of_cert(x, &have);
  for (size_t i = 0; i < want->n; i++)
    if (!certs_san_list_has(&have, want->items[i]))
      return false;
  return true;
}

/* The names of a new leaf: the old one's (when the CA issued it, so that
 * names added by `rund certs server --san` stay) and the wanted ones. */
static int leaf_sans(X509 *old, X509 *ca, const certs_san_list *want, certs_san_list *ret,
                     rr_err *e) {
  ret->n = 0;
  if (old && X509_check_issued(ca, old) == X509_V_OK)
    certs_san_list_of_cert(old, ret);
  ERR_clear_error();
  for (size_t i = 0; i < want->n; i++)
    if (certs_san_list_add(ret, want->items[i], e) < 0)
      return rr_err_wrap(e, "server certificate");
  return 0;
}

/* Load path/key if usable (and naming every wanted name), else make a new
 * leaf from the CA. want NULL: spec's names as they are. */
static int leaf_ensure(const char *path, const char *key_path, const certs_spec *spec,
                       const certs_san_list *want, X509 *ca, EVP_PKEY *ca_key, bool *made,
                       rr_err *e) {
  X509 *x = NULL;
  EVP_PKEY *k = NULL;
  *made = false;
  if (certs_load_pair(path, key_path, &x, &k, NULL) == 0 && leaf_usable(x, ca) &&
      (!want || leaf_has_sans(x, want))) {
    X509_free(x);
    EVP_PKEY_free(k);
    return 0;
  }
  EVP_PKEY_free(k);
  certs_spec s = *spec;
  certs_san_list names;
  const char *ptrs[CERTS_MAX_SANS];
  if (want) {
    int rc = leaf_sans(x, ca, want, &names, e);
    X509_free(x);
    if (rc < 0)
      return -1;
    for (size_t i = 0; i < names.n; i++)
      ptrs[i] = names.items[i];
    s.sans = ptrs;
    s.nsans = names.n;
  } else {
    X509_free(x);
  }
  if (certs_make(&s, ca, ca_key, &x, &k, e) < 0)
    return -1;
  int rc = certs_write_pair(path, key_path, x, k, false, e);
  X509_free(x);
  EVP_PKEY_free(k);
  *made = rc == 0;
  return rc;
}

static int ca_ensure(const certs_paths *p, X509 **ca, EVP_PKEY **ca_key, bool *made, rr_err *e) {
  *made = false;
  bool have_cert = access(p->ca, F_OK) == 0, have_key = access(p->ca_key, F_OK) == 0;
  if (have_cert || have_key) {
    if (certs_load_pair(p->ca, p->ca_key, ca, ca_key, e) < 0)
      return rr_err_wrap(e, "embedded CA (remove \"%s\" to make a new one)", p->dir);
    time_t now = time(NULL);
    if (X509_cmp_time(X509_get0_notAfter(*ca), &now) <= 0) {
      X509_free(*ca);
      EVP_PKEY_free(*ca_key);
      return rr_err_set(e, RR_FAILED_PRECONDITION,
                        "embedded CA \"%s\" has expired (remove \"%s\" to make a new one)", p->ca,
                        p->dir);
    }
    return 0;
  }
  char host[HOST_NAME_MAX + 1] = "localhost", cn[65];
  gethostname(host, sizeof host);
  host[HOST_NAME_MAX] = '\0';
  snprintf(cn, sizeof cn, "runrpc CA %.50s", host);
  certs_spec spec = {.kind = CERTS_CA, .cn = cn, .days = CERTS_CA_DAYS};
  if (certs_make(&spec, NULL, NULL, ca, ca_key, e) < 0)
    return -1;
  if (certs_write_pair(p->ca, p->ca_key, *ca, *ca_key, false, e) < 0) {
    X509_free(*ca);
    EVP_PKEY_free(*ca_key);
    return -1;
  }
  *made = true;
  return 0;
}

int certs_ensure_default(const char *state_dir, const certs_san_list *server_sans, certs_paths *p,
                         char *made, size_t made_size, rr_err *e) {
  certs_paths_init(p, state_dir);
  if (made && made_size)
    made[0] = '\0';
  if (tls_dir_prepare(state_dir, p->dir, e) < 0)
    return -1;
  X509 *ca = NULL;
  EVP_PKEY *ca_key = NULL;
  bool did = false;
  if (ca_ensure(p, &ca, &ca_key, &did, e) < 0)
    return -1;
  if (did)
    note_add(made, made_size, "ca");
  static const char *const loopback_sans[] = {"dns:localhost", "ip:127.0.0.1", "ip:::1"};
  static const char *const client_sans[] = {CERTS_ADMIN_SAN};
  certs_spec server = {.kind = CERTS_SERVER,
                       .cn = "localhost",
                       .sans = loopback_sans,
                       .nsans = RR_ARRAY_SIZE(loopback_sans),
                       .days = CERTS_LEAF_DAYS};
  certs_spec client = {.kind = CERTS_CLIENT,
                       .cn = "admin",
                       .sans = client_sans,
                       .nsans = RR_ARRAY_SIZE(client_sans),
                       .days = CERTS_LEAF_DAYS};
  int rc = leaf_ensure(p->server, p->server_key, &server, server_sans, ca, ca_key, &did, e);
  if (rc == 0 && did)
    note_add(made, made_size, "server");
  if (rc == 0 &&
      (rc = leaf_ensure(p->client, p->client_key, &client, NULL, ca, ca_key, &did, e)) == 0 && did)
    note_add(made, made_size, "client");
  X509_free(ca);
  EVP_PKEY_free(ca_key);
  return rc;
}
