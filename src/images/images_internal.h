/* Shared by the image store's files; not for other modules. */
#pragma once
#include <json-c/json.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "images/images.h"

#define IMG_JSON_MAX (4u << 20) /* manifests, indexes and configs */

struct img_store {
  char *dir;    /* STATE/images */
  int dirfd;    /* STATE/images */
  int lock_fd;  /* images/lock */
  int gc_fd;    /* images/gc.lock */
  bool is_root; /* may chown, make devices and whiteouts */
};

/* "sha256:HEX" (64 lowercase hex digits) into hex; INVALID_ARGUMENT
 * naming what when malformed or of another algorithm. */
int img_digest_parse(const char *s, const char *what, char hex[65], rr_err *e);
void img_sha256_hex(const unsigned char md[32], char hex[65]);

/* Open path below dirfd, never leaving it and following no symlink. */
int img_open_below(int dirfd, const char *path, int flags, rr_err *e);
/* Read a JSON document of at most IMG_JSON_MAX bytes from fd; when want_hex
 * is set its sha256 must be want_hex (and size its size when >= 0). what
 * names it in errors. *ret_raw (may be NULL): the bytes, NUL-terminated. */
int img_json_read_fd(int fd, const char *what, const char *want_hex, int64_t size,
                     json_object **ret, char **ret_raw, rr_err *e);
/* json_object_object_get of a string member (NULL when absent or not one). */
const char *img_json_str(json_object *o, const char *key);

typedef struct img_layer_stats {
  unsigned devices_skipped;
  uint64_t bytes; /* file bytes written */
} img_layer_stats;

/* Unpack the layer tar (gzip, zstd, xz or none) read from fd as
 * layers/HEX, checking that the bytes read (uncompressed: the tar they
 * inflate to, as docker's diff_ids) hash to hex and number size (size < 0:
 * unchecked). Already in the store: only checked. *ret_new true when this
 * call unpacked it. what names the layer in errors. */
int img_layer_unpack(img_store *s, int fd, const char *hex, int64_t size, bool uncompressed,
                     const char *what, img_layer_stats *st, bool *ret_new, rr_err *e);
/* Unpack one tar entry stream into the directory rootfd (exposed for the
 * fuzzer and the unit tests): tar-slip refused, whiteouts made as
 * overlayfs's. */
struct archive;
int img_layer_extract(struct archive *a, int rootfd, bool is_root, const char *what,
                      img_layer_stats *st, rr_err *e);
/* A path from an archive made relative and clean into out (n bytes):
 * refused when absolute or holding "..". "" is the root itself. */
int img_path_clean(const char *path, char *out, size_t n, rr_err *e);

/* Record an image: id_hex, its names (moved from other images, which go
 * when they lose their last one), format, layers [{digest,size}], config. */
int img_store_commit(img_store *s, const char *id_hex, const char *const *names, size_t nnames,
                     const char *format, json_object *layers, json_object *config, rr_err *e);
/* Make a unique directory below images/tmp named prefix-XXXXXX into name. */
int img_tmp_mkdir(img_store *s, const char *prefix, char *name, size_t n, rr_err *e);
