/* job_input.c against a real keeper (the built rund-waiter, $RUND_WAITER):
 * stdin bytes, EOF, a terminal's window, back-pressure, the errors, and a
 * second table (a restarted rund) writing to an adopted job. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "jobs_helpers.h"

static void open_with_waiter(fixture *f) {
  job_table_config cfg = {.state_dir = f->dir, .waiter = getenv("RUND_WAITER")};
  rr_err e = {0};
  assert_non_null(cfg.waiter);
  assert_int_equal(job_table_new(&f->t, f->l, f->r, &cfg, &e), 0);
}

static int setup_waiter(void **state) {
  fixture *f = calloc(1, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/job_input_test_XXXXXX");
  if (!mkdtemp(f->dir) || loop_new(&f->l, NULL) < 0 || reaper_new(&f->r, f->l, true, NULL) < 0)
    return -1;
  open_with_waiter(f);
  *state = f;
  return 0;
}

static job *start_input(fixture *f, const char *script, bool tty, unsigned rows, unsigned cols) {
  job_request r = req_sh(script);
  r.stdin_open = true;
  r.tty = tty;
  r.rows = rows;
  r.cols = cols;
  job *j = NULL;
  rr_err e = {0};
  if (job_table_start(f->t, &r, NULL, &j, &e) < 0)
    fail_msg("start: %s", e.msg);
  return j;
}

static char *read_stdout(fixture *f, job *j) {
  char p[256];
  snprintf(p, sizeof p, "%s/stdout", j->dir);
  FILE *fp = fopen(p, "r");
  assert_non_null(fp);
  static char buf[65536];
  size_t n = fread(buf, 1, sizeof buf - 1, fp);
  buf[n] = '\0';
  fclose(fp);
  return buf;
}

static void spin(fixture *f, int ms) {
  uint64_t end = rr_now_mono_ms() + (uint64_t)ms;
  while (rr_now_mono_ms() < end)
    loop_run_once(f->l, 10, NULL);
}

static void test_stdin_bytes_and_eof(void **state) {
  fixture *f = *state;
  job *j = start_input(f, "cat; echo done", false, 0, 0);
  rr_err e = {0};
  assert_true(job_has_stdin(j));
  assert_false(job_has_tty(j));
  assert_int_equal(job_stdin_write(j, "hello\n", 6, NULL, NULL, &e), 6);
  assert_int_equal(job_stdin_write(j, "world\n", 6, NULL, NULL, &e), 6);
  assert_int_equal(job_stdin_close(j, &e), 0);
  assert_false(job_has_stdin(j));
  e = (rr_err){0};
  assert_int_equal(job_stdin_write(j, "x", 1, NULL, NULL, &e), -1);
  assert_int_equal(e.code, RR_FAILED_PRECONDITION);
  assert_non_null(strstr(e.msg, "is closed"));
  run_until_done(f, j, 10000);
  assert_int_equal(j->exit_code, 0);
  assert_string_equal(read_stdout(f, j), "hello\nworld\ndone\n");
  e = (rr_err){0};
  assert_int_equal(job_stdin_write(j, "x", 1, NULL, NULL, &e), -1);
  assert_int_equal(e.code, RR_FAILED_PRECONDITION);
}

static void test_tty_window(void **state) {
  fixture *f = *state;
  job *j = start_input(f, "stty size; read x; stty size; echo got $x", true, 30, 100);
  rr_err e = {0};
  assert_true(job_has_tty(j));
  spin(f, 300); /* the first stty, before the resize */
  assert_int_equal(job_resize(j, 40, 120, &e), 0);
  spin(f, 100);
  assert_int_equal(job_stdin_write(j, "go\n", 3, NULL, NULL, &e), 3);
  run_until_done(f, j, 10000);
  const char *out = read_stdout(f, j);
  assert_non_null(strstr(out, "30 100"));
  assert_non_null(strstr(out, "40 120"));
  assert_non_null(strstr(out, "got go"));
  e = (rr_err){0};
  assert_int_equal(job_resize(j, 40, 120, &e), -1);
  assert_int_equal(e.code, RR_FAILED_PRECONDITION);
}

static void on_writable(void *arg) { (*(int *)arg)++; }

static void test_backpressure(void **state) {
  fixture *f = *state;
  /* reads nothing for a while: the keeper stops reading rund, rund's queue fills */
  job *j = start_input(f, "sleep 1; wc -c", false, 0, 0);
  static char chunk[32768];
  memset(chunk, 'x', sizeof chunk);
  rr_err e = {0};
  size_t total = 0;
  int called = 0;
  for (int i = 0; i < 1000; i++) {
    ssize_t n = job_stdin_write(j, chunk, sizeof chunk, on_writable, &called, &e);
    assert_true(n >= 0);
    total += (size_t)n;
    if ((size_t)n < sizeof chunk)
      break;
    spin(f, 1);
  }
  assert_true(total < 1000 * sizeof chunk); /* bounded: it stopped taking */
  uint64_t end = rr_now_mono_ms() + 10000;
  while (!called && rr_now_mono_ms() < end)
    loop_run_once(f->l, 50, NULL);
  assert_int_equal(called, 1); /* told once, when the command read */
  assert_int_equal(job_stdin_close(j, &e), 0);
  run_until_done(f, j, 10000);
  char want[32];
  snprintf(want, sizeof want, "%zu", total);
  assert_non_null(strstr(read_stdout(f, j), want));
}

