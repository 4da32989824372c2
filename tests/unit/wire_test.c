#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "rpc/compress.h"
#include "rpc/wire.h"
#include "test/v1/echo.pb-c.h"

static void test_prefix(void **state) {
  uint8_t p[RPC_PREFIX_LEN];
  rpc_wire_put_prefix(p, false, 0x01020304);
  uint8_t want[] = {0, 1, 2, 3, 4};
  assert_memory_equal(p, want, 5);
  rpc_wire_put_prefix(p, true, 5);
  uint8_t want2[] = {1, 0, 0, 0, 5};
  assert_memory_equal(p, want2, 5);
}

/* Three messages (sizes 3, 0, 70000) in one buffer, fed in every split size
 * from 1 byte up: messages must come out whole and in order. */
static void test_deframer_any_split(void **state) {
  size_t sizes[] = {3, 0, 70000};
  size_t total = 0;
  for (size_t i = 0; i < 3; i++)
    total += RPC_PREFIX_LEN + sizes[i];
  uint8_t *buf = malloc(total);
  size_t off = 0;
  for (size_t i = 0; i < 3; i++) {
    rpc_wire_put_prefix(buf + off, false, (uint32_t)sizes[i]);
    off += RPC_PREFIX_LEN;
    for (size_t j = 0; j < sizes[i]; j++)
      buf[off + j] = (uint8_t)(j * 7 + i);
    off += sizes[i];
  }
  size_t steps[] = {1, 2, 4, 5, 6, 7, 13, 4096, 65536, total};
  for (size_t s = 0; s < RR_ARRAY_SIZE(steps); s++) {
    rpc_deframer d;
    rpc_deframer_init(&d, RPC_DEFAULT_MAX_MESSAGE);
    size_t got = 0;
    for (size_t pos = 0; pos < total;) {
      size_t n = steps[s] < total - pos ? steps[s] : total - pos;
      const uint8_t *p = buf + pos;
      while (n > 0) {
        size_t used;
        uint8_t *msg;
        size_t len;
        rr_err e;
        int r = rpc_deframer_feed(&d, p, n, &used, &msg, &len, &e);
        assert_true(r >= 0);
        assert_true(used <= n);
        p += used;
        n -= used;
        pos += used;
        if (r == 1) {
          assert_true(got < 3);
          assert_int_equal(len, sizes[got]);
          if (len == 0)
            assert_null(msg);
          for (size_t j = 0; j < len; j++)
            assert_int_equal(msg[j], (uint8_t)(j * 7 + got));
          free(msg);
          got++;
        } else {
          assert_int_equal(n, 0);
        }
      }
    }
    assert_int_equal(got, 3);
    assert_false(rpc_deframer_partial(&d));
    rpc_deframer_free(&d);
  }
  free(buf);
}

static void test_deframer_empty_message_alone(void **state) {
  rpc_deframer d;
  rpc_deframer_init(&d, 10);
  uint8_t p[5] = {0, 0, 0, 0, 0};
  size_t used, len = 99;
  uint8_t *msg = (uint8_t *)1;
  rr_err e;
  assert_int_equal(rpc_deframer_feed(&d, p, 5, &used, &msg, &len, &e), 1);
  assert_int_equal(used, 5);
  assert_int_equal(len, 0);
  assert_null(msg);
  /* nothing fed: nothing comes out */
  assert_int_equal(rpc_deframer_feed(&d, p, 0, &used, &msg, &len, &e), 0);
  rpc_deframer_free(&d);
}

static void test_deframer_errors(void **state) {
  rpc_deframer d;
  size_t used, len;
  uint8_t *msg;
  rr_err e;
  rpc_deframer_init(&d, 100);
  uint8_t big[5];
  rpc_wire_put_prefix(big, false, 101);
  assert_int_equal(rpc_deframer_feed(&d, big, 5, &used, &msg, &len, &e), -1);
  assert_int_equal(e.code, RR_RESOURCE_EXHAUSTED);
  assert_non_null(strstr(e.msg, "larger than max"));
  rpc_deframer_free(&d);

  rpc_deframer_init(&d, 100);
  uint8_t comp[5];
  rpc_wire_put_prefix(comp, true, 1);
  assert_int_equal(rpc_deframer_feed(&d, comp, 5, &used, &msg, &len, &e), -1);
  assert_int_equal(e.code, RR_INTERNAL);
  rpc_deframer_free(&d);

  rpc_deframer_init(&d, 100);
  uint8_t bad[5] = {7, 0, 0, 0, 1};
  assert_int_equal(rpc_deframer_feed(&d, bad, 5, &used, &msg, &len, &e), -1);
  assert_int_equal(e.code, RR_INTERNAL);
  rpc_deframer_free(&d);

  /* exactly max is allowed */
  rpc_deframer_init(&d, 4);
  uint8_t ok[9] = {0, 0, 0, 0, 4, 'a', 'b', 'c', 'd'};
  assert_int_equal(rpc_deframer_feed(&d, ok, 8, &used, &msg, &len, &e), 0);
  assert_true(rpc_deframer_partial(&d));
  assert_int_equal(rpc_deframer_feed(&d, ok + 8, 1, &used, &msg, &len, &e), 1);
  assert_memory_equal(msg, "abcd", 4);
  free(msg);
  /* a partial message at free time is released (ASan checks the leak) */
  assert_int_equal(rpc_deframer_feed(&d, ok, 7, &used, &msg, &len, &e), 0);
  assert_true(rpc_deframer_partial(&d));
  rpc_deframer_free(&d);
}

