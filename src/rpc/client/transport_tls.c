/* TLS client transport, built as the module librunrpc-tls.so (tls_module.h):
 * TLS 1.3 with the server verified (CA + name), ALPN h2 required, client
 * certificate presented. Contexts and session tickets
 * are kept per process so a reconnect resumes instead of a full handshake,
 * and tickets optionally go to a private directory so the next process
 * resumes too (one file per address, name and files). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "rpc/client/tls_module.h"
#include "rpc/client/transport.h"
#include "rpc/tls.h"

#define TLS_CTX_KEY 1024
#define TLS_CACHE_KEY 1600
#define TLS_SESSION_SLOTS 4
#define TLS_DISK_MAX 65536 /* a session with the server's chain is a few KiB */
#define TLS_DISK_NAME (2 * SHA256_DIGEST_LENGTH + sizeof ".session")

/* One cached context (the files of the last connect) and a few sessions. */
static struct {
  pthread_mutex_t lock;
  char ctx_key[TLS_CTX_KEY];
  SSL_CTX *ctx;
  struct {
    char key[TLS_CACHE_KEY];
    SSL_SESSION *sess;
  } slots[TLS_SESSION_SLOTS];
  unsigned next_slot;
} tls_cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

typedef struct tls_transport {
  rpc_client_transport base;
  char session_key[TLS_CACHE_KEY];
  bool established;
  char *disk_dir;                /* session cache directory, or NULL */
  char disk_name[TLS_DISK_NAME]; /* HEX.session in disk_dir */
  bool disk_saved;               /* one ticket per connection is enough */
} tls_transport;

static void tls_set_error(rpc_client_transport *t, const char *why) {
  snprintf(t->error, sizeof t->error, "TLS: %.200s", why[0] ? why : "protocol error");
}

static ssize_t tls_read(rpc_client_transport *t, void *buf, size_t len) {
  SSL *ssl = t->ssl;
  size_t got = 0;
  if (len > INT_MAX)
    len = INT_MAX;
  while (got < len) { /* fill buf, so a short read means "socket drained" */
    ERR_clear_error();
    int n = SSL_read(ssl, (char *)buf + got, (int)(len - got));
    if (n > 0) {
      got += (size_t)n;
      continue;
    }
    int err = SSL_get_error(ssl, n);
    t->want_write = err == SSL_ERROR_WANT_WRITE;
    if (got > 0)
      break; /* an error repeats on the next call */
    char why[256];
    switch (err) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
      errno = EAGAIN;
      return -1;
    case SSL_ERROR_ZERO_RETURN:
      return 0;
    case SSL_ERROR_SYSCALL:
      if (errno == 0 || errno == EAGAIN)
        errno = ECONNRESET;
      return -1;
    default:
      rpc_tls_error_string(why, sizeof why);
      tls_set_error(t, why);
      errno = EPROTO;
      return -1;
    }
  }
  ERR_clear_error();
  return (ssize_t)got;
}

/* The server refused us after our side of the handshake was done (TLS 1.3
 * verifies client certificates then): its alert is likely waiting to be read
 * although the connection was reset. Put it in t->error. */
static void tls_read_alert(rpc_client_transport *t) {
  char buf[512];
  for (int i = 0; i < 8; i++) {
    ERR_clear_error();
    int n = SSL_read(t->ssl, buf, sizeof buf);
    if (n > 0)
      continue;
    if (SSL_get_error(t->ssl, n) == SSL_ERROR_SSL) {
      char why[256];
      rpc_tls_error_string(why, sizeof why);
      if (why[0])
        snprintf(t->error, sizeof t->error, "TLS: server refused the connection: %.200s", why);
    }
    break;
  }
  ERR_clear_error();
}

