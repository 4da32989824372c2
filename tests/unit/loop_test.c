#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "common/loop.h"
#include "common/util.h"

static int order[16];
static int norder;

static void on_timer(loop *l, void *data) {
  order[norder++] = (int)(intptr_t)data;
  if (norder == 3)
    loop_stop(l);
}

static void test_timers_fire_in_order(void **state) {
  loop *l;
  assert_int_equal(loop_new(&l, NULL), 0);
  norder = 0;
  loop_timer_add(l, 30, on_timer, (void *)3);
  loop_timer_add(l, 10, on_timer, (void *)1);
  uint64_t cancel = loop_timer_add(l, 15, on_timer, (void *)9);
  loop_timer_add(l, 20, on_timer, (void *)2);
  loop_timer_cancel(l, cancel);
  assert_int_equal(loop_run(l, NULL), 0);
  assert_int_equal(order[0], 1);
  assert_int_equal(order[1], 2);
  assert_int_equal(order[2], 3);
  loop_free(l);
}

static int reads;
static void on_read(loop *l, int fd, uint32_t ev, void *data) {
  char buf[8];
  assert_true(ev & EPOLLIN);
  assert_int_equal(read(fd, buf, sizeof buf), 2);
  reads++;
  loop_fd_del(l, fd);
  /* the other end's watch is removed in the same batch: must not fire */
  loop_fd_del(l, *(int *)data);
  loop_stop(l);
}

static void test_fd_del_inside_callback(void **state) {
  loop *l;
  int p1[2], p2[2];
  assert_int_equal(loop_new(&l, NULL), 0);
  assert_int_equal(pipe(p1), 0);
  assert_int_equal(pipe(p2), 0);
  assert_int_equal(loop_fd_add(l, p1[0], EPOLLIN, "pipe", on_read, &p2[0], NULL), 0);
  assert_int_equal(loop_fd_add(l, p2[0], EPOLLIN, "pipe", on_read, &p1[0], NULL), 0);
  assert_int_equal(loop_fd_add(l, p2[0], EPOLLIN, "pipe", on_read, NULL, NULL), -1);
  assert_int_equal(write(p1[1], "hi", 2), 2);
  assert_int_equal(write(p2[1], "hi", 2), 2);
  reads = 0;
  assert_int_equal(loop_run(l, NULL), 0);
  assert_int_equal(reads, 1);
  close(p1[0]);
  close(p1[1]);
  close(p2[0]);
  close(p2[1]);
  loop_free(l);
}

static int hook_calls;
static void on_hook(loop *l, void *data) {
  hook_calls++;
  loop_hook_del(l, *(uint64_t *)data);
  loop_stop(l);
}

static void test_hook_runs_and_removes_itself(void **state) {
  loop *l;
  assert_int_equal(loop_new(&l, NULL), 0);
  static uint64_t id;
  id = loop_hook_add(l, on_hook, &id);
  hook_calls = 0;
  assert_int_equal(loop_run_once(l, 0, NULL), 0);
  assert_int_equal(loop_run_once(l, 0, NULL), 0);
  assert_int_equal(hook_calls, 1);
  loop_free(l);
}

/* Many timers added and cancelled at random fire exactly once each, in
 * deadline order, and never after being cancelled. */
static int fired[512];
static uint64_t last_when;
static int fired_total;
static void on_numbered(loop *l, void *data) {
  int k = (int)(intptr_t)data;
  fired[k]++;
  fired_total++;
  (void)l;
}

static void test_timer_cancel_many(void **state) {
  loop *l;
  assert_int_equal(loop_new(&l, NULL), 0);
  uint64_t ids[512];
  bool cancelled[512] = {0};
  memset(fired, 0, sizeof fired);
  fired_total = 0;
  unsigned seed = 12345;
  for (int k = 0; k < 512; k++) {
    seed = seed * 1103515245u + 12345u;
    ids[k] = loop_timer_add(l, (seed >> 16) % 40, on_numbered, (void *)(intptr_t)k);
    assert_true(ids[k] != 0);
  }
  for (int k = 0; k < 512; k += 3) {
    loop_timer_cancel(l, ids[k]);
    loop_timer_cancel(l, ids[k]); /* twice: the second is a no-op */
    cancelled[k] = true;
  }
  /* a fresh timer may reuse a cancelled slot: the old id must not cancel it */
  uint64_t fresh = loop_timer_add(l, 5, on_numbered, (void *)(intptr_t)0);
  loop_timer_cancel(l, ids[0]);
  assert_true(fresh != ids[0]);
  uint64_t until = rr_now_mono_ms() + 200;
  while (rr_now_mono_ms() < until)
    assert_int_equal(loop_run_once(l, 5, NULL), 0);
  int expect = 0;
  for (int k = 0; k < 512; k++) {
    if (k == 0) {
      assert_int_equal(fired[0], 1); /* the fresh one */
      expect++;
      continue;
    }
    assert_int_equal(fired[k], cancelled[k] ? 0 : 1);
    expect += cancelled[k] ? 0 : 1;
  }
  assert_int_equal(fired_total, expect);
  loop_timer_cancel(l, ids[1]); /* fired already: a no-op */
  (void)last_when;
  loop_free(l);
}

