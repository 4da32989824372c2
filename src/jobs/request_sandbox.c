/* The sandbox part of a job's request: validation and its job.json form. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jobs/request.h"

void job_sandbox_close_fds(const job_sandbox *s) {
  for (size_t i = 0; s->fds && i <= s->nbinds; i++)
    if (s->fds[i] >= 0) {
      close(s->fds[i]);
      s->fds[i] = -1;
    }
}

void job_sandbox_free(job_sandbox *s) {
  free(s->profile_requested);
  free(s->rootfs);
  free(s->image);
  for (size_t i = 0; i < s->nbinds; i++) {
    free(s->binds[i].source);
    free(s->binds[i].destination);
  }
  free(s->binds);
  free(s->hostname);
  free(s->groups);
  job_sandbox_close_fds(s);
  free(s->fds);
  memset(s, 0, sizeof *s);
}

int job_sandbox_validate(const job_sandbox *s, rr_err *e) {
  if ((unsigned)s->profile >= SB_PROFILE_COUNT)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "sandbox.profile: unknown profile %d",
                      (int)s->profile);
  if (s->profile == SB_PROFILE_HOST) {
    const char *field = s->rootfs     ? "rootfs"
                        : s->image    ? "image"
                        : s->nbinds   ? "binds"
                        : s->net      ? "net"
                        : s->hostname ? "hostname"
                        : s->has_user ? "user"
                                      : NULL;
    if (field)
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "sandbox.%s: needs a sandbox (profile default or strict), but the "
                        "profile is host",
                        field);
    return 0;
  }
  if (s->rootfs && sb_path_check(s->rootfs, "sandbox.rootfs", e) < 0)
    return -1;
  if (s->nbinds > SB_MAX_BINDS)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "sandbox.binds: %zu entries (at most %d)", s->nbinds,
                      SB_MAX_BINDS);
  for (size_t i = 0; i < s->nbinds; i++) {
    char field[64];
    snprintf(field, sizeof field, "sandbox.binds[%zu].source", i);
    if (sb_path_check(s->binds[i].source, field, e) < 0)
      return -1;
    snprintf(field, sizeof field, "sandbox.binds[%zu].destination", i);
    if (sb_path_check(s->binds[i].destination, field, e) < 0)
      return -1;
  }
  if ((unsigned)s->net > SB_NET_HOST)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "sandbox.net: unknown value %d", (int)s->net);
  if (s->hostname && sb_hostname_check(s->hostname, "sandbox.hostname", e) < 0)
    return -1;
  if (s->has_user && (s->uid == UINT32_MAX || s->gid == UINT32_MAX))
    return rr_err_set(e, RR_INVALID_ARGUMENT, "sandbox.user: %u is not a valid id", UINT32_MAX);
  return 0;
}

static const char *const net_names[] = {NULL, "none", "host"};

json_object *job_sandbox_to_json(const job_sandbox *s) {
  if (s->profile == SB_PROFILE_HOST && !s->profile_requested)
    return NULL;
  json_object *o = json_object_new_object();
  json_object_object_add(o, "profile", json_object_new_string(sb_profile_name(s->profile)));
  if (s->profile_requested)
    json_object_object_add(o, "profile_requested", json_object_new_string(s->profile_requested));
  if (s->rootfs)
    json_object_object_add(o, "rootfs", json_object_new_string(s->rootfs));
  if (s->image)
    json_object_object_add(o, "image", json_object_new_string(s->image));
  if (s->nbinds) {
    json_object *a = json_object_new_array();
    for (size_t i = 0; i < s->nbinds; i++) {
      json_object *b = json_object_new_object();
      json_object_object_add(b, "source", json_object_new_string(s->binds[i].source));
      json_object_object_add(b, "destination", json_object_new_string(s->binds[i].destination));
      json_object_object_add(b, "readonly", json_object_new_boolean(s->binds[i].readonly));
      json_object_array_add(a, b);
    }
    json_object_object_add(o, "binds", a);
  }
  if (s->net)
    json_object_object_add(o, "net", json_object_new_string(net_names[s->net]));
  if (s->hostname)
    json_object_object_add(o, "hostname", json_object_new_string(s->hostname));
  if (s->has_user) {
    json_object *u = json_object_new_object();
    json_object_object_add(u, "uid", json_object_new_uint64(s->uid));
    json_object_object_add(u, "gid", json_object_new_uint64(s->gid));
    json_object_object_add(o, "user", u);
  }
  return o;
}

/* An optional string member: 0 (absent or copied), -1 when not a string. */
static int json_str(json_object *o, const char *key, char **ret, rr_err *e) {
  json_object *v;
  if (!json_object_object_get_ex(o, key, &v))
    return 0;
  if (!json_object_is_type(v, json_type_string))
    return rr_err_set(e, RR_DATA_LOSS, "job.json: sandbox.%s is not a string", key);
  if (!(*ret = strdup(json_object_get_string(v))))
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory loading job.json");
  return 0;
}

