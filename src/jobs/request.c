#include "jobs/request.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void strv_free(char **v, size_t n) {
  if (!v)
    return;
  for (size_t i = 0; i < n; i++)
    free(v[i]);
  free(v);
}

void job_request_free(job_request *r) {
  if (!r)
    return;
  free(r->path);
  strv_free(r->args, r->nargs);
  strv_free(r->env_keys, r->nenv);
  strv_free(r->env_values, r->nenv);
  free(r->workdir);
  strv_free(r->tags, r->ntags);
  free(r->limits);
  job_sandbox_free(&r->sandbox);
  free(r->term);
  memset(r, 0, sizeof *r);
}

int job_request_set_limits(job_request *r, const cg_limits *l, rr_err *e) {
  free(r->limits);
  r->limits = NULL;
  if (!cg_limits_any(l))
    return 0;
  if (!(r->limits = malloc(sizeof *r->limits)))
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  *r->limits = *l;
  return 0;
}

static bool utf8_valid(const unsigned char *s, size_t len) {
  size_t i = 0;
  while (i < len) {
    unsigned c = s[i];
    size_t n;
    unsigned min;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      n = 1, min = 0x80, c &= 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2, min = 0x800, c &= 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3, min = 0x10000, c &= 0x07;
    } else
      return false;
    if (i + n >= len) /* truncated sequence */
      return false;
    for (size_t k = 1; k <= n; k++) {
      if ((s[i + k] & 0xc0) != 0x80)
        return false;
      c = (c << 6) | (s[i + k] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
      return false;
    i += n + 1;
  }
  return true;
}

int request_string_dup(const void *data, size_t len, const char *field, char **ret, rr_err *e) {
  if (len && memchr(data, '\0', len))
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s contains a NUL byte", field);
  if (!utf8_valid(data, len))
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s is not valid UTF-8", field);
  char *s = malloc(len + 1);
  if (!s)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory copying %s", field);
  if (len)
    memcpy(s, data, len);
  s[len] = '\0';
  *ret = s;
  return 0;
}

int request_tag_check(const char *tag, const char *field, rr_err *e) {
  size_t n = strlen(tag);
  if (n == 0 || n > REQUEST_MAX_TAG_LEN)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s \"%.80s\" must be 1..%d characters", field, tag,
                      REQUEST_MAX_TAG_LEN);
  for (size_t i = 0; i < n; i++) {
    char c = tag[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          strchr("._:/=-", c)))
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "%s \"%s\" has a character outside [A-Za-z0-9._:/=-]", field, tag);
  }
  return 0;
}

