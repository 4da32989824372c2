#include "auth/authz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define AUTHZ_TOKEN_MAX 512

static const char *const san_kinds[] = {"san:uri:", "san:dns:", "san:email:", "san:ip:"};

int authz_principal_check(const char *p, rr_err *e) {
  size_t n = strlen(p);
  if (n > AUTHZ_PRINCIPAL_MAX)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "principal \"%.60s...\" is too long", p);
  if (!strncmp(p, "uid:", 4)) {
    const char *d = p + 4;
    size_t k = strlen(d);
    bool ok = k >= 1 && k <= 10 && (d[0] != '0' || k == 1);
    for (size_t i = 0; ok && i < k; i++)
      ok = d[i] >= '0' && d[i] <= '9';
    if (!ok || strtoull(d, NULL, 10) > 0xffffffffull)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "principal \"%.200s\": want uid:NUMBER", p);
    return 0;
  }
  if (!strncmp(p, "token:", 6)) {
    if (tokens_identity_check(p + 6, e) < 0)
      return rr_err_wrap(e, "principal \"%.200s\"", p);
    return 0;
  }
  for (size_t i = 0; i < sizeof san_kinds / sizeof *san_kinds; i++) {
    size_t pl = strlen(san_kinds[i]);
    if (strncmp(p, san_kinds[i], pl) != 0)
      continue;
    if (!p[pl])
      return rr_err_set(e, RR_INVALID_ARGUMENT, "principal \"%.200s\" has an empty value", p);
    for (const char *c = p + pl; *c; c++)
      if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f)
        return rr_err_set(e, RR_INVALID_ARGUMENT,
                          "principal \"%.200s\" has a space or a non-printable character", p);
    return 0;
  }
  return rr_err_set(e, RR_INVALID_ARGUMENT,
                    "principal \"%.200s\": want uid:N, token:ID or san:uri|dns|email|ip:VALUE", p);
}

bool authz_principal_equal(const char *a, const char *b) {
  static const char dns[] = "san:dns:";
  if (!strncmp(a, dns, sizeof dns - 1) && !strncmp(b, dns, sizeof dns - 1))
    return strcasecmp(a + sizeof dns - 1, b + sizeof dns - 1) == 0;
  return strcmp(a, b) == 0;
}

void authz_identity_clear(authz_identity *id) {
  for (size_t i = 0; i < id->n; i++)
    free(id->principals[i]);
  free(id->principals);
  *id = (authz_identity){0};
}

static int identity_add(authz_identity *id, const char *prefix, const char *value, rr_err *e) {
  if (id->n == AUTHZ_MAX_PRINCIPALS)
    return 0; /* the TLS layer bounds SANs too; more add nothing useful */
  if (!id->principals && !(id->principals = calloc(AUTHZ_MAX_PRINCIPALS, sizeof(char *))))
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  size_t n = strlen(prefix) + strlen(value) + 1;
  char *s = malloc(n);
  if (!s)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  snprintf(s, n, "%s%s", prefix, value);
  id->principals[id->n++] = s;
  return 0;
}

static bool identity_is_admin(const authz_config *cfg, const authz_identity *id) {
  for (size_t i = 0; i < id->n; i++)
    for (size_t k = 0; k < cfg->nadmins; k++)
      if (authz_principal_equal(id->principals[i], cfg->admins[k]))
        return true;
  return false;
}

/* "Bearer TOKEN" (scheme case-insensitive) -> TOKEN, or NULL. */
static const char *bearer_token(const char *auth, size_t *len) {
  if (strncasecmp(auth, "Bearer ", 7) != 0)
    return NULL;
  const char *t = auth + 7;
  while (*t == ' ')
    t++;
  size_t n = strlen(t);
  while (n && t[n - 1] == ' ')
    n--;
  if (n == 0 || n > AUTHZ_TOKEN_MAX)
    return NULL;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)t[i] <= ' ' || (unsigned char)t[i] >= 0x7f)
      return NULL;
  *len = n;
  return t;
}

int authz_identify(const authz_config *cfg, const rpc_peer *peer, const char *authorization,
                   authz_identity *ret, rr_err *e) {
  authz_identity id = {0};
  if (authorization) {
    if (!peer->tls && !cfg->allow_insecure_tokens)
      return rr_err_set(e, RR_UNAUTHENTICATED, "bearer tokens are accepted only over TLS");
    size_t len = 0;
    const char *tok = bearer_token(authorization, &len);
    const char *who = tok ? tokens_verify(cfg->tokens, tok, len) : NULL;
    if (!who)
      return rr_err_set(e, RR_UNAUTHENTICATED, "invalid bearer token");
    if (identity_add(&id, "token:", who, e) < 0)
      goto fail;
  } else if (peer->tls && !peer->tls_cert) {
    return rr_err_set(e, RR_UNAUTHENTICATED,
                      "no identity: a TLS client needs a client certificate or a bearer token "
                      "(authorization: Bearer TOKEN; runctl --token)");
  } else if (peer->tls) {
    for (size_t i = 0; i < peer->nsans; i++)
      if (identity_add(&id, "san:", peer->sans[i], e) < 0)
        goto fail;
    if (!id.n)
      return rr_err_set(e, RR_UNAUTHENTICATED,
                        "the client certificate has no subjectAltName to identify the caller");
  } else if (peer->family == AF_UNIX && peer->has_cred) {
    char uid[16];
    snprintf(uid, sizeof uid, "%u", (unsigned)peer->uid);
    if (identity_add(&id, "uid:", uid, e) < 0)
      goto fail;
    id.admin = peer->uid == 0;
  } else {
    return rr_err_set(e, RR_UNAUTHENTICATED,
                      "no identity: plaintext TCP needs a bearer token (use TLS with a client "
                      "certificate, or the unix socket)");
  }
  id.admin = id.admin || identity_is_admin(cfg, &id);
  *ret = id;
  return 0;
fail:
  authz_identity_clear(&id);
  return -1;
}

bool authz_can_see(const authz_identity *id, char *const *owner, size_t nowner) {
  if (id->admin)
    return true;
  for (size_t i = 0; i < id->n; i++)
    for (size_t k = 0; k < nowner; k++)
      if (authz_principal_equal(id->principals[i], owner[k]))
        return true;
  return false;
}
