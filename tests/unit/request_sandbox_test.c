/* The sandbox part of a job request: validation names the field, job.json
 * round trip, damaged job.json is DATA_LOSS. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/request.h"

static job_sandbox full(void) {
  job_sandbox s = {.profile = SB_PROFILE_STRICT,
                   .profile_requested = strdup("default"),
                   .rootfs = strdup("/srv/root"),
                   .net = SB_NET_NONE,
                   .hostname = strdup("box"),
                   .has_user = true,
                   .uid = 1000,
                   .gid = 100};
  s.binds = calloc(2, sizeof *s.binds);
  s.binds[0] = (job_bind){strdup("/srv/data"), strdup("/data"), true};
  s.binds[1] = (job_bind){strdup("/srv/out"), strdup("/out"), false};
  s.nbinds = 2;
  return s;
}

static void test_roundtrip(void **state) {
  job_sandbox s = full(), back;
  rr_err e = {0};
  assert_int_equal(job_sandbox_validate(&s, &e), 0);
  json_object *o = job_sandbox_to_json(&s);
  assert_non_null(o);
  assert_int_equal(job_sandbox_from_json(o, &back, &e), 0);
  assert_int_equal(back.profile, SB_PROFILE_STRICT);
  assert_string_equal(back.profile_requested, "default");
  assert_string_equal(back.rootfs, "/srv/root");
  assert_int_equal(back.nbinds, 2);
  assert_string_equal(back.binds[0].destination, "/data");
  assert_true(back.binds[0].readonly);
  assert_false(back.binds[1].readonly);
  assert_int_equal(back.net, SB_NET_NONE);
  assert_string_equal(back.hostname, "box");
  assert_true(back.has_user);
  assert_int_equal(back.uid, 1000);
  assert_int_equal(back.gid, 100);
  json_object_put(o);
  job_sandbox_free(&back);
  job_sandbox_free(&s);
}

static void test_host_is_omitted(void **state) {
  job_sandbox s = {0};
  assert_null(job_sandbox_to_json(&s)); /* job.json of plain jobs unchanged */
}

static void expect_invalid(job_sandbox *s, const char *want) {
  rr_err e = {0};
  assert_int_equal(job_sandbox_validate(s, &e), -1);
  assert_int_equal(e.code, RR_INVALID_ARGUMENT);
  if (!strstr(e.msg, want))
    fail_msg("message \"%s\" lacks \"%s\"", e.msg, want);
  job_sandbox_free(s);
}

static void test_bad_fields(void **state) {
  job_sandbox s = full();
  free(s.binds[1].destination);
  s.binds[1].destination = strdup("out");
  expect_invalid(&s, "sandbox.binds[1].destination");
  s = full();
  free(s.rootfs);
  s.rootfs = strdup("/srv/../etc");
  expect_invalid(&s, "sandbox.rootfs");
  s = full();
  free(s.hostname);
  s.hostname = strdup("a b");
  expect_invalid(&s, "sandbox.hostname");
  s = full();
  s.uid = UINT32_MAX;
  expect_invalid(&s, "sandbox.user");
  s = full();
  s.profile = SB_PROFILE_HOST; /* a rootfs would be silently ignored */
  expect_invalid(&s, "sandbox.rootfs: needs a sandbox");
  s = (job_sandbox){.profile = SB_PROFILE_HOST, .net = SB_NET_NONE};
  expect_invalid(&s, "sandbox.net: needs a sandbox");
}

static void expect_loss(const char *json) {
  json_object *o = json_tokener_parse(json);
  assert_non_null(o);
  job_sandbox s;
  rr_err e = {0};
  assert_int_equal(job_sandbox_from_json(o, &s, &e), -1);
  assert_int_equal(e.code, RR_DATA_LOSS);
  json_object_put(o);
}

static void test_damaged_json(void **state) {
  expect_loss("[]");
  expect_loss("{}");
  expect_loss("{\"profile\": \"fortress\"}");
  expect_loss("{\"profile\": 3}");
  expect_loss("{\"profile\": \"strict\", \"net\": \"wifi\"}");
  expect_loss("{\"profile\": \"strict\", \"binds\": [{\"source\": \"/a\"}]}");
  expect_loss("{\"profile\": \"strict\", \"binds\": [1]}");
  expect_loss("{\"profile\": \"strict\", \"user\": {\"uid\": -1, \"gid\": 0}}");
  expect_loss("{\"profile\": \"strict\", \"hostname\": 7}");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip),
      cmocka_unit_test(test_host_is_omitted),
      cmocka_unit_test(test_bad_fields),
      cmocka_unit_test(test_damaged_json),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
