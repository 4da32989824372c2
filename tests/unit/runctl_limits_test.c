/* Unit tests of runctl's limit flags (src/runctl/limits.c): sizes, CPU
 * forms, counts, io entries merged per device, the seed's aliases' units, and
 * the one-line messages for bad values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "limits.h"

#define KiB 1024ull
#define MiB (1024ull * KiB)
#define GiB (1024ull * MiB)

static void test_size_good(void **state) {
  static const struct {
    const char *s;
    uint64_t v;
  } good[] = {
      {"1", 1},
      {"4096", 4096},
      {"10b", 10},
      {"1K", KiB},
      {"1k", KiB},
      {"1KB", KiB},
      {"1kib", KiB},
      {"1KiB", KiB},
      {"64M", 64 * MiB},
      {"64mb", 64 * MiB},
      {"1.5G", 3 * GiB / 2},
      {"0.5k", 512},
      {".5M", MiB / 2},
      {"2T", 2048 * GiB},
      {"1P", 1024 * 1024 * GiB},
      {"9223372036854775807", 9223372036854775807ull},
  };
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    uint64_t v = 0;
    const char *why = NULL;
    if (runctl_parse_size(good[i].s, &v, &why) != 0)
      fail_msg("\"%s\" refused: %s", good[i].s, why);
    assert_int_equal(v, good[i].v);
  }
}

static void test_size_bad(void **state) {
  static const struct {
    const char *s, *why;
  } bad[] = {
      {"", "empty"},
      {"-1", "negative"},
      {"-1M", "negative"},
      {"0", "more than 0"},
      {"0K", "more than 0"},
      {"12X", "unknown suffix"},
      {"1MM", "unknown suffix"},
      {"1Mi", "unknown suffix"},
      {"1 M", "unknown suffix"},
      {"M", "not a number"},
      {"abc", "not a number"},
      {"1.2.3K", "not a number"},
      {"1.5", "fraction of a byte"},
      {"9223372036854775808", "too large"},
      {"99999999999999999999999", "too large"},
      {"8E", "unknown suffix"},
      {"8192P", "too large"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    uint64_t v = 77;
    const char *why = NULL;
    if (runctl_parse_size(bad[i].s, &v, &why) != -1)
      fail_msg("\"%s\" accepted as %llu", bad[i].s, (unsigned long long)v);
    assert_non_null(why);
    if (!strstr(why, bad[i].why))
      fail_msg("\"%s\": reason \"%s\" lacks \"%s\"", bad[i].s, why, bad[i].why);
    assert_int_equal(v, 77); /* untouched on failure */
  }
}

static void test_count(void **state) {
  uint64_t v;
  const char *why;
  assert_int_equal(runctl_parse_count("20", &v, &why), 0);
  assert_int_equal(v, 20);
  const char *bad[] = {"", "0", "-3", "1.5", "1k", "x", "18446744073709551616"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(runctl_parse_count(bad[i], &v, &why), -1);
}

static void test_cpu(void **state) {
  static const struct {
    const char *s;
    uint64_t quota, period;
  } good[] = {
      {"0.5", 50000, 100000},          {"2", 200000, 100000},           {"0.01", 1000, 100000},
      {"50%", 50000, 100000},          {"150%", 150000, 100000},        {"12.5%", 12500, 100000},
      {"1.25", 125000, 100000},        {"50000/100000", 50000, 100000}, {"2000/1000", 2000, 1000},
      {"1000/1000000", 1000, 1000000},
  };
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    uint64_t q = 0, p = 0;
    const char *why = NULL;
    if (runctl_parse_cpu(good[i].s, &q, &p, &why) != 0)
      fail_msg("\"%s\" refused: %s", good[i].s, why);
    assert_int_equal(q, good[i].quota);
    assert_int_equal(p, good[i].period);
  }
  const char *bad[] = {"",           "0",        "0%",         "-0.5",    "0.001",
                       "abc",        "0.5x",     "%",          "50%%",    "1/2",
                       "500/100000", "1000/999", "1/0",        "/100000", "50000/",
                       "5e4/100000", "1000000",  "0.5/100000", "-1/100"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    uint64_t q, p;
    const char *why = NULL;
    if (runctl_parse_cpu(bad[i], &q, &p, &why) != -1)
      fail_msg("\"%s\" accepted as %llu/%llu", bad[i], (unsigned long long)q,
               (unsigned long long)p);
    assert_non_null(why);
  }
}

