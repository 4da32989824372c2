/* gRPC-over-HTTP/2 wire helpers shared by the server and the client:
 * message framing, grpc-timeout, grpc-message percent-encoding, base64 for
 * -bin metadata, HTTP status / RST_STREAM code mapping. No I/O here. */
#pragma once
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define RPC_DEFAULT_MAX_MESSAGE (4u * 1024u * 1024u)
#define RPC_PREFIX_LEN 5

/* Write the 5-byte length prefix (flag byte + big-endian length). */
void rpc_wire_put_prefix(uint8_t out[RPC_PREFIX_LEN], bool compressed, uint32_t len);
/* Write v as a protobuf varint (up to 10 bytes); returns its length. */
size_t rpc_wire_put_varint(uint8_t *out, uint64_t v);

/* Incremental deframer: bytes in (any split), whole messages out. */
typedef struct rpc_deframer {
  uint8_t hdr[RPC_PREFIX_LEN];
  size_t hdr_len;  /* bytes of hdr filled */
  uint8_t *msg;    /* current message body */
  size_t msg_len;  /* announced length */
  size_t msg_have; /* bytes of body received */
  size_t max;      /* limit on msg_len, and on a message once decompressed */
  int encoding;    /* rpc_encoding of compressed messages (0: identity, none allowed) */
  bool compressed; /* the current message's flag */
  size_t wire_len; /* length on the wire of the last message returned */
} rpc_deframer;

void rpc_deframer_init(rpc_deframer *d, size_t max_message);
void rpc_deframer_free(rpc_deframer *d);
/* Consume up to len bytes of data. When a whole message is ready, returns 1
 * with *consumed set, and *ret_msg and *ret_len (caller frees *ret_msg; may be
 * NULL for an empty message), decompressed when its flag was set. Returns 0
 * when all input was consumed with no message complete, -1 with e set on a
 * bad prefix (RR_INTERNAL for a set compressed flag without an encoding,
 * RR_RESOURCE_EXHAUSTED over max, before or after decompression) or data
 * that does not decompress (RR_INTERNAL). Call in a loop. */
int rpc_deframer_feed(rpc_deframer *d, const uint8_t *data, size_t len, size_t *consumed,
                      uint8_t **ret_msg, size_t *ret_len, rr_err *e);
/* True if a message is partially received (for "stream ended mid-message"). */
bool rpc_deframer_partial(const rpc_deframer *d);

/* Parse a grpc-timeout value ("1S", "2500m", "0n"; <= 8 digits + H/M/S/m/u/n)
 * into milliseconds (rounded up, saturating). Returns 0 or -1 if malformed. */
int rpc_timeout_parse(const char *s, size_t len, uint64_t *ret_ms);
/* Format ms as a grpc-timeout value into out (>= 16 bytes). */
void rpc_timeout_format(uint64_t ms, char *out, size_t outsz);

/* Percent-encode a grpc-message (bytes outside 0x20..0x7E, and '%').
 * Writes at most outsz-1 bytes, never splitting an escape; NUL-terminates.
 * Returns the length written. */
size_t rpc_percent_encode(const char *in, size_t inlen, char *out, size_t outsz);
/* Lenient decode (bad escapes kept verbatim). Returns length; NUL-terminates. */
size_t rpc_percent_decode(const char *in, size_t inlen, char *out, size_t outsz);

/* Base64 (standard alphabet) for -bin metadata: encode without padding;
 * decode accepts padding or none. Return length, or -1 if out too small or
 * input invalid. */
long rpc_base64_encode(const uint8_t *in, size_t len, char *out, size_t outsz);
long rpc_base64_decode(const char *in, size_t len, uint8_t *out, size_t outsz);

/* gRPC code for an HTTP :status when grpc-status is missing. */
int rpc_status_from_http(int http_status);
/* gRPC code for an HTTP/2 RST_STREAM error code. */
int rpc_status_from_h2_error(uint32_t h2_error);
/* Metadata key syntax: [0-9a-z_.-]+ ; value: printable ASCII (non -bin). */
bool rpc_metadata_key_valid(const char *k, size_t len);
bool rpc_metadata_value_valid(const char *v, size_t len);

/* wire_strings.c: every string field of a serialized message of type d
 * (nested messages and map entries too) must be valid UTF-8 without NUL
 * bytes. -1 with err = "argv[2] contains a NUL byte" (the field's path);
 * malformed wire data passes (protobuf-c refuses it). */
int rpc_wire_check_strings(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t len,
                           char *err, size_t errsz);
bool rpc_wire_utf8_valid(const uint8_t *s, size_t n);
