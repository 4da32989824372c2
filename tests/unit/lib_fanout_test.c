/* Unit tests of librunrpc's fan-out (src/lib/fanout.c) against listening
 * unix sockets that never answer (a connect succeeds on the backlog): the
 * bound on hosts at once, a failed connect, and the watchdog closing the
 * connection of work that ignores the host's deadline. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "runrpc/client.h"

#define NHOSTS 12

typedef struct listeners {
  char dir[64];
  char addr[NHOSTS][128];
  int fd[NHOSTS];
} listeners;

static void listeners_open(listeners *l) {
  snprintf(l->dir, sizeof l->dir, "/tmp/rr-fanout-XXXXXX");
  assert_non_null(mkdtemp(l->dir));
  for (int i = 0; i < NHOSTS; i++) {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s/%d.sock", l->dir, i);
    snprintf(l->addr[i], sizeof l->addr[i], "unix:%s", a.sun_path);
    l->fd[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(l->fd[i] >= 0);
    assert_int_equal(bind(l->fd[i], (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(l->fd[i], 8), 0);
  }
}

static void listeners_close(listeners *l) {
  for (int i = 0; i < NHOSTS; i++) {
    close(l->fd[i]);
    char p[160];
    snprintf(p, sizeof p, "%s/%d.sock", l->dir, i);
    unlink(p);
  }
  rmdir(l->dir);
}

typedef struct counter {
  atomic_int active, most, calls;
} counter;

static int count_fn(size_t index, runrpc_client *client, uint64_t deadline_ms, void *ud,
                    runrpc_error *err) {
  counter *c = ud;
  int now = atomic_fetch_add(&c->active, 1) + 1;
  for (int m = atomic_load(&c->most); now > m && !atomic_compare_exchange_weak(&c->most, &m, now);)
    ;
  atomic_fetch_add(&c->calls, 1);
  usleep(20000); /* long enough for the others to pile up if the bound leaked */
  atomic_fetch_sub(&c->active, 1);
  return client ? 0 : -1;
}

static void test_parallel_bound(void **state) {
  listeners l;
  listeners_open(&l);
  runrpc_fanout_host hosts[NHOSTS];
  for (int i = 0; i < NHOSTS; i++)
    hosts[i] = (runrpc_fanout_host){.addr = l.addr[i]};
  runrpc_fanout_result res[NHOSTS];
  counter c = {0};
  runrpc_fanout_options o = {.parallel = 3};
  runrpc_error err;
  assert_int_equal(runrpc_fanout(hosts, NHOSTS, &o, count_fn, &c, res, &err), 0);
  assert_int_equal(atomic_load(&c.calls), NHOSTS);
  assert_true(atomic_load(&c.most) <= 3);
  for (int i = 0; i < NHOSTS; i++) {
    assert_int_equal(res[i].rc, 0);
    assert_true(res[i].connected);
    assert_false(res[i].timed_out);
  }
  /* parallel 1: one at a time */
  c = (counter){0};
  o.parallel = 1;
  assert_int_equal(runrpc_fanout(hosts, 4, &o, count_fn, &c, res, &err), 0);
  assert_int_equal(atomic_load(&c.most), 1);
  listeners_close(&l);
}

static void test_connect_failure_and_bad_args(void **state) {
  runrpc_fanout_host hosts[] = {{.addr = "unix:/nonexistent/rr-fanout.sock"}, {.addr = "bogus"}};
  runrpc_fanout_result res[2];
  counter c = {0};
  runrpc_error err;
  assert_int_equal(runrpc_fanout(hosts, 2, NULL, count_fn, &c, res, &err), 2);
  assert_int_equal(atomic_load(&c.calls), 0);
  assert_int_equal(res[0].err.code, RUNRPC_UNAVAILABLE);
  assert_false(res[0].connected);
  assert_int_equal(res[1].err.code, RUNRPC_INVALID_ARGUMENT);
  runrpc_fanout_options o = {.parallel = RUNRPC_FANOUT_MAX_PARALLEL + 1};
  assert_int_equal(runrpc_fanout(hosts, 2, &o, count_fn, &c, res, &err), -1);
  assert_int_equal(err.code, RUNRPC_INVALID_ARGUMENT);
  assert_int_equal(runrpc_fanout(hosts, 2, NULL, NULL, &c, res, &err), -1);
  assert_int_equal(runrpc_fanout(NULL, 0, NULL, count_fn, &c, NULL, &err), 0);
}

/* Work that ignores its deadline: a wait without one, on a server that
 * never answers; only the watchdog ends it. */
static int stubborn_fn(size_t index, runrpc_client *client, uint64_t deadline_ms, void *ud,
                       runrpc_error *err) {
  runrpc_job_status st;
  if (runrpc_wait(client, "01J00000000000000000000000", 0, &st, err) < 0)
    return -1;
  runrpc_job_status_free(&st);
  return 0;
}

static void test_watchdog_ends_work_past_deadline(void **state) {
  listeners l;
  listeners_open(&l);
  runrpc_fanout_host hosts[2] = {{.addr = l.addr[0]}, {.addr = l.addr[1]}};
  runrpc_fanout_result res[2];
  runrpc_fanout_options o = {.host_timeout_ms = 200};
  runrpc_error err;
  assert_int_equal(runrpc_fanout(hosts, 2, &o, stubborn_fn, NULL, res, &err), 2);
  for (int i = 0; i < 2; i++) {
    assert_true(res[i].connected);
    assert_true(res[i].timed_out);
    assert_int_equal(res[i].err.code, RUNRPC_DEADLINE_EXCEEDED);
    assert_non_null(strstr(res[i].err.message, "host timeout (200 ms) passed"));
  }
  listeners_close(&l);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parallel_bound),
      cmocka_unit_test(test_connect_failure_and_bad_args),
      cmocka_unit_test(test_watchdog_ends_work_past_deadline),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
