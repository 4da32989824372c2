/* Shared by import.c and import_oci.c. */
#pragma once
#include <json-c/json.h>
#include <stdint.h>

#include "images/images_internal.h"

typedef struct import_ctx {
  img_store *s;
  img_import_result *res;
  img_format format;
  const char *name; /* normalized NAME:TAG given by the caller, or NULL */
} import_ctx;

/* The OCI layout in dirfd (index.json, blobs/sha256/). */
int import_oci_dir(import_ctx *x, int dirfd, rr_err *e);
/* The docker-archive unpacked in dirfd (manifest.json). */
int import_docker_dir(import_ctx *x, int dirfd, rr_err *e);
/* Unpack (or check) one layer blob read from fd (uncompressed: hex names
 * the tar it inflates to). */
int import_layer(import_ctx *x, int fd, const char *hex, int64_t size, bool uncompressed,
                 const char *what, rr_err *e);
/* Record an image with the archive's names (or x->name) and note its id. */
int import_commit(import_ctx *x, const char *id_hex, const char *const *names, size_t nnames,
                  json_object *layers, json_object *config, rr_err *e);
int import_add_id(import_ctx *x, const char *hex, rr_err *e);
/* The OCI architecture name of this machine ("amd64", "arm64"). */
const char *import_arch(void);
