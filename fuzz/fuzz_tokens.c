/* The token file parser (tokens_parse): every line either loads or is
 * refused with its line number; what loads formats back to lines that parse
 * to the same entries. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/tokens.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  token_file t = {0};
  rr_err e = {0};
  if (tokens_parse((const char *)data, size, "tokens", &t, &e) < 0) {
    if (!e.code || !e.msg[0])
      abort();
    return 0;
  }
  char line[TOKENS_LINE_MAX];
  for (size_t i = 0; i < t.n; i++) {
    token_file one = {0};
    rr_err e2 = {0};
    tokens_format_line(t.entries[i].identity, t.entries[i].hash, line, sizeof line);
    if (tokens_parse(line, strlen(line), "line", &one, &e2) < 0 || one.n != 1 ||
        strcmp(one.entries[0].identity, t.entries[i].identity) != 0 ||
        memcmp(one.entries[0].hash, t.entries[i].hash, TOKENS_HASH_LEN) != 0)
      abort();
    tokens_free(&one);
  }
  /* the input as a bearer token: verification must not read out of bounds */
  tokens_verify(&t, (const char *)data, size);
  tokens_free(&t);
  return 0;
}
