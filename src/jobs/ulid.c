#include "jobs/ulid.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static const char ulid_alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

static int ulid_char_value(char c) {
  if (c >= 'a' && c <= 'z')
    c = (char)(c - 'a' + 'A');
  const char *p = c ? strchr(ulid_alphabet, c) : NULL;
  return p ? (int)(p - ulid_alphabet) : -1;
}

void ulid_gen_init(ulid_gen *g) { memset(g, 0, sizeof *g); }

static int ulid_random(uint8_t *buf, size_t len, rr_err *e) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = getrandom(buf + got, len - got, 0);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return rr_err_sys(e, RR_INTERNAL, errno, "ulid: getrandom");
    }
    got += (size_t)n;
  }
  return 0;
}

/* Add one to the 80-bit big-endian counter; false on overflow. */
static bool ulid_rand_increment(uint8_t r[10]) {
  for (int i = 9; i >= 0; i--)
    if (++r[i] != 0)
      return true;
  return false;
}

static void ulid_encode(const uint8_t bin[16], char out[ULID_LEN + 1]) {
  /* 128 bits as 26 groups of 5 bits, the first group holding the top 3 bits */
  for (int i = 0; i < ULID_LEN; i++) {
    int bit = 128 - 5 * (ULID_LEN - i); /* index of the group's top bit from MSB; may be <0 */
    unsigned v = 0;
    for (int b = 0; b < 5; b++) {
      int pos = bit + b;
      if (pos < 0)
        continue;
      v = (v << 1) | ((bin[pos / 8] >> (7 - pos % 8)) & 1u);
    }
    out[i] = ulid_alphabet[v];
  }
  out[ULID_LEN] = '\0';
}

int ulid_gen_next(ulid_gen *g, uint64_t ms, char out[ULID_LEN + 1], rr_err *e) {
  if (!ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
  }
  if (ms >= (1ull << 48))
    return rr_err_set(e, RR_INTERNAL, "ulid: time %llu out of range", (unsigned long long)ms);
  if (ms <= g->last_ms && g->last_ms) {
    /* same ms (or the clock went back): keep order by counting up */
    if (!ulid_rand_increment(g->last_rand)) {
      g->last_ms++;
      if (ulid_random(g->last_rand, sizeof g->last_rand, e) < 0)
        return -1;
    }
    ms = g->last_ms;
  } else {
    if (ulid_random(g->last_rand, sizeof g->last_rand, e) < 0)
      return -1;
    g->last_ms = ms;
  }
  uint8_t bin[16];
  for (int i = 0; i < 6; i++)
    bin[i] = (uint8_t)(ms >> (8 * (5 - i)));
  memcpy(bin + 6, g->last_rand, 10);
  ulid_encode(bin, out);
  return 0;
}

bool ulid_parse(const char *s, size_t len, uint8_t bin[16]) {
  if (!s || len != ULID_LEN)
    return false;
  uint8_t tmp[16] = {0};
  for (int i = 0; i < ULID_LEN; i++) {
    int v = ulid_char_value(s[i]);
    if (v < 0)
      return false;
    if (i == 0 && v > 7) /* would overflow 128 bits */
      return false;
    int bit = 128 - 5 * (ULID_LEN - i);
    for (int b = 0; b < 5; b++) {
      int pos = bit + b;
      if (pos < 0)
        continue;
      if ((v >> (4 - b)) & 1)
        tmp[pos / 8] |= (uint8_t)(1u << (7 - pos % 8));
    }
  }
  if (bin)
    memcpy(bin, tmp, 16);
  return true;
}

uint64_t ulid_time_ms(const char *s) {
  uint8_t bin[16];
  if (!ulid_parse(s, strlen(s), bin))
    return 0;
  uint64_t ms = 0;
  for (int i = 0; i < 6; i++)
    ms = (ms << 8) | bin[i];
  return ms;
}
