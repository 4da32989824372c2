/* Small pieces of the image store: digests, references, bounded JSON
 * reads, opening paths that may not leave a directory. */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/util.h"
#include "images/images_internal.h"

static const char *const format_names[] = {
    [IMG_FORMAT_AUTO] = "auto",
    [IMG_FORMAT_OCI] = "oci",
    [IMG_FORMAT_OCI_ARCHIVE] = "oci-archive",
    [IMG_FORMAT_DOCKER_ARCHIVE] = "docker-archive",
    [IMG_FORMAT_ROOTFS] = "rootfs",
};

int img_format_parse(const char *s, img_format *ret) {
  for (size_t i = 0; i < RR_ARRAY_SIZE(format_names); i++)
    if (s && !strcmp(s, format_names[i])) {
      *ret = (img_format)i;
      return 0;
    }
  return -1;
}

const char *img_format_name(img_format f) {
  return (size_t)f < RR_ARRAY_SIZE(format_names) ? format_names[f] : "?";
}

static bool is_hex64(const char *s) {
  size_t n = 0;
  for (; s[n]; n++)
    if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
      return false;
  return n == 64;
}

int img_digest_parse(const char *s, const char *what, char hex[65], rr_err *e) {
  if (!s)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: no digest", what);
  if (strncmp(s, "sha256:", 7) || !is_hex64(s + 7))
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: digest \"%.100s\" is not sha256:<64 hex>", what,
                      s);
  memcpy(hex, s + 7, 65);
  return 0;
}

void img_sha256_hex(const unsigned char md[32], char hex[65]) {
  for (int i = 0; i < 32; i++)
    snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

static bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
         c == '/';
}

static bool tag_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

/* NAME: lowercase [a-z0-9._/-], starting and ending alphanumeric, no "//". */
static bool name_valid(const char *s, size_t n) {
  if (!n || n > 200 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
    return false;
  for (size_t i = 0; i < n; i++)
    if (!name_char(s[i]) || (s[i] == '/' && (i + 1 == n || s[i + 1] == '/')))
      return false;
  return s[n - 1] != '.' && s[n - 1] != '-' && s[n - 1] != '_';
}

int img_ref_parse(const char *ref, char out[IMG_NAME_MAX], bool *is_id, rr_err *e) {
  if (!ref || !*ref)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "empty image reference");
  const char *at = strchr(ref, '@');
  const char *digest = at ? at + 1 : (!strncmp(ref, "sha256:", 7) ? ref : NULL);
  if (at && !name_valid(ref, (size_t)(at - ref)))
    return rr_err_set(e, RR_INVALID_ARGUMENT,
                      "bad image reference \"%.200s\": want NAME[:TAG], NAME@sha256:HEX or "
                      "sha256:HEX",
                      ref);
  if (digest || is_hex64(ref)) {
    const char *hex = digest ? digest + 7 : ref;
    if ((digest && strncmp(digest, "sha256:", 7)) || !is_hex64(hex))
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "bad image digest \"%.200s\": want sha256:<64 lowercase hex>", ref);
    snprintf(out, IMG_NAME_MAX, "sha256:%s", hex);
    *is_id = true;
    return 0;
  }
  const char *slash = strrchr(ref, '/');
  const char *colon = strrchr(slash ? slash : ref, ':');
  size_t nlen = colon ? (size_t)(colon - ref) : strlen(ref);
  const char *tag = colon ? colon + 1 : "latest";
  size_t tlen = strlen(tag);
  bool tag_ok = tlen && tlen <= 128 && tag[0] != '.' && tag[0] != '-';
  for (size_t i = 0; tag_ok && i < tlen; i++)
    tag_ok = tag_char(tag[i]);
  if (!name_valid(ref, nlen) || !tag_ok)
    return rr_err_set(e, RR_INVALID_ARGUMENT,
                      "bad image name \"%.200s\": want NAME[:TAG] (NAME lowercase "
                      "[a-z0-9._/-], TAG [A-Za-z0-9_.-]{1,128})",
                      ref);
  snprintf(out, IMG_NAME_MAX, "%.*s:%s", (int)nlen, ref, tag);
  *is_id = false;
  return 0;
}

int img_open_below(int dirfd, const char *path, int flags, rr_err *e) {
  struct open_how how = {.flags = (uint64_t)(flags | O_CLOEXEC | O_NOCTTY),
                         .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV};
  int fd;
  do
    fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
  while (fd < 0 && errno == EAGAIN);
  if (fd < 0)
    return rr_err_sys(e, errno == ENOENT ? RR_INVALID_ARGUMENT : RR_INTERNAL, errno,
                      "cannot open \"%.200s\"", path);
  return fd;
}

static int json_read_all(int fd, const char *what, char **ret, size_t *ret_len, rr_err *e) {
  size_t cap = 8192, len = 0;
  _cleanup_free_ char *buf = malloc(cap);
  if (!buf)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  for (;;) {
    if (len + 1 >= cap) {
      if (cap > IMG_JSON_MAX)
        return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: larger than %u bytes", what, IMG_JSON_MAX);
      char *nb = realloc(buf, cap * 2);
      if (!nb)
        return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
      buf = nb;
      cap *= 2;
    }
    ssize_t n = rr_read(fd, buf + len, cap - len - 1);
    if (n < 0)
      return rr_err_sys(e, RR_INTERNAL, errno, "%s: read", what);
    if (n == 0)
      break;
    len += (size_t)n;
  }
  buf[len] = 0;
  *ret = TAKE_PTR(buf);
  *ret_len = len;
  return 0;
}

int img_json_read_fd(int fd, const char *what, const char *want_hex, int64_t size,
                     json_object **ret, char **ret_raw, rr_err *e) {
  _cleanup_free_ char *buf = NULL;
  size_t len = 0;
  if (json_read_all(fd, what, &buf, &len, e) < 0)
    return -1;
  if (want_hex) {
    unsigned char md[32];
    char got[65];
    SHA256((const unsigned char *)buf, len, md);
    img_sha256_hex(md, got);
    if (strcmp(got, want_hex))
      return rr_err_set(e, RR_DATA_LOSS,
                        "%s: digest mismatch: want sha256:%s, the content is sha256:%s", what,
                        want_hex, got);
    if (size >= 0 && len != (size_t)size)
      return rr_err_set(e, RR_DATA_LOSS, "%s (sha256:%s): size %zu, its descriptor says %lld", what,
                        want_hex, len, (long long)size);
  }
  json_tokener *tok = json_tokener_new_ex(64);
  if (!tok)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
  json_object *o = json_tokener_parse_ex(tok, buf, (int)len);
  enum json_tokener_error jerr = json_tokener_get_error(tok);
  json_tokener_free(tok);
  if (!o || jerr != json_tokener_success ||
      (!json_object_is_type(o, json_type_object) && !json_object_is_type(o, json_type_array))) {
    json_object_put(o);
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: not valid JSON: %s", what,
                      jerr != json_tokener_success ? json_tokener_error_desc(jerr)
                                                   : "not an object or array");
  }
  *ret = o;
  if (ret_raw)
    *ret_raw = TAKE_PTR(buf);
  return 0;
}

const char *img_json_str(json_object *o, const char *key) {
  json_object *v;
  if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
    return NULL;
  return json_object_get_string(v);
}
