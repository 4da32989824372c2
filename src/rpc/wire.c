#include "rpc/wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "rpc/compress.h"

void rpc_wire_put_prefix(uint8_t out[RPC_PREFIX_LEN], bool compressed, uint32_t len) {
  out[0] = compressed ? 1 : 0;
  out[1] = (uint8_t)(len >> 24);
  out[2] = (uint8_t)(len >> 16);
  out[3] = (uint8_t)(len >> 8);
  out[4] = (uint8_t)len;
}

size_t rpc_wire_put_varint(uint8_t *out, uint64_t v) {
  size_t n = 0;
  do {
    out[n++] = (uint8_t)(v & 0x7f) | (v > 0x7f ? 0x80 : 0);
    v >>= 7;
  } while (v);
  return n;
}

void rpc_deframer_init(rpc_deframer *d, size_t max_message) {
  memset(d, 0, sizeof *d);
  d->max = max_message;
}

void rpc_deframer_free(rpc_deframer *d) {
  free(d->msg);
  d->msg = NULL;
  d->hdr_len = d->msg_len = d->msg_have = 0;
}

/* Buffer size for a body of which have bytes arrived: grows with what was
 * actually received (a peer announcing 4 MiB and sending 5 bytes costs 64 KiB),
 * derived from msg_have so the struct needs no capacity field. */
static size_t deframer_capacity(const rpc_deframer *d, size_t have) {
  size_t cap = 65536;
  while (cap < have)
    cap *= 2;
  return cap < d->msg_len ? cap : d->msg_len;
}

int rpc_deframer_feed(rpc_deframer *d, const uint8_t *data, size_t len, size_t *consumed,
                      uint8_t **ret_msg, size_t *ret_len, rr_err *e) {
  size_t used = 0;
  *consumed = 0;
  *ret_msg = NULL;
  *ret_len = 0;
  for (;;) {
    if (d->hdr_len < RPC_PREFIX_LEN) {
      size_t n = RPC_PREFIX_LEN - d->hdr_len;
      if (n > len - used)
        n = len - used;
      memcpy(d->hdr + d->hdr_len, data + used, n);
      d->hdr_len += n;
      used += n;
      if (d->hdr_len < RPC_PREFIX_LEN)
        break;
      if (d->hdr[0] == 1 && d->encoding == RPC_ENCODING_IDENTITY)
        return rr_err_set(e, RR_INTERNAL,
                          "compressed message received but no grpc-encoding was negotiated");
      d->compressed = d->hdr[0] == 1;
      if (d->hdr[0] > 1)
        return rr_err_set(e, RR_INTERNAL, "invalid message flag byte 0x%02x", d->hdr[0]);
      d->msg_len = (size_t)d->hdr[1] << 24 | (size_t)d->hdr[2] << 16 | (size_t)d->hdr[3] << 8 |
                   (size_t)d->hdr[4];
      if (d->msg_len > d->max)
        return rr_err_set(e, RR_RESOURCE_EXHAUSTED,
                          "received message larger than max (%zu vs. %zu)", d->msg_len, d->max);
      d->msg_have = 0;
    }
    size_t want = d->msg_len - d->msg_have;
    size_t n = want < len - used ? want : len - used;
    if (n > 0) {
      size_t need = d->msg_have + n;
      if (!d->msg || need > deframer_capacity(d, d->msg_have)) {
        uint8_t *p = realloc(d->msg, deframer_capacity(d, need));
        if (!p)
          return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory for a %zu-byte message",
                            d->msg_len);
        d->msg = p;
      }
      memcpy(d->msg + d->msg_have, data + used, n);
      d->msg_have += n;
      used += n;
    }
    if (d->msg_have == d->msg_len) {
      *ret_msg = d->msg; /* NULL for an empty message */
      *ret_len = d->wire_len = d->msg_len;
      d->msg = NULL;
      d->hdr_len = d->msg_len = d->msg_have = 0;
      *consumed = used;
      if (d->compressed) {
        uint8_t *wire = *ret_msg;
        int r = rpc_decompress(d->encoding, wire, *ret_len, d->max, ret_msg, ret_len, e);
        free(wire);
        if (r < 0)
          return -1;
      }
      return 1;
    }
    break; /* input exhausted mid-body */
  }
  *consumed = used;
  return 0;
}

bool rpc_deframer_partial(const rpc_deframer *d) { return d->hdr_len > 0; }

int rpc_timeout_parse(const char *s, size_t len, uint64_t *ret_ms) {
  if (len < 2 || len > 9)
    return -1;
  uint64_t v = 0;
  for (size_t i = 0; i + 1 < len; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (uint64_t)(s[i] - '0');
  }
  uint64_t ms;
  switch (s[len - 1]) {
  case 'H':
    ms = v * 3600000u;
    break;
  case 'M':
    ms = v * 60000u;
    break;
  case 'S':
    ms = v * 1000u;
    break;
  case 'm':
    ms = v;
    break;
  case 'u':
    ms = (v + 999u) / 1000u;
    break;
  case 'n':
    ms = (v + 999999u) / 1000000u;
    break;
  default:
    return -1;
  }
  *ret_ms = ms; /* 8 digits of hours is ~3.6e14 ms: no overflow possible */
  return 0;
}

