/* ULIDs: 48-bit ms timestamp + 80 random bits, Crockford base32, 26 chars,
 * lexicographically sortable, monotonic within one generator. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define ULID_LEN 26

typedef struct ulid_gen {
  uint64_t last_ms;
  uint8_t last_rand[10]; /* big-endian 80-bit counter */
} ulid_gen;

/* Zero the generator state. */
void ulid_gen_init(ulid_gen *g);
/* Next ULID at time ms (0 = now) into out[ULID_LEN + 1]; within one ms the
 * random part is incremented so ids stay strictly increasing. */
int ulid_gen_next(ulid_gen *g, uint64_t ms, char out[ULID_LEN + 1], rr_err *e);
/* Strict parse: exactly 26 Crockford chars (upper or lower case, no I L O U),
 * first char <= '7'. Decodes into bin (may be NULL). */
bool ulid_parse(const char *s, size_t len, uint8_t bin[16]);
/* Milliseconds part of a valid ULID string. */
uint64_t ulid_time_ms(const char *s);
