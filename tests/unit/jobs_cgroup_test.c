/* Unit tests of the job table with resource limits: limits in requests
 * (validation, job.json round trip) and jobs, with limits or without, in
 * real cgroups (skipped where this host has none we may use). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jobs/job.h"
#include "jobs_helpers.h"

static cg_limits limits_sample(void) {
  cg_limits l = {.has_cpu = true,
                 .cpu_quota_us = 50000,
                 .cpu_period_us = 100000,
                 .has_memory = true,
                 .memory_max = 64u << 20,
                 .has_pids = true,
                 .pids_max = 64,
                 .nio = 2};
  l.io[0] = (cg_io_limit){.major = 8, .minor = 0, .rbps = 1 << 20, .wiops = 100};
  l.io[1] = (cg_io_limit){.major = 259, .minor = 0, .wbps = 2 << 20, .riops = 7};
  return l;
}

/* A heap copy, as job_request holds its limits. */
static cg_limits *limits_new(cg_limits l) {
  cg_limits *p = malloc(sizeof *p);
  assert_non_null(p);
  *p = l;
  return p;
}

static void test_request_limits_json(void **state) {
  job_request r = req_sh("true");
  r.limits = limits_new(limits_sample());
  json_object *o = job_request_to_json(&r);
  job_request back;
  rr_err e = {0};
  assert_int_equal(job_request_from_json(o, &back, &e), 0);
  json_object_put(o);
  const cg_limits *a = r.limits, *b = back.limits;
  assert_non_null(b);
  assert_true(b->has_cpu && b->has_memory && b->has_pids);
  assert_int_equal(b->cpu_quota_us, a->cpu_quota_us);
  assert_int_equal(b->cpu_period_us, a->cpu_period_us);
  assert_int_equal(b->memory_max, a->memory_max);
  assert_int_equal(b->pids_max, a->pids_max);
  assert_int_equal(b->nio, 2);
  for (size_t i = 0; i < 2; i++) {
    assert_int_equal(b->io[i].major, a->io[i].major);
    assert_int_equal(b->io[i].minor, a->io[i].minor);
    assert_int_equal(b->io[i].rbps, a->io[i].rbps);
    assert_int_equal(b->io[i].wbps, a->io[i].wbps);
    assert_int_equal(b->io[i].riops, a->io[i].riops);
    assert_int_equal(b->io[i].wiops, a->io[i].wiops);
  }
  job_request_free(&back);
  /* no limits: no "limits" key, and none after loading */
  free(r.limits);
  r.limits = NULL;
  o = job_request_to_json(&r);
  assert_false(json_object_object_get_ex(o, "limits", NULL));
  assert_int_equal(job_request_from_json(o, &back, &e), 0);
  assert_null(back.limits);
  json_object_put(o);
  job_request_free(&back);
  job_request_free(&r);
  /* damaged limits are DATA_LOSS naming the field */
  static const char *const bad[] = {
      "{\"path\":\"x\",\"limits\":{\"memory_max\":\"12\"}}",
      "{\"path\":\"x\",\"limits\":{\"pids_max\":-1}}",
      "{\"path\":\"x\",\"limits\":{\"io\":[{\"device\":\"sda\"}]}}",
      "{\"path\":\"x\",\"limits\":[]}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    o = json_tokener_parse(bad[i]);
    assert_non_null(o);
    assert_int_equal(job_request_from_json(o, &back, &e), -1);
    assert_int_equal(e.code, RR_DATA_LOSS);
    assert_non_null(strstr(e.msg, "limits"));
    json_object_put(o);
  }
}

static void test_request_limits_validate(void **state) {
  job_request r = req_sh("true");
  rr_err e = {0};
  r.limits = limits_new(limits_sample());
  assert_int_equal(job_request_validate(&r, &e), 0);
  static const struct {
    const char *field;
  } cases[] = {{"limits.memory_max"}, {"limits.pids_max"}, {"limits.cpu"}, {"limits.io[1]"}};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    *r.limits = limits_sample();
    if (i == 0)
      r.limits->memory_max = 0;
    else if (i == 1)
      r.limits->pids_max = 0;
    else if (i == 2)
      r.limits->cpu_quota_us = 0;
    else
      r.limits->io[1] = (cg_io_limit){.major = 259, .minor = 0}; /* no value at all */
    assert_int_equal(job_request_validate(&r, &e), -1);
    assert_int_equal(e.code, RR_INVALID_ARGUMENT);
    if (!strstr(e.msg, cases[i].field))
      fail_msg("case %zu: \"%s\" does not name %s", i, e.msg, cases[i].field);
  }
  job_request_free(&r);
}