int job_request_validate(const job_request *r, rr_err *e) {
  if (!r->path || !*r->path)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "command.path is empty");
  size_t total = strlen(r->path) + 1;
  if (total > REQUEST_MAX_ITEM)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "command.path is longer than %u bytes",
                      REQUEST_MAX_ITEM);
  if (r->nargs > REQUEST_MAX_ARGS)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "command.args has %zu entries (max %d)", r->nargs,
                      REQUEST_MAX_ARGS);
  for (size_t i = 0; i < r->nargs; i++) {
    size_t n = strlen(r->args[i]) + 1;
    if (n > REQUEST_MAX_ITEM)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "command.args[%zu] is longer than %u bytes", i,
                        REQUEST_MAX_ITEM);
    total += n;
  }
  if (r->nenv > REQUEST_MAX_ENV)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "command.env has %zu entries (max %d)", r->nenv,
                      REQUEST_MAX_ENV);
  for (size_t i = 0; i < r->nenv; i++) {
    const char *k = r->env_keys[i];
    if (!*k)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "command.env has an empty name");
    if (strchr(k, '='))
      return rr_err_set(e, RR_INVALID_ARGUMENT, "command.env name \"%.100s\" contains '='", k);
    size_t n = strlen(k) + strlen(r->env_values[i]) + 2;
    if (n > REQUEST_MAX_ITEM)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "command.env[\"%.100s\"] is longer than %u bytes",
                        k, REQUEST_MAX_ITEM);
    total += n;
  }
  if (total > REQUEST_MAX_TOTAL)
    return rr_err_set(e, RR_INVALID_ARGUMENT,
                      "command.args and command.env total %zu bytes (max %u)", total,
                      REQUEST_MAX_TOTAL);
  /* inside a rootfs of its own the workdir is the sandbox's business */
  if (r->workdir && *r->workdir && !(r->sandbox.profile != SB_PROFILE_HOST && r->sandbox.rootfs)) {
    if (r->workdir[0] != '/')
      return rr_err_set(e, RR_INVALID_ARGUMENT, "command.workdir \"%.200s\" is not absolute",
                        r->workdir);
    struct stat st;
    if (stat(r->workdir, &st) < 0)
      return rr_err_sys(e, RR_INVALID_ARGUMENT, errno, "command.workdir \"%.200s\"", r->workdir);
    if (!S_ISDIR(st.st_mode))
      return rr_err_set(e, RR_INVALID_ARGUMENT, "command.workdir \"%.200s\" is not a directory",
                        r->workdir);
  }
  if (r->ntags > REQUEST_MAX_TAGS)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "tags has %zu entries (max %d)", r->ntags,
                      REQUEST_MAX_TAGS);
  for (size_t i = 0; i < r->ntags; i++) {
    char field[32];
    snprintf(field, sizeof field, "tags[%zu]", i);
    if (request_tag_check(r->tags[i], field, e) < 0)
      return -1;
  }
  if (r->has_timeout && (r->timeout_ms == 0 || r->timeout_ms > REQUEST_MAX_TIMEOUT_MS))
    return rr_err_set(e, RR_INVALID_ARGUMENT, "timeout_ms %llu is out of range (1..%llu)",
                      (unsigned long long)r->timeout_ms,
                      (unsigned long long)REQUEST_MAX_TIMEOUT_MS);
  if (r->has_timeout_grace &&
      (r->timeout_grace_ms == 0 || r->timeout_grace_ms > REQUEST_MAX_TIMEOUT_GRACE_MS))
    return rr_err_set(e, RR_INVALID_ARGUMENT, "timeout_grace_ms %u is out of range (1..%u)",
                      (unsigned)r->timeout_grace_ms, (unsigned)REQUEST_MAX_TIMEOUT_GRACE_MS);
  if (r->has_timeout_grace && !r->has_timeout)
    return rr_err_set(
        e, RR_INVALID_ARGUMENT,
        "timeout_grace_ms is set but timeout_ms is not (the grace follows a timeout)");
  if (r->limits && cg_limits_validate(r->limits, e) < 0)
    return -1;
  return job_sandbox_validate(&r->sandbox, e);
}

json_object *job_request_to_json(const job_request *r) {
  json_object *o = json_object_new_object(), *args = json_object_new_array(),
              *env = json_object_new_object(), *tags = json_object_new_array();
  json_object_object_add(o, "path", json_object_new_string(r->path));
  for (size_t i = 0; i < r->nargs; i++)
    json_object_array_add(args, json_object_new_string(r->args[i]));
  json_object_object_add(o, "args", args);
  for (size_t i = 0; i < r->nenv; i++)
    json_object_object_add(env, r->env_keys[i], json_object_new_string(r->env_values[i]));
  json_object_object_add(o, "env", env);
  json_object_object_add(o, "workdir", json_object_new_string(r->workdir ? r->workdir : ""));
  for (size_t i = 0; i < r->ntags; i++)
    json_object_array_add(tags, json_object_new_string(r->tags[i]));
  json_object_object_add(o, "tags", tags);
  if (r->has_timeout)
    json_object_object_add(o, "timeout_ms", json_object_new_uint64(r->timeout_ms));
  if (r->has_timeout_grace)
    json_object_object_add(o, "timeout_grace_ms", json_object_new_uint64(r->timeout_grace_ms));
  json_object *lim = r->limits ? request_limits_to_json(r->limits) : NULL;
  if (lim)
    json_object_object_add(o, "limits", lim);
  json_object *sb = job_sandbox_to_json(&r->sandbox);
  if (sb)
    json_object_object_add(o, "sandbox", sb);
  if (r->stdin_open || r->tty)
    json_object_object_add(o, "stdin", json_object_new_boolean(1));
  if (r->tty) {
    json_object *t = json_object_new_object();
    json_object_object_add(t, "rows", json_object_new_int((int)r->rows));
    json_object_object_add(t, "cols", json_object_new_int((int)r->cols));
    json_object_object_add(t, "term", json_object_new_string(r->term ? r->term : "xterm"));
    json_object_object_add(o, "tty", t);
  }
  return o;
}

