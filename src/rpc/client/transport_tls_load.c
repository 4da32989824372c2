/* TLS transport entry points of the client: the TLS module (tls_module.h) is
 * loaded on the first TLS address and kept for the life of the process.
 * Where it is looked for, in order:
 *   1. $RUNRPC_TLS_MODULE (that file only; ignored in set-uid programs);
 *   2. beside the object holding this code: DIR/runrpc/ when that is a
 *      shared library (librunrpc.so in $libdir), else the executable's
 *      DIR/RPC_TLS_MODULE_FROM_BIN (a program in $bindir, e.g. runctl);
 *   3. RPC_TLS_MODULE_PATH, where meson installs it.
 * The first candidate that exists is the one: a broken module is an error,
 * never a reason to try an older one elsewhere. */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rpc/client/tls_module.h"
#include "rpc/client/transport.h"

#ifndef RPC_TLS_MODULE_PATH
#error "RPC_TLS_MODULE_PATH (absolute path of the installed module) must be defined"
#endif
#ifndef RPC_TLS_MODULE_FROM_BIN
#error "RPC_TLS_MODULE_FROM_BIN (module directory relative to $bindir) must be defined"
#endif

#define TLS_MODULE_CANDIDATES 3

static pthread_mutex_t tls_module_lock = PTHREAD_MUTEX_INITIALIZER;
static const rpc_tls_module *tls_module;

/* Directory part of path into out ("" when it has none). */
static void tls_module_dirname(const char *path, char *out, size_t len) {
  const char *slash = strrchr(path, '/');
  size_t n = slash ? (size_t)(slash - path) : 0;
  if (n >= len)
    n = 0;
  memcpy(out, path, n);
  out[n] = '\0';
}

/* Candidate paths in search order; returns how many. */
static size_t tls_module_candidates(char out[TLS_MODULE_CANDIDATES][PATH_MAX]) {
  size_t n = 0;
  const char *env = secure_getenv(RPC_TLS_MODULE_ENV);
  if (env && *env) {
    snprintf(out[n++], PATH_MAX, "%s", env);
    return n;
  }
  Dl_info info;
  struct link_map *map = NULL;
  char dir[PATH_MAX] = "";
  if (dladdr1((void *)tls_module_candidates, &info, (void **)&map, RTLD_DL_LINKMAP) && map &&
      map->l_name && map->l_name[0] == '/') {
    tls_module_dirname(map->l_name, dir, sizeof dir); /* a shared librunrpc */
    if (dir[0] &&
        (size_t)snprintf(out[n], PATH_MAX, "%s/runrpc/%s", dir, RPC_TLS_MODULE_FILE) < PATH_MAX)
      n++;
  } else {
    char exe[PATH_MAX];
    ssize_t len = RPC_TLS_MODULE_FROM_BIN[0] ? readlink("/proc/self/exe", exe, sizeof exe - 1) : -1;
    if (len > 0) {
      exe[len] = '\0';
      tls_module_dirname(exe, dir, sizeof dir);
      if (dir[0] && (size_t)snprintf(out[n], PATH_MAX, "%s/%s/%s", dir, RPC_TLS_MODULE_FROM_BIN,
                                     RPC_TLS_MODULE_FILE) < PATH_MAX)
        n++;
    }
  }
  snprintf(out[n++], PATH_MAX, "%s", RPC_TLS_MODULE_PATH);
  return n;
}

static int tls_module_open(const char *path, const rpc_tls_module **ret, rr_err *e) {
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char *why = dlerror();
    return rr_err_set(e, RR_FAILED_PRECONDITION, "cannot load the TLS module \"%s\": %s", path,
                      why ? why : "unknown dlopen error");
  }
  const rpc_tls_module *m = dlsym(h, RPC_TLS_MODULE_SYMBOL);
  if (!m) {
    dlclose(h);
    return rr_err_set(e, RR_FAILED_PRECONDITION,
                      "\"%s\" is not a runrpc TLS module (no symbol " RPC_TLS_MODULE_SYMBOL ")",
                      path);
  }
  if (m->abi != RPC_TLS_MODULE_ABI || m->transport_size != sizeof(rpc_client_transport) ||
      m->config_size != sizeof(rpc_tls_client_config) || m->err_size != sizeof(rr_err) ||
      !m->version || strcmp(m->version, RUNRPC_VERSION) != 0 || !m->check || !m->start) {
    rr_err_set(e, RR_FAILED_PRECONDITION,
               "TLS module \"%s\" does not match this program (module: runrpc %.32s, "
               "interface %u; program: runrpc %s, interface %u): install both from one build",
               path, m->version ? m->version : "?", m->abi, RUNRPC_VERSION, RPC_TLS_MODULE_ABI);
    dlclose(h);
    return -1;
  }
  *ret = m; /* never closed: transports point into it */
  return 0;
}

static int tls_module_get(const rpc_tls_module **ret, rr_err *e) {
  pthread_mutex_lock(&tls_module_lock);
  if (tls_module) {
    *ret = tls_module;
    pthread_mutex_unlock(&tls_module_lock);
    return 0;
  }
  char paths[TLS_MODULE_CANDIDATES][PATH_MAX];
  size_t n = tls_module_candidates(paths);
  int r = -1;
  size_t i;
  for (i = 0; i < n; i++)
    if (access(paths[i], F_OK) == 0)
      break;
  if (i < n) {
    r = tls_module_open(paths[i], &tls_module, e);
  } else {
    char tried[3 * PATH_MAX / 4];
    size_t off = 0;
    tried[0] = '\0';
    for (size_t k = 0; k < n && off < sizeof tried; k++)
      off += (size_t)snprintf(tried + off, sizeof tried - off, "%s\"%s\"", k ? ", " : "", paths[k]);
    rr_err_set(e, RR_FAILED_PRECONDITION,
               "TLS support is not installed: no %s at %s (set " RPC_TLS_MODULE_ENV " to its path)",
               RPC_TLS_MODULE_FILE, tried);
  }
  if (r == 0)
    *ret = tls_module;
  pthread_mutex_unlock(&tls_module_lock);
  return r;
}

int rpc_client_transport_tls_check(const rpc_tls_client_config *tls, rr_err *e) {
  const rpc_tls_module *m;
  if (tls_module_get(&m, e) < 0)
    return -1;
  return m->check(tls, e);
}

int rpc_client_transport_tls_start(int fd, const char *addr, const char *host,
                                   const rpc_tls_client_config *tls, uint64_t deadline_ms,
                                   rpc_client_transport **ret, rr_err *e) {
  const rpc_tls_module *m;
  if (tls_module_get(&m, e) < 0) {
    close(fd);
    return -1;
  }
  return m->start(fd, addr, host, tls, deadline_ms, ret, e);
}
