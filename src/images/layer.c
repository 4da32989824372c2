/* A layer into the store: read once through libarchive, hashed as it is
 * read, unpacked into images/tmp and renamed to layers/HEX only when the
 * whole blob matched its digest (a concurrent import of the same layer
 * loses the rename and drops its copy). */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "images/images_internal.h"

#define LAYER_BUF (128u << 10)

typedef struct hashed_reader {
  int fd;
  struct archive *raw; /* set: hash what it inflates from fd (docker's diff_id) */
  EVP_MD_CTX *md;
  uint64_t total;
  int err; /* errno of a failed read */
  unsigned char buf[LAYER_BUF];
} hashed_reader;

/* The next bytes of the blob: read from fd, or inflated by h->raw. */
static ssize_t hashed_next(hashed_reader *h) {
  if (!h->raw)
    return rr_read(h->fd, h->buf, sizeof h->buf);
  la_ssize_t n = archive_read_data(h->raw, h->buf, sizeof h->buf);
  if (n < 0)
    errno = archive_errno(h->raw) > 0 ? archive_errno(h->raw) : EIO;
  return n;
}

static la_ssize_t hashed_read(struct archive *a, void *data, const void **ret) {
  hashed_reader *h = data;
  ssize_t n = hashed_next(h);
  if (n < 0) {
    h->err = errno;
    if (h->raw)
      archive_set_error(a, errno, "%s", archive_error_string(h->raw));
    else
      archive_set_error(a, errno, "read: %s", strerror(errno));
    return -1;
  }
  EVP_DigestUpdate(h->md, h->buf, (size_t)n);
  h->total += (uint64_t)n;
  *ret = h->buf;
  return n;
}

/* What libarchive did not need (tar padding) is part of the blob too. */
static int hashed_drain(hashed_reader *h, const char *what, rr_err *e) {
  ssize_t n;
  while ((n = hashed_next(h)) > 0) {
    EVP_DigestUpdate(h->md, h->buf, (size_t)n);
    h->total += (uint64_t)n;
  }
  if (n < 0 && h->raw)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: cannot inflate: %s", what,
                      archive_error_string(h->raw) ? archive_error_string(h->raw) : "read error");
  if (n < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "%s: read", what);
  return 0;
}

/* h reads fd through every decompressor libarchive knows (none when the
 * blob is a plain tar): what it hashes is the uncompressed stream. */
static int hashed_inflate_open(hashed_reader *h, const char *what, rr_err *e) {
  struct archive_entry *en;
  if (!(h->raw = archive_read_new()))
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  archive_read_support_filter_all(h->raw);
  archive_read_support_format_raw(h->raw);
  if (archive_read_open_fd(h->raw, h->fd, LAYER_BUF) != ARCHIVE_OK ||
      archive_read_next_header(h->raw, &en) != ARCHIVE_OK)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: %s", what,
                      archive_error_string(h->raw) ? archive_error_string(h->raw) : "cannot read");
  return 0;
}

static int hashed_check(hashed_reader *h, const char *hex, int64_t size, const char *what,
                        rr_err *e) {
  unsigned char md[32];
  unsigned mdlen = 0;
  EVP_DigestFinal_ex(h->md, md, &mdlen);
  char got[65];
  img_sha256_hex(md, got);
  if (strcmp(got, hex))
    return rr_err_set(e, RR_DATA_LOSS,
                      "%s: digest mismatch: want sha256:%s, the content is sha256:%s", what, hex,
                      got);
  if (size >= 0 && h->total != (uint64_t)size)
    return rr_err_set(e, RR_DATA_LOSS, "%s (sha256:%s): size %llu, its descriptor says %lld", what,
                      hex, (unsigned long long)h->total, (long long)size);
  return 0;
}

