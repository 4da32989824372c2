/* Owners of secrets: which principals (uid:N, token:ID, san:KIND:V, as for
 * --admin) may use which secret names. One file SECRETS_DIR/secrets.acl, a
 * line "NAME PRINCIPAL" per grant ('#' comments, blank lines ignored),
 * owned by rund's user with no group/world bits like the secrets; read
 * again at each use so an edit needs no restart. No line: admins only.
 * Nothing here logs. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

#define SECRETS_ACL_FILE "secrets.acl"
#define SECRETS_ACL_TMP "secrets.acl.new"
#define SECRETS_ACL_MAX (1024u * 1024u) /* bytes of the file */

typedef struct secrets_grant {
  char *name;
  char *principal;
} secrets_grant;

typedef struct secrets_acl {
  secrets_grant *v;
  size_t n, cap;
} secrets_acl;

/* Parse the text form; errors name origin and the line (INVALID_ARGUMENT). */
int secrets_acl_parse(const char *buf, size_t len, const char *origin, secrets_acl *ret, rr_err *e);
/* Read and parse dirfd/secrets.acl (dir names it in errors); a missing file
 * is an empty list. FAILED_PRECONDITION if unsafe (owner, mode, type, size). */
int secrets_acl_load(int dirfd, const char *dir, secrets_acl *ret, rr_err *e);
void secrets_acl_free(secrets_acl *a);
/* True if any of principals is granted name. */
bool secrets_acl_allows(const secrets_acl *a, const char *name, char *const *principals, size_t n);
/* Grant name to principal (checked; no duplicate kept). */
int secrets_acl_add(secrets_acl *a, const char *name, const char *principal, rr_err *e);
/* Revoke it; false if it was not granted. */
bool secrets_acl_remove(secrets_acl *a, const char *name, const char *principal);
/* The text form, sorted by name then principal; free *ret. */
int secrets_acl_format(secrets_acl *a, char **ret, size_t *len, rr_err *e);
/* Replace dirfd/secrets.acl atomically (temp file, fsync, rename). */
int secrets_acl_store(int dirfd, const char *dir, secrets_acl *a, rr_err *e);