static void test_limits_need_cgroups(void **state) {
  fixture *f = *state; /* a table without a cgroup manager */
  job_request r = req_sh("true");
  r.limits = limits_new((cg_limits){.has_pids = true, .pids_max = 10});
  job *j = NULL;
  rr_err e = {0};
  assert_int_equal(job_table_start(f->t, &r, NULL, &j, &e), -1);
  assert_int_equal(e.code, RR_FAILED_PRECONDITION);
  assert_non_null(strstr(e.msg, "cgroups"));
  job_request_free(&r);
  assert_int_equal(job_table_count(f->t), 0);
  char cmd[160];
  snprintf(cmd, sizeof cmd, "test -z \"$(ls -A %s/jobs)\"", f->dir);
  assert_int_equal(system(cmd), 0);
  /* without cgroups (--no-cgroups) a job without limits runs in rund's */
  job *plain = start_sh(f, "exit 0");
  assert_int_equal(plain->cgroup, CG_NONE);
  assert_null(plain->cg);
  run_until_done(f, plain, 3000);
  assert_string_equal(plain->reason, "exited");
}

/* The table reopened with a real cgroup manager (skip without cgroups). */
static void table_with_cgroups(fixture *f, char *name, size_t size) {
  snprintf(name, size, "runrpc-jobs-test-%d", (int)getpid());
  rr_err e = {0};
  if (cg_manager_new("/sys/fs/cgroup", name, &f->cgm, &e) < 0 ||
      cg_manager_version(f->cgm) == CG_NONE) {
    cg_manager_free(f->cgm);
    f->cgm = NULL;
    skip();
  }
  job_table_free(f->t);
  table_open(f, 0);
}

static bool proc_alive(pid_t pid) {
  char p[64], buf[512];
  snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
  FILE *fp = fopen(p, "re");
  if (!fp)
    return false;
  bool alive = fgets(buf, sizeof buf, fp) && strrchr(buf, ')') && strrchr(buf, ')')[2] != 'Z';
  fclose(fp);
  return alive;
}

static void test_job_in_cgroup(void **state) {
  fixture *f = *state;
  char name[64];
  table_with_cgroups(f, name, sizeof name);
  job_request r = req_sh("i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; echo done");
  r.limits = limits_new(
      (cg_limits){.has_pids = true, .pids_max = 32, .has_memory = true, .memory_max = 256u << 20});
  job *j = NULL;
  rr_err e = {0};
  if (job_table_start(f->t, &r, NULL, &j, &e) < 0)
    fail_msg("start: %s", e.msg);
  assert_int_not_equal(j->cgroup, CG_NONE);
  cg_usage u;
  assert_true(job_usage(j, &u)); /* live */
  run_until_done(f, j, 20000);
  assert_string_equal(j->reason, "exited");
  assert_true(j->has_usage);
  assert_null(j->cg);
  assert_true(j->usage.cpu_usec > 0);
  assert_true(j->usage.memory_peak > 0);
  assert_int_equal(j->usage.pids_current, 0);
  uint64_t cpu = j->usage.cpu_usec;
  cg_version v = j->cgroup;
  char id[ULID_LEN + 1];
  memcpy(id, j->id, sizeof id);
  /* the final usage, cgroup version and limits survive a restart */
  job_table_free(f->t);
  table_open(f, 0);
  assert_int_equal(job_table_lookup(f->t, id, &j, NULL), 0);
  assert_true(j->has_usage);
  assert_int_equal(j->usage.cpu_usec, cpu);
  assert_int_equal(j->cgroup, v);
  assert_true(j->req.limits && j->req.limits->has_pids && j->req.limits->pids_max == 32);
  assert_true(job_usage(j, &u) && u.cpu_usec == cpu);
  /* a job without limits has a cgroup too (v1: no memory one, so 0) */
  job *plain = start_sh(f, "i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done");
  assert_int_equal(plain->cgroup, v);
  assert_non_null(plain->cg);
  assert_null(plain->req.limits);
  run_until_done(f, plain, 20000);
  assert_null(plain->cg);
  assert_true(job_usage(plain, &u));
  assert_true(u.cpu_usec > 0 && u.pids_current == 0);
  if (v == CG_V1)
    assert_true(u.memory_peak == 0 && u.io_read_bytes == 0);
}

