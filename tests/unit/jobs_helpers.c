/* Fixture and helpers shared by the job table unit tests. */
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

static void on_warn(void *data, const char *msg) { ((fixture *)data)->warnings++; }

void table_open(fixture *f, uint64_t cap) {
  job_table_config cfg = {.state_dir = f->dir,
                          .max_log_bytes = cap,
                          .warn = on_warn,
                          .warn_data = f,
                          .cgroups = f->cgm};
  rr_err e = {0};
  assert_int_equal(job_table_new(&f->t, f->l, f->r, &cfg, &e), 0);
}

int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/jobs_test_XXXXXX");
  if (!mkdtemp(f->dir))
    return -1;
  if (loop_new(&f->l, NULL) < 0 || reaper_new(&f->r, f->l, true, NULL) < 0)
    return -1;
  table_open(f, 0);
  *state = f;
  return 0;
}

int teardown(void **state) {
  fixture *f = *state;
  job_table_free(f->t);
  cg_manager_free(f->cgm);
  reaper_free(f->r);
  loop_free(f->l);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
  int rc = system(cmd);
  free(f);
  return rc;
}

job_request req_sh(const char *script) {
  job_request r = {0};
  r.path = strdup("sh");
  r.args = calloc(3, sizeof *r.args);
  r.args[0] = strdup("-c");
  r.args[1] = strdup(script);
  r.nargs = 2;
  return r;
}

job *start_sh(fixture *f, const char *script) {
  job_request r = req_sh(script);
  job *j = NULL;
  rr_err e = {0};
  if (job_table_start(f->t, &r, NULL, &j, &e) < 0)
    fail_msg("start: %s", e.msg);
  return j;
}

void run_until_done(fixture *f, job *j, int max_ms) {
  uint64_t end = rr_now_mono_ms() + (uint64_t)max_ms;
  while (j->state == JOB_RUNNING && rr_now_mono_ms() < end)
    loop_run_once(f->l, 50, NULL);
  assert_int_not_equal(j->state, JOB_RUNNING);
}
