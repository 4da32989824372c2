/* OCI image layouts and docker archives, read from a directory: every
 * blob by a path below it that follows no symlink, every JSON document
 * bounded, every digest checked before anything is recorded. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "images/import_internal.h"

#define IMPORT_MAX_IMAGES 64
#define IMPORT_MAX_LAYERS 128
#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"

/* A regular file below dirfd (a blob may not be a device or a fifo). */
static int open_file_below(int dirfd, const char *path, rr_err *e) {
  int fd = img_open_below(dirfd, path, O_RDONLY, e);
  if (fd < 0)
    return -1;
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return rr_err_set(e, RR_INVALID_ARGUMENT, "\"%.200s\" is not a regular file", path);
  }
  return fd;
}

/* A descriptor's digest and size. */
static int desc_parse(json_object *d, const char *what, char hex[65], int64_t *size, rr_err *e) {
  json_object *sz;
  if (!d || !json_object_is_type(d, json_type_object))
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: not a descriptor object", what);
  if (img_digest_parse(img_json_str(d, "digest"), what, hex, e) < 0)
    return -1;
  *size = -1;
  if (json_object_object_get_ex(d, "size", &sz)) {
    if (!json_object_is_type(sz, json_type_int) || json_object_get_int64(sz) < 0)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: bad size", what);
    *size = json_object_get_int64(sz);
  }
  return 0;
}

static int blob_json(int dirfd, const char *hex, int64_t size, const char *what, json_object **ret,
                     rr_err *e) {
  char path[96];
  snprintf(path, sizeof path, "blobs/sha256/%s", hex);
  _cleanup_close_ int fd = open_file_below(dirfd, path, e);
  if (fd < 0)
    return rr_err_wrap(e, "%s sha256:%s", what, hex);
  char label[128];
  snprintf(label, sizeof label, "%s sha256:%.12s", what, hex);
  return img_json_read_fd(fd, label, hex, size, ret, NULL, e);
}

/* A reference from an archive into a name we keep ("docker.io/library/"
 * dropped); 0 when it is no valid name (the image is then unnamed). */
static int archive_name(const char *ref, char out[IMG_NAME_MAX]) {
  bool is_id;
  rr_err ignored = {0};
  if (!ref)
    return 0;
  if (!strncmp(ref, "docker.io/library/", 18))
    ref += 18;
  return img_ref_parse(ref, out, &is_id, &ignored) == 0 && !is_id;
}

/* The layers of an image manifest, unpacked; their descriptors into out. */
static int oci_layers(import_ctx *x, int dirfd, json_object *layers, json_object *out, rr_err *e) {
  size_t n = layers && json_object_is_type(layers, json_type_array)
                 ? json_object_array_length(layers)
                 : SIZE_MAX;
  if (n == SIZE_MAX || n > IMPORT_MAX_LAYERS)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "manifest: layers must be an array of at most %d",
                      IMPORT_MAX_LAYERS);
  for (size_t i = 0; i < n; i++) {
    char what[48], hex[65], path[96];
    int64_t size;
    snprintf(what, sizeof what, "layer %zu", i);
    if (desc_parse(json_object_array_get_idx(layers, i), what, hex, &size, e) < 0)
      return -1;
    snprintf(path, sizeof path, "blobs/sha256/%s", hex);
    _cleanup_close_ int fd = open_file_below(dirfd, path, e);
    if (fd < 0)
      return rr_err_wrap(e, "layer sha256:%s", hex);
    snprintf(what, sizeof what, "layer sha256:%.12s", hex);
    if (import_layer(x, fd, hex, size, false, what, e) < 0)
      return -1;
    json_object *l = json_object_new_object();
    char digest[IMG_DIGEST_LEN + 1];
    snprintf(digest, sizeof digest, "sha256:%s", hex);
    json_object_object_add(l, "digest", json_object_new_string(digest));
    json_object_object_add(l, "size", json_object_new_int64(size));
    json_object_array_add(out, l);
  }
  return 0;
}

static int oci_manifest(import_ctx *x, int dirfd, const char *hex, int64_t size, const char *name,
                        rr_err *e) {
  json_object *m = NULL, *config = NULL, *layers = json_object_new_array();
  char chex[65];
  int64_t csize;
  int r = blob_json(dirfd, hex, size, "manifest", &m, e);
  if (r == 0)
    r = desc_parse(json_object_object_get(m, "config"), "manifest config", chex, &csize, e);
  if (r == 0)
    r = blob_json(dirfd, chex, csize, "config", &config, e);
  if (r == 0 && !json_object_is_type(config, json_type_object))
    r = rr_err_set(e, RR_INVALID_ARGUMENT, "config sha256:%s: not an object", chex);
  if (r == 0)
    r = oci_layers(x, dirfd, json_object_object_get(m, "layers"), layers, e);
  if (r == 0)
    r = import_commit(x, chex, (const char *const *)&name, name ? 1 : 0, layers, config, e);
  json_object_put(m);
  json_object_put(config);
  json_object_put(layers);
  return r;
}

