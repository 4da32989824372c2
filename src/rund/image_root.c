/* --image: each command gets an overlayfs of its image's layers (lower, read
 * only, shared) with its own upper and work dirs in STATE/images/roots/ID.
 * rund mounts it (new mount API: one lowerdir+ per layer, no option length
 * limit) on roots/ID/merged and gives it to the sandbox as a checked
 * rootfs; the sandbox takes a detached copy, so the host's mount goes right
 * after the spawn and the overlay lives as long as the command's mount
 * namespace. roots/ID/layers names the layers for the collector; when the
 * command ends the root goes to images/tmp and a `rund image gc` child
 * removes it. The image's config applies as docker's: Env under the
 * request's, WorkingDir when the request gives none. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "images/images.h"
#include "jobs/request.h"
#include "rund.h"
#include "rund/opts.h"

#define ROOT_NAME_MAX 64

static const char *layer_digest(json_object *l) {
  json_object *d;
  if (!json_object_object_get_ex(l, "digest", &d) || !json_object_is_type(d, json_type_string))
    return NULL;
  const char *s = json_object_get_string(d);
  return strncmp(s, "sha256:", 7) || strlen(s) != 71 || strchr(s + 7, '/') ? NULL : s;
}

static const char *config_str(json_object *o, const char *key) {
  json_object *v;
  if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
    return NULL;
  return json_object_get_string(v);
}

static int root_fsconfig(int fs, const char *key, const char *value, rr_err *e) {
  if (syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, key, value, 0) < 0)
    return rr_err_sys(e, RR_FAILED_PRECONDITION, errno, "image root: overlay %s \"%s\"", key,
                      value);
  return 0;
}

/* The overlay of layers (bottom first) with upper/work of dir: a detached
 * mount into *ret_tree (the sandbox moves it into the command's mount
 * namespace: rund never attaches it, so it has nothing to unmount, which
 * would wait for an RCU grace period in rund's loop), or attached on merged
 * when ret_tree is NULL. */
