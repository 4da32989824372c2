/* Imports: an archive is first unpacked (regular files and directories
 * only matter) into images/tmp, then read as a directory: OCI layouts by
 * index.json and digests, docker archives by manifest.json and the config's
 * diff_ids. A plain root filesystem tar is one layer. Imports hold
 * images/gc.lock shared, so collection never takes a layer from under them;
 * nothing is recorded before every blob matched. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "common/util.h"
#include "images/images_internal.h"
#include "images/import_internal.h"

int import_add_id(import_ctx *x, const char *hex, rr_err *e) {
  char **ids = realloc(x->res->ids, (x->res->nids + 1) * sizeof *ids);
  if (!ids)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  x->res->ids = ids;
  if (asprintf(&ids[x->res->nids], "sha256:%s", hex) < 0)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  x->res->nids++;
  return 0;
}

const char *import_arch(void) {
  struct utsname u;
  if (uname(&u) < 0)
    return "amd64";
  if (!strcmp(u.machine, "x86_64"))
    return "amd64";
  if (!strcmp(u.machine, "aarch64"))
    return "arm64";
  return "unknown";
}

int import_layer(import_ctx *x, int fd, const char *hex, int64_t size, bool uncompressed,
                 const char *what, rr_err *e) {
  img_layer_stats st = {0};
  bool made = false;
  if (img_layer_unpack(x->s, fd, hex, size, uncompressed, what, &st, &made, e) < 0)
    return -1;
  x->res->devices_skipped += st.devices_skipped;
  x->res->layers_unpacked += made;
  return 0;
}

/* Record one image (names: the archive's, or the request's). */
int import_commit(import_ctx *x, const char *id_hex, const char *const *names, size_t nnames,
                  json_object *layers, json_object *config, rr_err *e) {
  const char *given[1] = {x->name};
  if (x->name) {
    names = given;
    nnames = 1;
  }
  if (img_store_commit(x->s, id_hex, names, nnames, img_format_name(x->format), layers, config, e) <
      0)
    return -1;
  return import_add_id(x, id_hex, e);
}

