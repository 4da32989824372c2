#include "descset.h"

#include <string.h>

/* Field numbers of google/protobuf/descriptor.proto that we read. */
enum {
  SET_FILE = 1,
  FILE_NAME = 1,
  FILE_PACKAGE = 2,
  FILE_DEPENDENCY = 3,
  FILE_MESSAGE = 4,
  FILE_ENUM = 5,
  FILE_SERVICE = 6,
  FILE_EXTENSION = 7,
  MESSAGE_NAME = 1,
  MESSAGE_FIELD = 2,
  MESSAGE_NESTED = 3,
  MESSAGE_ENUM = 4,
  MESSAGE_EXTENSION = 6,
  MESSAGE_ONEOF = 8,
  FIELD_NAME = 1,
  FIELD_EXTENDEE = 2,
  FIELD_NUMBER = 3,
  ENUM_NAME = 1,
  ENUM_VALUE = 2,
  SERVICE_NAME = 1,
  SERVICE_METHOD = 2,
  NAMED_NAME = 1, /* EnumValue, Method, Oneof: name is field 1 */
};

/* Deeper nesting than this is treated as a corrupt set (bounds recursion). */
#define DESCSET_MAX_DEPTH 64

typedef struct reader {
  const uint8_t *p, *end;
} reader;

typedef struct field {
  uint32_t number;
  int wire;
  uint64_t varint;
  descset_slice bytes;
} field;

static reader reader_of(descset_slice s) { return (reader){s.ptr, s.ptr + s.len}; }

static int read_varint(reader *r, uint64_t *v) {
  uint64_t x = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (r->p >= r->end)
      return -1;
    uint8_t b = *r->p++;
    x |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *v = x;
      return 0;
    }
  }
  return -1;
}

/* Next field of r: 1 read, 0 at the end, -1 malformed. Groups are refused. */
static int reader_next(reader *r, field *f) {
  if (r->p == r->end)
    return 0;
  uint64_t key;
  if (read_varint(r, &key) < 0 || (key >> 3) == 0 || (key >> 3) > UINT32_MAX)
    return -1;
  f->number = (uint32_t)(key >> 3);
  f->wire = (int)(key & 7);
  f->bytes = (descset_slice){NULL, 0};
  size_t left = (size_t)(r->end - r->p);
  switch (f->wire) {
  case 0:
    return read_varint(r, &f->varint) < 0 ? -1 : 1;
  case 1:
    if (left < 8)
      return -1;
    r->p += 8;
    return 1;
  case 5:
    if (left < 4)
      return -1;
    r->p += 4;
    return 1;
  case 2: {
    uint64_t n;
    if (read_varint(r, &n) < 0 || n > (uint64_t)(r->end - r->p))
      return -1;
    f->bytes = (descset_slice){r->p, (size_t)n};
    r->p += n;
    return 1;
  }
  default:
    return -1;
  }
}

bool descset_slice_eq(descset_slice s, const char *str, size_t len) {
  return s.len == len && (len == 0 || memcmp(s.ptr, str, len) == 0);
}

/* The string field `number` (last occurrence wins, as in protobuf). */
static int message_string(descset_slice msg, uint32_t number, descset_slice *out) {
  reader r = reader_of(msg);
  field f;
  int rc;
  *out = (descset_slice){(const uint8_t *)"", 0};
  while ((rc = reader_next(&r, &f)) > 0)
    if (f.number == number && f.wire == 2)
      *out = f.bytes;
  return rc;
}

static int file_fill(descset_slice bytes, size_t index, descset_file *f) {
  f->index = index;
  f->data = bytes;
  if (message_string(bytes, FILE_NAME, &f->name) < 0 ||
      message_string(bytes, FILE_PACKAGE, &f->package) < 0)
    return DESCSET_MALFORMED;
  return 0;
}

/* Iterate files: calls fn for each; stops early when fn returns non-zero. */
static int set_walk(const descset *d, int (*fn)(const descset_file *f, void *data), void *data) {
  reader r = reader_of((descset_slice){d->data, d->len});
  field fl = {0};
  int rc;
  size_t index = 0;
  while ((rc = reader_next(&r, &fl)) > 0) {
    if (fl.number != SET_FILE)
      continue;
    if (fl.wire != 2)
      return DESCSET_MALFORMED;
    descset_file f;
    if (file_fill(fl.bytes, index++, &f) < 0)
      return DESCSET_MALFORMED;
    int stop = fn(&f, data);
    if (stop)
      return stop;
  }
  return rc < 0 ? DESCSET_MALFORMED : 0;
}

static int count_one(const descset_file *f, void *data) {
  (*(long *)data)++;
  return 0;
}

long descset_count(const descset *d) {
  long n = 0;
  int rc = set_walk(d, count_one, &n);
  return rc < 0 ? rc : n;
}

typedef struct file_query {
  size_t index;
  const char *name;
  size_t len;
  descset_file *out;
} file_query;

static int match_index(const descset_file *f, void *data) {
  file_query *q = data;
  if (f->index != q->index)
    return 0;
  *q->out = *f;
  return 1;
}

