/* String fields checked in the wire bytes, before protobuf-c decodes them:
 * it keeps a string as a C string, so a NUL inside would silently cut it,
 * and it does not check UTF-8. */
#include <stdio.h>
#include <string.h>

#include "rpc/wire.h"

#define WIRE_MAX_DEPTH 32
#define WIRE_MAX_FIELDS 64 /* repeated-field counters per message level */

/* Unsigned varint at *p (< end); -1 if malformed or cut. */
static int wire_varint(const uint8_t **p, const uint8_t *end, uint64_t *ret) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64 && *p < end; shift += 7) {
    uint8_t b = *(*p)++;
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *ret = v;
      return 0;
    }
  }
  return -1;
}

bool rpc_wire_utf8_valid(const uint8_t *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t c = s[i];
    size_t len;
    uint32_t cp;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      len = 2, cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3, cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n)
      return false;
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xc0) != 0x80)
        return false;
      cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return false; /* overlong, too large, or a surrogate */
    i += len;
  }
  return true;
}

static void wire_field_name(char *out, size_t outsz, const char *prefix,
                            const ProtobufCFieldDescriptor *f, unsigned idx) {
  if (f->label == PROTOBUF_C_LABEL_REPEATED) /* map entries too, in wire order */
    snprintf(out, outsz, "%s%s[%u]", prefix, f->name, idx);
  else
    snprintf(out, outsz, "%s%s", prefix, f->name);
}

static int wire_check(const ProtobufCMessageDescriptor *d, const uint8_t *p, const uint8_t *end,
                      const char *prefix, int depth, char *err, size_t errsz) {
  unsigned counts[WIRE_MAX_FIELDS] = {0};
  if (depth > WIRE_MAX_DEPTH)
    return 0; /* protobuf-c has its own limits */
  while (p < end) {
    uint64_t tag, len;
    if (wire_varint(&p, end, &tag) < 0)
      return 0; /* malformed: protobuf-c refuses it */
    switch (tag & 7) {
    case 0:
      if (wire_varint(&p, end, &len) < 0)
        return 0;
      continue;
    case 1:
      p += (size_t)(end - p) < 8 ? (size_t)(end - p) : 8;
      continue;
    case 5:
      p += (size_t)(end - p) < 4 ? (size_t)(end - p) : 4;
      continue;
    case 2:
      break;
    default:
      return 0;
    }
    if (wire_varint(&p, end, &len) < 0 || len > (uint64_t)(end - p))
      return 0;
    const uint8_t *v = p;
    p += len;
    const ProtobufCFieldDescriptor *f =
        tag >> 3 <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(d, (unsigned)(tag >> 3))
                               : NULL;
    if (!f)
      continue; /* unknown field: kept as bytes */
    size_t fi = (size_t)(f - d->fields);
    unsigned idx = fi < WIRE_MAX_FIELDS ? counts[fi]++ : 0;
    char name[256];
    if (f->type == PROTOBUF_C_TYPE_STRING) {
      bool nul = memchr(v, 0, len) != NULL;
      if (nul || !rpc_wire_utf8_valid(v, len)) {
        wire_field_name(name, sizeof name, prefix, f, idx);
        snprintf(err, errsz, "%s %s", name, nul ? "contains a NUL byte" : "is not valid UTF-8");
        return -1;
      }
    } else if (f->type == PROTOBUF_C_TYPE_MESSAGE && f->descriptor) {
      wire_field_name(name, sizeof name, prefix, f, idx);
      size_t n = strlen(name);
      if (n + 2 > sizeof name)
        continue;
      name[n] = '.';
      name[n + 1] = '\0';
      if (wire_check(f->descriptor, v, v + len, name, depth + 1, err, errsz) < 0)
        return -1;
    }
  }
  return 0;
}

int rpc_wire_check_strings(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t len,
                           char *err, size_t errsz) {
  return wire_check(d, data, data + len, "", 0, err, errsz);
}
