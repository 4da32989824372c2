/* The TLS client transport is a shared module, $libdir/runrpc/librunrpc-tls.so,
 * that the client loads on the first TLS address: programs that only use
 * unix: and h2c: addresses never load OpenSSL, whose loading alone costs a
 * cold runctl more than the rest of its start (docs/dev/SECURITY.md). The
 * module exports one table; module and client come from the same build. */
#pragma once
#include <stdint.h>

#include "common/err.h"
#include "rpc/client/transport.h"

#define RPC_TLS_MODULE_FILE "librunrpc-tls.so"
#define RPC_TLS_MODULE_SYMBOL "runrpc_tls_module_v1"
/* Bump when this table, rpc_client_transport, rpc_tls_client_config or
 * rr_err change shape. */
#define RPC_TLS_MODULE_ABI 1u
/* Environment variable naming the module file (tests, unusual installs);
 * ignored in set-uid programs. */
#define RPC_TLS_MODULE_ENV "RUNRPC_TLS_MODULE"

typedef struct rpc_tls_module {
  uint32_t abi;            /* RPC_TLS_MODULE_ABI */
  uint32_t transport_size; /* sizeof(rpc_client_transport) */
  uint32_t config_size;    /* sizeof(rpc_tls_client_config) */
  uint32_t err_size;       /* sizeof(rr_err) */
  const char *version;     /* project version of the build */
  /* rpc_client_transport_tls_check and _tls_start, see transport.h */
  int (*check)(const rpc_tls_client_config *tls, rr_err *e);
  int (*start)(int fd, const char *addr, const char *host, const rpc_tls_client_config *tls,
               uint64_t deadline_ms, rpc_client_transport **ret, rr_err *e);
} rpc_tls_module;