json_object *request_limits_to_json(const cg_limits *l) {
  if (!cg_limits_any(l))
    return NULL;
  json_object *o = json_object_new_object();
  if (l->has_cpu) {
    json_object_object_add(o, "cpu_quota_us", json_object_new_uint64(l->cpu_quota_us));
    json_object_object_add(o, "cpu_period_us", json_object_new_uint64(l->cpu_period_us));
  }
  if (l->has_memory)
    json_object_object_add(o, "memory_max", json_object_new_uint64(l->memory_max));
  if (l->has_pids)
    json_object_object_add(o, "pids_max", json_object_new_uint64(l->pids_max));
  if (l->nio) {
    json_object *io = json_object_new_array();
    for (size_t i = 0; i < l->nio; i++) {
      const cg_io_limit *d = &l->io[i];
      json_object *it = json_object_new_object();
      char dev[32];
      snprintf(dev, sizeof dev, "%u:%u", d->major, d->minor);
      json_object_object_add(it, "device", json_object_new_string(dev));
      json_object_object_add(it, "rbps", json_object_new_uint64(d->rbps));
      json_object_object_add(it, "wbps", json_object_new_uint64(d->wbps));
      json_object_object_add(it, "riops", json_object_new_uint64(d->riops));
      json_object_object_add(it, "wiops", json_object_new_uint64(d->wiops));
      json_object_array_add(io, it);
    }
    json_object_object_add(o, "io", io);
  }
  return o;
}

/* An optional unsigned member; DATA_LOSS when present with another type. */
static int json_u64(json_object *o, const char *k, bool *has, uint64_t *ret, rr_err *e) {
  json_object *v;
  if (!json_object_object_get_ex(o, k, &v))
    return 0;
  if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0)
    return rr_err_set(e, RR_DATA_LOSS, "job.json: limits.%s is not a number >= 0", k);
  *ret = json_object_get_uint64(v);
  if (has)
    *has = true;
  return 0;
}

int request_limits_from_json(json_object *o, cg_limits *l, rr_err *e) {
  memset(l, 0, sizeof *l);
  if (!json_object_is_type(o, json_type_object))
    return rr_err_set(e, RR_DATA_LOSS, "job.json: limits is not an object");
  if (json_u64(o, "cpu_quota_us", &l->has_cpu, &l->cpu_quota_us, e) < 0 ||
      json_u64(o, "cpu_period_us", NULL, &l->cpu_period_us, e) < 0 ||
      json_u64(o, "memory_max", &l->has_memory, &l->memory_max, e) < 0 ||
      json_u64(o, "pids_max", &l->has_pids, &l->pids_max, e) < 0)
    return -1;
  json_object *io;
  if (!json_object_object_get_ex(o, "io", &io))
    return 0;
  if (!json_object_is_type(io, json_type_array) || json_object_array_length(io) > CG_MAX_IO)
    return rr_err_set(e, RR_DATA_LOSS, "job.json: limits.io is not an array of <= %d entries",
                      CG_MAX_IO);
  for (size_t i = 0; i < json_object_array_length(io); i++) {
    json_object *it = json_object_array_get_idx(io, i), *dev;
    cg_io_limit *d = &l->io[i];
    unsigned maj, min;
    char end;
    if (!json_object_is_type(it, json_type_object) ||
        !json_object_object_get_ex(it, "device", &dev) ||
        !json_object_is_type(dev, json_type_string) ||
        sscanf(json_object_get_string(dev), "%u:%u%c", &maj, &min, &end) != 2)
      return rr_err_set(e, RR_DATA_LOSS, "job.json: limits.io[%zu] has no MAJ:MIN device", i);
    d->major = maj;
    d->minor = min;
    if (json_u64(it, "rbps", NULL, &d->rbps, e) < 0 ||
        json_u64(it, "wbps", NULL, &d->wbps, e) < 0 ||
        json_u64(it, "riops", NULL, &d->riops, e) < 0 ||
        json_u64(it, "wiops", NULL, &d->wiops, e) < 0)
      return -1;
    l->nio++;
  }
  return 0;
}