int descset_file_at(const descset *d, size_t index, descset_file *f) {
  file_query q = {.index = index, .out = f};
  int rc = set_walk(d, match_index, &q);
  return rc == 1 ? 0 : rc < 0 ? rc : DESCSET_NOT_FOUND;
}

static int match_name(const descset_file *f, void *data) {
  file_query *q = data;
  if (!descset_slice_eq(f->name, q->name, q->len))
    return 0;
  *q->out = *f;
  return 1;
}

int descset_find_file(const descset *d, const char *name, size_t len, descset_file *f) {
  file_query q = {.name = name, .len = len, .out = f};
  int rc = set_walk(d, match_name, &q);
  return rc == 1 ? 0 : rc < 0 ? rc : DESCSET_NOT_FOUND;
}

int descset_file_deps(const descset_file *f, int (*fn)(descset_slice dep, void *data), void *data) {
  reader r = reader_of(f->data);
  field fl = {0};
  int rc;
  while ((rc = reader_next(&r, &fl)) > 0) {
    if (fl.number != FILE_DEPENDENCY || fl.wire != 2)
      continue;
    int stop = fn(fl.bytes, data);
    if (stop)
      return stop;
  }
  return rc < 0 ? DESCSET_MALFORMED : 0;
}

/* ---- symbol lookup: match the target name part by part while descending ---- */

/* If name is rest exactly: 1. If rest starts with "name.": 2, *tail set. Else 0. */
static int name_match(descset_slice name, descset_slice rest, descset_slice *tail) {
  if (name.len == 0 || rest.len < name.len || memcmp(rest.ptr, name.ptr, name.len) != 0)
    return 0;
  if (rest.len == name.len)
    return 1;
  if (rest.ptr[name.len] != '.')
    return 0;
  *tail = (descset_slice){rest.ptr + name.len + 1, rest.len - name.len - 1};
  return 2;
}

/* Each lookup returns 1 found (*kind set), 0 not here, -1 malformed. */
static int enum_lookup_values(descset_slice en, descset_slice rest, descset_kind *kind) {
  reader r = reader_of(en);
  field fl = {0};
  int rc;
  while ((rc = reader_next(&r, &fl)) > 0) {
    if (fl.number != ENUM_VALUE || fl.wire != 2)
      continue;
    descset_slice name, tail;
    if (message_string(fl.bytes, NAMED_NAME, &name) < 0)
      return -1;
    if (name_match(name, rest, &tail) == 1) {
      *kind = DESCSET_ENUM_VALUE;
      return 1;
    }
  }
  return rc < 0 ? -1 : 0;
}

static int named_leaf(descset_slice msg, descset_slice rest, descset_kind k, descset_kind *kind) {
  descset_slice name, tail;
  if (message_string(msg, NAMED_NAME, &name) < 0)
    return -1;
  if (name_match(name, rest, &tail) != 1)
    return 0;
  *kind = k;
  return 1;
}

/* An enum declared in a scope: the enum itself or one of its values. */
static int enum_lookup(descset_slice en, descset_slice rest, descset_kind *kind) {
  int rc = named_leaf(en, rest, DESCSET_ENUM, kind);
  return rc != 0 ? rc : enum_lookup_values(en, rest, kind);
}

static int service_lookup(descset_slice svc, descset_slice rest, descset_kind *kind) {
  descset_slice name, tail;
  if (message_string(svc, SERVICE_NAME, &name) < 0)
    return -1;
  int m = name_match(name, rest, &tail);
  if (m == 1) {
    *kind = DESCSET_SERVICE;
    return 1;
  }
  if (m == 0)
    return 0;
  reader r = reader_of(svc);
  field fl = {0};
  int rc;
  while ((rc = reader_next(&r, &fl)) > 0) {
    if (fl.number != SERVICE_METHOD || fl.wire != 2)
      continue;
    int found = named_leaf(fl.bytes, tail, DESCSET_METHOD, kind);
    if (found)
      return found;
  }
  return rc < 0 ? -1 : 0;
}

static int message_lookup(descset_slice msg, descset_slice rest, descset_kind *kind, int depth) {
  if (depth > DESCSET_MAX_DEPTH)
    return -1;
  descset_slice name, tail;
  if (message_string(msg, MESSAGE_NAME, &name) < 0)
    return -1;
  int m = name_match(name, rest, &tail);
  if (m == 1) {
    *kind = DESCSET_MESSAGE;
    return 1;
  }
  if (m == 0)
    return 0;
  reader r = reader_of(msg);
  field fl = {0};
  int rc;
  while ((rc = reader_next(&r, &fl)) > 0) {
    if (fl.wire != 2)
      continue;
    int found = 0;
    switch (fl.number) {
    case MESSAGE_FIELD:
      found = named_leaf(fl.bytes, tail, DESCSET_FIELD, kind);
      break;
    case MESSAGE_EXTENSION:
      found = named_leaf(fl.bytes, tail, DESCSET_EXTENSION, kind);
      break;
    case MESSAGE_ONEOF:
      found = named_leaf(fl.bytes, tail, DESCSET_ONEOF, kind);
      break;
    case MESSAGE_NESTED:
      found = message_lookup(fl.bytes, tail, kind, depth + 1);
      break;
    case MESSAGE_ENUM:
      found = enum_lookup(fl.bytes, tail, kind);
      break;
    }
    if (found)
      return found;
  }
  return rc < 0 ? -1 : 0;
}