/* A peer announcing a huge message but sending little costs little memory:
 * checked indirectly by feeding a max-size message in small steps. */
static void test_deframer_large(void **state) {
  rpc_deframer d;
  rpc_deframer_init(&d, RPC_DEFAULT_MAX_MESSAGE);
  uint8_t p[5];
  rpc_wire_put_prefix(p, false, RPC_DEFAULT_MAX_MESSAGE);
  size_t used, len;
  uint8_t *msg;
  rr_err e;
  assert_int_equal(rpc_deframer_feed(&d, p, 5, &used, &msg, &len, &e), 0);
  uint8_t chunk[16384];
  size_t sent = 0;
  int r = 0;
  while (sent < RPC_DEFAULT_MAX_MESSAGE) {
    memset(chunk, (int)(sent / sizeof chunk) & 0xff, sizeof chunk);
    r = rpc_deframer_feed(&d, chunk, sizeof chunk, &used, &msg, &len, &e);
    assert_int_equal(used, sizeof chunk);
    sent += used;
  }
  assert_int_equal(r, 1);
  assert_int_equal(len, RPC_DEFAULT_MAX_MESSAGE);
  assert_int_equal(msg[len - 1], (uint8_t)((RPC_DEFAULT_MAX_MESSAGE / sizeof chunk - 1) & 0xff));
  free(msg);
  rpc_deframer_free(&d);
}

/* compress.c: round trips, the bound on the output, refusals */
static void test_compress(void **state) {
  size_t n = 300000;
  uint8_t *in = malloc(n);
  for (size_t i = 0; i < n; i++)
    in[i] = (uint8_t)("abcdefgh"[i % 8] + (i % 1000 == 0));
  size_t cap = rpc_compress_bound(n);
  uint8_t *z = malloc(cap);
  for (int enc = RPC_ENCODING_GZIP; enc <= RPC_ENCODING_DEFLATE; enc++) {
    size_t zn = rpc_compress(enc, in, n, z, cap);
    assert_true(zn > 0 && zn < n / 10);
    uint8_t *out;
    size_t outn;
    rr_err e = {0};
    assert_int_equal(rpc_decompress(enc, z, zn, n, &out, &outn, &e), 0);
    assert_int_equal(outn, n);
    assert_memory_equal(out, in, n);
    free(out);
    /* one byte under the size: refused, nothing returned */
    assert_int_equal(rpc_decompress(enc, z, zn, n - 1, &out, &outn, &e), -1);
    assert_int_equal(e.code, RR_RESOURCE_EXHAUSTED);
    assert_null(out);
    /* truncated, trailing bytes, the other wrapper: INTERNAL */
    assert_int_equal(rpc_decompress(enc, z, zn - 3, n, &out, &outn, &e), -1);
    assert_int_equal(e.code, RR_INTERNAL);
    memcpy(z + zn, "xx", 2);
    assert_int_equal(rpc_decompress(enc, z, zn + 2, n, &out, &outn, &e), -1);
    assert_int_equal(e.code, RR_INTERNAL);
    int other = enc == RPC_ENCODING_GZIP ? RPC_ENCODING_DEFLATE : RPC_ENCODING_GZIP;
    assert_int_equal(rpc_decompress(other, z, zn, n, &out, &outn, &e), -1);
    assert_int_equal(e.code, RR_INTERNAL);
  }
  /* an empty message compresses and comes back empty */
  size_t zn = rpc_compress(RPC_ENCODING_GZIP, in, 0, z, cap);
  uint8_t *out = (uint8_t *)"x";
  size_t outn = 1;
  rr_err e = {0};
  assert_int_equal(rpc_decompress(RPC_ENCODING_GZIP, z, zn, 10, &out, &outn, &e), 0);
  assert_null(out);
  assert_int_equal(outn, 0);
  free(z);
  free(in);
  /* names */
  assert_int_equal(rpc_encoding_parse("gzip", 4), RPC_ENCODING_GZIP);
  assert_int_equal(rpc_encoding_parse("br", 2), -1);
  assert_true(rpc_accept_encoding_has("identity, deflate, gzip", 23, RPC_ENCODING_GZIP));
  assert_true(rpc_accept_encoding_has("identity,deflate", 16, RPC_ENCODING_DEFLATE));
  assert_false(rpc_accept_encoding_has("identity,gzipx", 14, RPC_ENCODING_GZIP));
}