static int json_strv(json_object *arr, const char *field, char ***ret, size_t *n, rr_err *e) {
  *ret = NULL;
  *n = 0;
  if (!arr)
    return 0;
  if (!json_object_is_type(arr, json_type_array))
    return rr_err_set(e, RR_DATA_LOSS, "job.json: %s is not an array", field);
  size_t len = json_object_array_length(arr);
  *ret = calloc(len + 1, sizeof **ret);
  if (!*ret)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  for (size_t i = 0; i < len; i++) {
    json_object *it = json_object_array_get_idx(arr, i);
    if (!json_object_is_type(it, json_type_string))
      return rr_err_set(e, RR_DATA_LOSS, "job.json: %s[%zu] is not a string", field, i);
    if (!((*ret)[i] = strdup(json_object_get_string(it))))
      return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
    (*n)++;
  }
  return 0;
}

int job_request_from_json(json_object *o, job_request *r, rr_err *e) {
  memset(r, 0, sizeof *r);
  json_object *v;
  if (!json_object_object_get_ex(o, "path", &v) || !json_object_is_type(v, json_type_string))
    return rr_err_set(e, RR_DATA_LOSS, "job.json: request.path missing");
  if (!(r->path = strdup(json_object_get_string(v))))
    goto nomem;
  if (json_strv(json_object_object_get_ex(o, "args", &v) ? v : NULL, "args", &r->args, &r->nargs,
                e) < 0 ||
      json_strv(json_object_object_get_ex(o, "tags", &v) ? v : NULL, "tags", &r->tags, &r->ntags,
                e) < 0)
    goto fail;
  if (json_object_object_get_ex(o, "env", &v) && json_object_is_type(v, json_type_object)) {
    size_t n = (size_t)json_object_object_length(v);
    r->env_keys = calloc(n + 1, sizeof *r->env_keys);
    r->env_values = calloc(n + 1, sizeof *r->env_values);
    if (!r->env_keys || !r->env_values)
      goto nomem;
    json_object_object_foreach(v, key, val) {
      r->env_keys[r->nenv] = strdup(key);
      r->env_values[r->nenv] = strdup(json_object_get_string(val));
      r->nenv++;
      if (!r->env_keys[r->nenv - 1] || !r->env_values[r->nenv - 1])
        goto nomem;
    }
  }
  if (json_object_object_get_ex(o, "workdir", &v) && json_object_get_string_len(v) &&
      !(r->workdir = strdup(json_object_get_string(v))))
    goto nomem;
  if (json_object_object_get_ex(o, "timeout_ms", &v)) {
    r->has_timeout = true;
    r->timeout_ms = json_object_get_uint64(v);
  }
  if (json_object_object_get_ex(o, "timeout_grace_ms", &v)) {
    uint64_t g = json_object_get_uint64(v);
    r->has_timeout_grace = g >= 1 && g <= REQUEST_MAX_TIMEOUT_GRACE_MS;
    r->timeout_grace_ms = r->has_timeout_grace ? (uint32_t)g : 0;
  }
  if (json_object_object_get_ex(o, "limits", &v)) {
    cg_limits l;
    if (request_limits_from_json(v, &l, e) < 0 || job_request_set_limits(r, &l, e) < 0)
      goto fail;
  }
  if (json_object_object_get_ex(o, "sandbox", &v) && job_sandbox_from_json(v, &r->sandbox, e) < 0)
    goto fail;
  r->stdin_open = json_object_object_get_ex(o, "stdin", &v) && json_object_get_boolean(v);
  if (json_object_object_get_ex(o, "tty", &v) && json_object_is_type(v, json_type_object)) {
    json_object *x;
    r->tty = true;
    if (json_object_object_get_ex(v, "rows", &x))
      r->rows = (unsigned)json_object_get_int(x);
    if (json_object_object_get_ex(v, "cols", &x))
      r->cols = (unsigned)json_object_get_int(x);
    if (json_object_object_get_ex(v, "term", &x) && !(r->term = strdup(json_object_get_string(x))))
      goto nomem;
  }
  return 0;
nomem:
  rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory loading job.json");
fail:
  job_request_free(r);
  return -1;
}
