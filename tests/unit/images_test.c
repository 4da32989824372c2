/* The image store: names, path cleaning, layer extraction of tars written
 * here (tar-slip, whiteouts, hard links, sparse data), digest checks,
 * records, removal and collection. Real files in a temporary state dir. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/util.h"
#include "images/images_internal.h"

/* A tar entry the tests write. */
typedef struct tentry {
  const char *path;
  mode_t type; /* AE_IFREG, AE_IFDIR, AE_IFLNK, AE_IFCHR; 0 + link: hard link */
  const char *data;
  const char *link;
  size_t zeros; /* extra zero bytes after data (a sparse-able file) */
} tentry;

static char tmpl[] = "/tmp/images_test.XXXXXX";

static void tar_write(const char *path, const tentry *es, size_t n, bool gzip) {
  struct archive *a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  if (gzip)
    archive_write_add_filter_gzip(a);
  assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
  for (size_t i = 0; i < n; i++) {
    struct archive_entry *en = archive_entry_new();
    archive_entry_set_pathname(en, es[i].path);
    archive_entry_set_perm(en, es[i].type == AE_IFDIR ? 0755 : 0644);
    size_t len = es[i].data ? strlen(es[i].data) : 0;
    if (!es[i].type && es[i].link) {
      archive_entry_set_filetype(en, AE_IFREG);
      archive_entry_set_hardlink(en, es[i].link);
    } else {
      archive_entry_set_filetype(en, es[i].type);
      if (es[i].type == AE_IFLNK)
        archive_entry_set_symlink(en, es[i].link);
      if (es[i].type == AE_IFCHR)
        archive_entry_set_rdev(en, makedev(1, 3));
      if (es[i].type == AE_IFREG)
        archive_entry_set_size(en, (la_int64_t)(len + es[i].zeros));
    }
    assert_int_equal(archive_write_header(a, en), ARCHIVE_OK);
    if (len)
      archive_write_data(a, es[i].data, len);
    static const char zero[4096];
    for (size_t z = es[i].zeros; z;) {
      size_t k = z < sizeof zero ? z : sizeof zero;
      archive_write_data(a, zero, k);
      z -= k;
    }
    archive_entry_free(en);
  }
  archive_write_close(a);
  archive_write_free(a);
}

static void file_sha256(const char *path, char hex[65]) {
  int fd = open(path, O_RDONLY);
  assert_true(fd >= 0);
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  EVP_DigestInit_ex(c, EVP_sha256(), NULL);
  char buf[8192];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0)
    EVP_DigestUpdate(c, buf, (size_t)n);
  close(fd);
  unsigned char md[32];
  EVP_DigestFinal_ex(c, md, NULL);
  EVP_MD_CTX_free(c);
  img_sha256_hex(md, hex);
}

static int setup(void **state) {
  strcpy(tmpl, "/tmp/images_test.XXXXXX");
  assert_non_null(mkdtemp(tmpl));
  img_store *s;
  rr_err e = {0};
  assert_int_equal(img_store_open(tmpl, &s, &e), 0);
  *state = s;
  return 0;
}

static int teardown(void **state) {
  img_store_free(*state);
  img_rmtree_at(AT_FDCWD, tmpl);
  return 0;
}

/* Import a rootfs tar of es as NAME; the error code (0 on success). Not
 * compressed: gzip's header has a time, the same tree must be the same layer. */
static int import_rootfs(img_store *s, const tentry *es, size_t n, const char *name, rr_err *e) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/in.tar", tmpl);
  tar_write(path, es, n, false);
  img_import_result res;
  img_import_opts o = {.format = IMG_FORMAT_ROOTFS, .name = name};
  int r = img_import(s, path, &o, &res, e);
  unlink(path);
  if (r == 0)
    img_import_result_free(&res);
  return r < 0 ? e->code : 0;
}

static int store_remove(img_store *s, const char *ref, rr_err *e) {
  char id[IMG_DIGEST_LEN + 1];
  bool removed, busy;
  unsigned n;
  if (img_store_remove(s, ref, id, &removed, e) < 0)
    return -1;
  assert_int_equal(img_store_gc(s, &n, &busy, e), 0);
  assert_false(busy);
  return 0;
}

