/* The secret store: a directory of files (one secret per file, readable only
 * by rund's user), their owners (secrets_acl.h), and the resolution of
 * `secret://NAME` env values just before a command is spawned. Errors name
 * the env var and the secret, never a value. Nothing here logs. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "auth/authz.h"
#include "common/err.h"

struct stat;

#define SECRETS_PREFIX "secret://"
#define SECRETS_NAME_MAX 128
#define SECRETS_VALUE_MAX (256u * 1024u)

typedef struct secrets secrets;

/* Open dir and check it and every file in it: owned by our euid, no
 * group/world permission bits (FAILED_PRECONDITION naming the path), and
 * its owner list well formed. */
int secrets_open(const char *dir, secrets **ret, rr_err *e);
void secrets_free(secrets *s);
/* True if value is a secret reference. */
bool secrets_is_ref(const char *value);
/* Check a secret name: [A-Za-z0-9._-]{1,128}, not "." or "..", not the
 * owner list's files (secrets.acl*). */
int secrets_name_check(const char *name, rr_err *e);
/* Check the owner, mode of a store file or directory (st) at path: owned by
 * our euid, no group/world bits (FAILED_PRECONDITION naming it as what). */
int secrets_file_check(const struct stat *st, const char *what, const char *path, rr_err *e);

/* Bounds on what one request can make rund read. */
#define SECRETS_MAX_REFS 32 /* secret:// references per request */

/* One resolution: who asks, the env, and why it failed. */
typedef struct secrets_resolution {
  const authz_identity *caller; /* admins may use any secret, others what the owner list grants */
  const char *const *keys, *const *values;
  size_t n;
  /* the request's bounds (the caller's, e.g. REQUEST_MAX_ITEM and _TOTAL):
   * one "KEY=VALUE" entry, and path, args and env together */
  size_t item_max, total_max;
  size_t other_bytes; /* path and args of the request: counted with the resolved
                       * env against total_max */
  /* out, after a failure: which value failed (n if none), and whether it was
   * a name refused to the caller (the error is then the same as a missing
   * one) or the owner list was unusable (the error is for rund's log only) */
  size_t failed;
  bool refused, store_error;
} secrets_resolution;

/* Values to hand to the child: a copy of r->values with each secret://
 * reference replaced by its content (one trailing newline stripped). s may
 * be NULL (no store: every secret is missing). A missing or refused name is
 * NOT_FOUND 'env "KEY": secret "NAME" not found'; too many references or
 * too many bytes is RESOURCE_EXHAUSTED naming the limit. Free with
 * secrets_values_free(v, r->n). */
int secrets_resolve_env(const secrets *s, secrets_resolution *r, char ***ret, rr_err *e);
/* Wipe and free a resolve_env result. */
void secrets_values_free(char **values, size_t n);
/* True if msg contains any value that was resolved from a secret (an error
 * from a later step that must not be shown as is). */
bool secrets_values_leak(const char *msg, const char *const *values, const char *const *resolved,
                         size_t n);
