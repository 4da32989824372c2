/* The secret store: a directory of files (one secret per file, readable only
 * by rund's user) and the resolution of `secret://NAME` env values just
 * before a command is spawned. Errors name the env var and the secret,
 * never a value. Nothing here logs. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

#define SECRETS_PREFIX "secret://"
#define SECRETS_NAME_MAX 128
#define SECRETS_VALUE_MAX (256u * 1024u)

typedef struct secrets secrets;

/* Open dir and check it and every file in it: owned by our euid, no
 * group/world permission bits (FAILED_PRECONDITION naming the path). */
int secrets_open(const char *dir, secrets **ret, rr_err *e);
void secrets_free(secrets *s);
/* True if value is a secret reference. */
bool secrets_is_ref(const char *value);
/* Check a secret name: [A-Za-z0-9._-]{1,128}, not "." or "..". */
int secrets_name_check(const char *name, rr_err *e);
/* Read secret name (one trailing newline stripped) for env var key. s may
 * be NULL (no store: every secret is "not found"). */
int secrets_read(const secrets *s, const char *key, const char *name, char **ret, rr_err *e);
/* Values to hand to the child: a copy of values[0..n) with each
 * secret:// reference replaced by its content. Free with secrets_values_free. */
int secrets_resolve_env(const secrets *s, const char *const *keys, const char *const *values,
                        size_t n, char ***ret, rr_err *e);
/* Wipe and free a resolve_env result. */
void secrets_values_free(char **values, size_t n);
/* True if msg contains any value that was resolved from a secret (an error
 * from a later step that must not be shown as is). */
bool secrets_values_leak(const char *msg, const char *const *values, const char *const *resolved,
                         size_t n);
