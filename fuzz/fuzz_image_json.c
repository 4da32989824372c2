/* The JSON of an image as an import reads it: an OCI layout's index.json,
 * nested indexes, manifests and configs, or a docker-archive's
 * manifest.json and configs (import_oci_dir, import_docker_dir), into a
 * scratch store. Refused with a code and a reason, or recorded so that the
 * store finds every id it returned; never a crash or a leak.
 *
 * Input: one byte (even: an OCI layout, odd: a docker-archive), then up to
 * 8 documents separated by "\n==\n". Document 0 is index.json (or
 * manifest.json); document i >= 1 is written as blobs/sha256/HEX (HEX its
 * sha256) and as the file "i". In document i, "@j" (j > i, one digit) is
 * replaced by the hex digest of document j first, so the fuzzer can name
 * blobs by digest and reach manifests, configs and layers. */
#include <fcntl.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "images/import_internal.h"

#define MAX_DOCS 8
#define SEP "\n==\n"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct doc {
  const uint8_t *p;
  size_t n;
  uint8_t *out; /* placeholders replaced */
  size_t nout;
  char hex[65];
} doc;

static void doc_expand(doc *docs, size_t ndocs, size_t i) {
  doc *d = &docs[i];
  d->out = malloc(d->n * 32 + 1); /* "@j" (2 bytes) grows to 64 */
  if (!d->out)
    abort();
  size_t o = 0;
  for (size_t k = 0; k < d->n; k++) {
    if (d->p[k] == '@' && k + 1 < d->n && d->p[k + 1] >= '1' && d->p[k + 1] <= '9') {
      size_t j = (size_t)(d->p[k + 1] - '0');
      if (j > i && j < ndocs) {
        memcpy(d->out + o, docs[j].hex, 64);
        o += 64;
        k++;
        continue;
      }
    }
    d->out[o++] = d->p[k];
  }
  d->nout = o;
  unsigned char md[32];
  SHA256(d->out, d->nout, md);
  img_sha256_hex(md, d->hex);
}

static void write_at(int dirfd, const char *name, const uint8_t *p, size_t n) {
  int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0 || (n && write(fd, p, n) != (ssize_t)n))
    abort();
  close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char base[] = "/tmp/fuzz_image_json.XXXXXX";
  static int basefd = -1;
  if (basefd < 0) {
    if (!mkdtemp(base))
      abort();
    basefd = open(base, O_PATH | O_DIRECTORY | O_CLOEXEC);
  }
  if (size < 1 || size > (1u << 20))
    return 0;
  bool docker = data[0] & 1;
  doc docs[MAX_DOCS] = {0};
  size_t ndocs = 0;
  const uint8_t *p = data + 1, *end = data + size;
  while (ndocs < MAX_DOCS) {
    const uint8_t *sep = memmem(p, (size_t)(end - p), SEP, strlen(SEP));
    docs[ndocs].p = p;
    docs[ndocs].n = sep ? (size_t)(sep - p) : (size_t)(end - p);
    ndocs++;
    if (!sep)
      break;
    p = sep + strlen(SEP);
  }
  for (size_t i = ndocs; i-- > 0;)
    doc_expand(docs, ndocs, i);

  if (mkdirat(basefd, "in", 0700) < 0 || mkdirat(basefd, "in/blobs", 0700) < 0 ||
      mkdirat(basefd, "in/blobs/sha256", 0700) < 0)
    abort();
  int in = openat(basefd, "in", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (in < 0)
    abort();
  write_at(in, docker ? "manifest.json" : "index.json", docs[0].out, docs[0].nout);
  for (size_t i = 1; i < ndocs; i++) {
    char name[96];
    snprintf(name, sizeof name, "blobs/sha256/%s", docs[i].hex);
    write_at(in, name, docs[i].out, docs[i].nout);
    snprintf(name, sizeof name, "%zu", i);
    write_at(in, name, docs[i].out, docs[i].nout);
  }

  char state[sizeof base + 8];
  snprintf(state, sizeof state, "%s/st", base);
  img_store *s;
  rr_err e = {0};
  if (img_store_open(state, &s, &e) < 0)
    abort();
  img_import_result res = {0};
  import_ctx x = {
      .s = s, .res = &res, .format = docker ? IMG_FORMAT_DOCKER_ARCHIVE : IMG_FORMAT_OCI};
  int r = docker ? import_docker_dir(&x, in, &e) : import_oci_dir(&x, in, &e);
  if (r < 0 && (!e.code || !e.msg[0]))
    abort(); /* refused without saying why */
  for (size_t i = 0; r == 0 && i < res.nids; i++) {
    img_record rec;
    rr_err fe = {0};
    if (img_store_find(s, res.ids[i], &rec, &fe) < 0)
      abort(); /* imported but not found */
    free(rec.json);
  }
  img_import_result_free(&res);
  img_store_free(s);
  close(in);
  for (size_t i = 0; i < ndocs; i++)
    free(docs[i].out);
  if (img_rmtree_at(basefd, "in") < 0 || img_rmtree_at(basefd, "st") < 0)
    abort();
  return 0;
}