static ssize_t tls_write(rpc_client_transport *t, const void *buf, size_t len) {
  ERR_clear_error();
  int n = SSL_write(t->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
  if (n > 0)
    return n;
  char why[256];
  switch (SSL_get_error(t->ssl, n)) {
  case SSL_ERROR_WANT_READ:
  case SSL_ERROR_WANT_WRITE:
    errno = EAGAIN;
    return -1;
  case SSL_ERROR_SYSCALL: {
    int saved = errno == 0 || errno == EAGAIN ? EPIPE : errno;
    tls_read_alert(t);
    errno = saved;
    return -1;
  }
  default:
    rpc_tls_error_string(why, sizeof why);
    tls_set_error(t, why);
    errno = EPROTO;
    return -1;
  }
}

static void tls_close(rpc_client_transport *t) {
  tls_transport *tt = (tls_transport *)t;
  if (t->ssl) {
    if (tt->established) /* close_notify, best effort */
      SSL_shutdown(t->ssl);
    SSL_free(t->ssl);
    ERR_clear_error();
  }
  if (t->fd >= 0)
    close(t->fd);
  free(tt->disk_dir);
  free(tt);
}

static bool tls_pending(rpc_client_transport *t) { return SSL_pending(t->ssl) > 0; }

static const rpc_client_transport_ops tls_ops = {
    .read = tls_read,
    .write = tls_write,
    .close = tls_close,
    .pending = tls_pending,
};

static bool host_is_ip(const char *host) {
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* The cache directory as an fd, made (0700, parents too) if create; -1
 * when missing, a symlink, not ours or open to others: then no cache. */
static int tls_disk_dir_open(const char *dir, bool create) {
  if (create) {
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s", dir) >= sizeof path)
      return -1;
    for (char *p = path + 1; *p; p++) {
      if (*p != '/')
        continue;
      *p = '\0';
      (void)mkdir(path, 0700); /* existing ones are fine; the last one is checked */
      *p = '/';
    }
    (void)mkdir(path, 0700);
  }
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return -1;
  struct stat st;
  if (fstat(fd, &st) < 0 || st.st_uid != geteuid() || (st.st_mode & 077)) {
    close(fd);
    return -1;
  }
  return fd;
}

/* File name of a session: SHA-256 of what must match to reuse it. */
static void tls_disk_name(const char *addr, const char *name, const rpc_tls_client_config *cfg,
                          char out[TLS_DISK_NAME]) {
  char key[4 * PATH_MAX];
  unsigned char md[SHA256_DIGEST_LENGTH];
  snprintf(key, sizeof key, "runrpc-tls-session-v1\n%s\n%s\n%s\n%s", addr, name,
           cfg->cert_file ? cfg->cert_file : "", cfg->ca_file);
  SHA256((const unsigned char *)key, strlen(key), md);
  for (size_t i = 0; i < sizeof md; i++)
    snprintf(out + 2 * i, 3, "%02x", md[i]);
  snprintf(out + 2 * sizeof md, sizeof ".session", ".session");
}

static bool timespec_after(const struct timespec *a, const struct timespec *b) {
  return a->tv_sec > b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec > b->tv_nsec);
}

/* A session saved before file was last changed (new CA, new certificate)
 * is stale. A missing file: stale too. */
static bool tls_disk_newer_than(const struct stat *cached, const char *file) {
  struct stat st;
  if (!file)
    return true;
  if (stat(file, &st) < 0)
    return false;
  return !timespec_after(&st.st_mtim, &cached->st_mtim) &&
         !timespec_after(&st.st_ctim, &cached->st_mtim);
}

/* A saved session may be offered only for the name it was verified for,
 * unexpired and resumable. */
static bool tls_session_usable(SSL_SESSION *sess, const char *name) {
  if (!SSL_SESSION_is_resumable(sess) || SSL_SESSION_get_protocol_version(sess) != TLS1_3_VERSION)
    return false;
  long now = (long)time(NULL), at = SSL_SESSION_get_time(sess);
  long life = SSL_SESSION_get_timeout(sess);
  if (at <= 0 || life <= 0 || at > now + 60 || now - at >= life)
    return false;
  X509 *peer = SSL_SESSION_get0_peer(sess);
  if (!peer)
    return false;
  if (host_is_ip(name))
    return X509_check_ip_asc(peer, name, 0) == 1;
  const char *sni = SSL_SESSION_get0_hostname(sess);
  if (sni && strcmp(sni, name) != 0)
    return false;
  return X509_check_host(peer, name, 0, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL) == 1;
}

/* The saved session for this connection, or NULL (never an error: a cache
 * problem only costs a full handshake). */
static SSL_SESSION *tls_disk_load(const tls_transport *tt, const rpc_tls_client_config *cfg,
                                  const char *name) {
  int dfd = tls_disk_dir_open(tt->disk_dir, false);
  if (dfd < 0)
    return NULL;
  int fd = openat(dfd, tt->disk_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  close(dfd);
  if (fd < 0)
    return NULL;
  struct stat st;
  unsigned char *buf = NULL;
  SSL_SESSION *sess = NULL;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077) ||
      st.st_size <= 0 || st.st_size > TLS_DISK_MAX || !tls_disk_newer_than(&st, cfg->ca_file) ||
      !tls_disk_newer_than(&st, cfg->cert_file) || !tls_disk_newer_than(&st, cfg->key_file))
    goto out;
  size_t len = (size_t)st.st_size, got = 0;
  buf = malloc(len);
  if (!buf)
    goto out;
  while (got < len) {
    ssize_t n = read(fd, buf + got, len - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      goto out;
    got += (size_t)n;
  }
  const unsigned char *p = buf;
  sess = d2i_SSL_SESSION(NULL, &p, (long)len);
  if (sess && (p != buf + len || !tls_session_usable(sess, name))) {
    SSL_SESSION_free(sess);
    sess = NULL;
  }
out:
  if (buf) {
    OPENSSL_cleanse(buf, (size_t)st.st_size);
    free(buf);
  }
  close(fd);
  ERR_clear_error();
  return sess;
}

/* Save sess atomically (temporary file, then rename), 0600. Best effort. */
static void tls_disk_save(tls_transport *tt, SSL_SESSION *sess) {
  static atomic_uint counter;
  int len = i2d_SSL_SESSION(sess, NULL);
  if (len <= 0 || len > TLS_DISK_MAX)
    return;
  unsigned char *buf = malloc((size_t)len);
  if (!buf)
    return;
  unsigned char *p = buf;
  if (i2d_SSL_SESSION(sess, &p) != len)
    goto out;
  int dfd = tls_disk_dir_open(tt->disk_dir, true);
  if (dfd < 0)
    goto out;
  char tmp[TLS_DISK_NAME + 64];
  snprintf(tmp, sizeof tmp, ".%s.%ld.%u.tmp", tt->disk_name, (long)getpid(),
           atomic_fetch_add(&counter, 1));
  int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd >= 0) {
    bool ok = true;
    for (size_t off = 0; ok && off < (size_t)len;) {
      ssize_t n = write(fd, buf + off, (size_t)len - off);
      if (n < 0 && errno == EINTR)
        continue;
      ok = n > 0;
      off += ok ? (size_t)n : 0;
    }
    ok = close(fd) == 0 && ok;
    if (!ok || renameat(dfd, tmp, dfd, tt->disk_name) < 0)
      unlinkat(dfd, tmp, 0);
    else
      tt->disk_saved = true;
  }
  close(dfd);
out:
  OPENSSL_cleanse(buf, (size_t)len);
  free(buf);
}