void rpc_timeout_format(uint64_t ms, char *out, size_t outsz) {
  static const struct {
    uint64_t div;
    char unit;
  } units[] = {{1, 'm'}, {1000, 'S'}, {60000, 'M'}, {3600000, 'H'}};
  for (size_t i = 0; i < RR_ARRAY_SIZE(units); i++) {
    uint64_t v = ms / units[i].div + (ms % units[i].div != 0); /* round up: never shorten */
    if (v <= 99999999u) {
      snprintf(out, outsz, "%llu%c", (unsigned long long)v, units[i].unit);
      return;
    }
  }
  snprintf(out, outsz, "99999999H");
}

static bool percent_needs_escape(unsigned char c) { return c < 0x20 || c > 0x7e || c == '%'; }

size_t rpc_percent_encode(const char *in, size_t inlen, char *out, size_t outsz) {
  static const char hex[] = "0123456789ABCDEF";
  size_t o = 0;
  if (outsz == 0)
    return 0;
  for (size_t i = 0; i < inlen; i++) {
    unsigned char c = (unsigned char)in[i];
    if (percent_needs_escape(c)) {
      if (o + 3 > outsz - 1)
        break;
      out[o++] = '%';
      out[o++] = hex[c >> 4];
      out[o++] = hex[c & 15];
    } else {
      if (o + 1 > outsz - 1)
        break;
      out[o++] = (char)c;
    }
  }
  out[o] = '\0';
  return o;
}

size_t rpc_percent_decode(const char *in, size_t inlen, char *out, size_t outsz) {
  size_t o = 0;
  if (outsz == 0)
    return 0;
  for (size_t i = 0; i < inlen && o < outsz - 1; i++) {
    int hi, lo;
    if (in[i] == '%' && i + 2 < inlen && (hi = rr_hex_value(in[i + 1])) >= 0 &&
        (lo = rr_hex_value(in[i + 2])) >= 0) {
      out[o++] = (char)(hi << 4 | lo);
      i += 2;
    } else {
      out[o++] = in[i];
    }
  }
  out[o] = '\0';
  return o;
}

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

long rpc_base64_encode(const uint8_t *in, size_t len, char *out, size_t outsz) {
  size_t need = len / 3 * 4 + (len % 3 ? len % 3 + 1 : 0);
  if (need + 1 > outsz)
    return -1;
  size_t o = 0, i = 0;
  for (; i + 3 <= len; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[o++] = b64_alphabet[v >> 18];
    out[o++] = b64_alphabet[(v >> 12) & 63];
    out[o++] = b64_alphabet[(v >> 6) & 63];
    out[o++] = b64_alphabet[v & 63];
  }
  if (len - i == 1) {
    uint32_t v = (uint32_t)in[i] << 16;
    out[o++] = b64_alphabet[v >> 18];
    out[o++] = b64_alphabet[(v >> 12) & 63];
  } else if (len - i == 2) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
    out[o++] = b64_alphabet[v >> 18];
    out[o++] = b64_alphabet[(v >> 12) & 63];
    out[o++] = b64_alphabet[(v >> 6) & 63];
  }
  out[o] = '\0';
  return (long)o;
}

static int b64_value(char c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '+')
    return 62;
  if (c == '/')
    return 63;
  return -1;
}

long rpc_base64_decode(const char *in, size_t len, uint8_t *out, size_t outsz) {
  /* padding is optional, but when present it must complete the last quantum */
  size_t pad = 0;
  while (len > 0 && in[len - 1] == '=' && pad < 2) {
    len--;
    pad++;
  }
  if (len % 4 == 1 || (pad && (len + pad) % 4 != 0))
    return -1;
  size_t need = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
  if (need > outsz)
    return -1;
  size_t o = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < len; i++) {
    int v = b64_value(in[i]);
    if (v < 0)
      return -1;
    acc = acc << 6 | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (uint8_t)(acc >> bits);
      acc &= (1u << bits) - 1;
    }
  }
  if (acc != 0) /* non-canonical trailing bits */
    return -1;
  return (long)o;
}

int rpc_status_from_http(int http_status) {
  switch (http_status) {
  case 400:
    return RR_INTERNAL;
  case 401:
    return RR_UNAUTHENTICATED;
  case 403:
    return RR_PERMISSION_DENIED;
  case 404:
    return RR_UNIMPLEMENTED;
  case 429:
  case 502:
  case 503:
  case 504:
    return RR_UNAVAILABLE;
  default:
    return RR_UNKNOWN;
  }
}

int rpc_status_from_h2_error(uint32_t h2_error) {
  switch (h2_error) {
  case 0x7:
    return RR_UNAVAILABLE; /* REFUSED_STREAM: safe to retry */
  case 0x8:
    return RR_CANCELLED; /* CANCEL */
  case 0xb:
    return RR_RESOURCE_EXHAUSTED; /* ENHANCE_YOUR_CALM */
  case 0xc:
    return RR_PERMISSION_DENIED; /* INADEQUATE_SECURITY */
  default:
    return RR_INTERNAL;
  }
}

bool rpc_metadata_key_valid(const char *k, size_t len) {
  if (len == 0)
    return false;
  for (size_t i = 0; i < len; i++) {
    char c = k[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '_' || c == '.' || c == '-'))
      return false;
  }
  return true;
}

bool rpc_metadata_value_valid(const char *v, size_t len) {
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)v[i] < 0x20 || (unsigned char)v[i] > 0x7e)
      return false;
  return true;
}
