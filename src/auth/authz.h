/* Who is calling and what they may see (docs/dev/SECURITY.md): principals
 * from the connection (uid:N, san:KIND:V) or a bearer token (token:ID), the
 * admin check and the job visibility rule. Nothing here logs. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "auth/tokens.h"
#include "common/err.h"
#include "rpc/server.h"

#define AUTHZ_MAX_PRINCIPALS 64
#define AUTHZ_PRINCIPAL_MAX 1100

typedef struct authz_config {
  const token_file *tokens; /* NULL: no token is valid */
  bool allow_insecure_tokens;
  char **admins; /* extra admin principals */
  size_t nadmins;
} authz_config;

typedef struct authz_identity {
  char **principals;
  size_t n;
  bool admin;
} authz_identity;

/* Check a principal's syntax (uid:N, san:uri|dns|email|ip:V, token:ID). */
int authz_principal_check(const char *p, rr_err *e);
/* Same principal? DNS names compare case-insensitively, all else exactly. */
bool authz_principal_equal(const char *a, const char *b);
/* The caller's identity from its connection and `authorization` metadata
 * (NULL if none): UNAUTHENTICATED when there is none or the token is bad. */
int authz_identify(const authz_config *cfg, const rpc_peer *peer, const char *authorization,
                   authz_identity *ret, rr_err *e);
void authz_identity_clear(authz_identity *id);
/* Admin, or shares a principal with owner (an owner-less job: admins only). */
bool authz_can_see(const authz_identity *id, char *const *owner, size_t nowner);