/* A ticket arrived (after the handshake, during a read): keep it for the
 * next connection to the same server with the same files. */
static int tls_on_new_session(SSL *ssl, SSL_SESSION *sess) {
  tls_transport *tt = SSL_get_app_data(ssl);
  if (!tt || !SSL_SESSION_is_resumable(sess))
    return 0;
  if (tt->disk_dir && !tt->disk_saved)
    tls_disk_save(tt, sess);
  pthread_mutex_lock(&tls_cache.lock);
  unsigned slot = tls_cache.next_slot;
  for (unsigned i = 0; i < TLS_SESSION_SLOTS; i++)
    if (strcmp(tls_cache.slots[i].key, tt->session_key) == 0)
      slot = i;
  if (slot == tls_cache.next_slot)
    tls_cache.next_slot = (tls_cache.next_slot + 1) % TLS_SESSION_SLOTS;
  SSL_SESSION_free(tls_cache.slots[slot].sess);
  tls_cache.slots[slot].sess = sess;
  snprintf(tls_cache.slots[slot].key, TLS_CACHE_KEY, "%s", tt->session_key);
  pthread_mutex_unlock(&tls_cache.lock);
  return 1; /* we keep the reference */
}

static SSL_SESSION *tls_session_find(const char *key) {
  SSL_SESSION *found = NULL;
  pthread_mutex_lock(&tls_cache.lock);
  for (unsigned i = 0; i < TLS_SESSION_SLOTS; i++) {
    if (tls_cache.slots[i].sess && strcmp(tls_cache.slots[i].key, key) == 0) {
      found = tls_cache.slots[i].sess;
      tls_cache.slots[i].sess = NULL; /* TLS 1.3 tickets are single use */
      tls_cache.slots[i].key[0] = '\0';
    }
  }
  pthread_mutex_unlock(&tls_cache.lock);
  return found;
}

