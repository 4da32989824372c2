#include "auth/tokens.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"

int tokens_identity_check(const char *id, rr_err *e) {
  size_t n = strlen(id);
  if (n == 0 || n > TOKENS_IDENTITY_MAX)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "identity \"%.140s\" must be 1..%d characters", id,
                      TOKENS_IDENTITY_MAX);
  for (size_t i = 0; i < n; i++) {
    char c = id[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          strchr("._@:-", c)))
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "identity \"%.140s\" has a character outside [A-Za-z0-9._@:-]", id);
  }
  return 0;
}

static bool is_blank(char c) { return c == ' ' || c == '\t'; }

/* One non-comment line (no newline): "IDENTITY sha256:HEX". */
static int tokens_parse_line(const char *s, size_t len, token_entry *ent, rr_err *e) {
  size_t i = 0;
  while (i < len && is_blank(s[i]))
    i++;
  size_t id_start = i;
  while (i < len && !is_blank(s[i]))
    i++;
  size_t id_len = i - id_start;
  while (i < len && is_blank(s[i]))
    i++;
  size_t h_start = i;
  while (i < len && !is_blank(s[i]))
    i++;
  size_t h_len = i - h_start;
  while (i < len && is_blank(s[i]))
    i++;
  if (i < len)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "extra text after the hash");
  if (h_len == 0)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "want \"IDENTITY sha256:HEX\"");
  if (id_len > TOKENS_IDENTITY_MAX)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "identity longer than %d characters",
                      TOKENS_IDENTITY_MAX);
  memcpy(ent->identity, s + id_start, id_len);
  ent->identity[id_len] = '\0';
  if (tokens_identity_check(ent->identity, e) < 0)
    return -1;
  const char *h = s + h_start;
  if (h_len < 7 || memcmp(h, "sha256:", 7) != 0)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "hash must start with \"sha256:\"");
  if (h_len != 7 + 2 * TOKENS_HASH_LEN)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "hash must be %d hex digits after \"sha256:\"",
                      2 * TOKENS_HASH_LEN);
  for (size_t k = 0; k < TOKENS_HASH_LEN; k++) {
    int hi = rr_hex_value(h[7 + 2 * k]), lo = rr_hex_value(h[8 + 2 * k]);
    if (hi < 0 || lo < 0)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "hash has a character that is not hex");
    ent->hash[k] = (uint8_t)(hi << 4 | lo);
  }
  return 0;
}

int tokens_parse(const char *text, size_t len, const char *origin, token_file *ret, rr_err *e) {
  token_file t = {0};
  size_t cap = 0, line = 0;
  const char *p = text, *end = text + len;
  while (p < end) {
    line++;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
    const char *s = p;
    p = nl ? nl + 1 : end;
    if (n > TOKENS_LINE_MAX) {
      rr_err_set(e, RR_INVALID_ARGUMENT, "%s line %zu: longer than %d bytes", origin, line,
                 TOKENS_LINE_MAX);
      goto fail;
    }
    if (n && s[n - 1] == '\r') {
      rr_err_set(e, RR_INVALID_ARGUMENT, "%s line %zu: ends with CR (use LF line endings)", origin,
                 line);
      goto fail;
    }
    if (memchr(s, '\0', n)) {
      rr_err_set(e, RR_INVALID_ARGUMENT, "%s line %zu: contains a NUL byte", origin, line);
      goto fail;
    }
    size_t i = 0;
    while (i < n && is_blank(s[i]))
      i++;
    if (i == n || s[i] == '#')
      continue;
    if (t.n == cap) {
      size_t nc = cap ? cap * 2 : 16;
      token_entry *v = realloc(t.entries, nc * sizeof *v);
      if (!v) {
        rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory reading %s", origin);
        goto fail;
      }
      t.entries = v;
      cap = nc;
    }
    token_entry *ent = &t.entries[t.n];
    if (tokens_parse_line(s, n, ent, e) < 0) {
      rr_err_wrap(e, "%s line %zu", origin, line);
      goto fail;
    }
    for (size_t k = 0; k < t.n; k++)
      if (memcmp(t.entries[k].hash, ent->hash, TOKENS_HASH_LEN) == 0) {
        rr_err_set(e, RR_INVALID_ARGUMENT,
                   "%s line %zu: duplicate hash (same token as entry %zu, \"%s\")", origin, line,
                   k + 1, t.entries[k].identity);
        goto fail;
      }
    t.n++;
  }
  *ret = t;
  return 0;
fail:
  tokens_free(&t);
  return -1;
}