/* Which kind of tar fd is: by the names at its top. */
static int import_detect(int fd, const char *path, img_format *ret, rr_err *e) {
  struct archive *a = archive_read_new();
  if (!a)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  archive_read_support_filter_all(a);
  archive_read_support_format_tar(a);
  archive_read_support_format_gnutar(a);
  int r = archive_read_open_fd(a, fd, 128 << 10);
  bool oci = false, docker = false;
  struct archive_entry *en;
  if (r == ARCHIVE_OK) {
    while ((r = archive_read_next_header(a, &en)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
      const char *n = archive_entry_pathname(en);
      if (n && !strncmp(n, "./", 2))
        n += 2;
      if (n && (!strcmp(n, "oci-layout") || !strcmp(n, "index.json")))
        oci = true;
      if (n && !strcmp(n, "manifest.json"))
        docker = true;
    }
  }
  if (r != ARCHIVE_EOF)
    rr_err_set(e, RR_INVALID_ARGUMENT, "\"%s\" is not a readable tar: %s", path,
               archive_error_string(a) ? archive_error_string(a) : "unknown error");
  archive_read_free(a);
  if (r != ARCHIVE_EOF)
    return -1;
  *ret = oci ? IMG_FORMAT_OCI_ARCHIVE : docker ? IMG_FORMAT_DOCKER_ARCHIVE : IMG_FORMAT_ROOTFS;
  if (lseek(fd, 0, SEEK_SET) < 0)
    return rr_err_sys(e, RR_INVALID_ARGUMENT, errno, "\"%s\": cannot seek", path);
  return 0;
}

/* A root filesystem tar: its sha256 names the layer, a made-up config. */
static int import_rootfs(import_ctx *x, int fd, const char *path, rr_err *e) {
  if (!x->name)
    return rr_err_set(e, RR_INVALID_ARGUMENT,
                      "\"%s\" is not an OCI or docker archive; a root filesystem tar needs a "
                      "name (--name NAME[:TAG])",
                      path);
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  _cleanup_free_ unsigned char *buf = malloc(128 << 10);
  if (!md || !buf) {
    EVP_MD_CTX_free(md);
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  }
  EVP_DigestInit_ex(md, EVP_sha256(), NULL);
  ssize_t n;
  while ((n = rr_read(fd, buf, 128 << 10)) > 0)
    EVP_DigestUpdate(md, buf, (size_t)n);
  unsigned char d[32];
  EVP_DigestFinal_ex(md, d, NULL);
  EVP_MD_CTX_free(md);
  if (n < 0 || lseek(fd, 0, SEEK_SET) < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot read \"%s\"", path);
  char hex[65], digest[IMG_DIGEST_LEN + 1];
  img_sha256_hex(d, hex);
  snprintf(digest, sizeof digest, "sha256:%s", hex);
  if (import_layer(x, fd, hex, -1, false, "root filesystem tar", e) < 0)
    return -1;
  json_object *config = json_object_new_object(), *rootfs = json_object_new_object(),
              *diff = json_object_new_array(), *layers = json_object_new_array(),
              *layer = json_object_new_object();
  json_object_object_add(config, "architecture", json_object_new_string(import_arch()));
  json_object_object_add(config, "os", json_object_new_string("linux"));
  json_object_object_add(config, "config", json_object_new_object());
  json_object_array_add(diff, json_object_new_string(digest));
  json_object_object_add(rootfs, "type", json_object_new_string("layers"));
  json_object_object_add(rootfs, "diff_ids", diff);
  json_object_object_add(config, "rootfs", rootfs);
  struct stat st;
  json_object_object_add(layer, "digest", json_object_new_string(digest));
  json_object_object_add(layer, "size",
                         json_object_new_int64(fstat(fd, &st) == 0 ? st.st_size : 0));
  json_object_array_add(layers, layer);
  const char *text = json_object_to_json_string_ext(config, JSON_C_TO_STRING_PLAIN);
  char id[65];
  unsigned char cd[32];
  EVP_Digest(text, strlen(text), cd, NULL, EVP_sha256(), NULL);
  img_sha256_hex(cd, id);
  int r = import_commit(x, id, NULL, 0, layers, config, e);
  json_object_put(config);
  json_object_put(layers);
  return r;
}

/* Unpack an archive's files into images/tmp (devices never made: a blob
 * must be a regular file) and import that directory. */
static int import_archive(import_ctx *x, int fd, const char *path, rr_err *e) {
  char tmp[96];
  if (img_tmp_mkdir(x->s, "archive", tmp, sizeof tmp, e) < 0)
    return -1;
  char sub[128];
  snprintf(sub, sizeof sub, "tmp/%s", tmp);
  int r = -1;
  _cleanup_close_ int dirfd = openat(x->s->dirfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  struct archive *a = archive_read_new();
  if (dirfd < 0)
    rr_err_sys(e, RR_INTERNAL, errno, "cannot open %s/%s", x->s->dir, sub);
  else if (!a)
    rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  else {
    archive_read_support_filter_all(a);
    archive_read_support_format_tar(a);
    archive_read_support_format_gnutar(a);
    img_layer_stats st = {0};
    if (archive_read_open_fd(a, fd, 128 << 10) != ARCHIVE_OK)
      rr_err_set(e, RR_INVALID_ARGUMENT, "\"%s\": %s", path, archive_error_string(a));
    else if (img_layer_extract(a, dirfd, false, path, &st, e) == 0)
      r = x->format == IMG_FORMAT_OCI_ARCHIVE ? import_oci_dir(x, dirfd, e)
                                              : import_docker_dir(x, dirfd, e);
  }
  archive_read_free(a);
  _cleanup_close_ int tmpfd = openat(x->s->dirfd, "tmp", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (tmpfd >= 0)
    img_rmtree_at(tmpfd, tmp);
  return r;
}

static int import_path(import_ctx *x, const char *path, rr_err *e) {
  _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0)
    return rr_err_sys(e, errno == ENOENT ? RR_NOT_FOUND : RR_INVALID_ARGUMENT, errno,
                      "cannot open \"%s\"", path);
  if (S_ISDIR(st.st_mode)) {
    if (x->format != IMG_FORMAT_AUTO && x->format != IMG_FORMAT_OCI)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "\"%s\" is a directory, not a %s", path,
                        img_format_name(x->format));
    x->format = IMG_FORMAT_OCI;
    return import_oci_dir(x, fd, e);
  }
  if (!S_ISREG(st.st_mode))
    return rr_err_set(e, RR_INVALID_ARGUMENT, "\"%s\" is not a file or a directory", path);
  if (x->format == IMG_FORMAT_OCI)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "\"%s\" is a file, not an OCI layout directory",
                      path);
  if (x->format == IMG_FORMAT_AUTO && import_detect(fd, path, &x->format, e) < 0)
    return -1;
  if (x->format == IMG_FORMAT_ROOTFS)
    return import_rootfs(x, fd, path, e);
  return import_archive(x, fd, path, e);
}

int img_import(img_store *s, const char *path, const img_import_opts *o, img_import_result *ret,
               rr_err *e) {
  *ret = (img_import_result){0};
  char name[IMG_NAME_MAX];
  bool is_id;
  if (o->name) {
    if (img_ref_parse(o->name, name, &is_id, e) < 0)
      return -1;
    if (is_id)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "image name \"%s\" is a digest: want NAME[:TAG]",
                        o->name);
  }
  import_ctx x = {.s = s, .res = ret, .format = o->format, .name = o->name ? name : NULL};
  if (flock(s->gc_fd, LOCK_SH) < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot lock %s/gc.lock", s->dir);
  int r = import_path(&x, path, e);
  flock(s->gc_fd, LOCK_UN);
  if (r < 0) {
    /* records are written last: only layers of this import may be left */
    unsigned removed;
    bool busy;
    rr_err ignored = {0};
    img_store_gc(s, &removed, &busy, &ignored);
    img_import_result_free(ret);
  }
  return r;
}

void img_import_result_free(img_import_result *r) {
  for (size_t i = 0; i < r->nids; i++)
    free(r->ids[i]);
  free(r->ids);
  *r = (img_import_result){0};
}