static int layers_count(void) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/images/layers", tmpl);
  int n = 0;
  DIR *d = opendir(path);
  for (struct dirent *de; d && (de = readdir(d));)
    n += de->d_name[0] != '.';
  if (d)
    closedir(d);
  snprintf(path, sizeof path, "%s/images/tmp", tmpl);
  d = opendir(path);
  for (struct dirent *de; d && (de = readdir(d));)
    n += 1000 * (de->d_name[0] != '.'); /* leftovers count loudly */
  if (d)
    closedir(d);
  return n;
}

static void test_ref_parse(void **state) {
  char out[IMG_NAME_MAX];
  bool id;
  rr_err e = {0};
  assert_int_equal(img_ref_parse("busybox", out, &id, &e), 0);
  assert_string_equal(out, "busybox:latest");
  assert_false(id);
  assert_int_equal(img_ref_parse("reg.example:5000/a/b:v1.2", out, &id, &e), -1);
  assert_int_equal(img_ref_parse("reg.example/a/b:v1.2", out, &id, &e), 0);
  assert_string_equal(out, "reg.example/a/b:v1.2");
  const char *hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  char ref[128];
  snprintf(ref, sizeof ref, "busybox@sha256:%s", hex);
  assert_int_equal(img_ref_parse(ref, out, &id, &e), 0);
  assert_true(id);
  assert_string_equal(out + 7, hex);
  for (const char *const *bad =
           (const char *const[]){"", "Busybox", "a//b", "a:", "a:-x", "sha256:12", "a@sha256:zz",
                                 "-a", "a b", NULL};
       *bad; bad++) {
    assert_int_equal(img_ref_parse(*bad, out, &id, &e), -1);
    assert_int_equal(e.code, RR_INVALID_ARGUMENT);
  }
  (void)state;
}

static void test_path_clean(void **state) {
  char out[64];
  rr_err e = {0};
  assert_int_equal(img_path_clean("./a//b/./c/", out, sizeof out, &e), 0);
  assert_string_equal(out, "a/b/c");
  assert_int_equal(img_path_clean("./", out, sizeof out, &e), 0);
  assert_string_equal(out, "");
  assert_int_equal(img_path_clean("/etc/passwd", out, sizeof out, &e), -1);
  assert_non_null(strstr(e.msg, "absolute"));
  assert_int_equal(img_path_clean("a/../../etc", out, sizeof out, &e), -1);
  assert_non_null(strstr(e.msg, "\"..\""));
  (void)state;
}

static void test_import_tree(void **state) {
  img_store *s = *state;
  const tentry es[] = {
      {"./", AE_IFDIR, NULL, NULL, 0},
      {"bin/sh", AE_IFREG, "#!shell", NULL, 0}, /* parent made on the way */
      {"bin/ash", 0, NULL, "bin/sh", 0},
      {"lib", AE_IFLNK, NULL, "usr/lib", 0},
      {"usr/lib/x", AE_IFREG, "x", NULL, 0},
      {"lib/y", AE_IFREG, "y", NULL, 0}, /* through the symlink, inside the root */
      {"abs", AE_IFLNK, NULL, "/bin/sh", 0},
      {"big", AE_IFREG, "head", NULL, 8u << 20},
      {"etc/.wh.gone", AE_IFREG, "", NULL, 0},
      {"var/.wh..wh..opq", AE_IFREG, "", NULL, 0},
  };
  rr_err e = {0};
  assert_int_equal(import_rootfs(s, es, RR_ARRAY_SIZE(es), "t1:v1", &e), 0);
  img_record r;
  assert_int_equal(img_store_find(s, "t1:v1", &r, &e), 0);
  json_object *o = json_tokener_parse(r.json);
  const char *d =
      img_json_str(json_object_array_get_idx(json_object_object_get(o, "layers"), 0), "digest");
  char root[PATH_MAX], p[PATH_MAX * 2];
  snprintf(root, sizeof root, "%s/images/layers/%s", tmpl, d + 7);
  json_object_put(o);
  free(r.json);
  struct stat a, b;
  snprintf(p, sizeof p, "%s/bin/sh", root);
  assert_int_equal(stat(p, &a), 0);
  snprintf(p, sizeof p, "%s/bin/ash", root);
  assert_int_equal(stat(p, &b), 0);
  assert_int_equal(a.st_ino, b.st_ino);
  snprintf(p, sizeof p, "%s/usr/lib/y", root);
  assert_int_equal(stat(p, &a), 0);
  snprintf(p, sizeof p, "%s/big", root);
  assert_int_equal(stat(p, &a), 0);
  assert_int_equal(a.st_size, 4 + (8 << 20));
  assert_true(a.st_blocks * 512 < (1 << 20)); /* the zeros are a hole */
  if (geteuid() == 0) {
    snprintf(p, sizeof p, "%s/etc/gone", root);
    assert_int_equal(lstat(p, &a), 0);
    assert_true(S_ISCHR(a.st_mode) && a.st_rdev == makedev(0, 0));
    snprintf(p, sizeof p, "%s/var", root);
    char v[4] = {0};
    assert_int_equal(getxattr(p, "trusted.overlay.opaque", v, sizeof v), 1);
    assert_string_equal(v, "y");
  }
}