/* An index inside the layout (multi-platform): its entry for this machine. */
static int oci_pick_platform(int dirfd, json_object *d, json_object **ret_index,
                             json_object **ret_desc, rr_err *e) {
  char hex[65];
  int64_t size;
  if (desc_parse(d, "index entry", hex, &size, e) < 0 ||
      blob_json(dirfd, hex, size, "index", ret_index, e) < 0)
    return -1;
  json_object *ms = json_object_object_get(*ret_index, "manifests");
  for (size_t i = 0;
       ms && json_object_is_type(ms, json_type_array) && i < json_object_array_length(ms); i++) {
    json_object *m = json_object_array_get_idx(ms, i);
    json_object *p = json_object_object_get(m, "platform");
    const char *arch = img_json_str(p, "architecture"), *os = img_json_str(p, "os");
    if (arch && os && !strcmp(arch, import_arch()) && !strcmp(os, "linux")) {
      *ret_desc = m;
      return 0;
    }
  }
  return rr_err_set(e, RR_INVALID_ARGUMENT, "index sha256:%s has no image for linux/%s", hex,
                    import_arch());
}

static int oci_entry(import_ctx *x, int dirfd, json_object *d, rr_err *e) {
  json_object *ann = json_object_object_get(d, "annotations");
  char name[IMG_NAME_MAX], *namep = NULL;
  if (archive_name(img_json_str(ann, "io.containerd.image.name"), name) ||
      archive_name(img_json_str(ann, "org.opencontainers.image.ref.name"), name))
    namep = name;
  const char *mt = img_json_str(d, "mediaType");
  json_object *index = NULL;
  if (mt && (!strcmp(mt, MT_OCI_INDEX) || !strcmp(mt, MT_DOCKER_LIST)) &&
      oci_pick_platform(dirfd, d, &index, &d, e) < 0) {
    json_object_put(index);
    return -1;
  }
  char hex[65];
  int64_t size;
  int r = desc_parse(d, "index entry", hex, &size, e);
  if (r == 0)
    r = oci_manifest(x, dirfd, hex, size, namep, e);
  json_object_put(index);
  return r;
}

int import_oci_dir(import_ctx *x, int dirfd, rr_err *e) {
  _cleanup_close_ int fd = open_file_below(dirfd, "index.json", e);
  if (fd < 0)
    return rr_err_wrap(e, "not an OCI image layout");
  json_object *index;
  if (img_json_read_fd(fd, "index.json", NULL, -1, &index, NULL, e) < 0)
    return -1;
  json_object *ms = json_object_object_get(index, "manifests");
  size_t n = ms && json_object_is_type(ms, json_type_array) ? json_object_array_length(ms) : 0;
  int r = 0;
  if (n == 0 || n > IMPORT_MAX_IMAGES)
    r = rr_err_set(e, RR_INVALID_ARGUMENT, "index.json: want 1 to %d manifests, not %zu",
                   IMPORT_MAX_IMAGES, n);
  else if (n > 1 && x->name)
    r = rr_err_set(e, RR_INVALID_ARGUMENT,
                   "the archive holds %zu images: a name can be given to one only", n);
  for (size_t i = 0; r == 0 && i < n; i++)
    r = oci_entry(x, dirfd, json_object_array_get_idx(ms, i), e);
  json_object_put(index);
  return r;
}

/* docker-archive: the config's sha256 is the image id (and its file's
 * name when that is HEX.json); each layer tar hashes to its diff_id. */
static int docker_config(int dirfd, const char *path, char hex[65], json_object **ret, rr_err *e) {
  _cleanup_close_ int fd = open_file_below(dirfd, path, e);
  if (fd < 0)
    return rr_err_wrap(e, "docker-archive config");
  _cleanup_free_ char *raw = NULL;
  if (img_json_read_fd(fd, path, NULL, -1, ret, &raw, e) < 0)
    return -1;
  unsigned char md[32];
  EVP_Digest(raw, strlen(raw), md, NULL, EVP_sha256(), NULL);
  img_sha256_hex(md, hex);
  const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
  if (strlen(base) == 69 && !strcmp(base + 64, ".json") && strncmp(base, hex, 64))
    return rr_err_set(e, RR_DATA_LOSS,
                      "config \"%s\": digest mismatch: want sha256:%.64s, the content is "
                      "sha256:%s",
                      path, base, hex);
  return 0;
}

