/* Garbage collection: layers no image record names, and what imports left
 * in images/tmp (a crash, a kill). Runs only when no import holds
 * images/gc.lock; a layer goes by rename into tmp first, so a half-removed
 * layer is never visible under layers/. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "common/util.h"
#include "images/images_internal.h"

typedef struct digest_set {
  char (*hex)[65];
  size_t n, cap;
} digest_set;

static int set_add(digest_set *set, const char *hex) {
  if (set->n == set->cap) {
    size_t cap = set->cap ? set->cap * 2 : 64;
    char(*more)[65] = realloc(set->hex, cap * sizeof *more);
    if (!more)
      return -1;
    set->hex = more;
    set->cap = cap;
  }
  snprintf(set->hex[set->n++], 65, "%s", hex);
  return 0;
}

static bool set_has(const digest_set *set, const char *hex) {
  for (size_t i = 0; i < set->n; i++)
    if (!strcmp(set->hex[i], hex))
      return true;
  return false;
}

/* The layers every record names. */
static int gc_referenced(img_store *s, digest_set *set, rr_err *e) {
  img_record *recs;
  size_t n;
  if (img_store_list(s, &recs, &n, e) < 0)
    return -1;
  int r = 0;
  for (size_t i = 0; r == 0 && i < n; i++) {
    json_object *o = json_tokener_parse(recs[i].json);
    json_object *layers = o ? json_object_object_get(o, "layers") : NULL;
    if (!o || !layers) {
      /* a record we cannot read keeps everything: never collect blindly */
      r = rr_err_set(e, RR_DATA_LOSS, "image record %s is unreadable: nothing collected",
                     recs[i].id);
    }
    for (size_t j = 0; r == 0 && layers && j < json_object_array_length(layers); j++) {
      const char *d = img_json_str(json_object_array_get_idx(layers, j), "digest");
      if (d && !strncmp(d, "sha256:", 7) && set_add(set, d + 7) < 0)
        r = rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
    }
    json_object_put(o);
  }
  img_records_free(recs, n);
  return r;
}

static int gc_sweep_dir(img_store *s, const char *sub, const digest_set *keep, unsigned *removed,
                        rr_err *e) {
  int fd = openat(s->dirfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
  if (!d) {
    rr_closep(&fd);
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot read %s/%s", s->dir, sub);
  }
  _cleanup_close_ int tmpfd = openat(s->dirfd, "tmp", O_PATH | O_DIRECTORY | O_CLOEXEC);
  struct dirent *de;
  int r = 0;
  while ((de = readdir(d))) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
      continue;
    if (keep && set_has(keep, de->d_name))
      continue;
    if (keep) { /* a layer: out of layers/ at once, then removed */
      char dst[128];
      snprintf(dst, sizeof dst, "gc-%.64s", de->d_name);
      if (renameat(dirfd(d), de->d_name, tmpfd, dst) < 0 || img_rmtree_at(tmpfd, dst) < 0) {
        r = rr_err_sys(e, RR_INTERNAL, errno, "cannot remove layer %s", de->d_name);
        continue;
      }
      (*removed)++;
    } else if (img_rmtree_at(dirfd(d), de->d_name) < 0)
      r = rr_err_sys(e, RR_INTERNAL, errno, "cannot remove %s/tmp/%s", s->dir, de->d_name);
  }
  closedir(d);
  return r;
}

/* The layers commands use now (roots/ID/layers, one digest a line). */
static int gc_roots(img_store *s, digest_set *set, rr_err *e) {
  int fd = openat(s->dirfd, "roots", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
  if (!d) {
    rr_closep(&fd);
    return errno == ENOENT ? 0 : rr_err_sys(e, RR_INTERNAL, errno, "cannot read %s/roots", s->dir);
  }
  struct dirent *de;
  int r = 0;
  while (r == 0 && (de = readdir(d))) {
    if (de->d_name[0] == '.')
      continue;
    char path[512], line[128];
    snprintf(path, sizeof path, "%.200s/layers", de->d_name);
    int lfd = openat(dirfd(d), path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    FILE *f = lfd >= 0 ? fdopen(lfd, "r") : NULL;
    if (!f) {
      rr_closep(&lfd);
      continue; /* being made or released */
    }
    while (r == 0 && fgets(line, sizeof line, f))
      if (!strncmp(line, "sha256:", 7) && strlen(line) >= 71) {
        line[71] = 0;
        if (set_add(set, line + 7) < 0)
          r = rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
      }
    fclose(f);
  }
  closedir(d);
  return r;
}

int img_store_gc(img_store *s, unsigned *ret_removed, bool *ret_busy, rr_err *e) {
  *ret_removed = 0;
  *ret_busy = false;
  if (flock(s->gc_fd, LOCK_EX | LOCK_NB) < 0) {
    if (errno == EWOULDBLOCK) {
      *ret_busy = true;
      return 0;
    }
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot lock %s/gc.lock", s->dir);
  }
  if (flock(s->lock_fd, LOCK_EX) < 0) {
    flock(s->gc_fd, LOCK_UN);
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot lock %s/lock", s->dir);
  }
  digest_set keep = {0};
  int r = gc_referenced(s, &keep, e);
  if (r == 0)
    r = gc_roots(s, &keep, e);
  if (r == 0)
    r = gc_sweep_dir(s, "tmp", NULL, ret_removed, e);
  if (r == 0)
    r = gc_sweep_dir(s, "layers", &keep, ret_removed, e);
  free(keep.hex);
  flock(s->lock_fd, LOCK_UN);
  flock(s->gc_fd, LOCK_UN);
  return r;
}