static void test_tar_slip_refused(void **state) {
  img_store *s = *state;
  const tentry cases[][2] = {
      {{"../evil", AE_IFREG, "x", NULL, 0}},
      {{"/etc/evil", AE_IFREG, "x", NULL, 0}},
      {{"a/b/../../../evil", AE_IFREG, "x", NULL, 0}},
      {{"esc", AE_IFLNK, NULL, "../../../../etc", 0}},
      {{"d/esc", AE_IFLNK, NULL, "../..", 0}},
      {{"hl", 0, NULL, "../../etc/passwd", 0}},
      {{"hl", 0, NULL, "/etc/passwd", 0}},
  };
  for (size_t i = 0; i < RR_ARRAY_SIZE(cases); i++) {
    rr_err e = {0};
    assert_int_equal(import_rootfs(s, cases[i], 1, "slip", &e), RR_INVALID_ARGUMENT);
    assert_true(strstr(e.msg, "refused") || strstr(e.msg, "absolute"));
    assert_int_equal(layers_count(), 0); /* nothing left behind */
  }
  /* a symlink to / then a file through it lands inside the layer */
  const tentry via[] = {{"up", AE_IFLNK, NULL, "/", 0},
                        {"up/images-test-via", AE_IFREG, "x", NULL, 0}};
  rr_err e = {0};
  assert_int_equal(import_rootfs(s, via, 2, "via", &e), 0);
  assert_int_equal(access("/images-test-via", F_OK), -1);
  assert_int_equal(layers_count(), 1);
}

static void test_digest_mismatch(void **state) {
  img_store *s = *state;
  char path[PATH_MAX], hex[65];
  snprintf(path, sizeof path, "%s/l.tar", tmpl);
  const tentry es[] = {{"f", AE_IFREG, "data", NULL, 0}};
  tar_write(path, es, 1, true);
  file_sha256(path, hex);
  hex[0] = hex[0] == '0' ? '1' : '0';
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  img_layer_stats st = {0};
  bool made;
  rr_err e = {0};
  assert_int_equal(img_layer_unpack(s, fd, hex, -1, false, "layer", &st, &made, &e), -1);
  close(fd);
  assert_int_equal(e.code, RR_DATA_LOSS);
  assert_non_null(strstr(e.msg, "digest mismatch"));
  assert_non_null(strstr(e.msg, hex));
  assert_false(made);
  assert_int_equal(layers_count(), 0);
}