static void test_apply_limits(void **state) {
  runctl_limits l = {0};
  char msg[512];
  assert_int_equal(runctl_limits_apply(&l, RUNCTL_LIMIT_CPU, "--max-cpu", "0.2", msg, sizeof msg),
                   0);
  assert_true(l.limits.has_cpu);
  assert_int_equal(l.limits.quota_us, 20000);
  /* the seed's unit: microseconds out of 100000; last flag wins */
  assert_int_equal(runctl_limits_apply(&l, RUNCTL_LIMIT_CPU_BANDWIDTH, "-max_cpu_bandwidth",
                                       "50000", msg, sizeof msg),
                   0);
  assert_int_equal(l.limits.quota_us, 50000);
  assert_int_equal(l.limits.period_us, 100000);
  assert_int_equal(runctl_limits_apply(&l, RUNCTL_LIMIT_MEMORY, "-max_memory_usage", "67108864",
                                       msg, sizeof msg),
                   0);
  assert_true(l.limits.has_memory_max);
  assert_int_equal(l.limits.memory_max, 64 * MiB);
  assert_int_equal(runctl_limits_apply(&l, RUNCTL_LIMIT_PIDS, "--max-pids", "20", msg, sizeof msg),
                   0);
  assert_int_equal(l.limits.pids_max, 20);
  assert_false(l.limits.nio);

  /* io: one entry per device, flags for one device merged */
  assert_int_equal(runctl_limits_apply(&l, RUNCTL_LIMIT_WBPS, "--max-wbps", "2M", msg, sizeof msg),
                   0);
  assert_int_equal(
      runctl_limits_apply(&l, RUNCTL_LIMIT_RIOPS, "-max_riops", "100", msg, sizeof msg), 0);
  assert_int_equal(
      runctl_limits_apply(&l, RUNCTL_LIMIT_RBPS, "--max-rbps", "8:0=10M/s", msg, sizeof msg), 0);
  assert_int_equal(
      runctl_limits_apply(&l, RUNCTL_LIMIT_WIOPS, "--max-wiops", "/dev/sda=5", msg, sizeof msg), 0);
  assert_int_equal(
      runctl_limits_apply(&l, RUNCTL_LIMIT_WBPS, "--max-wbps", "8:0=1k", msg, sizeof msg), 0);
  assert_int_equal(l.limits.nio, 3);
  assert_ptr_equal(l.limits.io, l.io);
  assert_string_equal(l.io[0].device, "");
  assert_int_equal(l.io[0].wbps, 2 * MiB);
  assert_int_equal(l.io[0].riops, 100);
  assert_int_equal(l.io[0].rbps, 0);
  assert_string_equal(l.io[1].device, "8:0");
  assert_int_equal(l.io[1].rbps, 10 * MiB);
  assert_int_equal(l.io[1].wbps, KiB);
  assert_string_equal(l.io[2].device, "/dev/sda");
  assert_int_equal(l.io[2].wiops, 5);
}