/* After a reserve of n, n adds need no allocation: the slot array does not
 * move. */
static void test_timer_reserve(void **state) {
  loop *l;
  assert_int_equal(loop_new(&l, NULL), 0);
  assert_int_equal(loop_timer_reserve(l, 100), 0);
  uint64_t ids[100];
  for (int i = 0; i < 100; i++)
    assert_true((ids[i] = loop_timer_add(l, 1000, on_numbered, (void *)(intptr_t)i)) != 0);
  for (int i = 0; i < 100; i++)
    loop_timer_cancel(l, ids[i]);
  assert_int_equal(loop_timer_reserve(l, 0), 0);
  loop_free(l);
}

/* A timer that re-arms itself at 0 ms runs once per turn, so fds are still
 * served between its runs. */
static int spins;
static void on_spin(loop *l, void *data) {
  spins++;
  loop_timer_add(l, 0, on_spin, data);
}

static int pipe_reads;
static void on_pipe(loop *l, int fd, uint32_t ev, void *data) {
  char c;
  assert_int_equal(read(fd, &c, 1), 1);
  pipe_reads++;
}

static void test_zero_timer_does_not_starve(void **state) {
  loop *l;
  int p[2];
  assert_int_equal(loop_new(&l, NULL), 0);
  assert_int_equal(pipe(p), 0);
  assert_int_equal(loop_fd_add(l, p[0], EPOLLIN, "pipe", on_pipe, NULL, NULL), 0);
  spins = pipe_reads = 0;
  loop_timer_add(l, 0, on_spin, NULL);
  for (int i = 0; i < 5; i++) {
    assert_int_equal(write(p[1], "x", 1), 1);
    assert_int_equal(loop_run_once(l, 100, NULL), 0);
  }
  assert_int_equal(pipe_reads, 5);
  assert_true(spins <= 6);
  loop_fd_del(l, p[0]);
  close(p[0]);
  close(p[1]);
  loop_free(l);
}

/* The watchdog names the source of a slow turn. */
static char stall_source[64];
static uint64_t stall_ms, stall_turn_ms;
static void on_stall(void *data, const char *source, uint64_t ms, uint64_t turn_ms) {
  snprintf(stall_source, sizeof stall_source, "%s", source);
  stall_ms = ms;
  stall_turn_ms = turn_ms;
}

static void on_slow(loop *l, int fd, uint32_t ev, void *data) {
  char c;
  assert_int_equal(read(fd, &c, 1), 1);
  usleep(30 * 1000);
}

static void test_stall_watchdog(void **state) {
  loop *l;
  int p[2];
  assert_int_equal(loop_new(&l, NULL), 0);
  assert_int_equal(pipe(p), 0);
  assert_int_equal(loop_fd_add(l, p[0], EPOLLIN, "slow pipe", on_slow, NULL, NULL), 0);
  loop_stall_set(l, 20, on_stall, NULL);
  stall_source[0] = '\0';
  assert_int_equal(write(p[1], "x", 1), 1);
  assert_int_equal(loop_run_once(l, 100, NULL), 0);
  assert_int_equal(loop_run_once(l, 0, NULL), 0); /* the turn ends before the next wait */
  assert_string_equal(stall_source, "slow pipe");
  assert_true(stall_ms >= 25);
  assert_true(stall_turn_ms >= stall_ms);
  assert_true(loop_longest_callback_us(l) >= 25000);
  assert_true(loop_longest_turn_us(l) >= loop_longest_callback_us(l));
  loop_fd_del(l, p[0]);
  close(p[0]);
  close(p[1]);
  loop_free(l);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_timers_fire_in_order),
      cmocka_unit_test(test_fd_del_inside_callback),
      cmocka_unit_test(test_hook_runs_and_removes_itself),
      cmocka_unit_test(test_timer_cancel_many),
      cmocka_unit_test(test_timer_reserve),
      cmocka_unit_test(test_zero_timer_does_not_starve),
      cmocka_unit_test(test_stall_watchdog),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
