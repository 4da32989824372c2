/* src/common/util: durations, hex digits, mkdir -p. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"

static void test_duration_good(void **state) {
  static const struct {
    const char *in;
    uint64_t ms;
  } ok[] = {{"0", 0},
            {"1.5", 1500},
            {"500ms", 500},
            {"10s", 10000},
            {"2m", 120000},
            {"1h", 3600000},
            {"7d", 604800000},
            {".5", 500},
            {"0.0001s", 1},
            {"1.0001ms", 2},
            {"999999999999ms", 999999999999}};
  for (size_t i = 0; i < RR_ARRAY_SIZE(ok); i++) {
    uint64_t ms = 12345;
    if (rr_parse_duration_ms(ok[i].in, &ms) != 0)
      fail_msg("\"%s\" refused", ok[i].in);
    if (ms != ok[i].ms)
      fail_msg("\"%s\": %llu, want %llu", ok[i].in, (unsigned long long)ms,
               (unsigned long long)ok[i].ms);
  }
}

static void test_duration_bad(void **state) {
  static const char *const bad[] = {"",
                                    "s",
                                    "-1",
                                    "1x",
                                    "1 s",
                                    "1.",
                                    "1.s",
                                    "ms",
                                    "1e3",
                                    "1sm",
                                    "+5",
                                    "1.5.5",
                                    "nan",
                                    "inf",
                                    "1w",
                                    "2000000000000000000000",
                                    "99999999999999999d"};
  for (size_t i = 0; i < RR_ARRAY_SIZE(bad); i++) {
    uint64_t ms = 7;
    if (rr_parse_duration_ms(bad[i], &ms) != -1)
      fail_msg("\"%s\" accepted as %llu ms", bad[i], (unsigned long long)ms);
    assert_int_equal(ms, 7); /* untouched */
  }
}

static void test_hex(void **state) {
  assert_int_equal(rr_hex_value('0'), 0);
  assert_int_equal(rr_hex_value('9'), 9);
  assert_int_equal(rr_hex_value('a'), 10);
  assert_int_equal(rr_hex_value('F'), 15);
  assert_int_equal(rr_hex_value('g'), -1);
  assert_int_equal(rr_hex_value('\0'), -1);
}

static void test_mkdirs(void **state) {
  char base[] = "/tmp/rr-util-XXXXXX", deep[128], file[128];
  assert_non_null(mkdtemp(base));
  snprintf(deep, sizeof deep, "%s/a/b/c", base);
  rr_err e = {0};
  assert_int_equal(rr_mkdirs(deep, &e), 0);
  struct stat st;
  assert_int_equal(stat(deep, &st), 0);
  assert_true(S_ISDIR(st.st_mode));
  assert_int_equal(st.st_mode & 07777, 0700);
  assert_int_equal(rr_mkdirs(deep, &e), 0); /* existing: fine */
  snprintf(file, sizeof file, "%s/f", base);
  int fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  assert_true(fd >= 0);
  close(fd);
  snprintf(deep, sizeof deep, "%s/f/x", base);
  assert_int_equal(rr_mkdirs(deep, &e), -1);
  assert_int_equal(e.code, RR_INTERNAL);
  assert_non_null(strstr(e.msg, "cannot create directory"));
  assert_int_equal(rr_mkdirs(file, &e), -1);
  assert_non_null(strstr(e.msg, "is not a directory"));
  char rm[256];
  snprintf(rm, sizeof rm, "rm -rf %s", base);
  assert_int_equal(system(rm), 0);
}

/* rr_read_sized: exact, grown (EFBIG), shrunk (short), empty. */
static void test_read_sized(void **state) {
  (void)state;
  char path[] = "/tmp/rr-util-test-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  unlink(path);
  assert_int_equal(write(fd, "hello world", 11), 11);
  char *buf = NULL;
  size_t len = 99;
  assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
  assert_int_equal(rr_read_sized(fd, 11, &buf, &len), 0);
  assert_int_equal(len, 11);
  assert_string_equal(buf, "hello world");
  free(buf);
  assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
  assert_int_equal(rr_read_sized(fd, 5, &buf, &len), -1);
  assert_int_equal(errno, EFBIG);
  assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
  assert_int_equal(rr_read_sized(fd, 20, &buf, &len), 0);
  assert_int_equal(len, 11);
  free(buf);
  assert_int_equal(rr_read_sized(fd, 0, &buf, &len), 0); /* at EOF */
  assert_int_equal(len, 0);
  assert_string_equal(buf, "");
  free(buf);
  assert_int_equal(rr_read_sized(-1, 3, &buf, &len), -1);
  assert_int_equal(errno, EBADF);
  close(fd);
}

static void test_host_port_split(void **state) {
  (void)state;
  char h[16];
  const char *port = NULL;
  assert_int_equal(rr_host_port_split("a.b:1", h, sizeof h, &port), 0);
  assert_string_equal(h, "a.b");
  assert_string_equal(port, "1");
  assert_int_equal(rr_host_port_split("[::1]:9734", h, sizeof h, &port), 0);
  assert_string_equal(h, "::1");
  assert_string_equal(port, "9734");
  assert_int_equal(rr_host_port_split(":80", h, sizeof h, &port), 0);
  assert_string_equal(h, "");
  assert_string_equal(port, "80");
  assert_int_equal(rr_host_port_split("x:", h, sizeof h, &port), 0);
  assert_string_equal(port, "");
  assert_int_equal(rr_host_port_split("nocolon", h, sizeof h, &port), -1);
  assert_int_equal(rr_host_port_split("[::1]9", h, sizeof h, &port), -1);
  assert_int_equal(rr_host_port_split("[::1", h, sizeof h, &port), -1);
  assert_int_equal(rr_host_port_split("0123456789abcdef:1", h, sizeof h, &port), -1);
  assert_int_equal(rr_host_port_split("0123456789abcde:1", h, sizeof h, &port), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_duration_good), cmocka_unit_test(test_duration_bad),
      cmocka_unit_test(test_hex),           cmocka_unit_test(test_mkdirs),
      cmocka_unit_test(test_read_sized),    cmocka_unit_test(test_host_port_split),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