static void test_apply_messages(void **state) {
  static const struct {
    runctl_limit_flag flag;
    const char *name, *value, *msg;
  } bad[] = {
      {RUNCTL_LIMIT_MEMORY, "--max-memory", "12X", "invalid --max-memory \"12X\": unknown suffix"},
      {RUNCTL_LIMIT_MEMORY, "--max-memory", "1000",
       "invalid --max-memory \"1000\": less than 1 MiB"},
      {RUNCTL_LIMIT_MEMORY, "-max_memory_usage", "-5",
       "invalid -max_memory_usage \"-5\": negative"},
      {RUNCTL_LIMIT_CPU, "--max-cpu", "", "invalid --max-cpu \"\": empty value"},
      {RUNCTL_LIMIT_CPU_BANDWIDTH, "-max_cpu_bandwidth", "0.5",
       "invalid -max_cpu_bandwidth \"0.5\": not a whole number"},
      {RUNCTL_LIMIT_CPU_BANDWIDTH, "-max_cpu_bandwidth", "999", "less than 1000 us"},
      {RUNCTL_LIMIT_PIDS, "--max-pids", "0", "invalid --max-pids \"0\": must be more than 0"},
      {RUNCTL_LIMIT_WBPS, "--max-wbps", "=1M", "empty device"},
      {RUNCTL_LIMIT_WBPS, "--max-wbps", "8:0=", "invalid --max-wbps \"8:0=\": empty value"},
      {RUNCTL_LIMIT_WBPS, "--max-wbps", "8:0=0", "must be more than 0"},
      {RUNCTL_LIMIT_RBPS, "-max_rbps", "99999999999999999999", "too large"},
      {RUNCTL_LIMIT_RIOPS, "--max-riops", "/dev/sda=1k", "not a whole number"},
      {RUNCTL_LIMIT_WIOPS, "-max_wiops", "-1", "negative"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    runctl_limits l = {0};
    char msg[512] = "";
    assert_int_equal(
        runctl_limits_apply(&l, bad[i].flag, bad[i].name, bad[i].value, msg, sizeof msg), -1);
    if (!strstr(msg, bad[i].msg))
      fail_msg("%s %s: message \"%s\" lacks \"%s\"", bad[i].name, bad[i].value, msg, bad[i].msg);
    assert_null(strchr(msg, '\n'));
    assert_int_equal(l.limits.nio, 0); /* nothing half-applied */
  }
  /* at most RUNRPC_MAX_IO_LIMITS devices */
  runctl_limits l = {0};
  char msg[512], v[32];
  for (int i = 0; i < RUNRPC_MAX_IO_LIMITS; i++) {
    snprintf(v, sizeof v, "8:%d=1M", i * 16);
    assert_int_equal(runctl_limits_apply(&l, RUNCTL_LIMIT_WBPS, "--max-wbps", v, msg, sizeof msg),
                     0);
  }
  assert_int_equal(
      runctl_limits_apply(&l, RUNCTL_LIMIT_WBPS, "--max-wbps", "9:0=1M", msg, sizeof msg), -1);
  assert_non_null(strstr(msg, "more than 16 devices"));
  assert_int_equal(
      runctl_limits_apply(&l, RUNCTL_LIMIT_RBPS, "--max-rbps", "8:0=1M", msg, sizeof msg), 0);
}

static void test_format(void **state) {
  char b[64];
  runctl_format_bytes(0, b, sizeof b);
  assert_string_equal(b, "0 B");
  runctl_format_bytes(1023, b, sizeof b);
  assert_string_equal(b, "1023 B");
  runctl_format_bytes(1536, b, sizeof b);
  assert_string_equal(b, "1.5 KiB");
  runctl_format_bytes(64 * MiB, b, sizeof b);
  assert_string_equal(b, "64.0 MiB");
  runctl_format_bytes(3 * GiB, b, sizeof b);
  assert_string_equal(b, "3.0 GiB");
  runctl_format_cpu(50000, 100000, b, sizeof b);
  assert_string_equal(b, "0.5 CPU");
  runctl_format_cpu(200000, 0, b, sizeof b);
  assert_string_equal(b, "2 CPU");
  runctl_format_cpu(2000, 1000, b, sizeof b);
  assert_string_equal(b, "2 CPU = 2000/1000 us");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_size_good),    cmocka_unit_test(test_size_bad),
      cmocka_unit_test(test_count),        cmocka_unit_test(test_cpu),
      cmocka_unit_test(test_apply_limits), cmocka_unit_test(test_apply_messages),
      cmocka_unit_test(test_format),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