static void test_remove_and_gc(void **state) {
  img_store *s = *state;
  const tentry a[] = {{"a", AE_IFREG, "a", NULL, 0}};
  const tentry b[] = {{"b", AE_IFREG, "b", NULL, 0}};
  rr_err e = {0};
  assert_int_equal(import_rootfs(s, a, 1, "one", &e), 0);
  assert_int_equal(import_rootfs(s, b, 1, "two:x", &e), 0);
  assert_int_equal(import_rootfs(s, a, 1, "three", &e), 0); /* same layer, same id */
  assert_int_equal(layers_count(), 2);
  img_record *recs;
  size_t n;
  assert_int_equal(img_store_list(s, &recs, &n, &e), 0);
  assert_int_equal(n, 2);
  img_records_free(recs, n);
  assert_int_equal(store_remove(s, "one", &e), 0); /* untag: three keeps it */
  assert_int_equal(layers_count(), 2);
  assert_int_equal(store_remove(s, "one", &e), -1);
  assert_int_equal(e.code, RR_NOT_FOUND);
  assert_non_null(strstr(e.msg, "\"one\""));
  assert_int_equal(store_remove(s, "two:x", &e), 0);
  assert_int_equal(layers_count(), 1);
  img_record r;
  assert_int_equal(img_store_find(s, "three:latest", &r, &e), 0);
  char id[IMG_DIGEST_LEN + 1];
  snprintf(id, sizeof id, "%s", r.id);
  free(r.json);
  assert_int_equal(store_remove(s, id, &e), 0);
  assert_int_equal(layers_count(), 0);
}

static void write_file_at(const char *dir, const char *name, const char *text) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

/* User as docker resolves it, in a root with passwd and group files (etc
 * a symlink to an absolute path: it resolves inside the root). */
static void test_user_resolve(void **state) {
  (void)state;
  char root[PATH_MAX], real[PATH_MAX + 16];
  snprintf(root, sizeof root, "%s/root", tmpl);
  snprintf(real, sizeof real, "%s/real-etc", root);
  assert_int_equal(mkdir(root, 0755), 0);
  assert_int_equal(mkdir(real, 0755), 0);
  char link[PATH_MAX + 8];
  snprintf(link, sizeof link, "%s/etc", root);
  assert_int_equal(symlink("/real-etc", link), 0);
  write_file_at(real, "passwd",
                "root:x:0:0:root:/root:/bin/sh\nbroken line\napp:x:1000:1001:App:/home/app:"
                "/bin/ash\nnohome:x:1002:1002::\n");
  /* groups listing app: staff and wheel; a repeat of 50 and of its own gid,
   * a too long line, near names, a line without members, a bad gid */
  size_t longn = 70 * 1024;
  char *group = malloc(longn + 512);
  assert_non_null(group);
  int gl = snprintf(group, 512,
                    "root:x:0:\nstaff:x:50:app\nbad:x:zz:app\nwheel:x:10:root,app\ndup:x:50:app\n"
                    "own:x:1001:app\nnear:x:88:apps,xapp,ap\nshort:x:99\nlong:x:77:");
  memset(group + gl, 'a', longn);
  snprintf(group + gl + longn, 512, ",app\n");
  write_file_at(real, "group", group);
  free(group);
  int fd = open(root, O_PATH | O_DIRECTORY);
  assert_true(fd >= 0);
  img_user u;
  rr_err e = {0};
  assert_int_equal(img_user_resolve(fd, "app", &u, &e), 0);
  assert_int_equal(u.uid, 1000);
  assert_int_equal(u.gid, 1001);
  assert_string_equal(u.name, "app");
  assert_string_equal(u.home, "/home/app");
  assert_string_equal(u.shell, "/bin/ash");
  assert_int_equal(u.ngroups, 3); /* podman's: its gid, then the groups listing it */
  assert_int_equal(u.groups[0], 1001);
  assert_int_equal(u.groups[1], 50);
  assert_int_equal(u.groups[2], 10);
  assert_int_equal(img_user_resolve(fd, "1000", &u, &e), 0); /* a listed uid: its entry */
  assert_int_equal(u.gid, 1001);
  assert_string_equal(u.name, "app");
  assert_int_equal(u.ngroups, 3);
  assert_int_equal(img_user_resolve(fd, "root", &u, &e), 0);
  assert_int_equal(u.ngroups, 2);
  assert_int_equal(u.groups[0], 0);
  assert_int_equal(u.groups[1], 10);
  assert_int_equal(img_user_resolve(fd, "4242", &u, &e), 0); /* unlisted: gid 0, home / */
  assert_int_equal(u.uid, 4242);
  assert_int_equal(u.gid, 0);
  assert_string_equal(u.home, "/");
  assert_string_equal(u.name, "");
  assert_int_equal(u.ngroups, 1);
  assert_int_equal(u.groups[0], 0);
  assert_int_equal(img_user_resolve(fd, "app:staff", &u, &e), 0); /* a group given: it alone */
  assert_int_equal(u.uid, 1000);
  assert_int_equal(u.gid, 50);
  assert_int_equal(u.ngroups, 1);
  assert_int_equal(u.groups[0], 50);
  assert_int_equal(img_user_resolve(fd, "app:1001", &u, &e), 0);
  assert_int_equal(u.ngroups, 1);
  assert_int_equal(u.groups[0], 1001);
  assert_int_equal(img_user_resolve(fd, "4242:77", &u, &e), 0);
  assert_int_equal(u.gid, 77);
  assert_int_equal(u.ngroups, 1);
  assert_int_equal(u.groups[0], 77);
  assert_int_equal(img_user_resolve(fd, "nohome", &u, &e), 0);
  assert_string_equal(u.home, "/");
  assert_int_equal(img_user_resolve(fd, "nosuch", &u, &e), -1);
  assert_int_equal(e.code, RR_FAILED_PRECONDITION);
  assert_non_null(strstr(e.msg, "no user \"nosuch\" in the image's /etc/passwd"));
  assert_int_equal(img_user_resolve(fd, "app:nogroup", &u, &e), -1);
  assert_non_null(strstr(e.msg, "no group \"nogroup\" in the image's /etc/group"));
  assert_int_equal(img_user_resolve(fd, "bad", &u, &e), -1); /* a group name, not a user */
  for (const char *const *bad = (const char *const[]){":", "app:", ":0", "4294967295", NULL}; *bad;
       bad++) {
    rr_err_clear(&e);
    assert_int_equal(img_user_resolve(fd, *bad, &u, &e), -1);
    assert_int_equal(e.code, RR_FAILED_PRECONDITION);
  }
  close(fd);
  /* no etc at all: numbers only */
  char bare[PATH_MAX + 8];
  snprintf(bare, sizeof bare, "%s/bare", tmpl);
  assert_int_equal(mkdir(bare, 0755), 0);
  fd = open(bare, O_PATH | O_DIRECTORY);
  assert_int_equal(img_user_resolve(fd, "5:6", &u, &e), 0);
  assert_int_equal(u.uid, 5);
  assert_int_equal(u.gid, 6);
  assert_int_equal(img_user_resolve(fd, "app", &u, &e), -1);
  assert_non_null(strstr(e.msg, "(it has none)"));
  close(fd);
}

