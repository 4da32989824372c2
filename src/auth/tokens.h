/* Bearer tokens: the token file (`IDENTITY sha256:HEX` lines; only hashes
 * are stored), its permission check, constant-time verification and token
 * generation. Nothing here logs; no function puts a token in an error. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define TOKENS_IDENTITY_MAX 128
#define TOKENS_LINE_MAX 512
#define TOKENS_FILE_MAX (4u * 1024u * 1024u)
#define TOKENS_HASH_LEN 32
/* "rr_" + 43 base64url characters (32 random bytes) */
#define TOKENS_TOKEN_LEN 46

typedef struct token_entry {
  char identity[TOKENS_IDENTITY_MAX + 1];
  uint8_t hash[TOKENS_HASH_LEN];
} token_entry;

typedef struct token_file {
  token_entry *entries;
  size_t n;
} token_file;

/* Check an identity's syntax: [A-Za-z0-9._@:-]{1,128}. */
int tokens_identity_check(const char *identity, rr_err *e);
/* Parse a token file's text; errors name origin and the line number. */
int tokens_parse(const char *text, size_t len, const char *origin, token_file *ret, rr_err *e);
/* Refuse fd's file unless it is a regular file owned by our euid with no
 * group/world permission bits. */
int tokens_file_check_perms(int fd, const char *path, rr_err *e);
/* Open, check permissions and parse path. */
int tokens_load(const char *path, token_file *ret, rr_err *e);
void tokens_free(token_file *t);
/* SHA-256 of a token. */
int tokens_hash(const char *token, size_t len, uint8_t out[TOKENS_HASH_LEN], rr_err *e);
/* Compare the token's hash with every entry in constant time. Returns the
 * matching entry's identity, or NULL. */
const char *tokens_verify(const token_file *t, const char *token, size_t len);
/* A new random token (NUL-terminated) and the line to store for it. */
int tokens_generate(char token[TOKENS_TOKEN_LEN + 1], uint8_t hash[TOKENS_HASH_LEN], rr_err *e);
/* Format `identity sha256:HEX\n` into buf (at least TOKENS_LINE_MAX bytes). */
void tokens_format_line(const char *identity, const uint8_t hash[TOKENS_HASH_LEN], char *buf,
                        size_t size);
