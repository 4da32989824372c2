/* gRPC message compression with zlib (see compress.h). */
#include "rpc/compress.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

/* zlib's windowBits: 15 (32 KiB window), +16 for the gzip wrapper */
static int window_bits(rpc_encoding enc) { return enc == RPC_ENCODING_GZIP ? 15 + 16 : 15; }

int rpc_encoding_parse(const char *v, size_t len) {
  static const struct {
    const char *name;
    rpc_encoding enc;
  } known[] = {{"identity", RPC_ENCODING_IDENTITY},
               {"gzip", RPC_ENCODING_GZIP},
               {"deflate", RPC_ENCODING_DEFLATE}};
  for (size_t i = 0; i < sizeof known / sizeof *known; i++)
    if (len == strlen(known[i].name) && strncasecmp(v, known[i].name, len) == 0)
      return (int)known[i].enc;
  return -1;
}

const char *rpc_encoding_name(rpc_encoding enc) {
  return enc == RPC_ENCODING_GZIP ? "gzip" : enc == RPC_ENCODING_DEFLATE ? "deflate" : "identity";
}

bool rpc_accept_encoding_has(const char *list, size_t len, rpc_encoding enc) {
  size_t i = 0;
  while (i < len) {
    while (i < len && (list[i] == ' ' || list[i] == ',' || list[i] == '\t'))
      i++;
    size_t start = i;
    while (i < len && list[i] != ',' && list[i] != ' ' && list[i] != '\t')
      i++;
    if (i > start && rpc_encoding_parse(list + start, i - start) == (int)enc)
      return true;
  }
  return false;
}

size_t rpc_compress_bound(size_t n) {
  /* above deflateBound for any level and either wrapper */
  return n + n / 8 + 64;
}

size_t rpc_compress(rpc_encoding enc, const uint8_t *in, size_t n, uint8_t *out, size_t outcap) {
  if (enc == RPC_ENCODING_IDENTITY || n > UINT_MAX || outcap > UINT_MAX)
    return 0;
  z_stream z = {0};
  /* level 1: most of the gain for a fraction of the CPU of the default 6 */
  if (deflateInit2(&z, 1, Z_DEFLATED, window_bits(enc), 8, Z_DEFAULT_STRATEGY) != Z_OK)
    return 0;
  z.next_in = (Bytef *)in;
  z.avail_in = (uInt)n;
  z.next_out = out;
  z.avail_out = (uInt)outcap;
  int r = deflate(&z, Z_FINISH);
  size_t got = z.total_out;
  deflateEnd(&z);
  return r == Z_STREAM_END ? got : 0;
}

int rpc_decompress(rpc_encoding enc, const uint8_t *in, size_t n, size_t max, uint8_t **ret,
                   size_t *ret_len, rr_err *e) {
  *ret = NULL;
  *ret_len = 0;
  if (enc == RPC_ENCODING_IDENTITY || n > UINT_MAX)
    return rr_err_set(e, RR_INTERNAL, "cannot decompress a %zu-byte message", n);
  z_stream z = {0};
  if (inflateInit2(&z, window_bits(enc)) != Z_OK)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory to decompress a message");
  /* room grows by doubling, to max + 1 at most: one byte past max says "too big" */
  size_t limit = max < SIZE_MAX ? max + 1 : max;
  size_t cap = n < limit / 4 ? (n * 4 > 4096 ? n * 4 : 4096) : limit;
  if (cap > limit)
    cap = limit;
  uint8_t *out = NULL;
  int r = Z_OK, rc = 0;
  z.next_in = (Bytef *)in;
  z.avail_in = (uInt)n;
  for (;;) {
    if (!out || z.total_out == cap) {
      if (out && cap == limit) {
        rc = rr_err_set(e, RR_RESOURCE_EXHAUSTED,
                        "decompressed message larger than max (more than %zu bytes)", max);
        break;
      }
      if (out)
        cap = cap > limit / 2 ? limit : cap * 2;
      uint8_t *p = realloc(out, cap);
      if (!p) {
        rc = rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory to decompress a message");
        break;
      }
      out = p;
    }
    size_t room = cap - z.total_out;
    z.next_out = out + z.total_out;
    z.avail_out = (uInt)(room < UINT_MAX ? room : UINT_MAX);
    r = inflate(&z, Z_NO_FLUSH);
    if (r == Z_STREAM_END)
      break;
    if (r == Z_OK || (r == Z_BUF_ERROR && z.avail_out == 0))
      continue;
    rc = rr_err_set(e, RR_INTERNAL, "cannot decompress a %s message: %s", rpc_encoding_name(enc),
                    r == Z_BUF_ERROR ? "truncated data"
                    : z.msg          ? z.msg
                                     : "invalid data");
    break;
  }
  if (rc == 0 && z.avail_in != 0)
    rc = rr_err_set(e, RR_INTERNAL, "%u bytes after the end of a %s message", z.avail_in,
                    rpc_encoding_name(enc));
  if (rc == 0 && z.total_out > max)
    rc = rr_err_set(e, RR_RESOURCE_EXHAUSTED,
                    "decompressed message larger than max (more than %zu bytes)", max);
  size_t got = z.total_out;
  inflateEnd(&z);
  if (rc < 0) {
    free(out);
    return -1;
  }
  if (got == 0) {
    free(out);
    out = NULL;
  }
  *ret = out;
  *ret_len = got;
  return 0;
}
