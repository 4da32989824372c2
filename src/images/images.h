/* The local OCI image store (STATE/images/): imports OCI image layouts,
 * oci-archive and docker-archive tars and plain root filesystem tars with no
 * network; layers are unpacked once, named by digest, shared read-only.
 *
 *   images/lock        flock: records are changed under LOCK_EX
 *   images/gc.lock     imports hold LOCK_SH while they run, GC takes LOCK_EX
 *   images/images/HEX.json   one record per image (id = its config's digest)
 *   images/layers/HEX/       an unpacked layer (overlayfs whiteout format)
 *   images/tmp/              imports in progress; swept when nothing runs
 *   images/uploads/          files being received by rund (swept at its start)
 *   images/roots/ID/         a command's overlay (upper, work, merged) and the
 *                            layers it uses (file "layers": kept from gc)
 *
 * Knows nothing of gRPC or of the event loop: an import is slow work, run
 * it in a child process (rund image import). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define IMG_DIGEST_LEN 71 /* "sha256:" + 64 hex digits */
#define IMG_NAME_MAX 256  /* "name:tag", NUL included */

typedef struct img_store img_store;

/* Open (creating) the store under state_dir. */
int img_store_open(const char *state_dir, img_store **ret, rr_err *e);
void img_store_free(img_store *s);
/* STATE/images. */
const char *img_store_dir(const img_store *s);

/* How to read an import's input. */
typedef enum img_format {
  IMG_FORMAT_AUTO = 0, /* a directory is an OCI layout; a tar is looked into */
  IMG_FORMAT_OCI,      /* OCI image layout directory */
  IMG_FORMAT_OCI_ARCHIVE,
  IMG_FORMAT_DOCKER_ARCHIVE,
  IMG_FORMAT_ROOTFS, /* a plain root filesystem tar (gzip/zstd/xz or none); needs a name */
} img_format;

/* "auto", "oci", "oci-archive", "docker-archive", "rootfs": -1 if unknown. */
int img_format_parse(const char *s, img_format *ret);
const char *img_format_name(img_format f);

typedef struct img_import_opts {
  img_format format;
  const char *name; /* NAME[:TAG] for the image (NULL: the archive's names) */
} img_import_opts;

typedef struct img_import_result {
  char **ids; /* "sha256:HEX" of each image imported */
  size_t nids;
  unsigned devices_skipped; /* device nodes not made (rund is not root) */
  uint64_t layers_unpacked; /* layers new to the store */
} img_import_result;

/* Import path (a directory or a tar). Every blob is checked against its
 * digest; on any failure nothing of this import is left in the store. */
int img_import(img_store *s, const char *path, const img_import_opts *o, img_import_result *ret,
               rr_err *e);
void img_import_result_free(img_import_result *r);

/* Parse a reference: NAME[:TAG] (TAG defaults to latest) into "name:tag",
 * or sha256:HEX / NAME@sha256:HEX / HEX into "sha256:HEX" (*is_id true).
 * INVALID_ARGUMENT naming the reference when malformed. */
int img_ref_parse(const char *ref, char out[IMG_NAME_MAX], bool *is_id, rr_err *e);

/* An image record (STATE/images/images/HEX.json) as JSON text. */
typedef struct img_record {
  char id[IMG_DIGEST_LEN + 1];
  char *json; /* the record: id, names, created, format, layers, config */
} img_record;

/* Every record, sorted by id. */
int img_store_list(img_store *s, img_record **ret, size_t *ret_n, rr_err *e);
void img_records_free(img_record *r, size_t n);
/* The record ref names (NOT_FOUND naming ref when none). */
int img_store_find(img_store *s, const char *ref, img_record *ret, rr_err *e);
/* Remove ref: a name only untags it (the image goes with its last name), an
 * id removes the image (*ret_removed true when the image went). Quick: call
 * img_store_gc after (it may take long) to collect the layers. */
int img_store_remove(img_store *s, const char *ref, char ret_id[IMG_DIGEST_LEN + 1],
                     bool *ret_removed, rr_err *e);
/* Remove layers no record names and imports' leftovers, unless an import
 * runs now (*ret_busy true: try later). *ret_removed: layers removed. */
int img_store_gc(img_store *s, unsigned *ret_removed, bool *ret_busy, rr_err *e);

/* A new file in images/uploads (O_EXCL, 0600): its path into path (n
 * bytes), the fd open for writing. */
int img_upload_create(img_store *s, char *path, size_t n, int *ret_fd, rr_err *e);
/* Remove every file of images/uploads (no upload survives a restart). */
void img_uploads_sweep(img_store *s);

/* Remove name below dirfd, whatever it is (a directory recursively, never
 * following symlinks); ENOENT is success. -1 + errno. */
int img_rmtree_at(int dirfd, const char *name);

/* The ids an image's config User names, resolved inside the image's root. */
#define IMG_USER_MAX_GROUPS 256 /* the sandbox's SB_MAX_GROUPS */
typedef struct img_user {
  uint32_t uid, gid;
  uint32_t groups[IMG_USER_MAX_GROUPS]; /* supplementary, gid first, no repeats */
  size_t ngroups;
  char name[64];   /* its passwd name ("" when passwd does not list it) */
  char home[256];  /* its passwd home ("/" when not listed) */
  char shell[256]; /* its passwd shell ("" when not listed) */
} img_user;
/* Resolve spec (NAME, UID, NAME:GROUP, UID:GID, ...) as docker does: names
 * through etc/passwd and etc/group of the root rootfd (symlinks resolved
 * inside it); a uid passwd does not list gets gid 0. Groups as podman's: a
 * user passwd knows, given with no group, gets its gid and the groups
 * etc/group lists it in; else the gid alone. FAILED_PRECONDITION naming the
 * user or group when the image does not know it (or the user is in more
 * than IMG_USER_MAX_GROUPS groups). */
int img_user_resolve(int rootfd, const char *spec, img_user *ret, rr_err *e);
/* The gids of every etc/group line of text (changed in place) that lists
 * name as a member added to u's groups (lines over 64 KiB or with a bad
 * gid skipped). FAILED_PRECONDITION when they would be too many. */
int img_user_groups_add(char *text, const char *name, img_user *u, rr_err *e);

/* Merge the layers hexes (bottom first) into the empty directory dstfd,
 * whiteouts applied as overlayfs would: the root of a command where
 * overlayfs is not available (reflinks where the filesystem can). */
int img_root_copy(img_store *s, const char *const *hexes, size_t n, int dstfd, rr_err *e);
/* img_root_copy of the layers roots/NAME/layers lists into roots/NAME/merged,
 * with the sandbox's mount points (/proc, /dev, /sys, /tmp) made: what
 * `rund image root-copy NAME` does for rund. */
int img_root_copy_named(img_store *s, const char *name, rr_err *e);