/* A flagged message is inflated by the deframer once an encoding is set. */
static void test_deframer_compressed(void **state) {
  uint8_t body[5000], z[6000], wire[6010];
  memset(body, 'q', sizeof body);
  size_t zn = rpc_compress(RPC_ENCODING_GZIP, body, sizeof body, z, sizeof z);
  rpc_wire_put_prefix(wire, true, (uint32_t)zn);
  memcpy(wire + RPC_PREFIX_LEN, z, zn);
  rpc_deframer d;
  rpc_deframer_init(&d, 1 << 20);
  size_t used, len;
  uint8_t *msg;
  rr_err e = {0};
  assert_int_equal(rpc_deframer_feed(&d, wire, RPC_PREFIX_LEN + zn, &used, &msg, &len, &e), -1);
  assert_int_equal(e.code, RR_INTERNAL); /* no encoding negotiated */
  rpc_deframer_free(&d);
  rpc_deframer_init(&d, 1 << 20);
  d.encoding = RPC_ENCODING_GZIP;
  assert_int_equal(rpc_deframer_feed(&d, wire, RPC_PREFIX_LEN + zn, &used, &msg, &len, &e), 1);
  assert_int_equal(len, sizeof body);
  assert_int_equal(d.wire_len, zn);
  assert_memory_equal(msg, body, sizeof body);
  free(msg);
  rpc_deframer_free(&d);
  /* the limit holds for the decompressed size */
  rpc_deframer_init(&d, 4096);
  d.encoding = RPC_ENCODING_GZIP;
  assert_int_equal(rpc_deframer_feed(&d, wire, RPC_PREFIX_LEN + zn, &used, &msg, &len, &e), -1);
  assert_int_equal(e.code, RR_RESOURCE_EXHAUSTED);
  rpc_deframer_free(&d);
}

static void test_timeout_parse(void **state) {
  uint64_t ms;
  struct {
    const char *s;
    uint64_t ms;
  } ok[] = {{"1S", 1000},
            {"2500m", 2500},
            {"0n", 0},
            {"1n", 1},
            {"1000000n", 1},
            {"1000001n", 2},
            {"999u", 1},
            {"1001u", 2},
            {"2M", 120000},
            {"1H", 3600000},
            {"99999999H", 99999999ull * 3600000}};
  for (size_t i = 0; i < RR_ARRAY_SIZE(ok); i++) {
    assert_int_equal(rpc_timeout_parse(ok[i].s, strlen(ok[i].s), &ms), 0);
    assert_int_equal(ms, ok[i].ms);
  }
  const char *bad[] = {"", "S", "1", "123456789S", "1s", "-1S", "1 S", "1.5S", "12x"};
  for (size_t i = 0; i < RR_ARRAY_SIZE(bad); i++)
    assert_int_equal(rpc_timeout_parse(bad[i], strlen(bad[i]), &ms), -1);
}

static void test_timeout_format(void **state) {
  char buf[16];
  rpc_timeout_format(2500, buf, sizeof buf);
  assert_string_equal(buf, "2500m");
  rpc_timeout_format(0, buf, sizeof buf);
  assert_string_equal(buf, "0m");
  rpc_timeout_format(100000000, buf, sizeof buf);
  assert_string_equal(buf, "100000S");
  rpc_timeout_format(UINT64_MAX, buf, sizeof buf);
  assert_string_equal(buf, "99999999H");
  uint64_t ms;
  rpc_timeout_format(123456789012ull, buf, sizeof buf);
  assert_int_equal(rpc_timeout_parse(buf, strlen(buf), &ms), 0);
  assert_true(ms >= 123456789012ull);
}