static int json_id(json_object *o, const char *key, uint32_t *ret, rr_err *e) {
  json_object *v;
  if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int) ||
      json_object_get_int64(v) < 0 || json_object_get_int64(v) >= UINT32_MAX)
    return rr_err_set(e, RR_DATA_LOSS, "job.json: sandbox.user.%s is not an id", key);
  *ret = (uint32_t)json_object_get_int64(v);
  return 0;
}

static int binds_from_json(json_object *a, job_sandbox *s, rr_err *e) {
  if (!json_object_is_type(a, json_type_array) || json_object_array_length(a) > SB_MAX_BINDS)
    return rr_err_set(e, RR_DATA_LOSS, "job.json: sandbox.binds is not an array of <= %d",
                      SB_MAX_BINDS);
  size_t n = json_object_array_length(a);
  if (n && !(s->binds = calloc(n, sizeof *s->binds)))
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory loading job.json");
  for (size_t i = 0; i < n; i++) {
    json_object *b = json_object_array_get_idx(a, i), *ro;
    job_bind *jb = &s->binds[i];
    s->nbinds = i + 1;
    if (!json_object_is_type(b, json_type_object))
      return rr_err_set(e, RR_DATA_LOSS, "job.json: sandbox.binds[%zu] is not an object", i);
    if (json_str(b, "source", &jb->source, e) < 0 ||
        json_str(b, "destination", &jb->destination, e) < 0)
      return -1;
    if (!jb->source || !jb->destination)
      return rr_err_set(e, RR_DATA_LOSS, "job.json: sandbox.binds[%zu] lacks a path", i);
    jb->readonly = json_object_object_get_ex(b, "readonly", &ro) && json_object_get_boolean(ro);
  }
  return 0;
}

static int sandbox_from_json(json_object *o, job_sandbox *s, rr_err *e) {
  if (!json_object_is_type(o, json_type_object))
    return rr_err_set(e, RR_DATA_LOSS, "job.json: sandbox is not an object");
  char *profile = NULL, *net = NULL;
  rr_err pe = {0};
  int rc = json_str(o, "profile", &profile, e);
  if (rc == 0 &&
      (!profile || sb_profile_from_name(profile, "sandbox.profile", &s->profile, &pe) < 0))
    rc = rr_err_set(e, RR_DATA_LOSS, "job.json: %s", profile ? pe.msg : "sandbox.profile missing");
  free(profile);
  if (rc < 0)
    return -1;
  if (json_str(o, "profile_requested", &s->profile_requested, e) < 0 ||
      json_str(o, "rootfs", &s->rootfs, e) < 0 || json_str(o, "image", &s->image, e) < 0 ||
      json_str(o, "hostname", &s->hostname, e) < 0 || json_str(o, "net", &net, e) < 0)
    return -1;
  if (net) {
    bool none = strcmp(net, "none") == 0, host = strcmp(net, "host") == 0;
    free(net);
    if (!none && !host)
      return rr_err_set(e, RR_DATA_LOSS, "job.json: sandbox.net is neither none nor host");
    s->net = none ? SB_NET_NONE : SB_NET_HOST;
  }
  json_object *v;
  if (json_object_object_get_ex(o, "binds", &v) && binds_from_json(v, s, e) < 0)
    return -1;
  if (json_object_object_get_ex(o, "user", &v)) {
    if (json_id(v, "uid", &s->uid, e) < 0 || json_id(v, "gid", &s->gid, e) < 0)
      return -1;
    s->has_user = true;
  }
  return 0;
}

int job_sandbox_from_json(json_object *o, job_sandbox *s, rr_err *e) {
  memset(s, 0, sizeof *s);
  if (sandbox_from_json(o, s, e) < 0) {
    job_sandbox_free(s);
    return -1;
  }
  return 0;
}
