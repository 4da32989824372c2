/* What a request gives the profiles (sandbox/profile.h), none of it
 * trusted: binds ("SRC:DST[:ro|rw]"), host names, paths, profile names,
 * and the config sb_spec_for_profile makes of them. Nothing is spawned and
 * no file is looked at (sb_binds_check, which resolves paths, is left out).
 *
 * Input: a 48-byte header (zero-padded), then lines:
 *   header: [0] net (3: an invalid mode), [1] bits: has_user, limits,
 *   has_cpu, has_memory, has_pids, 2 bits of io devices, rootless; [2] the profile
 *   when line 0 names none (3: an invalid one); [3] a minimum to clamp to;
 *   uid, gid, host uid, host gid (u32 LE at 4, 8, 12, 16); cpu quota (u64
 *   at 20), period (u32 at 28); memory (u64 at 32); pids (u32 at 40); io
 *   major, minor, rate shift (44, 45, 46)
 *   line 0 profile name, 1 hostname, 2 cwd, 3 rootfs (empty: none), then
 *   "a" argv, "e" env, "b" bind, "g" host group, "p" path, "h" hostname. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox/profile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HEADER 48
#define MAX_LINES 256

static uint32_t u32_at(const uint8_t *h, size_t i) {
  return (uint32_t)h[i] | (uint32_t)h[i + 1] << 8 | (uint32_t)h[i + 2] << 16 |
         (uint32_t)h[i + 3] << 24;
}

static uint64_t u64_at(const uint8_t *h, size_t i) {
  return (uint64_t)u32_at(h, i) | (uint64_t)u32_at(h, i + 4) << 32;
}

/* sb_path_check's contract, written again. */
static bool path_ok(const char *p) {
  if (p[0] != '/' || strlen(p) >= 4096)
    return false;
  for (const char *c = p; *c;) {
    while (*c == '/')
      c++;
    size_t n = strcspn(c, "/");
    if ((n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
      return false;
    c += n;
  }
  return true;
}

/* RFC 1123 labels, 1..64 bytes in all: sb_hostname_check's contract. */
static bool hostname_ok(const char *h) {
  size_t len = strlen(h);
  if (len < 1 || len > 64)
    return false;
  for (const char *label = h;;) {
    size_t n = strspn(label, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-");
    if (n < 1 || n > 63 || label[0] == '-' || label[n - 1] == '-')
      return false;
    if (label[n] == '\0')
      return true;
    if (label[n] != '.')
      return false;
    label += n + 1;
  }
}

/* p with repeated and trailing slashes dropped (p passed path_ok). */
static void path_clean(const char *p, char *out) {
  size_t n = 0;
  for (; *p; p++)
    if (*p != '/' || (n == 0 || out[n - 1] != '/'))
      out[n++] = *p;
  if (n > 1 && out[n - 1] == '/')
    n--;
  out[n] = '\0';
}

static bool clean_below(const char *p, const char *dir) {
  size_t n = strlen(dir);
  return strncmp(p, dir, n) == 0 && (p[n] == '\0' || p[n] == '/');
}

static void check_bind(const char *text) {
  sb_bind b = {"unset", "unset", true};
  char *storage = NULL;
  rr_err e = {0};
  if (sb_bind_parse(text, "bind", &b, &storage, &e) < 0) {
    if (!e.code || !e.msg[0] || storage || strcmp(b.source, "unset") != 0)
      abort(); /* refused without a reason, or the output changed */
    return;
  }
  if (!storage || !path_ok(b.source) || !path_ok(b.destination))
    abort();
  char again[2 * 4096 + 8];
  snprintf(again, sizeof again, "%s:%s", b.source, b.destination);
  size_t n = strlen(again);
  if (strcmp(text, again) != 0 &&
      !(strncmp(text, again, n) == 0 && strcmp(text + n, b.readonly ? ":ro" : ":rw") == 0))
    abort(); /* the parts do not make the text again */
  free(storage);
}

/* The config a profile made: valid, round-trips, keeps the profile's promises. */
static void check_spec(sb_profile p, const sb_params *pa, const sb_spec *s) {
  rr_err e = {0};
  if (sb_spec_validate(s, &e) < 0) {
    fprintf(stderr, "a profile's config does not validate: %s\n", e.msg);
    abort();
  }
  json_object *o = sb_spec_to_json(s);
  char *t1 = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
  json_object_put(o);
  sb_spec *again = NULL;
  if (!t1 || sb_spec_parse(t1, strlen(t1), NULL, &again, &e) < 0) {
    fprintf(stderr, "a profile's config does not load: %s\n%s\n", e.msg, t1 ? t1 : "");
    abort();
  }
  o = sb_spec_to_json(again);
  if (strcmp(t1, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN)) != 0)
    abort();
  json_object_put(o);
  sb_spec_free(again);
  free(t1);

  bool strict = p == SB_PROFILE_STRICT;
  if (!s->process.no_new_privileges || !s->seccomp || !s->ns[SB_NS_PID].enabled ||
      !s->ns[SB_NS_MOUNT].enabled || !s->root_path || !s->hostname)
    abort();
  if (strict || pa->rootless) {
    if (!s->ns[SB_NS_USER].enabled || s->nuid_maps != 1 || s->ngid_maps != 1 ||
        s->uid_maps[0].host_id == 0 || s->gid_maps[0].host_id == 0)
      abort(); /* a user namespace never maps host root */
  }
  if (strict) {
    const sb_caps *c = &s->process.caps;
    if (!s->ns[SB_NS_NET].enabled || !s->root_readonly || c->bounding || c->effective ||
        c->permitted || c->ambient || !s->resources || !s->resources->has_pids ||
        !s->resources->has_memory)
      abort(); /* strict never runs with capabilities or network */
  }
  if (!pa->rootfs && !s->root_readonly)
    abort(); /* the host's root is never writable */
  /* the mounts: 7 fresh ones, maybe the cwd bound onto itself (read-only
   * under strict, only below the fresh /tmp there), the binds */
  char cwd[4096];
  path_clean(pa->cwd ? pa->cwd : "/", cwd);
  bool cwd_bind = !pa->rootfs && strcmp(cwd, "/") != 0 && !clean_below(cwd, "/proc") &&
                  !clean_below(cwd, "/sys") && !clean_below(cwd, "/dev") &&
                  (!strict || clean_below(cwd, "/tmp"));
  if (s->nmounts != 7 + cwd_bind + pa->nbinds) {
    fprintf(stderr, "%zu mounts for cwd \"%s\" and %zu binds\n", s->nmounts, pa->cwd, pa->nbinds);
    abort(); /* a cwd bind where none belongs (the host's root, /dev...) or none where one does */
  }
  for (size_t i = 0; i < s->nmounts; i++) {
    const sb_mount *m = &s->mounts[i];
    if (!path_ok(m->destination) || (m->bind && (!m->source || m->source[0] != '/')))
      abort();
    if (cwd_bind && i == 7 &&
        (!m->bind || strcmp(m->destination, cwd) != 0 || strcmp(m->source, cwd) != 0 ||
         m->readonly != strict))
      abort();
    if (i >= 7 + cwd_bind) {
      const sb_bind *b = &pa->binds[i - 7 - cwd_bind];
      if (!m->bind || strcmp(m->source, b->source) != 0 ||
          strcmp(m->destination, b->destination) != 0 || m->readonly != b->readonly)
        abort();
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 65536)
    return 0;
  uint8_t h[HEADER] = {0};
  memcpy(h, data, size < HEADER ? size : HEADER);
  size_t tlen = size > HEADER ? size - HEADER : 0;
  char *text = malloc(tlen + 1);
  if (!text)
    abort();
  memcpy(text, data + HEADER * (size > HEADER), tlen);
  text[tlen] = '\0';

  char *lines[MAX_LINES];
  size_t nlines = 0;
  for (char *c = text; c && nlines < MAX_LINES;) {
    lines[nlines++] = c;
    if ((c = strchr(c, '\n')))
      *c++ = '\0';
  }
  const char *name = nlines > 0 ? lines[0] : "", *host = nlines > 1 ? lines[1] : "";
  const char *cwd = nlines > 2 ? lines[2] : "", *rootfs = nlines > 3 ? lines[3] : "";

  rr_err e = {0};
  sb_profile p;
  if (sb_profile_from_name(name, "profile", &p, &e) == 0) {
    if (strcmp(sb_profile_name(p), name) != 0)
      abort();
  } else {
    if (!e.code || !e.msg[0])
      abort();
    p = (sb_profile)(h[2] % 4);
  }
  sb_profile min = (sb_profile)(h[3] % SB_PROFILE_COUNT), c = sb_profile_clamp(p, min);
  if (c < min || c < p || (c != min && c != p))
    abort(); /* the stronger of the two */

  const char *argv[MAX_LINES], *env[MAX_LINES];
  sb_bind binds[SB_MAX_BINDS + 2];
  char *storage[SB_MAX_BINDS + 2] = {0};
  gid_t groups[SB_MAX_GROUPS + 2];
  size_t nargs = 0, nenv = 0, nbinds = 0, ngroups = 0;
  for (size_t i = 4; i < nlines; i++) {
    const char *v = lines[i] + 1;
    switch (lines[i][0]) {
    case 'a':
      argv[nargs++] = v;
      break;
    case 'e':
      env[nenv++] = v;
      break;
    case 'b':
      check_bind(v);
      if (nbinds < SB_MAX_BINDS + 2 &&
          sb_bind_parse(v, "bind", &binds[nbinds], &storage[nbinds], &e) == 0)
        nbinds++;
      break;
    case 'g':
      if (ngroups < SB_MAX_GROUPS + 2)
        groups[ngroups++] = (gid_t)strtoul(v, NULL, 0);
      break;
    case 'p':
      if ((sb_path_check(v, "path", &e) == 0) != path_ok(v))
        abort();
      break;
    case 'h':
      if ((sb_hostname_check(v, "hostname", &e) == 0) != hostname_ok(v))
        abort();
      break;
    }
  }
  if ((sb_hostname_check(host, "hostname", &e) == 0) != hostname_ok(host))
    abort();
  if (cwd[0] && (sb_path_check(cwd, "cwd", &e) == 0) != path_ok(cwd))
    abort();

  cg_limits l = {0};
  l.has_cpu = h[1] & 4;
  l.cpu_quota_us = u64_at(h, 20);
  l.cpu_period_us = u32_at(h, 28);
  l.has_memory = h[1] & 8;
  l.memory_max = u64_at(h, 32);
  l.has_pids = h[1] & 16;
  l.pids_max = u32_at(h, 40);
  l.nio = (h[1] >> 5) & 3;
  for (size_t i = 0; i < l.nio; i++)
    l.io[i] = (cg_io_limit){
        .major = h[44] + (unsigned)i, .minor = h[45], .rbps = 1ull << (h[46] % 64), .wiops = i};
  sb_params pa = {
      .argv = argv,
      .nargs = nargs,
      .env = env,
      .nenv = nenv,
      .cwd = cwd[0] ? cwd : NULL,
      .rootfs = rootfs[0] ? rootfs : NULL,
      .binds = binds,
      .nbinds = nbinds,
      .net = (sb_net)(h[0] % 4),
      .hostname = host[0] ? host : NULL,
      .has_user = h[1] & 1,
      .uid = u32_at(h, 4),
      .gid = u32_at(h, 8),
      .host_uid = u32_at(h, 12),
      .host_gid = u32_at(h, 16),
      .host_groups = groups,
      .nhost_groups = ngroups,
      .rootless = h[1] & 128,
      .limits = h[1] & 2 ? &l : NULL,
  };
  sb_spec *s = NULL;
  rr_err se = {0};
  if (sb_spec_for_profile(p, &pa, &s, &se) == 0) {
    if (p != SB_PROFILE_DEFAULT && p != SB_PROFILE_STRICT)
      abort(); /* host (or no profile) has no config */
    check_spec(p, &pa, s);
    sb_spec_free(s);
  } else if (!se.code || !se.msg[0] || s) {
    abort();
  }
  for (size_t i = 0; i < nbinds; i++)
    free(storage[i]);
  free(text);
  return 0;
}