/* The context for these files: the cached one or a new one (reference taken). */
static int tls_ctx_get(const rpc_tls_client_config *cfg, const char *key, SSL_CTX **ret,
                       rr_err *e) {
  pthread_mutex_lock(&tls_cache.lock);
  if (tls_cache.ctx && strcmp(tls_cache.ctx_key, key) == 0) {
    SSL_CTX_up_ref(tls_cache.ctx);
    *ret = tls_cache.ctx;
    pthread_mutex_unlock(&tls_cache.lock);
    return 0;
  }
  pthread_mutex_unlock(&tls_cache.lock);
  rpc_tls_client_files f = {cfg->ca_file, cfg->cert_file, cfg->key_file};
  SSL_CTX *ctx;
  if (rpc_tls_client_ctx_new(&ctx, &f, e) < 0)
    return -1;
  SSL_CTX_sess_set_new_cb(ctx, tls_on_new_session);
  pthread_mutex_lock(&tls_cache.lock);
  SSL_CTX_free(tls_cache.ctx);
  for (unsigned i = 0; i < TLS_SESSION_SLOTS; i++) { /* sessions of other files go too */
    SSL_SESSION_free(tls_cache.slots[i].sess);
    tls_cache.slots[i].sess = NULL;
    tls_cache.slots[i].key[0] = '\0';
  }
  SSL_CTX_up_ref(ctx);
  tls_cache.ctx = ctx;
  snprintf(tls_cache.ctx_key, sizeof tls_cache.ctx_key, "%s", key);
  pthread_mutex_unlock(&tls_cache.lock);
  *ret = ctx;
  return 0;
}

/* Paths cut at 300 bytes: a collision would only reuse a context of the
 * same three (long) paths. */
static void tls_ctx_key(const rpc_tls_client_config *tls, char key[TLS_CTX_KEY]) {
  snprintf(key, TLS_CTX_KEY, "%.300s\n%.300s\n%.300s", tls->ca_file,
           tls->cert_file ? tls->cert_file : "", tls->key_file ? tls->key_file : "");
}

static int tls_set_name(SSL *ssl, const char *name, rr_err *e) {
  X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
  X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  if (host_is_ip(name)) {
    if (X509_VERIFY_PARAM_set1_ip_asc(vp, name) != 1)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "invalid server IP \"%s\"", name);
    return 0;
  }
  if (SSL_set1_host(ssl, name) != 1 || SSL_set_tlsext_host_name(ssl, name) != 1)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "invalid server name \"%s\"", name);
  return 0;
}

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int tls_handshake(tls_transport *tt, uint64_t deadline, rr_err *e) {
  rpc_client_transport *t = &tt->base;
  SSL *ssl = t->ssl;
  uint64_t t0 = now_us();
  for (;;) {
    ERR_clear_error();
    int r = SSL_connect(ssl);
    if (r == 1)
      break;
    int err = SSL_get_error(ssl, r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      int w = rpc_client_transport_wait_fd(t->fd, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT,
                                           deadline);
      if (w == ETIMEDOUT)
        return rr_err_set(e, RR_UNAVAILABLE, "TLS handshake with %s failed: timed out", t->address);
      if (w)
        return rr_err_sys(e, RR_UNAVAILABLE, w, "TLS handshake with %s failed", t->address);
      continue;
    }
    char why[300];
    if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
      snprintf(why, sizeof why, "%s", errno ? strerror(errno) : "connection closed by the server");
    else
      rpc_tls_client_failure(ssl, why, sizeof why);
    return rr_err_set(e, RR_UNAVAILABLE, "TLS handshake with %s failed: %s", t->address, why);
  }
  t->handshake_us = now_us() - t0;
  t->resumed = SSL_session_reused(ssl);
  tt->established = true;
  if (!rpc_tls_alpn_is_h2(ssl))
    return rr_err_set(e, RR_UNAVAILABLE,
                      "TLS handshake with %s failed: server did not select ALPN \"h2\"",
                      t->address);
  return 0;
}