typedef struct symbol_query {
  descset_slice target;
  descset_kind *kind;
  descset_file *out;
} symbol_query;

static int file_lookup(const descset_file *f, void *data) {
  symbol_query *q = data;
  descset_slice rest = q->target;
  if (f->package.len > 0 && name_match(f->package, q->target, &rest) != 2)
    return 0;
  reader r = reader_of(f->data);
  field fl = {0};
  int rc;
  while ((rc = reader_next(&r, &fl)) > 0) {
    if (fl.wire != 2)
      continue;
    int found = 0;
    switch (fl.number) {
    case FILE_MESSAGE:
      found = message_lookup(fl.bytes, rest, q->kind, 0);
      break;
    case FILE_ENUM:
      found = enum_lookup(fl.bytes, rest, q->kind);
      break;
    case FILE_SERVICE:
      found = service_lookup(fl.bytes, rest, q->kind);
      break;
    case FILE_EXTENSION:
      found = named_leaf(fl.bytes, rest, DESCSET_EXTENSION, q->kind);
      break;
    }
    if (found < 0)
      return DESCSET_MALFORMED;
    if (found) {
      *q->out = *f;
      return 1;
    }
  }
  return rc < 0 ? DESCSET_MALFORMED : 0;
}

int descset_find_symbol(const descset *d, const char *symbol, size_t len, descset_file *f,
                        descset_kind *kind) {
  if (len > 0 && symbol[0] == '.') {
    symbol++;
    len--;
  }
  if (len == 0)
    return DESCSET_NOT_FOUND;
  descset_kind k;
  symbol_query q = {{(const uint8_t *)symbol, len}, &k, f};
  int rc = set_walk(d, file_lookup, &q);
  if (rc < 0)
    return rc;
  if (rc == 0)
    return DESCSET_NOT_FOUND;
  if (kind)
    *kind = k;
  return 0;
}

/* ---- extensions ---- */

typedef struct extension_walk {
  int (*fn)(const descset_file *f, descset_slice extendee, int32_t number, void *data);
  void *data;
  const descset_file *file;
} extension_walk;

static int extension_report(extension_walk *w, descset_slice ext) {
  reader r = reader_of(ext);
  field fl = {0};
  int rc;
  descset_slice extendee = {(const uint8_t *)"", 0};
  int32_t number = 0;
  while ((rc = reader_next(&r, &fl)) > 0) {
    if (fl.number == FIELD_EXTENDEE && fl.wire == 2)
      extendee = fl.bytes;
    else if (fl.number == FIELD_NUMBER && fl.wire == 0)
      number = (int32_t)fl.varint;
  }
  if (rc < 0)
    return DESCSET_MALFORMED;
  if (extendee.len > 0 && extendee.ptr[0] == '.')
    extendee = (descset_slice){extendee.ptr + 1, extendee.len - 1};
  return w->fn(w->file, extendee, number, w->data);
}

static int message_extensions(extension_walk *w, descset_slice msg, int depth) {
  if (depth > DESCSET_MAX_DEPTH)
    return DESCSET_MALFORMED;
  reader r = reader_of(msg);
  field fl = {0};
  int rc;
  while ((rc = reader_next(&r, &fl)) > 0) {
    if (fl.wire != 2)
      continue;
    int stop = 0;
    if (fl.number == MESSAGE_EXTENSION)
      stop = extension_report(w, fl.bytes);
    else if (fl.number == MESSAGE_NESTED)
      stop = message_extensions(w, fl.bytes, depth + 1);
    if (stop)
      return stop;
  }
  return rc < 0 ? DESCSET_MALFORMED : 0;
}

static int file_extensions(const descset_file *f, void *data) {
  extension_walk *w = data;
  w->file = f;
  reader r = reader_of(f->data);
  field fl = {0};
  int rc;
  while ((rc = reader_next(&r, &fl)) > 0) {
    if (fl.wire != 2)
      continue;
    int stop = 0;
    if (fl.number == FILE_EXTENSION)
      stop = extension_report(w, fl.bytes);
    else if (fl.number == FILE_MESSAGE)
      stop = message_extensions(w, fl.bytes, 0);
    if (stop)
      return stop;
  }
  return rc < 0 ? DESCSET_MALFORMED : 0;
}

int descset_extensions(const descset *d,
                       int (*fn)(const descset_file *f, descset_slice extendee, int32_t number,
                                 void *data),
                       void *data) {
  extension_walk w = {fn, data, NULL};
  return set_walk(d, file_extensions, &w);
}
