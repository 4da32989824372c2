/* Unit tests of librunrpc's limits and usage conversion (src/lib/limits.c):
 * public struct -> protobuf -> wire -> protobuf -> public struct, and a
 * JobStatus carrying limits, usage and the cgroup version. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "lib.h"

static void test_no_limits(void **state) {
  runrpc_limits none = {0};
  lib_limits out;
  rr_err e = {0};
  assert_int_equal(lib_limits_build(&none, &out, &e), 0);
  runrpc_limits bad = {.nio = 1};
  assert_int_equal(lib_limits_build(&bad, &out, &e), -1);
  assert_int_equal(e.code, RR_INVALID_ARGUMENT);
  runrpc_io_limit io[RUNRPC_MAX_IO_LIMITS + 1] = {{0}};
  runrpc_limits many = {.io = io, .nio = RUNRPC_MAX_IO_LIMITS + 1};
  assert_int_equal(lib_limits_build(&many, &out, &e), -1);
  assert_non_null(strstr(e.msg, "io devices"));
}

static void test_round_trip(void **state) {
  runrpc_io_limit io[] = {
      {.device = NULL, .wbps = 2 << 20},
      {.device = "8:0", .rbps = 1, .riops = 2, .wiops = 3},
  };
  runrpc_limits in = {.has_cpu = true,
                      .quota_us = 20000,
                      .period_us = 100000,
                      .has_memory_max = true,
                      .memory_max = 32 << 20,
                      .has_pids_max = true,
                      .pids_max = 20,
                      .io = io,
                      .nio = 2};
  lib_limits built;
  rr_err e = {0};
  assert_int_equal(lib_limits_build(&in, &built, &e), 1);

  /* as a server would echo them in a status */
  Runrpc__V1__Usage usage = RUNRPC__V1__USAGE__INIT;
  usage.cpu_usec = 1234567;
  usage.memory_peak = 30 << 20;
  usage.oom_kills = 1;
  usage.pids_refused = 9;
  usage.io_write_bytes = 77;
  Runrpc__V1__JobStatus st = RUNRPC__V1__JOB_STATUS__INIT;
  st.job_id = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
  st.state = RUNRPC__V1__JOB_STATE__JOB_STATE_KILLED;
  st.signal = 9;
  st.reason = "oom-killed";
  st.limits = &built.msg;
  st.usage = &usage;
  st.cgroup = "v1";
  size_t n = runrpc__v1__job_status__get_packed_size(&st);
  uint8_t *buf = malloc(n);
  assert_non_null(buf);
  runrpc__v1__job_status__pack(&st, buf);
  Runrpc__V1__JobStatus *back = runrpc__v1__job_status__unpack(NULL, n, buf);
  free(buf);
  assert_non_null(back);

  runrpc_job_status out;
  assert_int_equal(lib_status_copy(back, &out, &e), 0);
  runrpc__v1__job_status__free_unpacked(back, NULL);
  assert_string_equal(out.reason, "oom-killed");
  assert_string_equal(out.cgroup, "v1");
  assert_true(out.has_limits);
  assert_true(out.limits.has_cpu);
  assert_int_equal(out.limits.quota_us, 20000);
  assert_int_equal(out.limits.period_us, 100000);
  assert_true(out.limits.has_memory_max);
  assert_int_equal(out.limits.memory_max, 32 << 20);
  assert_true(out.limits.has_pids_max);
  assert_int_equal(out.limits.pids_max, 20);
  assert_int_equal(out.limits.nio, 2);
  assert_string_equal(out.limits.io[0].device, "");
  assert_int_equal(out.limits.io[0].wbps, 2 << 20);
  assert_string_equal(out.limits.io[1].device, "8:0");
  assert_int_equal(out.limits.io[1].rbps, 1);
  assert_int_equal(out.limits.io[1].riops, 2);
  assert_int_equal(out.limits.io[1].wiops, 3);
  assert_true(out.has_usage);
  assert_int_equal(out.usage.cpu_usec, 1234567);
  assert_int_equal(out.usage.memory_peak, 30 << 20);
  assert_int_equal(out.usage.oom_kills, 1);
  assert_int_equal(out.usage.pids_refused, 9);
  assert_int_equal(out.usage.io_write_bytes, 77);
  runrpc_job_status_free(&out);
  assert_null(out.cgroup);
}

static void test_status_without_cgroup(void **state) {
  Runrpc__V1__JobStatus st = RUNRPC__V1__JOB_STATUS__INIT;
  st.job_id = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
  st.reason = "exited";
  runrpc_job_status out;
  rr_err e = {0};
  assert_int_equal(lib_status_copy(&st, &out, &e), 0);
  assert_false(out.has_limits);
  assert_false(out.has_usage);
  assert_int_equal(out.limits.nio, 0);
  assert_string_equal(out.cgroup, "");
  runrpc_job_status_free(&out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_no_limits),
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_status_without_cgroup),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