/* Two writers wait on one full queue: both are told (each once); one that
 * went (job_stdin_forget) is not. */
static void test_two_waiters_and_forget(void **state) {
  fixture *f = *state;
  job *j = start_input(f, "sleep 1; wc -c", false, 0, 0);
  static char chunk[32768];
  memset(chunk, 'y', sizeof chunk);
  rr_err e = {0};
  int a = 0, b = 0, c = 0;
  size_t total = 0;
  for (int i = 0; i < 1000; i++) {
    ssize_t n = job_stdin_write(j, chunk, sizeof chunk, on_writable, &a, &e);
    assert_true(n >= 0);
    total += (size_t)n;
    if ((size_t)n < sizeof chunk)
      break;
    spin(f, 1);
  }
  ssize_t n = job_stdin_write(j, chunk, sizeof chunk, on_writable, &b, &e);
  assert_int_equal(n, 0); /* full: b waits beside a */
  assert_int_equal(job_stdin_write(j, chunk, sizeof chunk, on_writable, &c, &e), 0);
  job_stdin_forget(j, &c);
  uint64_t end = rr_now_mono_ms() + 10000;
  while ((!a || !b) && rr_now_mono_ms() < end)
    loop_run_once(f->l, 50, NULL);
  spin(f, 100);
  assert_int_equal(a, 1);
  assert_int_equal(b, 1);
  assert_int_equal(c, 0);
  assert_int_equal(job_stdin_close(j, &e), 0);
  run_until_done(f, j, 10000);
  char want[32];
  snprintf(want, sizeof want, "%zu", total);
  assert_non_null(strstr(read_stdout(f, j), want));
}

static void test_refusals(void **state) {
  fixture *f = *state;
  job *j = start_sh(f, "sleep 5");
  rr_err e = {0};
  assert_false(job_has_stdin(j));
  assert_int_equal(job_stdin_write(j, "x", 1, NULL, NULL, &e), -1);
  assert_int_equal(e.code, RR_FAILED_PRECONDITION);
  assert_non_null(strstr(e.msg, "has no stdin"));
  e = (rr_err){0};
  assert_int_equal(job_stdin_close(j, &e), -1);
  assert_int_equal(e.code, RR_FAILED_PRECONDITION);
  e = (rr_err){0};
  assert_int_equal(job_resize(j, 0, 80, &e), -1);
  assert_int_equal(e.code, RR_INVALID_ARGUMENT);
  e = (rr_err){0};
  assert_int_equal(job_resize(j, 24, 80, &e), -1);
  assert_int_equal(e.code, RR_FAILED_PRECONDITION);
  assert_non_null(strstr(e.msg, "no terminal"));
  assert_int_equal(job_stop(j, 0, &e), 0);
  run_until_done(f, j, 10000);
}

static void test_restarted_table_writes(void **state) {
  fixture *f = *state;
  job *j = start_input(f, "read a; echo first $a; read b; echo second $b", false, 0, 0);
  char id[ULID_LEN + 1];
  memcpy(id, j->id, sizeof id);
  rr_err e = {0};
  assert_int_equal(job_stdin_write(j, "one\n", 4, NULL, NULL, &e), 4);
  spin(f, 200);
  job_table_free(f->t); /* the job runs on; its keeper keeps stdin */
  open_with_waiter(f);
  assert_int_equal(job_table_lookup(f->t, id, &j, &e), 0);
  assert_true(job_has_stdin(j));
  assert_int_equal(job_stdin_write(j, "two\n", 4, NULL, NULL, &e), 4);
  run_until_done(f, j, 10000);
  assert_string_equal(read_stdout(f, j), "first one\nsecond two\n");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_stdin_bytes_and_eof, setup_waiter, teardown),
      cmocka_unit_test_setup_teardown(test_tty_window, setup_waiter, teardown),
      cmocka_unit_test_setup_teardown(test_backpressure, setup_waiter, teardown),
      cmocka_unit_test_setup_teardown(test_two_waiters_and_forget, setup_waiter, teardown),
      cmocka_unit_test_setup_teardown(test_refusals, setup_waiter, teardown),
      cmocka_unit_test_setup_teardown(test_restarted_table_writes, setup_waiter, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
