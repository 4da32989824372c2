/* Serving on listeners and PID 1's duties: flags and environment, the
 * listeners' admission (unix: root or our uid; TCP: TLS client
 * certificate or bearer token, never plaintext without one), signals
 * forwarded to our children. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

struct shim_ctx;

#define SHIM_MAX_LISTEN 16

typedef struct shim_init_opts {
  bool help, init;
  const char *listen[SHIM_MAX_LISTEN];
  size_t nlisten;
  const char *tls_cert, *tls_key, *client_ca, *token_file;
  char *env_listen; /* RUNRPC_LISTEN's copy, split in place */
} shim_init_opts;

/* Leading --flags (and then RUNRPC_* variables); returns the index of CMD
 * (argc when none), or -1 after printing the error. */
int shim_init_opts_parse(int argc, char **argv, shim_init_opts *o);
void shim_init_opts_free(shim_init_opts *o);
/* Listen, set admission; as init also forward signals and reap orphans. */
int shim_init_setup(struct shim_ctx *ctx, const shim_init_opts *o, rr_err *e);
/* Signals: init forwards them to its children; a server that is not init
 * stops on SIGTERM, SIGINT and SIGHUP (killing what it started). */
int shim_signals_setup(struct shim_ctx *ctx, rr_err *e);
void shim_init_free(struct shim_ctx *ctx);