static void test_percent(void **state) {
  const char *in = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n";
  char enc[256], dec[256];
  size_t n = rpc_percent_encode(in, strlen(in), enc, sizeof enc);
  assert_int_equal(n, strlen(enc));
  for (size_t i = 0; i < n; i++)
    assert_true(enc[i] >= 0x20 && enc[i] <= 0x7e);
  size_t m = rpc_percent_decode(enc, n, dec, sizeof dec);
  assert_int_equal(m, strlen(in));
  assert_string_equal(dec, in);

  rpc_percent_encode("bad \t\n ☺ 100%", strlen("bad \t\n ☺ 100%"), enc, sizeof enc);
  assert_string_equal(enc, "bad %09%0A %E2%98%BA 100%25");

  /* truncation never splits an escape */
  n = rpc_percent_encode("ab\n", 3, enc, 5);
  assert_string_equal(enc, "ab");
  assert_int_equal(n, 2);
  n = rpc_percent_encode("ab\n", 3, enc, 6);
  assert_string_equal(enc, "ab%0A");

  /* lenient decode: bad escapes kept */
  const char *odd = "100% sure %zz %4";
  rpc_percent_decode(odd, strlen(odd), dec, sizeof dec);
  assert_string_equal(dec, odd);
  rpc_percent_decode("a%41%62", 7, dec, 3);
  assert_string_equal(dec, "aA");
}