/* A user in more groups than a process may get is refused, not cut. */
static void test_user_groups_bounded(void **state) {
  (void)state;
  size_t n = IMG_USER_MAX_GROUPS, cap = n * 32 + 1, len = 0; /* and the gid: one too many */
  char *text = malloc(cap);
  assert_non_null(text);
  for (size_t i = 0; i < n; i++)
    len += (size_t)snprintf(text + len, cap - len, "g%zu:x:%zu:x,app\n", i, 2000 + i);
  img_user u = {.groups = {7}, .ngroups = 1};
  rr_err e = {0};
  char *copy = strdup(text);
  assert_int_equal(img_user_groups_add(copy, "app", &u, &e), -1);
  assert_int_equal(e.code, RR_FAILED_PRECONDITION);
  assert_non_null(strstr(e.msg, "more than 256 groups"));
  free(copy);
  /* one fewer fits */
  u = (img_user){.groups = {7}, .ngroups = 1};
  *strrchr(text, 'g') = 0; /* drops the last line */
  rr_err_clear(&e);
  assert_int_equal(img_user_groups_add(text, "app", &u, &e), 0);
  assert_int_equal(u.ngroups, IMG_USER_MAX_GROUPS);
  assert_int_equal(u.groups[1], 2000);
  free(text);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_user_groups_bounded),
      cmocka_unit_test(test_ref_parse),
      cmocka_unit_test(test_path_clean),
      cmocka_unit_test_setup_teardown(test_import_tree, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tar_slip_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_digest_mismatch, setup, teardown),
      cmocka_unit_test_setup_teardown(test_remove_and_gc, setup, teardown),
      cmocka_unit_test_setup_teardown(test_user_resolve, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
