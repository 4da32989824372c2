/* gRPC message compression (grpc/doc/compression.md) with zlib: the
 * encodings rund and librunrpc speak ("gzip", "deflate" = zlib format),
 * parsing grpc-encoding / grpc-accept-encoding values, and whole-message
 * compress / bounded decompress. No I/O; nothing here logs. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef enum rpc_encoding {
  RPC_ENCODING_IDENTITY = 0,
  RPC_ENCODING_GZIP,
  RPC_ENCODING_DEFLATE,
} rpc_encoding;

/* What we accept, for grpc-accept-encoding. */
#define RPC_ACCEPT_ENCODING "identity,deflate,gzip"
/* Messages shorter than this are sent uncompressed (it does not pay). */
#define RPC_COMPRESS_MIN 1024u

/* A grpc-encoding value: its encoding, or -1 if we do not speak it. */
int rpc_encoding_parse(const char *v, size_t len);
const char *rpc_encoding_name(rpc_encoding enc);
/* Does a grpc-accept-encoding list ("identity, deflate, gzip") hold enc? */
bool rpc_accept_encoding_has(const char *list, size_t len, rpc_encoding enc);

/* Worst-case compressed size of n bytes. */
size_t rpc_compress_bound(size_t n);
/* Compress in into out (room for rpc_compress_bound(n) bytes). Returns the
 * compressed length, or 0 on failure (send uncompressed then). */
size_t rpc_compress(rpc_encoding enc, const uint8_t *in, size_t n, uint8_t *out, size_t outcap);
/* Decompress a whole message into *ret (malloc'd, *ret_len bytes; NULL for
 * an empty one), never holding more than max + 1 bytes of output:
 * RESOURCE_EXHAUSTED past max, INTERNAL for data that is not a complete
 * stream of enc (trailing bytes included). */
int rpc_decompress(rpc_encoding enc, const uint8_t *in, size_t n, size_t max, uint8_t **ret,
                   size_t *ret_len, rr_err *e);