static int root_mount(const char *store, const char *dir, json_object *layers, int *ret_tree,
                      rr_err *e) {
  _cleanup_close_ int fs = (int)syscall(SYS_fsopen, "overlay", FSOPEN_CLOEXEC);
  if (fs < 0)
    return rr_err_sys(e, RR_FAILED_PRECONDITION, errno,
                      "image root: overlayfs is not available (fsopen)");
  size_t n = json_object_array_length(layers);
  for (size_t i = n; i-- > 0;) { /* overlay lists the top layer first */
    const char *d = layer_digest(json_object_array_get_idx(layers, i));
    char path[4096];
    if (!d)
      return rr_err_set(e, RR_DATA_LOSS, "image root: a layer without a digest");
    snprintf(path, sizeof path, "%s/layers/%s", store, d + 7);
    if (root_fsconfig(fs, "lowerdir+", path, e) < 0)
      return -1;
  }
  char upper[4096], work[4096], merged[4096];
  snprintf(upper, sizeof upper, "%.3900s/upper", dir);
  snprintf(work, sizeof work, "%.3900s/work", dir);
  snprintf(merged, sizeof merged, "%.3900s/merged", dir);
  if (root_fsconfig(fs, "upperdir", upper, e) < 0 || root_fsconfig(fs, "workdir", work, e) < 0)
    return -1;
  /* the upper dir is the command's scratch, dropped after: no syncs of it
   * (its unmount, when the command's namespace goes, skips syncing the
   * state dir's filesystem); a kernel without the flag (< 5.10) syncs */
  if (syscall(SYS_fsconfig, fs, FSCONFIG_SET_FLAG, "volatile", NULL, 0) < 0 && errno != EINVAL)
    return rr_err_sys(e, RR_FAILED_PRECONDITION, errno, "image root: overlay volatile");
  if (syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
    return rr_err_sys(e, RR_FAILED_PRECONDITION, errno, "image root: cannot make the overlay");
  _cleanup_close_ int mnt = (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, 0);
  if (mnt < 0)
    return rr_err_sys(e, RR_FAILED_PRECONDITION, errno, "image root: cannot mount the overlay");
  /* the sandbox's mount points, made here (a strict sandbox's ids may not
   * write an image's root); in the upper layer, so only this command's */
  for (const char *const *d = (const char *const[]){"proc", "dev", "sys", "tmp", NULL}; *d; d++)
    if (mkdirat(mnt, *d, 0755) < 0 && errno != EEXIST)
      return rr_err_sys(e, RR_FAILED_PRECONDITION, errno, "image root: cannot make /%s", *d);
  if (ret_tree) {
    *ret_tree = TAKE_FD(mnt);
    return 0;
  }
  if (syscall(SYS_move_mount, mnt, "", AT_FDCWD, merged, MOVE_MOUNT_F_EMPTY_PATH) < 0)
    return rr_err_sys(e, RR_FAILED_PRECONDITION, errno, "image root: cannot mount the overlay");
  return 0;
}

/* dir/merged, where a copy or an attached overlay goes (a detached overlay
 * needs none: one inode less to make and remove per command). */
static int root_merged_dir(const char *dir, rr_err *e) {
  char p[4096];
  snprintf(p, sizeof p, "%.3900s/merged", dir);
  if (mkdir(p, 0755) < 0 && errno != EEXIST)
    return rr_err_sys(e, RR_INTERNAL, errno, "image root: cannot make \"%s\"", p);
  return 0;
}

/* The root by the mode rund was told (auto: a copy when the kernel has no
 * overlayfs, said once in the log): 0 mounted, 1 to be copied (by a child:
 * image_copy.c). */
static int root_make(rund_ctx *ctx, const char *dir, json_object *layers, int *ret_tree,
                     rr_err *e) {
  static bool said;
  if (ctx->image_roots == RUND_IMAGE_ROOTS_COPY)
    return root_merged_dir(dir, e) < 0 ? -1 : 1;
  if ((ret_tree || root_merged_dir(dir, e) == 0) &&
      root_mount(img_store_dir(ctx->images), dir, layers, ret_tree, e) == 0)
    return 0;
  if (ctx->image_roots == RUND_IMAGE_ROOTS_OVERLAY || e->sys_errno != ENODEV)
    return -1;
  if (!said)
    rr_warn("no overlayfs: image roots are copies (slower)", "error=\"%s\"", e->msg);
  said = true;
  rr_err_clear(e);
  return root_merged_dir(dir, e) < 0 ? -1 : 1;
}

/* roots/NAME with upper, work and the layers file. */
static int root_dirs(const char *dir, json_object *layers, rr_err *e) {
  char p[4096];
  if (mkdir(dir, 0700) < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "image root: cannot make \"%s\"", dir);
  for (const char *const *s = (const char *const[]){"upper", "work", NULL}; *s; s++) {
    snprintf(p, sizeof p, "%.3900s/%s", dir, *s);
    if (mkdir(p, 0755) < 0)
      return rr_err_sys(e, RR_INTERNAL, errno, "image root: cannot make \"%s\"", p);
  }
  snprintf(p, sizeof p, "%.3900s/layers", dir);
  FILE *f = fopen(p, "wxe");
  if (!f)
    return rr_err_sys(e, RR_INTERNAL, errno, "image root: cannot write \"%s\"", p);
  for (size_t i = 0; i < json_object_array_length(layers); i++) {
    const char *d = layer_digest(json_object_array_get_idx(layers, i));
    fprintf(f, "%s\n", d ? d : "");
  }
  if (fclose(f) != 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "image root: cannot write \"%s\"", p);
  return 0;
}

/* key=value appended to r's env unless r sets key already. */
static int root_env_add(job_request *r, const char *key, size_t klen, const char *value,
                        rr_err *e) {
  for (size_t j = 0; j < r->nenv; j++)
    if (strlen(r->env_keys[j]) == klen && !strncmp(r->env_keys[j], key, klen))
      return 0;
  char **k = realloc(r->env_keys, (r->nenv + 2) * sizeof *k);
  if (k)
    r->env_keys = k;
  char **v = k ? realloc(r->env_values, (r->nenv + 2) * sizeof *v) : NULL;
  if (!v)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  r->env_values = v;
  char *ks = strndup(key, klen), *vs = strdup(value);
  if (!ks || !vs) {
    free(ks);
    free(vs);
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  }
  r->env_keys[r->nenv] = ks;
  r->env_values[r->nenv++] = vs;
  r->env_keys[r->nenv] = r->env_values[r->nenv] = NULL;
  return 0;
}

/* Env entries of the image's config the request does not set. */
static int root_env(job_request *r, json_object *env, rr_err *e) {
  size_t n = env && json_object_is_type(env, json_type_array) ? json_object_array_length(env) : 0;
  for (size_t i = 0; i < n; i++) {
    const char *kv = json_object_get_string(json_object_array_get_idx(env, i));
    const char *eq = kv ? strchr(kv, '=') : NULL;
    if (eq && eq != kv && root_env_add(r, kv, (size_t)(eq - kv), eq + 1, e) < 0)
      return -1;
  }
  return 0;
}

/* The image's User (as docker: names from its own /etc/passwd and
 * /etc/group) when the request names no ids; HOME, USER, LOGNAME and SHELL
 * from its passwd entry unless set. Its ids are the host's in a default
 * sandbox: for an admin or a caller who is that user only. */
static int root_user(prepared *p, json_object *config, int rootfd, rr_err *e) {
  job_sandbox *s = &p->req.sandbox;
  const char *spec = config_str(config, "User");
  if (!spec || !*spec || s->has_user)
    return 0; /* none: the caller's ids, as without an image */
  img_user u;
  if (img_user_resolve(rootfd, spec, &u, e) < 0)
    return rr_err_wrap(e, "sandbox.image: image \"%s\"", s->image);
  s->has_user = true;
  s->uid = u.uid;
  s->gid = u.gid;
  free(s->groups);
  if (!(s->groups = malloc(u.ngroups * sizeof *s->groups)))
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  memcpy(s->groups, u.groups, u.ngroups * sizeof *s->groups);
  s->ngroups = u.ngroups;
  if (!prepare_sandbox_user_allowed(s, &p->id, p->run_as ? &p->ids : NULL))
    return rr_err_set(e, RR_PERMISSION_DENIED,
                      "sandbox.image: image \"%s\" runs as User \"%s\" (%u:%u): inside a %s "
                      "sandbox those are the host's ids, only admins may choose them (strict maps "
                      "ids onto the caller's; sandbox.user picks others)",
                      s->image, spec, u.uid, u.gid, sb_profile_name(s->profile));
  job_request *r = &p->req;
  if (root_env_add(r, "HOME", 4, u.home, e) < 0)
    return -1;
  if (u.name[0] &&
      (root_env_add(r, "USER", 4, u.name, e) < 0 || root_env_add(r, "LOGNAME", 7, u.name, e) < 0))
    return -1;
  return u.shell[0] ? root_env_add(r, "SHELL", 5, u.shell, e) : 0;
}

static int root_config(job_request *r, json_object *rec, rr_err *e) {
  json_object *config = json_object_object_get(json_object_object_get(rec, "config"), "config");
  if (!config)
    return 0;
  if (root_env(r, json_object_object_get(config, "Env"), e) < 0)
    return -1;
  const char *wd = config_str(config, "WorkingDir");
  if (wd && *wd == '/' && (!r->workdir || !*r->workdir)) {
    free(r->workdir);
    if (!(r->workdir = strdup(wd)))
      return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  }
  return 0;
}

static void root_name(char *buf, size_t n) {
  static unsigned seq;
  unsigned char rnd[6] = {0};
  if (getrandom(rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t)sizeof rnd)
    memset(rnd, 0, sizeof rnd); /* the sequence and pid still make it unique here */
  snprintf(buf, n, "%08x%02x%02x%02x%02x%02x%02x", ++seq ^ (unsigned)getpid(), rnd[0], rnd[1],
           rnd[2], rnd[3], rnd[4], rnd[5]);
}

/* The made root (tree: the overlay's detached mount, else -1: merged) as
 * p's rootfs, the image's config applied. */
static int root_finish(rund_ctx *ctx, prepared *p, int tree, rr_err *e) {
  job_sandbox *s = &p->req.sandbox;
  _cleanup_close_ int rootfd = -1;
  char merged[4200];
  snprintf(merged, sizeof merged, "%s/roots/%s/merged", img_store_dir(ctx->images), p->image_root);
  bool is_tree = tree >= 0;
  rootfd = is_tree ? tree : open(merged, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (rootfd < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "image root: cannot open \"%s\"", merged);
  json_object *o = p->image_rec;
  if (root_config(&p->req, o, e) < 0 ||
      root_user(p, json_object_object_get(json_object_object_get(o, "config"), "config"), rootfd,
                e) < 0)
    return -1;
  json_object_put(p->image_rec);
  p->image_rec = NULL;
  free(s->rootfs);
  if (!(s->rootfs = strdup(merged)))
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  if (s->fds) {
    rr_closep(&s->fds[0]);
    s->fds[0] = TAKE_FD(rootfd);
    s->root_is_tree = is_tree;
  }
  return 0;
}

int rund_image_root_finish(rund_ctx *ctx, prepared *p, rr_err *e) {
  return root_finish(ctx, p, -1, e);
}

int rund_image_root_prepare(rund_ctx *ctx, prepared *p, rr_err *e) {
  job_sandbox *s = &p->req.sandbox;
  img_record rec = {0};
  if (!s->image)
    return 0;
  if (!ctx->images)
    return rr_err_set(e, RR_FAILED_PRECONDITION, "sandbox.image: rund has no image store");
  if (img_store_find(ctx->images, s->image, &rec, e) < 0)
    return rr_err_wrap(e, "sandbox.image");
  json_object_put(p->image_rec);
  p->image_rec = json_tokener_parse(rec.json);
  free(rec.json);
  json_object *layers = p->image_rec ? json_object_object_get(p->image_rec, "layers") : NULL;
  if (!layers || !json_object_array_length(layers))
    return rr_err_set(e, RR_FAILED_PRECONDITION, "sandbox.image: image \"%s\" has no layers",
                      s->image);
  char name[ROOT_NAME_MAX], dir[4096];
  root_name(name, sizeof name);
  snprintf(dir, sizeof dir, "%s/roots/%s", img_store_dir(ctx->images), name);
  if (!(p->image_root = strdup(name)))
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  /* the overlay as a detached tree when the sandbox takes checked fds
   * (always with a profile), else attached on merged */
  int tree = -1;
  int made =
      root_dirs(dir, layers, e) < 0 ? -1 : root_make(ctx, dir, layers, s->fds ? &tree : NULL, e);
  if (made != 0)
    return made; /* 1: a copy, made by a child while rund serves others */
  return root_finish(ctx, p, tree, e);
}

/* JSON string array a (may be NULL) appended to v[*n]. */
static void command_words(json_object *a, ProtobufCBinaryData *v, size_t *n, size_t max) {
  for (size_t i = 0;
       a && json_object_is_type(a, json_type_array) && i < json_object_array_length(a) && *n < max;
       i++) {
    json_object *w = json_object_array_get_idx(a, i);
    if (json_object_is_type(w, json_type_string))
      v[(*n)++] = (ProtobufCBinaryData){.len = (size_t)json_object_get_string_len(w),
                                        .data = (uint8_t *)json_object_get_string(w)};
  }
}

int rund_image_command(rund_ctx *ctx, const prepare_in *in, image_command *ret, rr_err *e) {
  memset(ret, 0, sizeof *ret);
  const Rundwire__Command *c = in->command;
  const Rundwire__Sandbox *sb = in->sandbox;
  if (!c || c->path.len || !sb || !sb->image.len || !ctx->images)
    return 0;
  _cleanup_free_ char *ref = NULL;
  img_record rec = {0};
  if (request_string_dup(sb->image.data, sb->image.len, "sandbox.image", &ref, e) < 0)
    return -1;
  if (img_store_find(ctx->images, ref, &rec, e) < 0)
    return rr_err_wrap(e, "sandbox.image");
  ret->keep = json_tokener_parse(rec.json);
  free(rec.json);
  json_object *config =
      json_object_object_get(json_object_object_get(ret->keep, "config"), "config");
  size_t max = REQUEST_MAX_ARGS + 1, n = 0;
  if (!(ret->words = calloc(max, sizeof *ret->words)))
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  /* docker's rule: Entrypoint, then the request's args, else the image's Cmd */
  command_words(json_object_object_get(config, "Entrypoint"), ret->words, &n, max);
  if (c->n_args)
    for (size_t i = 0; i < c->n_args && n < max; i++)
      ret->words[n++] = c->args[i];
  else
    command_words(json_object_object_get(config, "Cmd"), ret->words, &n, max);
  if (!n)
    return rr_err_set(e, RR_INVALID_ARGUMENT,
                      "command.path is empty and image \"%s\" has no Entrypoint or Cmd", ref);
  ret->command = *c;
  ret->command.path = ret->words[0];
  ret->command.args = ret->words + 1;
  ret->command.n_args = n - 1;
  ret->used = true;
  return 0;
}

void rund_image_command_free(image_command *c) {
  free(c->words);
  json_object_put(c->keep);
  memset(c, 0, sizeof *c);
}

void rund_image_root_detach(rund_ctx *ctx, const char *name) {
  char merged[4200];
  if (!name || !ctx->images)
    return;
  snprintf(merged, sizeof merged, "%s/roots/%s/merged", img_store_dir(ctx->images), name);
  if (umount2(merged, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
    rr_warn("cannot unmount an image root", "path=\"%s\" error=\"%s\"", merged, strerror(errno));
}

/* Released roots are removed by one `rund image gc` child a second after
 * the first release, not one child per command: starting it costs more
 * than a short command (45 ms against 16 per `runctl run`, measured). */
#define ROOT_GC_DELAY_MS 1000
static uint64_t root_gc_timer;

static void root_gc_fire(loop *l, void *data) {
  root_gc_timer = 0;
  images_gc_spawn(data);
}

static void root_gc_schedule(rund_ctx *ctx) {
  if (!root_gc_timer)
    root_gc_timer = loop_timer_add(ctx->l, ROOT_GC_DELAY_MS, root_gc_fire, ctx);
  if (!root_gc_timer) /* no memory for a timer: at once */
    images_gc_spawn(ctx);
}

void rund_image_root_release(rund_ctx *ctx, const char *name) {
  char from[4200], to[4200];
  if (!name || !ctx->images)
    return;
  rund_image_root_detach(ctx, name);
  snprintf(from, sizeof from, "%s/roots/%s", img_store_dir(ctx->images), name);
  snprintf(to, sizeof to, "%s/tmp/root-%s", img_store_dir(ctx->images), name);
  if (rename(from, to) < 0 && errno != ENOENT)
    rr_warn("cannot release an image root", "path=\"%s\" error=\"%s\"", from, strerror(errno));
  root_gc_schedule(ctx);
}

/* A job's root goes when it ends. */
typedef struct root_watch {
  job_watch w;
  rund_ctx *ctx;
  char name[ROOT_NAME_MAX];
  struct root_watch *next, **prevp;
} root_watch;

static root_watch *root_watches;

static void root_watch_free(root_watch *rw) {
  job_watch_del(&rw->w);
  *rw->prevp = rw->next;
  if (rw->next)
    rw->next->prevp = rw->prevp;
  free(rw);
}

static void root_watch_fn(job_watch *w, int event) {
  root_watch *rw = (root_watch *)w;
  if (event != JOB_EVENT_EXIT)
    return;
  rund_image_root_release(rw->ctx, rw->name);
  root_watch_free(rw);
}

int rund_image_root_watch(rund_ctx *ctx, job *j, char *name, rr_err *e) {
  root_watch *rw = calloc(1, sizeof *rw);
  if (!rw)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  /* which job it is, for a later rund that adopts the job */
  char path[4200];
  snprintf(path, sizeof path, "%s/roots/%.64s/job", img_store_dir(ctx->images), name);
  FILE *f = fopen(path, "we");
  if (f) {
    fprintf(f, "%s\n", j->id);
    fclose(f);
  }
  rw->ctx = ctx;
  snprintf(rw->name, sizeof rw->name, "%s", name);
  rw->w.fn = root_watch_fn;
  rw->w.data = rw;
  rw->next = root_watches;
  rw->prevp = &root_watches;
  if (root_watches)
    root_watches->prevp = &rw->next;
  root_watches = rw;
  job_watch_add(j, &rw->w);
  return 0;
}

/* The root dir's job id into id (ULID_LEN + 1), 0; -1 without one. */
static int root_job_id(int rootsfd, const char *name, char *id) {
  char path[ROOT_NAME_MAX + 8];
  snprintf(path, sizeof path, "%s/job", name);
  _cleanup_close_ int fd = openat(rootsfd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  ssize_t n = fd < 0 ? -1 : rr_read(fd, id, ULID_LEN);
  if (n != ULID_LEN)
    return -1;
  id[ULID_LEN] = 0;
  return 0;
}

void rund_image_roots_adopt(rund_ctx *ctx) {
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/roots", img_store_dir(ctx->images));
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
  if (!d) {
    rr_closep(&fd);
    return;
  }
  struct dirent *de;
  while ((de = readdir(d))) {
    if (de->d_name[0] == '.' || strlen(de->d_name) >= ROOT_NAME_MAX)
      continue;
    char id[ULID_LEN + 1];
    job *j = NULL;
    rr_err e = {0};
    if (root_job_id(dirfd(d), de->d_name, id) == 0 &&
        job_table_lookup(ctx->jobs, id, &j, &e) == 0 && j->state == JOB_RUNNING &&
        rund_image_root_watch(ctx, j, de->d_name, &e) == 0)
      continue;                               /* released when the adopted job ends */
    rund_image_root_release(ctx, de->d_name); /* its command ended while no rund ran */
  }
  closedir(d);
}

void rund_image_roots_free(void) {
  root_gc_timer = 0; /* the loop goes with its timers; the next rund collects */
  while (root_watches)
    root_watch_free(root_watches); /* the jobs run on: their roots stay */
}
