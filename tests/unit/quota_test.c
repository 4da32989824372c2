#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "rund/quota.h"

/* A job as the table would hand it over, with the watch list ready. */
static void job_fake(job *j, char **owner, size_t n, job_state state) {
  memset(j, 0, sizeof *j);
  j->watchers.prev = j->watchers.next = &j->watchers;
  j->owner = owner;
  j->nowner = n;
  j->state = state;
}

/* What job.c does when the job's process ends. */
static void job_fake_exit(job *j) {
  j->state = JOB_EXITED;
  while (j->watchers.next != &j->watchers) {
    job_watch *w = j->watchers.next;
    w->fn(w, JOB_EVENT_EXIT);
  }
}

static quota *quota_make(uint32_t running, uint32_t jobs, uint32_t followers) {
  quota *q = NULL;
  quota_config cfg = {.running = running, .jobs = jobs, .followers = followers};
  assert_int_equal(quota_new(&q, &cfg, NULL), 0);
  return q;
}

static void test_running_and_kept(void **state) {
  quota *q = quota_make(2, 3, 0);
  char *alice_p[] = {"san:dns:Alice.Example", "san:uri:x"};
  char *alice_owner[] = {"san:dns:alice.example", "san:dns:ALICE.example"}; /* one principal */
  authz_identity alice = {alice_p, 2, false}, admin = {alice_p, 2, true};
  job a, b, c;
  rr_err e = {0};
  job_fake(&a, alice_owner, 2, JOB_RUNNING);
  job_fake(&b, alice_owner, 1, JOB_RUNNING);
  assert_int_equal(quota_start_check(q, &alice, &e), 0);
  assert_int_equal(quota_job_add(q, &a, &e), 0);
  assert_int_equal(quota_job_add(q, &b, &e), 0);
  uint32_t running, jobs;
  quota_counts(q, "san:dns:alice.EXAMPLE", &running, &jobs, NULL);
  assert_int_equal(running, 2);
  assert_int_equal(jobs, 2);
  assert_int_equal(quota_start_check(q, &alice, &e), -1);
  assert_int_equal(e.code, RR_RESOURCE_EXHAUSTED);
  assert_non_null(strstr(e.msg, "running-jobs quota of \"san:dns:alice.example\" reached: 2 of 2"));
  assert_int_equal(quota_start_check(q, &admin, NULL), 0); /* admins: counted, not limited */
  job_fake_exit(&a);
  quota_counts(q, "san:dns:alice.example", &running, &jobs, NULL);
  assert_int_equal(running, 1);
  assert_int_equal(jobs, 2);
  assert_int_equal(quota_start_check(q, &alice, NULL), 0);
  job_fake(&c, alice_owner, 1, JOB_EXITED); /* e.g. loaded from disk, finished */
  assert_int_equal(quota_job_add(q, &c, &e), 0);
  rr_err_clear(&e);
  assert_int_equal(quota_start_check(q, &alice, &e), -1);
  assert_non_null(strstr(e.msg, "kept-jobs quota of \"san:dns:alice.example\" reached: 3 of 3"));
  /* another principal of the caller is not counted for these jobs */
  quota_counts(q, "san:uri:x", &running, &jobs, NULL);
  assert_int_equal(running + jobs, 0);
  quota_free(q); /* unwatches b */
  assert_ptr_equal(b.watchers.next, &b.watchers);
}

static void test_followers(void **state) {
  quota *q = quota_make(0, 0, 2);
  char *p[] = {"uid:1000"};
  authz_identity id = {p, 1, false};
  int k1, k2, k3;
  rr_err e = {0};
  assert_int_equal(quota_follower_add(q, &id, &k1, &e), 0);
  assert_int_equal(quota_follower_add(q, &id, &k2, &e), 0);
  assert_int_equal(quota_follower_add(q, &id, &k3, &e), -1);
  assert_non_null(strstr(e.msg, "followers quota of \"uid:1000\" reached: 2 of 2"));
  quota_follower_del(q, &k3); /* never counted: no-op */
  quota_follower_del(q, &k1);
  uint32_t n;
  quota_counts(q, "uid:1000", NULL, NULL, &n);
  assert_int_equal(n, 1);
  assert_int_equal(quota_follower_add(q, &id, &k3, NULL), 0);
  quota_free(q); /* frees the streams still counted */
}

static void test_fd_reserve(void **state) {
  quota *q = NULL;
  rr_err e = {0};
  quota_config cfg = {.fd_limit = 100, .fd_reserve = 90};
  assert_int_equal(quota_new(&q, &cfg, &e), -1);
  assert_int_equal(e.code, RR_INVALID_ARGUMENT);
  /* limit 1024: the default reserve is 1/8 */
  cfg = (quota_config){.fd_limit = 1024};
  assert_int_equal(quota_new(&q, &cfg, &e), 0);
  assert_int_equal(quota_config_get(q)->fd_reserve, 128);
  quota_free(q);
  char *p[] = {"uid:0"};
  authz_identity root = {p, 1, true};
  for (int by_readdir = 0; by_readdir < 2; by_readdir++) { /* stat, then as on 6.1 */
    cfg = (quota_config){.fd_limit = 80, .fd_reserve = 8, .fd_count_by_readdir = by_readdir};
    assert_int_equal(quota_new(&q, &cfg, &e), 0);
    assert_int_equal(quota_start_check(q, &root, NULL), 0); /* a test holds < 72 fds */
    quota_free(q);
    int fds[80], n = 0;
    for (; n < 80; n++) /* take fds until past the usable 72 */
      if ((fds[n] = dup(0)) < 0)
        break;
    assert_int_equal(quota_new(&q, &cfg, &e), 0);
    rr_err_clear(&e);
    assert_int_equal(quota_start_check(q, &root, &e), -1);
    assert_int_equal(e.code, RR_RESOURCE_EXHAUSTED);
    assert_non_null(strstr(e.msg, "rund is low on file descriptors"));
    while (n > 0)
      close(fds[--n]);
    usleep(60 * 1000); /* by readdir: recounted at most every 50 ms near the edge */
    assert_int_equal(quota_start_check(q, &root, NULL), 0);
    quota_free(q);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_running_and_kept),
      cmocka_unit_test(test_followers),
      cmocka_unit_test(test_fd_reserve),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
