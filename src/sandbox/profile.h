/* Profiles: the server's named sandbox strengths, and the OCI config
 * (sandbox/spec.h) that one of them makes of a request.
 *   host     no isolation (a plain process, as before profiles existed)
 *   default  pid, mount, ipc, uts, cgroup namespaces; Docker's default
 *            capability set; a Docker-like seccomp allow-list; no_new_privs;
 *            the host's root read-only (or the request's rootfs), private
 *            /tmp, /dev, /proc, /sys (ro), masked and read-only paths
 *   strict   also a user namespace and its own network namespace (only lo),
 *            no capabilities, a tight seccomp list, read-only root with a
 *            small tmpfs /tmp, pids and memory limits when the request sets
 *            none
 * Strength order: host < default < strict; the server clamps a request up
 * to its minimum, never refuses it. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"
#include "sandbox/cgroup.h"
#include "sandbox/spec.h"

typedef enum sb_profile {
  SB_PROFILE_HOST,
  SB_PROFILE_DEFAULT,
  SB_PROFILE_STRICT,
  SB_PROFILE_COUNT
} sb_profile;

/* strict's limits when the request sets none. */
#define SB_STRICT_PIDS_MAX 256u
#define SB_STRICT_MEMORY_MAX (512ull * 1024 * 1024)
#define SB_STRICT_TMP_SIZE "64m"
#define SB_MAX_BINDS 64

typedef enum sb_net { SB_NET_PROFILE = 0, SB_NET_NONE, SB_NET_HOST } sb_net;

typedef struct sb_bind {
  const char *source;      /* host path, absolute */
  const char *destination; /* inside, absolute */
  bool readonly;
} sb_bind;

/* What a request asks for, beyond its profile. */
typedef struct sb_params {
  const char *const *argv; /* argv[0]: the command as requested */
  size_t nargs;
  const char *const *env; /* "K=V", complete (the engine adds nothing) */
  size_t nenv;
  const char *cwd;    /* NULL: "/" */
  const char *rootfs; /* host directory; NULL: the host's root, read-only */
  const sb_bind *binds;
  size_t nbinds;
  sb_net net;           /* SB_NET_PROFILE: the profile's (default: host, strict: none) */
  const char *hostname; /* NULL: "runrpc" */
  bool has_user;        /* uid/gid inside; else the caller's host ids (host_uid/gid) */
  uint32_t uid, gid;
  const uint32_t *groups; /* with has_user: supplementary groups inside (NULL: gid alone) */
  size_t ngroups;
  uid_t host_uid; /* the caller as rund runs it on the host (run-as) */
  gid_t host_gid;
  const gid_t *host_groups;
  size_t nhost_groups;
  /* The caller of the engine is not root: default gets a user namespace
   * too (mapping the ids inside onto host_uid/gid), as namespaces cannot
   * be made otherwise. */
  bool rootless;
  const cg_limits *limits; /* NULL: none */
  /* What sb_binds_open checked, mounted instead of looking the paths up
   * again: fds[0] the rootfs (unused without one), fds[1 + i] binds[i];
   * borrowed. NULL: by path (a config's sources). */
  const int *fds;
  bool root_is_tree; /* fds[0] is a detached mount tree (fsmount) to move in */
} sb_params;

const char *sb_profile_name(sb_profile p);
/* INVALID_ARGUMENT naming field and listing the profiles for an unknown name. */
int sb_profile_from_name(const char *name, const char *field, sb_profile *ret, rr_err *e);
/* The weaker of the two raised to min. */
sb_profile sb_profile_clamp(sb_profile requested, sb_profile min);
/* The config for params under profile p (not for SB_PROFILE_HOST:
 * INVALID_ARGUMENT). INVALID_ARGUMENT naming the field for bad params. */
int sb_spec_for_profile(sb_profile p, const sb_params *params, sb_spec **ret, rr_err *e);
/* Each bind's source must resolve (realpath, as the caller given) to a path
 * at or below one of allowed[]: PERMISSION_DENIED naming binds[i].source
 * otherwise; INVALID_ARGUMENT for a relative or malformed path. */
int sb_binds_check(const sb_bind *b, size_t n, const char *const *allowed, size_t nallowed,
                   rr_err *e);
/* sb_binds_check keeping what it checked: ret_fds[i] an O_PATH|O_CLOEXEC
 * fd of binds[i].source's object, owned by the caller (sb_params.fds, so
 * that the sandbox mounts that object, not what the path names later). */
int sb_binds_open(const sb_bind *b, size_t n, const char *const *allowed, size_t nallowed,
                  int *ret_fds, rr_err *e);
/* Parse "SRC:DST[:ro]" (the CLI and config form). */
int sb_bind_parse(const char *text, const char *field, sb_bind *ret, char **storage, rr_err *e);
