/* Shared by the job table unit tests (jobs_test.c, jobs_cgroup_test.c): a
 * fixture with a loop, a reaper and a job table in a temp state dir. */
#pragma once
#include <stdint.h>

#include "jobs/job.h"

typedef struct fixture {
  char dir[64];
  loop *l;
  reaper *r;
  job_table *t;
  int warnings;
  cg_manager *cgm; /* NULL: no cgroups */
} fixture;

/* (Re)open f->t on f->dir with log cap `cap` and f->cgm; fails the test on error. */
void table_open(fixture *f, uint64_t cap);
/* cmocka setup: temp state dir, loop, reaper, table without cgroups. */
int setup(void **state);
/* cmocka teardown: frees everything and removes the state dir. */
int teardown(void **state);
/* A request for `sh -c script`. */
job_request req_sh(const char *script);
/* Starts `sh -c script` in f's table; fails the test on error. */
job *start_sh(fixture *f, const char *script);
/* Runs the loop until j ends; fails the test after max_ms. */
void run_until_done(fixture *f, job *j, int max_ms);
