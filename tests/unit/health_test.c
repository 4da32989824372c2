/* Unit tests of the health status table and its watchers (src/rpc/services/health.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "rpc/services/health.h"

typedef struct recorder {
  int seen[16];
  size_t n;
  health_watch *self; /* removed from inside the callback when remove_at is reached */
  size_t remove_at;
} recorder;

static void record(void *data, int status) {
  recorder *r = data;
  assert_true(r->n < 16);
  r->seen[r->n++] = status;
  if (r->remove_at && r->n == r->remove_at) {
    health_watch_remove(r->self);
    r->self = NULL;
  }
}

static health *table(void) {
  health *h = NULL;
  rr_err e = {0};
  assert_int_equal(health_new(&h, &e), 0);
  return h;
}

static void test_defaults_and_set(void **state) {
  health *h = table();
  rr_err e = {0};
  assert_int_equal(health_get(h, ""), HEALTH_SERVING);
  assert_int_equal(health_get(h, "runrpc.v1.Jobs"), -1);
  assert_int_equal(health_set(h, "runrpc.v1.Jobs", HEALTH_SERVING, &e), 0);
  assert_int_equal(health_get(h, "runrpc.v1.Jobs"), HEALTH_SERVING);
  assert_int_equal(health_set(h, "runrpc.v1.Jobs", HEALTH_NOT_SERVING, &e), 0);
  assert_int_equal(health_get(h, "runrpc.v1.Jobs"), HEALTH_NOT_SERVING);
  assert_int_equal(health_set(h, "", HEALTH_NOT_SERVING, &e), 0);
  assert_int_equal(health_get(h, ""), HEALTH_NOT_SERVING);
  assert_int_equal(health_get(h, "runrpc.v1"), -1); /* exact names only */

  assert_int_equal(health_set(h, "x", HEALTH_SERVICE_UNKNOWN, &e), -1);
  assert_int_equal(e.code, RR_INVALID_ARGUMENT);
  assert_int_equal(health_set(h, "x", 42, &e), -1);
  assert_int_equal(health_get(h, "x"), -1);

  char name[32]; /* the table grows */
  for (int i = 0; i < 100; i++) {
    snprintf(name, sizeof name, "svc%d", i);
    assert_int_equal(health_set(h, name, i % 2 ? HEALTH_SERVING : HEALTH_NOT_SERVING, &e), 0);
  }
  for (int i = 0; i < 100; i++) {
    snprintf(name, sizeof name, "svc%d", i);
    assert_int_equal(health_get(h, name), i % 2 ? HEALTH_SERVING : HEALTH_NOT_SERVING);
  }
  health_free(h);
}

static void test_watch(void **state) {
  health *h = table();
  rr_err e = {0};
  recorder whole = {0}, jobs = {0}, other = {0};
  health_watch *w1, *w2, *w3;
  assert_int_equal(health_watch_add(h, "", record, &whole, &w1, &e), 0);
  assert_int_equal(health_watch_add(h, "runrpc.v1.Jobs", record, &jobs, &w2, &e), 0);
  assert_int_equal(health_watch_add(h, "other", record, &other, &w3, &e), 0);
  /* current status at once; unknown services get SERVICE_UNKNOWN */
  assert_int_equal(whole.n, 1);
  assert_int_equal(whole.seen[0], HEALTH_SERVING);
  assert_int_equal(jobs.n, 1);
  assert_int_equal(jobs.seen[0], HEALTH_SERVICE_UNKNOWN);

  assert_int_equal(health_set(h, "runrpc.v1.Jobs", HEALTH_SERVING, &e), 0);
  assert_int_equal(health_set(h, "runrpc.v1.Jobs", HEALTH_SERVING, &e), 0); /* no change */
  assert_int_equal(health_set(h, "runrpc.v1.Jobs", HEALTH_NOT_SERVING, &e), 0);
  assert_int_equal(jobs.n, 3);
  assert_int_equal(jobs.seen[1], HEALTH_SERVING);
  assert_int_equal(jobs.seen[2], HEALTH_NOT_SERVING);
  assert_int_equal(whole.n, 1); /* others untouched */
  assert_int_equal(other.n, 1);

  health_watch_remove(w2);
  assert_int_equal(health_set(h, "runrpc.v1.Jobs", HEALTH_SERVING, &e), 0);
  assert_int_equal(jobs.n, 3);
  health_watch_remove(NULL);

  /* shutdown: every known service goes NOT_SERVING, later sets are ignored */
  health_shutdown(h);
  assert_int_equal(whole.n, 2);
  assert_int_equal(whole.seen[1], HEALTH_NOT_SERVING);
  assert_int_equal(health_get(h, "runrpc.v1.Jobs"), HEALTH_NOT_SERVING);
  assert_int_equal(health_set(h, "", HEALTH_SERVING, &e), 0);
  assert_int_equal(health_get(h, ""), HEALTH_NOT_SERVING);
  assert_int_equal(whole.n, 2);
  assert_int_equal(other.n, 1);
  health_watch_remove(w1);
  health_free(h); /* w3 still registered: freed with the table */
}

static void test_remove_inside_callback(void **state) {
  health *h = table();
  rr_err e = {0};
  recorder a = {.remove_at = 2}, b = {0}, c = {.remove_at = 1};
  health_watch *wb;
  assert_int_equal(health_watch_add(h, "s", record, &a, &a.self, &e), 0);
  assert_int_equal(health_watch_add(h, "s", record, &b, &wb, &e), 0);
  /* c removes itself during its first (immediate) call, through *ret */
  assert_int_equal(health_watch_add(h, "s", record, &c, &c.self, &e), 0);
  assert_int_equal(c.n, 1);
  assert_null(c.self);
  assert_int_equal(health_set(h, "s", HEALTH_SERVING, &e), 0);
  assert_int_equal(a.n, 2); /* removed itself on this one */
  assert_null(a.self);
  assert_int_equal(b.n, 2);
  assert_int_equal(c.n, 1);
  assert_int_equal(health_set(h, "s", HEALTH_NOT_SERVING, &e), 0);
  assert_int_equal(a.n, 2);
  assert_int_equal(b.n, 3);
  health_watch_remove(wb);
  health_free(h);
}

static void test_watch_many(void **state) {
  health *h = table();
  rr_err e = {0};
  recorder r[10] = {0};
  health_watch *w[10];
  for (int i = 0; i < 10; i++)
    assert_int_equal(health_watch_add(h, i % 2 ? "odd" : "even", record, &r[i], &w[i], &e), 0);
  assert_int_equal(health_set(h, "odd", HEALTH_SERVING, &e), 0);
  for (int i = 0; i < 10; i++)
    assert_int_equal(r[i].n, i % 2 ? 2u : 1u);
  for (int i = 0; i < 10; i += 3)
    health_watch_remove(w[i]);
  assert_int_equal(health_set(h, "even", HEALTH_NOT_SERVING, &e), 0);
  for (int i = 0; i < 10; i++)
    assert_int_equal(r[i].n, i % 2 ? 2u : (i % 3 == 0 ? 1u : 2u));
  health_free(h);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults_and_set),
      cmocka_unit_test(test_watch),
      cmocka_unit_test(test_remove_inside_callback),
      cmocka_unit_test(test_watch_many),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