static void test_base64(void **state) {
  struct {
    const char *raw, *enc;
  } v[] = {{"", ""},           {"f", "Zg"},          {"fo", "Zm8"},         {"foo", "Zm9v"},
           {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"}};
  char enc[32];
  uint8_t dec[32];
  for (size_t i = 0; i < RR_ARRAY_SIZE(v); i++) {
    long n = rpc_base64_encode((const uint8_t *)v[i].raw, strlen(v[i].raw), enc, sizeof enc);
    assert_int_equal(n, strlen(v[i].enc));
    assert_string_equal(enc, v[i].enc);
    n = rpc_base64_decode(v[i].enc, strlen(v[i].enc), dec, sizeof dec);
    assert_int_equal(n, strlen(v[i].raw));
    assert_memory_equal(dec, v[i].raw, (size_t)n);
  }
  assert_int_equal(rpc_base64_decode("Zm8=", 4, dec, sizeof dec), 2);
  assert_int_equal(rpc_base64_decode("Zg==", 4, dec, sizeof dec), 1);
  assert_int_equal(rpc_base64_decode("q6ur", 4, dec, sizeof dec), 3);
  assert_memory_equal(dec, "\xab\xab\xab", 3);
  assert_int_equal(rpc_base64_decode("Zg=", 3, dec, sizeof dec), -1);
  assert_int_equal(rpc_base64_decode("Z", 1, dec, sizeof dec), -1);
  assert_int_equal(rpc_base64_decode("Zm9v!A", 6, dec, sizeof dec), -1);
  assert_int_equal(rpc_base64_decode("Zm9vYmFy", 8, dec, 5), -1);
  assert_int_equal(rpc_base64_encode((const uint8_t *)"foo", 3, enc, 4), -1);
  assert_int_equal(rpc_base64_encode((const uint8_t *)"foo", 3, enc, 5), 4);
  /* random round trips */
  uint8_t raw[97];
  char big[160];
  uint8_t back[97];
  srand(7);
  for (int round = 0; round < 200; round++) {
    size_t len = (size_t)rand() % sizeof raw;
    for (size_t i = 0; i < len; i++)
      raw[i] = (uint8_t)rand();
    long n = rpc_base64_encode(raw, len, big, sizeof big);
    assert_true(n >= 0);
    assert_int_equal(rpc_base64_decode(big, (size_t)n, back, sizeof back), (long)len);
    assert_memory_equal(back, raw, len);
  }
}

static void test_status_maps(void **state) {
  assert_int_equal(rpc_status_from_http(400), RR_INTERNAL);
  assert_int_equal(rpc_status_from_http(401), RR_UNAUTHENTICATED);
  assert_int_equal(rpc_status_from_http(403), RR_PERMISSION_DENIED);
  assert_int_equal(rpc_status_from_http(404), RR_UNIMPLEMENTED);
  assert_int_equal(rpc_status_from_http(429), RR_UNAVAILABLE);
  assert_int_equal(rpc_status_from_http(503), RR_UNAVAILABLE);
  assert_int_equal(rpc_status_from_http(500), RR_UNKNOWN);
  assert_int_equal(rpc_status_from_h2_error(7), RR_UNAVAILABLE);
  assert_int_equal(rpc_status_from_h2_error(8), RR_CANCELLED);
  assert_int_equal(rpc_status_from_h2_error(0xb), RR_RESOURCE_EXHAUSTED);
  assert_int_equal(rpc_status_from_h2_error(0xc), RR_PERMISSION_DENIED);
  assert_int_equal(rpc_status_from_h2_error(2), RR_INTERNAL);
  assert_int_equal(rpc_status_from_h2_error(0), RR_INTERNAL);
}

static void test_metadata_syntax(void **state) {
  assert_true(rpc_metadata_key_valid("x-grpc-test-echo-initial", 24));
  assert_true(rpc_metadata_key_valid("a.b_c-9", 7));
  assert_false(rpc_metadata_key_valid("", 0));
  assert_false(rpc_metadata_key_valid("Upper", 5));
  assert_false(rpc_metadata_key_valid(":path", 5));
  assert_false(rpc_metadata_key_valid("a b", 3));
  assert_true(rpc_metadata_value_valid("hello world ~", 13));
  assert_true(rpc_metadata_value_valid("", 0));
  assert_false(rpc_metadata_value_valid("a\nb", 3));
  assert_false(rpc_metadata_value_valid("\x80", 1));
}

static void test_utf8(void **state) {
  (void)state;
  static const struct {
    const char *s;
    bool ok;
  } cases[] = {
      {"", true},
      {"plain", true},
      {"\xc3\xa9", true},
      {"\xe2\x98\xba", true},
      {"\xf0\x9f\x98\x88", true},
      {"\xff", false},
      {"\xc3", false},
      {"\xc0\xaf", false},
      {"\xe0\x80\xaf", false},
      {"\xed\xa0\x80", false},
      {"\xf4\x90\x80\x80", false},
      {"\x80", false},
  };
  for (size_t i = 0; i < RR_ARRAY_SIZE(cases); i++)
    assert_int_equal(rpc_wire_utf8_valid((const uint8_t *)cases[i].s, strlen(cases[i].s)),
                     cases[i].ok);
}

/* A nested string with a NUL or bad UTF-8 is named by its path; bytes
 * fields may hold anything; malformed input is left to protobuf-c. */
static void test_check_strings(void **state) {
  (void)state;
  Test__V1__SimpleRequest req = TEST__V1__SIMPLE_REQUEST__INIT;
  Test__V1__EchoStatus st = TEST__V1__ECHO_STATUS__INIT;
  Test__V1__Payload p = TEST__V1__PAYLOAD__INIT;
  uint8_t body[] = {0, 0xff, 0};
  p.body.data = body;
  p.body.len = sizeof body;
  req.payload = &p;
  req.response_status = &st;
  st.message = "fine \xe2\x98\xba";
  uint8_t buf[256];
  char err[300];
  size_t n = protobuf_c_message_pack(&req.base, buf);
  assert_int_equal(
      rpc_wire_check_strings(&test__v1__simple_request__descriptor, buf, n, err, sizeof err), 0);
  st.message = "bad";
  n = protobuf_c_message_pack(&req.base, buf);
  uint8_t *at = memmem(buf, n, "bad", 3);
  assert_non_null(at);
  at[1] = 0;
  assert_int_equal(
      rpc_wire_check_strings(&test__v1__simple_request__descriptor, buf, n, err, sizeof err), -1);
  assert_string_equal(err, "response_status.message contains a NUL byte");
  at[1] = 0xc3;
  assert_int_equal(
      rpc_wire_check_strings(&test__v1__simple_request__descriptor, buf, n, err, sizeof err), -1);
  assert_string_equal(err, "response_status.message is not valid UTF-8");
  /* cut in the middle: protobuf-c's to refuse */
  assert_int_equal(
      rpc_wire_check_strings(&test__v1__simple_request__descriptor, buf, n - 1, err, sizeof err),
      0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_prefix),
      cmocka_unit_test(test_utf8),
      cmocka_unit_test(test_check_strings),
      cmocka_unit_test(test_deframer_any_split),
      cmocka_unit_test(test_deframer_empty_message_alone),
      cmocka_unit_test(test_deframer_errors),
      cmocka_unit_test(test_deframer_large),
      cmocka_unit_test(test_compress),
      cmocka_unit_test(test_deframer_compressed),
      cmocka_unit_test(test_timeout_parse),
      cmocka_unit_test(test_timeout_format),
      cmocka_unit_test(test_percent),
      cmocka_unit_test(test_base64),
      cmocka_unit_test(test_status_maps),
      cmocka_unit_test(test_metadata_syntax),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
