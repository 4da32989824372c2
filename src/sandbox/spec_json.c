/* Typed reads of config fields that name the field on error, and the
 * checks on paths and host names that the parser and the profiles share. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox/spec_internal.h"

sj_path sj_key(const char *parent, const char *key) {
  sj_path p;
  /* a path cut short only shortens a message */
  if (snprintf(p.s, sizeof p.s, "%s%s%s", parent, *parent ? "." : "", key) < 0)
    p.s[0] = '\0';
  return p;
}

sj_path sj_index(const char *parent, size_t i) {
  sj_path p;
  if (snprintf(p.s, sizeof p.s, "%s[%zu]", parent, i) < 0)
    p.s[0] = '\0';
  return p;
}

const char *sj_quote(const char *s, char *buf, size_t size) {
  static const char hex[] = "0123456789abcdef";
  size_t n = 0, limit = size > 16 ? size - 8 : 0;
  buf[n++] = '"';
  for (; *s && n < limit; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      buf[n++] = '\\';
      buf[n++] = (char)c;
    } else if (c < 0x20 || c == 0x7f) {
      buf[n++] = '\\';
      buf[n++] = 'x';
      buf[n++] = hex[c >> 4];
      buf[n++] = hex[c & 15];
    } else {
      buf[n++] = (char)c;
    }
  }
  if (*s) {
    memcpy(buf + n, "...", 3);
    n += 3;
  }
  buf[n++] = '"';
  buf[n] = '\0';
  return buf;
}

static const char *json_type_label(json_type t) {
  switch (t) {
  case json_type_boolean:
    return "a boolean";
  case json_type_double:
    return "a number";
  case json_type_int:
    return "an integer";
  case json_type_object:
    return "an object";
  case json_type_array:
    return "an array";
  case json_type_string:
    return "a string";
  default:
    return "null";
  }
}

int sj_check_type(json_object *v, const char *path, json_type t, rr_err *e) {
  json_type got = json_object_get_type(v);
  if (got == t)
    return 0;
  if (t == json_type_int && got == json_type_double)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: must be an integer, not a fraction", path);
  return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: must be %s, not %s", path, json_type_label(t),
                    json_type_label(got));
}

int sj_member(json_object *o, const char *path, const char *key, json_type t, json_object **ret,
              rr_err *e) {
  json_object *v = NULL;
  if (!json_object_object_get_ex(o, key, &v) || !v)
    return 0;
  if (sj_check_type(v, sj_key(path, key).s, t, e) < 0)
    return -1;
  *ret = v;
  return 1;
}

int sj_string_value(json_object *v, const char *path, size_t max, char **ret, rr_err *e) {
  if (sj_check_type(v, path, json_type_string, e) < 0)
    return -1;
  const char *s = json_object_get_string(v);
  size_t len = (size_t)json_object_get_string_len(v);
  if (strlen(s) != len)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: contains a NUL byte", path);
  if (len > max)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: %zu bytes long (at most %zu)", path, len, max);
  char *d = strdup(s);
  if (!d)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "%s: out of memory", path);
  free(*ret);
  *ret = d;
  return 0;
}

int sj_string(json_object *o, const char *path, const char *key, size_t max, char **ret,
              rr_err *e) {
  json_object *v;
  int r = sj_member(o, path, key, json_type_string, &v, e);
  if (r <= 0)
    return r;
  return sj_string_value(v, sj_key(path, key).s, max, ret, e) < 0 ? -1 : 1;
}

int sj_bool(json_object *o, const char *path, const char *key, bool *ret, rr_err *e) {
  json_object *v;
  int r = sj_member(o, path, key, json_type_boolean, &v, e);
  if (r > 0)
    *ret = json_object_get_boolean(v);
  return r;
}

int sj_u64_value(json_object *v, const char *path, uint64_t max, uint64_t *ret, rr_err *e) {
  if (sj_check_type(v, path, json_type_int, e) < 0)
    return -1;
  /* json-c keeps numbers above INT64_MAX as uint64: get_int64 then saturates */
  if (json_object_get_int64(v) < 0)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: %" PRId64 " is negative", path,
                      json_object_get_int64(v));
  uint64_t u = json_object_get_uint64(v);
  if (u > max)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: %" PRIu64 " is too large (at most %" PRIu64 ")",
                      path, u, max);
  *ret = u;
  return 0;
}