static int docker_layers(import_ctx *x, int dirfd, json_object *paths, json_object *diff_ids,
                         json_object *out, rr_err *e) {
  size_t n = paths && json_object_is_type(paths, json_type_array) ? json_object_array_length(paths)
                                                                  : SIZE_MAX;
  if (n == SIZE_MAX || n > IMPORT_MAX_LAYERS || !diff_ids ||
      !json_object_is_type(diff_ids, json_type_array) || json_object_array_length(diff_ids) != n)
    return rr_err_set(e, RR_INVALID_ARGUMENT,
                      "manifest.json: Layers must match the config's rootfs.diff_ids");
  for (size_t i = 0; i < n; i++) {
    const char *path = json_object_get_string(json_object_array_get_idx(paths, i));
    char hex[65], what[48];
    snprintf(what, sizeof what, "config rootfs.diff_ids[%zu]", i);
    if (img_digest_parse(json_object_get_string(json_object_array_get_idx(diff_ids, i)), what, hex,
                         e) < 0)
      return -1;
    _cleanup_close_ int fd = open_file_below(dirfd, path ? path : "", e);
    if (fd < 0)
      return rr_err_wrap(e, "layer %zu", i);
    snprintf(what, sizeof what, "layer sha256:%.12s", hex);
    /* its diff_id names the tar: a gzip or zstd layer is hashed inflated */
    if (import_layer(x, fd, hex, -1, true, what, e) < 0)
      return -1;
    json_object *l = json_object_new_object();
    char digest[IMG_DIGEST_LEN + 1];
    struct stat st;
    snprintf(digest, sizeof digest, "sha256:%s", hex);
    json_object_object_add(l, "digest", json_object_new_string(digest));
    json_object_object_add(l, "size", json_object_new_int64(fstat(fd, &st) ? 0 : st.st_size));
    json_object_array_add(out, l);
  }
  return 0;
}

static int docker_entry(import_ctx *x, int dirfd, json_object *m, rr_err *e) {
  const char *cpath = img_json_str(m, "Config");
  if (!cpath)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "manifest.json: an entry without Config");
  char hex[65];
  json_object *config = NULL, *layers = json_object_new_array();
  int r = docker_config(dirfd, cpath, hex, &config, e);
  if (r == 0 && !json_object_is_type(config, json_type_object))
    r = rr_err_set(e, RR_INVALID_ARGUMENT, "config \"%s\": not an object", cpath);
  json_object *rootfs = r == 0 ? json_object_object_get(config, "rootfs") : NULL;
  if (r == 0)
    r = docker_layers(x, dirfd, json_object_object_get(m, "Layers"),
                      json_object_object_get(rootfs, "diff_ids"), layers, e);
  json_object *tags = json_object_object_get(m, "RepoTags");
  size_t nt =
      tags && json_object_is_type(tags, json_type_array) ? json_object_array_length(tags) : 0;
  char names[8][IMG_NAME_MAX];
  const char *np[8];
  size_t nn = 0;
  for (size_t i = 0; i < nt && nn < 8; i++)
    if (archive_name(json_object_get_string(json_object_array_get_idx(tags, i)), names[nn]))
      np[nn] = names[nn], nn++;
  if (r == 0)
    r = import_commit(x, hex, np, nn, layers, config, e);
  json_object_put(config);
  json_object_put(layers);
  return r;
}

int import_docker_dir(import_ctx *x, int dirfd, rr_err *e) {
  _cleanup_close_ int fd = open_file_below(dirfd, "manifest.json", e);
  if (fd < 0)
    return rr_err_wrap(e, "not a docker archive");
  json_object *ms;
  if (img_json_read_fd(fd, "manifest.json", NULL, -1, &ms, NULL, e) < 0)
    return -1;
  size_t n = json_object_is_type(ms, json_type_array) ? json_object_array_length(ms) : 0;
  int r = 0;
  if (n == 0 || n > IMPORT_MAX_IMAGES)
    r = rr_err_set(e, RR_INVALID_ARGUMENT, "manifest.json: want an array of 1 to %d images",
                   IMPORT_MAX_IMAGES);
  else if (n > 1 && x->name)
    r = rr_err_set(e, RR_INVALID_ARGUMENT,
                   "the archive holds %zu images: a name can be given to one only", n);
  for (size_t i = 0; r == 0 && i < n; i++)
    r = docker_entry(x, dirfd, json_object_array_get_idx(ms, i), e);
  json_object_put(ms);
  return r;
}
