#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "jobs/ulid.h"

static void test_format_and_roundtrip(void **state) {
  ulid_gen g;
  ulid_gen_init(&g);
  char id[ULID_LEN + 1];
  assert_int_equal(ulid_gen_next(&g, 0, id, NULL), 0);
  assert_int_equal(strlen(id), ULID_LEN);
  assert_true(ulid_parse(id, strlen(id), NULL));
  assert_true(id[0] <= '7');
  for (const char *p = id; *p; p++)
    assert_non_null(strchr("0123456789ABCDEFGHJKMNPQRSTVWXYZ", *p));
}

static void test_known_time_encoding(void **state) {
  ulid_gen g;
  ulid_gen_init(&g);
  char id[ULID_LEN + 1];
  /* 1469918176385 ms is "01ARYZ6S41" in the ULID spec's example */
  assert_int_equal(ulid_gen_next(&g, 1469918176385ull, id, NULL), 0);
  assert_memory_equal(id, "01ARYZ6S41", 10);
  assert_int_equal(ulid_time_ms(id), 1469918176385ull);
}

static void test_monotonic_same_ms(void **state) {
  ulid_gen g;
  ulid_gen_init(&g);
  char prev[ULID_LEN + 1], id[ULID_LEN + 1];
  assert_int_equal(ulid_gen_next(&g, 1000, prev, NULL), 0);
  for (int i = 0; i < 10000; i++) {
    assert_int_equal(ulid_gen_next(&g, 1000, id, NULL), 0);
    assert_true(strcmp(prev, id) < 0);
    memcpy(prev, id, sizeof id);
  }
  /* the clock going back still gives increasing ids */
  assert_int_equal(ulid_gen_next(&g, 500, id, NULL), 0);
  assert_true(strcmp(prev, id) < 0);
}

static void test_counter_overflow_moves_ms(void **state) {
  ulid_gen g;
  ulid_gen_init(&g);
  char a[ULID_LEN + 1], b[ULID_LEN + 1];
  assert_int_equal(ulid_gen_next(&g, 2000, a, NULL), 0);
  memset(g.last_rand, 0xff, sizeof g.last_rand);
  assert_int_equal(ulid_gen_next(&g, 2000, b, NULL), 0);
  assert_int_equal(ulid_time_ms(b), 2001);
  assert_true(strcmp(a, b) < 0);
}

static void test_parse_rejects(void **state) {
  assert_false(ulid_parse("", 0, NULL));
  assert_false(ulid_parse("xyz", 3, NULL));
  assert_false(ulid_parse("01ARYZ6S41TSV4RRFFQ69G5FA", 25, NULL));   /* short */
  assert_false(ulid_parse("01ARYZ6S41TSV4RRFFQ69G5FAVV", 27, NULL)); /* long */
  assert_false(ulid_parse("01ARYZ6S41TSV4RRFFQ69G5FAI", 26, NULL));  /* I */
  assert_false(ulid_parse("01ARYZ6S41TSV4RRFFQ69G5FAU", 26, NULL));  /* U */
  assert_false(ulid_parse("81ARYZ6S41TSV4RRFFQ69G5FAV", 26, NULL));  /* > 128 bits */
  assert_false(ulid_parse("01ARYZ6S41TSV4RRFFQ69G5F-V", 26, NULL));
  char nul[] = "01ARYZ6S41TSV4RRFFQ69G5FAV";
  nul[5] = '\0';
  assert_false(ulid_parse(nul, 26, NULL));
  assert_true(ulid_parse("01ARYZ6S41TSV4RRFFQ69G5FAV", 26, NULL));
  assert_true(ulid_parse("01aryz6s41tsv4rrffq69g5fav", 26, NULL));
  assert_true(ulid_parse("7ZZZZZZZZZZZZZZZZZZZZZZZZZ", 26, NULL));
}

static void test_parse_decodes(void **state) {
  uint8_t bin[16];
  assert_true(ulid_parse("7ZZZZZZZZZZZZZZZZZZZZZZZZZ", 26, bin));
  for (int i = 0; i < 16; i++)
    assert_int_equal(bin[i], 0xff);
  assert_true(ulid_parse("00000000000000000000000001", 26, bin));
  for (int i = 0; i < 15; i++)
    assert_int_equal(bin[i], 0);
  assert_int_equal(bin[15], 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_format_and_roundtrip), cmocka_unit_test(test_known_time_encoding),
      cmocka_unit_test(test_monotonic_same_ms),    cmocka_unit_test(test_counter_overflow_moves_ms),
      cmocka_unit_test(test_parse_rejects),        cmocka_unit_test(test_parse_decodes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
