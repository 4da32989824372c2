#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "common/loop.h"

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
  assert_int_equal(loop_fd_add(l, p1[0], EPOLLIN, on_read, &p2[0], NULL), 0);
  assert_int_equal(loop_fd_add(l, p2[0], EPOLLIN, on_read, &p1[0], NULL), 0);
  assert_int_equal(loop_fd_add(l, p2[0], EPOLLIN, on_read, NULL, NULL), -1);
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_timers_fire_in_order),
      cmocka_unit_test(test_fd_del_inside_callback),
      cmocka_unit_test(test_hook_runs_and_removes_itself),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