/* A job in a cgroup whose grandchild left its process group and session;
 * the grandchild's pid in *gc. */
static job *start_with_daemon(fixture *f, pid_t *gc, bool limits, uint64_t timeout_ms) {
  char name[64], pidfile[128];
  table_with_cgroups(f, name, sizeof name);
  snprintf(pidfile, sizeof pidfile, "%s/grandchild", f->dir);
  char script[512];
  snprintf(script, sizeof script, "(setsid sleep 60 & echo $! > %s.tmp; mv %s.tmp %s); sleep 60",
           pidfile, pidfile, pidfile);
  job_request r = req_sh(script);
  if (limits)
    r.limits = limits_new((cg_limits){.has_pids = true, .pids_max = 32});
  r.has_timeout = timeout_ms > 0;
  r.timeout_ms = timeout_ms;
  job *j = NULL;
  rr_err e = {0};
  if (job_table_start(f->t, &r, NULL, &j, &e) < 0)
    fail_msg("start: %s", e.msg);
  *gc = 0;
  for (int i = 0; i < 100 && !*gc; i++) {
    FILE *fp = fopen(pidfile, "re");
    if (fp) {
      int x = 0;
      if (fscanf(fp, "%d", &x) == 1)
        *gc = x;
      fclose(fp);
    }
    if (!*gc)
      loop_run_once(f->l, 20, NULL);
  }
  assert_true(*gc > 0);
  assert_true(proc_alive(*gc));
  return j;
}

static void stop_kills_tree(fixture *f, bool limits, uint64_t grace_ms) {
  pid_t gc;
  job *j = start_with_daemon(f, &gc, limits, 0);
  assert_non_null(j->cg);
  rr_err e = {0};
  assert_int_equal(job_stop(j, grace_ms, &e), 0);
  run_until_done(f, j, 5000);
  assert_int_equal(j->state, JOB_KILLED);
  assert_string_equal(j->reason, "stopped");
  bool gone = false;
  for (int i = 0; i < 100 && !(gone = !proc_alive(gc)); i++)
    loop_run_once(f->l, 20, NULL);
  assert_true(gone);
}

static void test_stop_kills_cgroup_tree(void **state) { stop_kills_tree(*state, true, 0); }

/* A job without limits is in a cgroup too: its setsid grandchild goes with
 * a stop (SIGKILL at once, or SIGTERM that the main process dies of). */
static void test_stop_kills_plain_tree(void **state) { stop_kills_tree(*state, false, 0); }

static void test_stop_grace_kills_plain_tree(void **state) { stop_kills_tree(*state, false, 1000); }

static void test_timeout_kills_plain_tree(void **state) {
  fixture *f = *state;
  pid_t gc;
  job *j = start_with_daemon(f, &gc, false, 300);
  run_until_done(f, j, 15000);
  assert_string_equal(j->reason, "timeout");
  bool gone = false;
  for (int i = 0; i < 100 && !(gone = !proc_alive(gc)); i++)
    loop_run_once(f->l, 20, NULL);
  assert_true(gone);
}

/* Signal SIGKILL kills the cgroup as it goes, not only once the end of the
 * job's main process removes it: the loop does not run meanwhile. */
static void test_signal_kill_kills_cgroup_tree(void **state) {
  fixture *f = *state;
  pid_t gc;
  job *j = start_with_daemon(f, &gc, true, 0);
  rr_err e = {0};
  assert_int_equal(job_signal(j, SIGKILL, &e), 0);
  bool gone = false;
  for (int i = 0; i < 200 && !(gone = !proc_alive(gc)); i++)
    usleep(10 * 1000);
  assert_true(gone);
  run_until_done(f, j, 5000);
  assert_int_equal(j->state, JOB_KILLED);
  assert_int_equal(j->signal, SIGKILL);
  assert_string_equal(j->reason, "signaled");
  assert_int_equal(job_signal(j, SIGKILL, &e), -1);
  assert_int_equal(e.code, RR_FAILED_PRECONDITION);
}

int main(void) {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_limits_need_cgroups),
      T(test_job_in_cgroup),
      T(test_stop_kills_cgroup_tree),
      T(test_stop_kills_plain_tree),
      T(test_stop_grace_kills_plain_tree),
      T(test_timeout_kills_plain_tree),
      T(test_signal_kill_kills_cgroup_tree),
      cmocka_unit_test(test_request_limits_json),
      cmocka_unit_test(test_request_limits_validate),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
