/* The store's directories, locks and image records. Records change under
 * images/lock (LOCK_EX, short); layers are collected only when no import
 * holds images/gc.lock, so an import never loses a layer it counts on. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "images/images_internal.h"

int img_rmtree_at(int at, const char *name) {
  if (unlinkat(at, name, 0) == 0 || errno == ENOENT)
    return 0;
  if (errno != EISDIR && errno != EPERM)
    return -1;
  int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return -1;
  DIR *d = fdopendir(fd);
  if (!d) {
    close(fd);
    return -1;
  }
  struct dirent *de;
  int r = 0;
  while ((de = readdir(d))) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
      continue;
    if (img_rmtree_at(dirfd(d), de->d_name) < 0)
      r = -1;
  }
  int saved = errno;
  closedir(d);
  errno = saved;
  if (r < 0)
    return -1;
  return unlinkat(at, name, AT_REMOVEDIR) < 0 && errno != ENOENT ? -1 : 0;
}

static int store_lock_open(img_store *s, const char *name, int *ret, rr_err *e) {
  *ret = openat(s->dirfd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (*ret < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot open %s/%s", s->dir, name);
  return 0;
}

int img_store_open(const char *state_dir, img_store **ret, rr_err *e) {
  img_store *s = calloc(1, sizeof *s);
  if (!s || asprintf(&s->dir, "%s/images", state_dir) < 0) {
    free(s);
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  }
  s->dirfd = s->lock_fd = s->gc_fd = -1;
  s->is_root = geteuid() == 0;
  if (rr_mkdirs(s->dir, e) < 0)
    goto fail;
  s->dirfd = open(s->dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (s->dirfd < 0) {
    rr_err_sys(e, RR_INTERNAL, errno, "cannot open %s", s->dir);
    goto fail;
  }
  for (const char *const *d =
           (const char *const[]){"images", "layers", "tmp", "uploads", "roots", NULL};
       *d; d++)
    if (mkdirat(s->dirfd, *d, 0700) < 0 && errno != EEXIST) {
      rr_err_sys(e, RR_INTERNAL, errno, "cannot make %s/%s", s->dir, *d);
      goto fail;
    }
  if (store_lock_open(s, "lock", &s->lock_fd, e) < 0 ||
      store_lock_open(s, "gc.lock", &s->gc_fd, e) < 0)
    goto fail;
  *ret = s;
  return 0;
fail:
  img_store_free(s);
  return -1;
}

void img_store_free(img_store *s) {
  if (!s)
    return;
  rr_closep(&s->dirfd);
  rr_closep(&s->lock_fd);
  rr_closep(&s->gc_fd);
  free(s->dir);
  free(s);
}

const char *img_store_dir(const img_store *s) { return s->dir; }

int img_tmp_mkdir(img_store *s, const char *prefix, char *name, size_t n, rr_err *e) {
  static const char chars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  for (int tries = 0; tries < 100; tries++) {
    unsigned char rnd[8];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || rr_read(fd, rnd, sizeof rnd) != (ssize_t)sizeof rnd) {
      rr_closep(&fd);
      return rr_err_sys(e, RR_INTERNAL, errno, "cannot read /dev/urandom");
    }
    close(fd);
    char suffix[9];
    for (int i = 0; i < 8; i++)
      suffix[i] = chars[rnd[i] % (sizeof chars - 1)];
    suffix[8] = 0;
    snprintf(name, n, "%.12s-%s", prefix, suffix);
    char path[128];
    snprintf(path, sizeof path, "tmp/%s", name);
    if (mkdirat(s->dirfd, path, 0700) == 0)
      return 0;
    if (errno != EEXIST)
      return rr_err_sys(e, errno == ENOSPC ? RR_RESOURCE_EXHAUSTED : RR_INTERNAL, errno,
                        "cannot make %s/%s", s->dir, path);
  }
  return rr_err_set(e, RR_INTERNAL, "cannot make a temporary directory in %s/tmp", s->dir);
}

/* Every record file's id hex, sorted. */
static int store_ids(img_store *s, char (**ret)[65], size_t *ret_n, rr_err *e) {
  int fd = openat(s->dirfd, "images", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
  if (!d) {
    rr_closep(&fd);
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot read %s/images", s->dir);
  }
  char(*ids)[65] = NULL;
  size_t n = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    size_t len = strlen(de->d_name);
    if (len != 69 || strcmp(de->d_name + 64, ".json"))
      continue;
    char(*more)[65] = realloc(ids, (n + 1) * sizeof *ids);
    if (!more) {
      free(ids);
      closedir(d);
      return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
    }
    ids = more;
    memcpy(ids[n], de->d_name, 64);
    ids[n++][64] = 0;
  }
  closedir(d);
  if (n > 1)
    qsort(ids, n, sizeof *ids, (int (*)(const void *, const void *))strcmp);
  *ret = ids;
  *ret_n = n;
  return 0;
}

