/* Read-only queries over a serialized google.protobuf.FileDescriptorSet
 * (protoc --include_imports --descriptor_set_out), walking the wire format in
 * place: no allocation, no descriptor.proto code, every read bounds-checked. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A byte range inside the set (strings are not NUL-terminated). */
typedef struct descset_slice {
  const uint8_t *ptr;
  size_t len;
} descset_slice;

typedef struct descset {
  const uint8_t *data;
  size_t len;
} descset;

/* One FileDescriptorProto of the set. */
typedef struct descset_file {
  size_t index;       /* position in the set, from 0 */
  descset_slice data; /* its serialized bytes, ready to send as is */
  descset_slice name; /* "runrpc/v1/jobs.proto" */
  descset_slice package;
} descset_file;

/* What a full name designates. */
typedef enum descset_kind {
  DESCSET_MESSAGE = 1,
  DESCSET_ENUM,
  DESCSET_ENUM_VALUE, /* scoped like its enum's siblings: "pkg.VALUE" */
  DESCSET_SERVICE,
  DESCSET_METHOD,
  DESCSET_FIELD,
  DESCSET_ONEOF,
  DESCSET_EXTENSION,
} descset_kind;

/* Results of the lookups below; DESCSET_MALFORMED means the set is corrupt. */
#define DESCSET_NOT_FOUND (-1)
#define DESCSET_MALFORMED (-2)

/* Number of files in the set, or DESCSET_MALFORMED. */
long descset_count(const descset *d);
/* File number index into *f; DESCSET_NOT_FOUND past the end. */
int descset_file_at(const descset *d, size_t index, descset_file *f);
/* File named name (len bytes) into *f. */
int descset_find_file(const descset *d, const char *name, size_t len, descset_file *f);
/* File declaring the fully-qualified symbol (a leading '.' is accepted). */
int descset_find_symbol(const descset *d, const char *symbol, size_t len, descset_file *f,
                        descset_kind *kind);
/* Calls fn(dependency name, data) for each import of f, in order; stops when fn
 * returns non-zero and returns that. DESCSET_MALFORMED on a corrupt file. */
int descset_file_deps(const descset_file *f, int (*fn)(descset_slice dep, void *data), void *data);
/* Calls fn for every extension field (file level and nested) of every file,
 * with the extendee ("pkg.Msg", leading '.' stripped) and field number. */
int descset_extensions(const descset *d,
                       int (*fn)(const descset_file *f, descset_slice extendee, int32_t number,
                                 void *data),
                       void *data);
/* True when s holds exactly the len bytes at str. */
bool descset_slice_eq(descset_slice s, const char *str, size_t len);