int sj_i64_value(json_object *v, const char *path, int64_t min, int64_t max, int64_t *ret,
                 rr_err *e) {
  if (sj_check_type(v, path, json_type_int, e) < 0)
    return -1;
  int64_t i = json_object_get_int64(v);
  if (i == INT64_MAX && json_object_get_uint64(v) > (uint64_t)INT64_MAX)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: %" PRIu64 " out of range %" PRId64 "..%" PRId64,
                      path, json_object_get_uint64(v), min, max);
  if (i < min || i > max)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: %" PRId64 " out of range %" PRId64 "..%" PRId64,
                      path, i, min, max);
  *ret = i;
  return 0;
}

int sj_u64(json_object *o, const char *path, const char *key, uint64_t max, uint64_t *ret,
           rr_err *e) {
  json_object *v;
  int r = sj_member(o, path, key, json_type_int, &v, e);
  if (r <= 0)
    return r;
  return sj_u64_value(v, sj_key(path, key).s, max, ret, e) < 0 ? -1 : 1;
}

int sj_i64(json_object *o, const char *path, const char *key, int64_t min, int64_t max,
           int64_t *ret, rr_err *e) {
  json_object *v;
  int r = sj_member(o, path, key, json_type_int, &v, e);
  if (r <= 0)
    return r;
  return sj_i64_value(v, sj_key(path, key).s, min, max, ret, e) < 0 ? -1 : 1;
}

void sj_strings_free(char **v, size_t n) {
  if (!v)
    return;
  for (size_t i = 0; i < n; i++)
    free(v[i]);
  free(v);
}

char **sj_strings_dup(const char *const *v, size_t n) {
  char **d = calloc(n ? n : 1, sizeof *d);
  if (!d)
    return NULL;
  for (size_t i = 0; i < n; i++)
    if (!(d[i] = strdup(v[i]))) {
      sj_strings_free(d, i);
      return NULL;
    }
  return d;
}

int sj_strings(json_object *o, const char *path, const char *key, size_t max, size_t maxlen,
               char ***ret, size_t *n, rr_err *e) {
  json_object *a;
  int r = sj_member(o, path, key, json_type_array, &a, e);
  if (r <= 0)
    return r;
  sj_path p = sj_key(path, key);
  size_t len = json_object_array_length(a);
  if (len > max)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: %zu entries (at most %zu)", p.s, len, max);
  char **v = calloc(len ? len : 1, sizeof *v);
  if (!v)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "%s: out of memory", p.s);
  for (size_t i = 0; i < len; i++)
    if (sj_string_value(json_object_array_get_idx(a, i), sj_index(p.s, i).s, maxlen, &v[i], e) <
        0) {
      sj_strings_free(v, len);
      return -1;
    }
  sj_strings_free(*ret, *n);
  *ret = v;
  *n = len;
  return 1;
}

int sb_path_check(const char *p, const char *path, rr_err *e) {
  if (p[0] != '/')
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: must be absolute, not %s", path, SJ_QUOTE(p));
  if (strlen(p) >= SB_PATH_MAX)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: longer than %d bytes", path, SB_PATH_MAX - 1);
  for (const char *c = p; *c;) {
    while (*c == '/')
      c++;
    size_t len = strcspn(c, "/");
    if ((len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: %s has a \".\" or \"..\" component", path,
                        SJ_QUOTE(p));
    c += len;
  }
  return 0;
}

int sb_hostname_check_lax(const char *h, const char *path, rr_err *e) {
  size_t len = strlen(h);
  bool ok = len >= 1 && len <= SB_HOSTNAME_MAX;
  for (const char *c = h; ok && *c; c++)
    ok = *c > ' ' && *c < 0x7f && *c != '/';
  if (!ok)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: %s is not a valid hostname", path, SJ_QUOTE(h));
  return 0;
}

int sb_hostname_check(const char *h, const char *path, rr_err *e) {
  size_t len = strlen(h);
  bool ok = len >= 1 && len <= SB_HOSTNAME_MAX;
  /* labels of letters, digits and inner hyphens, separated by single dots */
  for (size_t i = 0, label = 0; ok && i <= len; i++) {
    char c = h[i];
    if (c == '.' || c == '\0') {
      ok = label > 0 && label <= 63 && h[i - 1] != '-';
      label = 0;
    } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               (c == '-' && label > 0)) {
      label++;
    } else {
      ok = false;
    }
  }
  if (!ok)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: %s is not a valid hostname", path, SJ_QUOTE(h));
  return 0;
}