static int record_load(img_store *s, const char *hex, json_object **ret, char **ret_raw,
                       rr_err *e) {
  char path[96];
  snprintf(path, sizeof path, "images/%s.json", hex);
  _cleanup_close_ int fd = openat(s->dirfd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return rr_err_sys(e, errno == ENOENT ? RR_NOT_FOUND : RR_INTERNAL, errno,
                      "cannot open image record %s/%s", s->dir, path);
  return img_json_read_fd(fd, path, NULL, -1, ret, ret_raw, e);
}

static int record_write(img_store *s, const char *hex, json_object *rec, rr_err *e) {
  char path[96], tmp[112];
  snprintf(path, sizeof path, "images/%s.json", hex);
  snprintf(tmp, sizeof tmp, "images/.%s.tmp", hex);
  const char *text = json_object_to_json_string_ext(rec, JSON_C_TO_STRING_PLAIN);
  _cleanup_close_ int fd =
      openat(s->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0 || rr_write_all(fd, text, strlen(text)) < 0 || fsync(fd) < 0 ||
      renameat(s->dirfd, tmp, s->dirfd, path) < 0) {
    int err = errno;
    unlinkat(s->dirfd, tmp, 0);
    return rr_err_sys(e, err == ENOSPC ? RR_RESOURCE_EXHAUSTED : RR_INTERNAL, err,
                      "cannot write image record %s/%s", s->dir, path);
  }
  return 0;
}

static void record_unlink(img_store *s, const char *hex) {
  char path[96];
  snprintf(path, sizeof path, "images/%s.json", hex);
  unlinkat(s->dirfd, path, 0);
}

static bool names_has(json_object *names, const char *name) {
  for (size_t i = 0; names && i < json_object_array_length(names); i++)
    if (!strcmp(json_object_get_string(json_object_array_get_idx(names, i)), name))
      return true;
  return false;
}

/* Take name from every other record; one left nameless goes. */
static int store_untag_others(img_store *s, const char *keep_hex, const char *name, rr_err *e) {
  char(*ids)[65];
  size_t n;
  if (store_ids(s, &ids, &n, e) < 0)
    return -1;
  int r = 0;
  for (size_t i = 0; r == 0 && i < n; i++) {
    if (!strcmp(ids[i], keep_hex))
      continue;
    json_object *rec;
    rr_err ignored = {0};
    if (record_load(s, ids[i], &rec, NULL, &ignored) < 0)
      continue;
    json_object *names = json_object_object_get(rec, "names");
    if (names_has(names, name)) {
      json_object *kept = json_object_new_array();
      for (size_t j = 0; j < json_object_array_length(names); j++) {
        json_object *v = json_object_array_get_idx(names, j);
        if (strcmp(json_object_get_string(v), name))
          json_object_array_add(kept, json_object_get(v));
      }
      json_object_object_add(rec, "names", kept);
      if (json_object_array_length(kept) == 0)
        record_unlink(s, ids[i]);
      else
        r = record_write(s, ids[i], rec, e);
    }
    json_object_put(rec);
  }
  free(ids);
  return r;
}

static void iso_now(char *buf, size_t n) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int store_commit_locked(img_store *s, const char *id_hex, const char *const *names,
                               size_t nnames, const char *format, json_object *layers,
                               json_object *config, rr_err *e) {
  json_object *old = NULL;
  rr_err ignored = {0};
  json_object *all = json_object_new_array();
  if (record_load(s, id_hex, &old, NULL, &ignored) == 0) {
    json_object *on = json_object_object_get(old, "names");
    for (size_t i = 0; on && i < json_object_array_length(on); i++)
      json_object_array_add(all, json_object_get(json_object_array_get_idx(on, i)));
  }
  for (size_t i = 0; i < nnames; i++)
    if (!names_has(all, names[i]))
      json_object_array_add(all, json_object_new_string(names[i]));
  char id[IMG_DIGEST_LEN + 1], created[32];
  snprintf(id, sizeof id, "sha256:%s", id_hex);
  iso_now(created, sizeof created);
  json_object *rec = json_object_new_object();
  json_object_object_add(rec, "id", json_object_new_string(id));
  json_object_object_add(rec, "names", all);
  const char *oc = old ? img_json_str(old, "created") : NULL;
  json_object_object_add(rec, "created", json_object_new_string(oc ? oc : created));
  json_object_object_add(rec, "format", json_object_new_string(format));
  json_object_object_add(rec, "layers", json_object_get(layers));
  json_object_object_add(rec, "config", json_object_get(config));
  json_object_put(old);
  int r = 0;
  for (size_t i = 0; r == 0 && i < nnames; i++)
    r = store_untag_others(s, id_hex, names[i], e);
  if (r == 0)
    r = record_write(s, id_hex, rec, e);
  json_object_put(rec);
  return r;
}

int img_store_commit(img_store *s, const char *id_hex, const char *const *names, size_t nnames,
                     const char *format, json_object *layers, json_object *config, rr_err *e) {
  if (flock(s->lock_fd, LOCK_EX) < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot lock %s/lock", s->dir);
  int r = store_commit_locked(s, id_hex, names, nnames, format, layers, config, e);
  flock(s->lock_fd, LOCK_UN);
  return r;
}

int img_store_list(img_store *s, img_record **ret, size_t *ret_n, rr_err *e) {
  char(*ids)[65];
  size_t n;
  if (store_ids(s, &ids, &n, e) < 0)
    return -1;
  img_record *recs = calloc(n ? n : 1, sizeof *recs);
  if (!recs) {
    free(ids);
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  }
  size_t got = 0;
  for (size_t i = 0; i < n; i++) {
    json_object *o;
    rr_err ignored = {0};
    if (record_load(s, ids[i], &o, &recs[got].json, &ignored) < 0)
      continue; /* removed meanwhile */
    json_object_put(o);
    snprintf(recs[got++].id, sizeof recs->id, "sha256:%s", ids[i]);
  }
  free(ids);
  *ret = recs;
  *ret_n = got;
  return 0;
}

void img_records_free(img_record *r, size_t n) {
  for (size_t i = 0; r && i < n; i++)
    free(r[i].json);
  free(r);
}

/* The id hex of ref's image into hex. */
static int store_resolve(img_store *s, const char *ref, char hex[65], rr_err *e) {
  char norm[IMG_NAME_MAX];
  bool is_id;
  if (img_ref_parse(ref, norm, &is_id, e) < 0)
    return -1;
  if (is_id) {
    char path[96];
    struct stat st;
    snprintf(path, sizeof path, "images/%.64s.json", norm + 7);
    if (fstatat(s->dirfd, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
      return rr_err_set(e, RR_NOT_FOUND, "image \"%s\" not found", ref);
    memcpy(hex, norm + 7, 65);
    return 0;
  }
  char(*ids)[65];
  size_t n;
  if (store_ids(s, &ids, &n, e) < 0)
    return -1;
  int r = rr_err_set(e, RR_NOT_FOUND, "image \"%s\" not found", ref);
  for (size_t i = 0; r < 0 && i < n; i++) {
    json_object *rec;
    rr_err ignored = {0};
    if (record_load(s, ids[i], &rec, NULL, &ignored) < 0)
      continue;
    if (names_has(json_object_object_get(rec, "names"), norm)) {
      memcpy(hex, ids[i], 65);
      rr_err_clear(e);
      r = 0;
    }
    json_object_put(rec);
  }
  free(ids);
  return r;
}

int img_store_find(img_store *s, const char *ref, img_record *ret, rr_err *e) {
  char hex[65];
  if (store_resolve(s, ref, hex, e) < 0)
    return -1;
  json_object *o;
  if (record_load(s, hex, &o, &ret->json, e) < 0)
    return e->code == RR_NOT_FOUND ? rr_err_set(e, RR_NOT_FOUND, "image \"%s\" not found", ref)
                                   : -1;
  json_object_put(o);
  snprintf(ret->id, sizeof ret->id, "sha256:%s", hex);
  return 0;
}

static int store_remove_locked(img_store *s, const char *ref, char ret_id[IMG_DIGEST_LEN + 1],
                               bool *ret_removed, rr_err *e) {
  char hex[65], norm[IMG_NAME_MAX];
  bool is_id;
  if (img_ref_parse(ref, norm, &is_id, e) < 0 || store_resolve(s, ref, hex, e) < 0)
    return -1;
  json_object *rec;
  if (record_load(s, hex, &rec, NULL, e) < 0)
    return -1;
  json_object *names = json_object_object_get(rec, "names");
  int r = 0;
  snprintf(ret_id, IMG_DIGEST_LEN + 1, "sha256:%s", hex);
  *ret_removed = false;
  if (!is_id && names && json_object_array_length(names) > 1) {
    json_object *kept = json_object_new_array();
    for (size_t j = 0; j < json_object_array_length(names); j++) {
      json_object *v = json_object_array_get_idx(names, j);
      if (strcmp(json_object_get_string(v), norm))
        json_object_array_add(kept, json_object_get(v));
    }
    json_object_object_add(rec, "names", kept);
    r = record_write(s, hex, rec, e);
  } else {
    record_unlink(s, hex);
    *ret_removed = true;
  }
  json_object_put(rec);
  return r;
}

int img_store_remove(img_store *s, const char *ref, char ret_id[IMG_DIGEST_LEN + 1],
                     bool *ret_removed, rr_err *e) {
  if (flock(s->lock_fd, LOCK_EX) < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot lock %s/lock", s->dir);
  int r = store_remove_locked(s, ref, ret_id, ret_removed, e);
  flock(s->lock_fd, LOCK_UN);
  return r;
}

int img_upload_create(img_store *s, char *path, size_t n, int *ret_fd, rr_err *e) {
  char name[96];
  if (img_tmp_mkdir(s, "upload", name, sizeof name, e) < 0)
    return -1;
  /* the name only: the directory goes again, the file lives in uploads/ */
  char tmp[128];
  snprintf(tmp, sizeof tmp, "tmp/%s", name);
  unlinkat(s->dirfd, tmp, AT_REMOVEDIR);
  snprintf(tmp, sizeof tmp, "uploads/%s", name);
  int fd = openat(s->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return rr_err_sys(e, errno == ENOSPC ? RR_RESOURCE_EXHAUSTED : RR_INTERNAL, errno,
                      "cannot create %s/%s", s->dir, tmp);
  snprintf(path, n, "%s/%s", s->dir, tmp);
  *ret_fd = fd;
  return 0;
}

void img_uploads_sweep(img_store *s) {
  img_rmtree_at(s->dirfd, "uploads");
  mkdirat(s->dirfd, "uploads", 0700);
}