static int layer_read(img_store *s, hashed_reader *h, int rootfd, const char *what,
                      img_layer_stats *st, rr_err *e) {
  struct archive *a = archive_read_new();
  if (!a)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  archive_read_support_filter_all(a);
  archive_read_support_format_tar(a);
  archive_read_support_format_gnutar(a);
  int r = -1;
  if (archive_read_open(a, h, NULL, hashed_read, NULL) != ARCHIVE_OK)
    rr_err_set(e, RR_INVALID_ARGUMENT, "%s: %s", what,
               h->err ? strerror(h->err) : archive_error_string(a));
  else
    r = img_layer_extract(a, rootfd, rootfd >= 0 && s->is_root, what, st, e);
  archive_read_free(a);
  return r;
}

/* Only check a layer the store has: read it through. */
static int layer_check_only(hashed_reader *h, const char *hex, int64_t size, const char *what,
                            rr_err *e) {
  if (hashed_drain(h, what, e) < 0)
    return -1;
  return hashed_check(h, hex, size, what, e);
}

static int layer_install(img_store *s, const char *tmp, const char *hex, bool *ret_new, rr_err *e) {
  char dst[80];
  snprintf(dst, sizeof dst, "layers/%s", hex);
  char src[PATH_MAX];
  snprintf(src, sizeof src, "tmp/%s", tmp);
  if (renameat(s->dirfd, src, s->dirfd, dst) == 0) {
    *ret_new = true;
    return 0;
  }
  if (errno != EEXIST && errno != ENOTEMPTY)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot move layer sha256:%s into the store", hex);
  return 0; /* another import made it meanwhile: ours is dropped by the caller */
}

int img_layer_unpack(img_store *s, int fd, const char *hex, int64_t size, bool uncompressed,
                     const char *what, img_layer_stats *st, bool *ret_new, rr_err *e) {
  *ret_new = false;
  _cleanup_free_ hashed_reader *h = calloc(1, sizeof *h);
  if (!h || !(h->md = EVP_MD_CTX_new())) {
    free(TAKE_PTR(h));
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  }
  h->fd = fd;
  EVP_DigestInit_ex(h->md, EVP_sha256(), NULL);
  if (uncompressed && hashed_inflate_open(h, what, e) < 0) {
    archive_read_free(h->raw);
    EVP_MD_CTX_free(h->md);
    return -1;
  }
  char have[80];
  snprintf(have, sizeof have, "layers/%s", hex);
  struct stat sst;
  int r;
  if (fstatat(s->dirfd, have, &sst, AT_SYMLINK_NOFOLLOW) == 0) {
    r = layer_check_only(h, hex, size, what, e);
    archive_read_free(h->raw);
    EVP_MD_CTX_free(h->md);
    return r;
  }
  char tmp[96];
  r = img_tmp_mkdir(s, hex, tmp, sizeof tmp, e);
  if (r == 0) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "tmp/%s", tmp);
    _cleanup_close_ int rootfd = openat(s->dirfd, path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
      r = rr_err_sys(e, RR_INTERNAL, errno, "cannot open images/%s", path);
    if (r == 0)
      r = layer_read(s, h, rootfd, what, st, e);
    if (r == 0 && fchmodat(rootfd, ".", 0755, 0) < 0 && errno != EBADF)
      r = rr_err_sys(e, RR_INTERNAL, errno, "cannot chmod images/%s", path);
    if (r == 0)
      r = hashed_drain(h, what, e);
    if (r == 0)
      r = hashed_check(h, hex, size, what, e);
    if (r == 0)
      r = layer_install(s, tmp, hex, ret_new, e);
    if (!*ret_new) {
      int saved = errno;
      _cleanup_close_ int tmpfd = openat(s->dirfd, "tmp", O_PATH | O_DIRECTORY | O_CLOEXEC);
      if (tmpfd >= 0)
        img_rmtree_at(tmpfd, tmp);
      errno = saved;
    }
  }
  archive_read_free(h->raw);
  EVP_MD_CTX_free(h->md);
  return r;
}
