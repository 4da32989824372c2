/* The sandbox part of a request: the profile it names (or rund's default)
 * raised to rund's minimum and its fields decoded (prepare_decode); then,
 * knowing the caller, binds and rootfs checked against --bind-allow, ids
 * inside against the caller, and strict's limits (prepare_request). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "jobs/job_sandbox.h"
#include "rund.h"

/* An optional string field: "" is NULL. */
static int sandbox_string(const ProtobufCBinaryData *b, const char *field, char **ret, rr_err *e) {
  *ret = NULL;
  if (!b->len)
    return 0;
  return request_string_dup(b->data, b->len, field, ret, e);
}

static int sandbox_binds(const Rundwire__Sandbox *in, job_sandbox *s, rr_err *e) {
  if (in->n_binds > SB_MAX_BINDS)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "sandbox.binds has %zu entries (at most %d)",
                      in->n_binds, SB_MAX_BINDS);
  if (!in->n_binds)
    return 0;
  if (!(s->binds = calloc(in->n_binds, sizeof *s->binds)))
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  for (size_t i = 0; i < in->n_binds; i++) {
    s->nbinds = i + 1; /* counted before its strings: a failure frees what was copied */
    char field[64];
    snprintf(field, sizeof field, "sandbox.binds[%zu].source", i);
    if (request_string_dup(in->binds[i]->source.data, in->binds[i]->source.len, field,
                           &s->binds[i].source, e) < 0)
      return -1;
    snprintf(field, sizeof field, "sandbox.binds[%zu].destination", i);
    if (request_string_dup(in->binds[i]->destination.data, in->binds[i]->destination.len, field,
                           &s->binds[i].destination, e) < 0)
      return -1;
    s->binds[i].readonly = in->binds[i]->readonly;
  }
  return 0;
}

int prepare_sandbox_decode(const Rundwire__Sandbox *in, const rund_sandbox_policy *pol,
                           job_sandbox *s, rr_err *e) {
  memset(s, 0, sizeof *s);
  sb_profile def = pol ? pol->default_profile : SB_PROFILE_HOST;
  sb_profile min = pol ? pol->min_profile : SB_PROFILE_HOST;
  s->profile = def;
  if (in) {
    if (sandbox_string(&in->profile, "sandbox.profile", &s->profile_requested, e) < 0)
      goto fail;
    if (s->profile_requested &&
        sb_profile_from_name(s->profile_requested, "sandbox.profile", &s->profile, e) < 0)
      goto fail;
    if (sandbox_string(&in->rootfs, "sandbox.rootfs", &s->rootfs, e) < 0 ||
        sandbox_string(&in->image, "sandbox.image", &s->image, e) < 0 ||
        sandbox_binds(in, s, e) < 0 ||
        sandbox_string(&in->hostname, "sandbox.hostname", &s->hostname, e) < 0)
      goto fail;
    if (in->net < RUNRPC__V1__NET__NET_UNSPECIFIED || in->net > RUNRPC__V1__NET__NET_HOST) {
      rr_err_set(e, RR_INVALID_ARGUMENT,
                 "sandbox.net: unknown value %d (want NET_NONE or NET_HOST)", in->net);
      goto fail;
    }
    s->net = (sb_net)in->net; /* same numbers */
    if (in->user) {
      s->has_user = true;
      s->uid = in->user->uid;
      s->gid = in->user->gid;
    }
  }
  s->profile = sb_profile_clamp(s->profile, min);
  if (s->image && s->rootfs) {
    rr_err_set(e, RR_INVALID_ARGUMENT, "sandbox.image and sandbox.rootfs exclude each other");
    goto fail;
  }
  return 0;
fail:
  job_sandbox_free(s);
  return -1;
}

bool prepare_sandbox_user_allowed(const job_sandbox *s, const authz_identity *id,
                                  const spawn_ids *run_as) {
  /* without a user namespace the ids inside are the host's: only an admin
   * may pick others than its own (strict maps them onto the caller's) */
  return !s->has_user || s->profile == SB_PROFILE_STRICT || id->admin ||
         (run_as && run_as->uid == s->uid && run_as->gid == s->gid);
}

int prepare_sandbox_check(const rund_sandbox_policy *pol, bool cgroups, const authz_identity *id,
                          const spawn_ids *run_as, job_request *r, rr_err *e) {
  job_sandbox *s = &r->sandbox;
  if (s->profile == SB_PROFILE_HOST)
    return 0;
  const char *const *allow = pol ? pol->bind_allow : NULL;
  size_t nallow = pol ? pol->nbind_allow : 0;
  /* the objects checked are kept open: they are what the sandbox mounts,
   * whatever the paths name by then */
  job_sandbox_close_fds(s);
  free(s->fds);
  if (!(s->fds = malloc((1 + s->nbinds) * sizeof *s->fds)))
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  for (size_t i = 0; i <= s->nbinds; i++)
    s->fds[i] = -1;
  if (s->rootfs && sb_binds_open(&(sb_bind){.source = s->rootfs, .destination = "/"}, 1, allow,
                                 nallow, &s->fds[0], e) < 0) {
    rr_err orig = *e; /* "binds[0].source: why": the field is rootfs here */
    const char *why = strstr(orig.msg, ": ");
    return rr_err_set(e, orig.code, "sandbox.rootfs: %s", why ? why + 2 : orig.msg);
  }
  if (s->nbinds) {
    _cleanup_free_ sb_bind *b = calloc(s->nbinds, sizeof *b);
    if (!b)
      return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = 0; i < s->nbinds; i++)
      b[i] = (sb_bind){s->binds[i].source, s->binds[i].destination, s->binds[i].readonly};
    if (sb_binds_open(b, s->nbinds, allow, nallow, &s->fds[1], e) < 0) {
      rr_err orig = *e; /* "binds[i].source: why" */
      return rr_err_set(e, orig.code, "sandbox.%s", orig.msg);
    }
  }
  if (!prepare_sandbox_user_allowed(s, id, run_as))
    return rr_err_set(e, RR_PERMISSION_DENIED,
                      "sandbox.user: %u:%u inside a %s sandbox are the host's ids: only admins "
                      "may choose them (strict maps ids onto the caller's)",
                      s->uid, s->gid, sb_profile_name(s->profile));
  /* strict's limits need a cgroup: with --no-cgroups they are left out */
  return cgroups ? job_sandbox_default_limits(r, e) : 0;
}