static int tls_module_check(const rpc_tls_client_config *tls, rr_err *e) {
  char ctx_key[TLS_CTX_KEY];
  SSL_CTX *ctx;
  tls_ctx_key(tls, ctx_key);
  if (tls_ctx_get(tls, ctx_key, &ctx, e) < 0)
    return -1;
  SSL_CTX_free(ctx); /* stays cached for the connection that follows */
  return 0;
}

static int tls_module_start(int fd, const char *addr, const char *host,
                            const rpc_tls_client_config *tls, uint64_t deadline_ms,
                            rpc_client_transport **ret, rr_err *e) {
  tls_transport *tt = calloc(1, sizeof *tt);
  if (!tt) {
    close(fd);
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  }
  rpc_client_transport *t = &tt->base;
  t->ops = &tls_ops;
  t->fd = fd;
  t->tls = true;
  snprintf(t->address, sizeof t->address, "%s", addr);
  snprintf(t->authority, sizeof t->authority, "%s", addr);
  const char *name = tls->server_name && *tls->server_name ? tls->server_name : host;
  char ctx_key[TLS_CTX_KEY];
  tls_ctx_key(tls, ctx_key);
  snprintf(tt->session_key, sizeof tt->session_key, "%.1000s\n%.256s\n%.256s", ctx_key, name, addr);
  SSL_CTX *ctx;
  if (tls_ctx_get(tls, ctx_key, &ctx, e) < 0) {
    tls_close(t);
    return -1;
  }
  SSL *ssl = SSL_new(ctx);
  SSL_CTX_free(ctx); /* the SSL holds its own reference */
  if (!ssl) {
    tls_close(t);
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "cannot create a TLS connection");
  }
  t->ssl = ssl;
  SSL_set_app_data(ssl, tt);
  if (SSL_set_fd(ssl, fd) != 1 || tls_set_name(ssl, name, e) < 0) {
    if (!e || e->code == RR_OK)
      rr_err_set(e, RR_INTERNAL, "cannot set up TLS for %s", addr);
    tls_close(t);
    return -1;
  }
  if (tls->session_cache_dir && *tls->session_cache_dir) {
    tt->disk_dir = strdup(tls->session_cache_dir); /* NULL: no disk cache, no harm */
    tls_disk_name(addr, name, tls, tt->disk_name);
  }
  SSL_SESSION *sess = tls_session_find(tt->session_key);
  if (!sess && tt->disk_dir)
    sess = tls_disk_load(tt, tls, name);
  if (sess) {
    SSL_set_session(ssl, sess);
    SSL_SESSION_free(sess);
  }
  if (tls_handshake(tt, deadline_ms, e) < 0) {
    tls_close(t);
    return -1;
  }
  *ret = t;
  return 0;
}

/* The one symbol the module exports (see tls_module.h). */
RR_EXPORT const rpc_tls_module runrpc_tls_module_v1 = {
    .abi = RPC_TLS_MODULE_ABI,
    .transport_size = sizeof(rpc_client_transport),
    .config_size = sizeof(rpc_tls_client_config),
    .err_size = sizeof(rr_err),
    .version = RUNRPC_VERSION,
    .check = tls_module_check,
    .start = tls_module_start,
};