int tokens_file_check_perms(int fd, const char *path, rr_err *e) {
  struct stat st;
  if (fstat(fd, &st) < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot stat \"%s\"", path);
  if (!S_ISREG(st.st_mode))
    return rr_err_set(e, RR_FAILED_PRECONDITION, "\"%s\" is not a regular file", path);
  if (st.st_uid != geteuid())
    return rr_err_set(e, RR_FAILED_PRECONDITION, "\"%s\" is owned by uid %u, not by rund (uid %u)",
                      path, (unsigned)st.st_uid, (unsigned)geteuid());
  if (st.st_mode & 077)
    return rr_err_set(e, RR_FAILED_PRECONDITION,
                      "\"%s\" is accessible by group or others (mode %04o; run chmod 600)", path,
                      (unsigned)(st.st_mode & 07777));
  return 0;
}

int tokens_load(const char *path, token_file *ret, rr_err *e) {
  _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
  if (fd < 0)
    return rr_err_sys(e, errno == ENOENT ? RR_NOT_FOUND : RR_FAILED_PRECONDITION, errno,
                      "token file \"%s\"", path);
  if (tokens_file_check_perms(fd, path, e) < 0)
    return rr_err_wrap(e, "token file");
  struct stat st;
  if (fstat(fd, &st) < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot stat \"%s\"", path);
  if ((uint64_t)st.st_size > TOKENS_FILE_MAX)
    return rr_err_set(e, RR_FAILED_PRECONDITION, "token file \"%s\" is larger than %u bytes", path,
                      TOKENS_FILE_MAX);
  _cleanup_free_ char *buf = NULL;
  size_t len;
  if (rr_read_sized(fd, (size_t)st.st_size, &buf, &len) < 0)
    return errno == EFBIG ? rr_err_set(e, RR_FAILED_PRECONDITION,
                                       "token file \"%s\" grew while being read", path)
           : errno == ENOMEM
               ? rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory reading \"%s\"", path)
               : rr_err_sys(e, RR_INTERNAL, errno, "cannot read \"%s\"", path);
  char origin[300];
  snprintf(origin, sizeof origin, "token file \"%.280s\"", path);
  return tokens_parse(buf, len, origin, ret, e);
}

void tokens_free(token_file *t) {
  if (!t)
    return;
  free(t->entries);
  t->entries = NULL;
  t->n = 0;
}

int tokens_hash(const char *token, size_t len, uint8_t out[TOKENS_HASH_LEN], rr_err *e) {
  unsigned int n = 0;
  if (!EVP_Digest(token, len, out, &n, EVP_sha256(), NULL) || n != TOKENS_HASH_LEN)
    return rr_err_set(e, RR_INTERNAL, "SHA-256 failed");
  return 0;
}

const char *tokens_verify(const token_file *t, const char *token, size_t len) {
  uint8_t h[TOKENS_HASH_LEN];
  if (!t || tokens_hash(token, len, h, NULL) < 0)
    return NULL;
  /* every entry is compared, whatever matched before: the time taken says
   * nothing about which entry (if any) matched */
  size_t match = 0;
  for (size_t i = 0; i < t->n; i++) {
    size_t hit = (size_t)(CRYPTO_memcmp(t->entries[i].hash, h, TOKENS_HASH_LEN) == 0);
    match |= hit * (i + 1);
  }
  OPENSSL_cleanse(h, sizeof h);
  return match ? t->entries[match - 1].identity : NULL;
}

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int tokens_generate(char token[TOKENS_TOKEN_LEN + 1], uint8_t hash[TOKENS_HASH_LEN], rr_err *e) {
  uint8_t raw[33] = {0}; /* 32 random bytes, padded to a multiple of 3 */
  if (RAND_bytes(raw, 32) != 1)
    return rr_err_set(e, RR_INTERNAL, "cannot get random bytes from OpenSSL");
  char *o = token;
  memcpy(o, "rr_", 3);
  o += 3;
  size_t left = 43;
  for (size_t i = 0; i < 33 && left; i += 3) {
    uint32_t v = (uint32_t)raw[i] << 16 | (uint32_t)raw[i + 1] << 8 | raw[i + 2];
    for (int k = 3; k >= 0 && left; k--, left--)
      *o++ = b64url[(v >> (6 * k)) & 63];
  }
  *o = '\0';
  OPENSSL_cleanse(raw, sizeof raw);
  return tokens_hash(token, TOKENS_TOKEN_LEN, hash, e);
}

void tokens_format_line(const char *identity, const uint8_t hash[TOKENS_HASH_LEN], char *buf,
                        size_t size) {
  char hex[2 * TOKENS_HASH_LEN + 1];
  for (size_t i = 0; i < TOKENS_HASH_LEN; i++)
    snprintf(hex + 2 * i, 3, "%02x", hash[i]);
  snprintf(buf, size, "%s sha256:%s\n", identity, hex);
}
