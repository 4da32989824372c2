#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"

static void test_set_returns_minus_one(void **state) {
  rr_err e;
  rr_err_clear(&e);
  assert_int_equal(rr_err_set(&e, RR_NOT_FOUND, "job %s not found", "X"), -1);
  assert_int_equal(e.code, RR_NOT_FOUND);
  assert_string_equal(e.msg, "job X not found");
  assert_int_equal(rr_err_set(NULL, RR_INTERNAL, "ignored"), -1);
}

static void test_sys_appends_strerror(void **state) {
  rr_err e;
  rr_err_sys(&e, RR_INTERNAL, ENOENT, "open %s", "/x");
  assert_int_equal(e.sys_errno, ENOENT);
  assert_string_equal(e.msg, "open /x: No such file or directory");
}

static void test_wrap_keeps_root_cause(void **state) {
  rr_err e;
  rr_err_set(&e, RR_INVALID_ARGUMENT, "bad value \"12X\"");
  rr_err_wrap(&e, "cannot start job %d", 7);
  assert_int_equal(e.code, RR_INVALID_ARGUMENT);
  assert_string_equal(e.msg, "cannot start job 7: bad value \"12X\"");
}

static void test_wrap_truncates_safely(void **state) {
  rr_err e;
  char big[2000];
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  rr_err_set(&e, RR_INTERNAL, "%s", big);
  assert_int_equal(strlen(e.msg), RR_ERR_MSG_MAX - 1);
  rr_err_wrap(&e, "%s", big);
  assert_int_equal(strlen(e.msg), RR_ERR_MSG_MAX - 1);
}

static void test_code_names(void **state) {
  assert_string_equal(rr_code_name(RR_OK), "OK");
  assert_string_equal(rr_code_name(RR_UNAUTHENTICATED), "UNAUTHENTICATED");
  assert_string_equal(rr_code_name(99), "UNKNOWN");
  assert_string_equal(rr_code_name(-1), "UNKNOWN");
}

static void test_take_ptr(void **state) {
  _cleanup_free_ char *p = strdup("x");
  char *q = TAKE_PTR(p);
  assert_null(p);
  free(q);
  _cleanup_close_ int fd = -1;
  assert_int_equal(TAKE_FD(fd), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_set_returns_minus_one),
      cmocka_unit_test(test_sys_appends_strerror),
      cmocka_unit_test(test_wrap_keeps_root_cause),
      cmocka_unit_test(test_wrap_truncates_safely),
      cmocka_unit_test(test_code_names),
      cmocka_unit_test(test_take_ptr),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
