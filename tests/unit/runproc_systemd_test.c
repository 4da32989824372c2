/* runproc --systemd-cgroup's scope: the unit and slice names of
 * "slice:prefix:name", the properties StartTransientUnit gets (as runc's
 * systemd driver sets them), and the answer where nobody can be asked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "runproc/runproc_systemd.h"

static const runproc_unit_prop *find(const runproc_unit_prop *p, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(p[i].name, name) == 0)
      return &p[i];
  return NULL;
}

static void test_names(void **state) {
  (void)state;
  char slice[64], unit[64];
  rr_err e = {0};
  assert_int_equal(runproc_systemd_names("kubepods-besteffort.slice:cri-containerd:abc", slice,
                                         sizeof slice, unit, sizeof unit, &e),
                   0);
  assert_string_equal(slice, "kubepods-besteffort.slice");
  assert_string_equal(unit, "cri-containerd-abc.scope");
  assert_int_equal(runproc_systemd_names(":p:n", slice, sizeof slice, unit, sizeof unit, &e), 0);
  assert_string_equal(slice, "system.slice");
  assert_string_equal(unit, "p-n.scope");
  assert_int_equal(
      runproc_systemd_names("a.slice::n.scope", slice, sizeof slice, unit, sizeof unit, &e), 0);
  assert_string_equal(unit, "n.scope");
  assert_int_equal(runproc_systemd_names("rel/c", slice, sizeof slice, unit, sizeof unit, &e), -1);
  assert_non_null(strstr(e.msg, "is not systemd's"));
  /* too long for the caller's buffer: refused, not cut */
  char small[4];
  assert_int_equal(
      runproc_systemd_names("a.slice:p:name", small, sizeof small, unit, sizeof unit, &e), -1);
  assert_non_null(strstr(e.msg, "too long"));
}

static void test_properties_without_limits(void **state) {
  (void)state;
  runproc_unit_prop p[RUNPROC_SCOPE_MAX_PROPS];
  size_t n = runproc_scope_properties("a.slice", "runproc container c", NULL, true, 42, p);
  assert_int_equal(n, 5);
  assert_string_equal(find(p, n, "Slice")->s, "a.slice");
  assert_string_equal(find(p, n, "Description")->s, "runproc container c");
  assert_int_equal(find(p, n, "PIDs")->kind, RUNPROC_PROP_PIDS);
  assert_int_equal(find(p, n, "PIDs")->u, 42);
  assert_int_equal(find(p, n, "Delegate")->kind, RUNPROC_PROP_BOOL);
  assert_int_equal(find(p, n, "Delegate")->u, 1);
  assert_int_equal(find(p, n, "DefaultDependencies")->u, 0);
  assert_null(find(p, n, "MemoryMax"));
}

static void test_properties_with_limits(void **state) {
  (void)state;
  runproc_unit_prop p[RUNPROC_SCOPE_MAX_PROPS];
  cg_limits l = {.has_memory = true,
                 .memory_max = 64u << 20,
                 .has_cpu = true,
                 .cpu_quota_us = 50000,
                 .cpu_period_us = 100000,
                 .has_pids = true,
                 .pids_max = 20};
  size_t n = runproc_scope_properties("a.slice", "d", &l, true, 1, p);
  assert_int_equal(n, 9);
  assert_int_equal(find(p, n, "MemoryMax")->u, 64u << 20);
  assert_int_equal(find(p, n, "CPUQuotaPerSecUSec")->u, 500000);
  assert_int_equal(find(p, n, "CPUQuotaPeriodUSec")->u, 100000);
  assert_int_equal(find(p, n, "TasksMax")->u, 20);
  /* v1: MemoryLimit; a quota not a multiple of 10 ms a second is rounded up */
  l.cpu_quota_us = 12345;
  l.cpu_period_us = 0; /* the default period */
  n = runproc_scope_properties("a.slice", "d", &l, false, 1, p);
  assert_null(find(p, n, "MemoryMax"));
  assert_int_equal(find(p, n, "MemoryLimit")->u, 64u << 20);
  assert_int_equal(find(p, n, "CPUQuotaPerSecUSec")->u, 130000);
  assert_int_equal(find(p, n, "CPUQuotaPeriodUSec")->u, CG_DEFAULT_CPU_PERIOD_US);
  /* no quota (period alone): no CPU properties */
  l.cpu_quota_us = 0;
  n = runproc_scope_properties("a.slice", "d", &l, false, 1, p);
  assert_null(find(p, n, "CPUQuotaPerSecUSec"));
}

static void test_no_bus_is_not_an_error(void **state) {
  (void)state;
  /* nobody listens there: runproc makes the path itself (1), e says why */
  setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/rr-no-bus", 1);
  runproc_unit_prop p[RUNPROC_SCOPE_MAX_PROPS];
  size_t n = runproc_scope_properties("a.slice", "d", NULL, true, 1, p);
  rr_err e = {0};
  assert_int_equal(runproc_systemd_start_scope("p-n.scope", p, n, &e), 1);
  assert_true(strstr(e.msg, "no system bus") || strstr(e.msg, "without sd-bus"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_properties_without_limits),
      cmocka_unit_test(test_properties_with_limits),
      cmocka_unit_test(test_no_bus_is_not_an_error),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
