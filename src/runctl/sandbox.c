/* runctl: the sandbox flags of start and exec (--profile, --rootfs, --bind,
 * --net, --hostname, --user). rund checks them again and decides; here
 * only their form is checked, so that typos fail before connecting. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "runctl.h"

static int sandbox_parse_id(const char *s, size_t len, uint32_t *ret) {
  if (len == 0 || len > 10)
    return -1;
  uint64_t v = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (uint64_t)(s[i] - '0');
  }
  if (v >= UINT32_MAX) /* (uid_t)-1 means "no change" to the kernel */
    return -1;
  *ret = (uint32_t)v;
  return 0;
}

static int sandbox_parse_bind(runctl_ctx *ctx, runctl_sandbox_flags *s, const char *arg) {
  if (s->sandbox.nbinds == RUNRPC_MAX_BINDS)
    return runctl_usage_error(ctx, "too many --bind (at most %d)", RUNRPC_MAX_BINDS);
  size_t i = s->sandbox.nbinds;
  char *copy = strdup(arg);
  if (!copy)
    return runctl_usage_error(ctx, "out of memory");
  s->storage[i] = copy;
  char *dst = strchr(copy, ':');
  char *mode = dst ? strchr(dst + 1, ':') : NULL;
  if (!dst || dst == copy || dst[1] == '\0' || dst[1] == ':')
    return runctl_usage_error(ctx, "--bind \"%s\": want SRC:DST or SRC:DST:ro", arg);
  *dst++ = '\0';
  bool ro = false;
  if (mode) {
    *mode++ = '\0';
    if (strcmp(mode, "ro") == 0)
      ro = true;
    else if (strcmp(mode, "rw") != 0)
      return runctl_usage_error(ctx, "--bind \"%s\": mode \"%s\" is neither ro nor rw", arg, mode);
  }
  if (copy[0] != '/' || dst[0] != '/')
    return runctl_usage_error(ctx, "--bind \"%s\": SRC and DST must be absolute paths", arg);
  s->binds[i] = (runrpc_bind){.source = copy, .destination = dst, .readonly = ro};
  s->sandbox.binds = s->binds;
  s->sandbox.nbinds = i + 1;
  return 0;
}

int runctl_sandbox_apply(runctl_ctx *ctx, runctl_sandbox_flags *s, int opt, const char *arg) {
  runrpc_sandbox *sb = &s->sandbox;
  switch (opt) {
  case RUNCTL_OPT_PROFILE:
    if (!*arg)
      return runctl_usage_error(ctx, "empty --profile (host, default or strict)");
    sb->profile = arg;
    return 0;
  case RUNCTL_OPT_ROOTFS:
    if (arg[0] != '/')
      return runctl_usage_error(ctx, "--rootfs \"%s\": must be an absolute path", arg);
    sb->rootfs = arg;
    return 0;
  case RUNCTL_OPT_IMAGE:
    if (!*arg)
      return runctl_usage_error(ctx, "empty --image (NAME[:TAG] or sha256:HEX)");
    sb->image = arg;
    return 0;
  case RUNCTL_OPT_BIND:
    return sandbox_parse_bind(ctx, s, arg);
  case RUNCTL_OPT_NET:
    if (strcmp(arg, "none") == 0)
      sb->net = RUNRPC_NET_NONE;
    else if (strcmp(arg, "host") == 0)
      sb->net = RUNRPC_NET_HOST;
    else
      return runctl_usage_error(ctx, "--net \"%s\": want none or host", arg);
    return 0;
  case RUNCTL_OPT_HOSTNAME:
    if (!*arg)
      return runctl_usage_error(ctx, "empty --hostname");
    sb->hostname = arg;
    return 0;
  case RUNCTL_OPT_USER: {
    const char *colon = strchr(arg, ':');
    size_t ulen = colon ? (size_t)(colon - arg) : strlen(arg);
    if (sandbox_parse_id(arg, ulen, &sb->uid) < 0 ||
        sandbox_parse_id(colon ? colon + 1 : arg, colon ? strlen(colon + 1) : ulen, &sb->gid) < 0)
      return runctl_usage_error(ctx, "--user \"%s\": want UID or UID:GID (numbers below %u)", arg,
                                UINT32_MAX);
    sb->has_user = true;
    return 0;
  }
  }
  return runctl_usage_error(ctx, "internal: unknown sandbox flag %d", opt);
}

void runctl_sandbox_flags_free(runctl_sandbox_flags *s) {
  for (size_t i = 0; i < RUNRPC_MAX_BINDS; i++)
    free(s->storage[i]);
  *s = (runctl_sandbox_flags){0};
}
