/* Per-identity quotas (running jobs, kept jobs, concurrent Logs streams)
 * and the global file-descriptor reserve. Counters live per principal in a
 * hash map, so a check costs O(principals of the caller), never a scan of
 * the job table. A job counts once for each principal of its owner; a
 * caller is refused when any of its principals is at a limit. Admins are
 * counted but not limited; the fd reserve holds for everyone. */
#pragma once
#include <stdint.h>

#include "auth/authz.h"
#include "common/err.h"
#include "jobs/job.h"

#define QUOTA_DEFAULT_RUNNING 1000u
#define QUOTA_DEFAULT_JOBS 10000u
#define QUOTA_DEFAULT_FOLLOWERS 256u

typedef struct quota quota;

typedef struct quota_config {
  uint32_t running;         /* running jobs per principal; 0: no limit */
  uint32_t jobs;            /* kept jobs (running + finished) per principal; 0: no limit */
  uint32_t followers;       /* concurrent Logs streams per principal; 0: no limit */
  uint64_t fd_limit;        /* RLIMIT_NOFILE; 0: read it now */
  uint64_t fd_reserve;      /* fds never spent on starts or Logs; 0: limit/8 within 64..4096 */
  bool fd_count_by_readdir; /* tests: count as on kernels before 6.2 */
} quota_config;

/* INVALID_ARGUMENT when the reserve leaves fewer than 32 fds usable. */
int quota_new(quota **ret, const quota_config *cfg, rr_err *e);
/* Forget the table's jobs (unwatch them): call before job_table_free. */
void quota_free(quota *q);
/* Count every job of t (after loading) and follow its changes. */
int quota_jobs_load(quota *q, job_table *t, rr_err *e);
/* May id start a job? RESOURCE_EXHAUSTED naming the quota, the principal
 * and its count, or the fd reserve. */
int quota_start_check(quota *q, const authz_identity *id, rr_err *e);
/* Count a job just started (its owner principals). */
int quota_job_add(quota *q, job *j, rr_err *e);
/* A Logs stream of id begins (key: its call); RESOURCE_EXHAUSTED at the
 * followers quota or the fd reserve. */
int quota_follower_add(quota *q, const authz_identity *id, const void *key, rr_err *e);
/* The stream of key ended (no-op if it was never counted). */
void quota_follower_del(quota *q, const void *key);
/* Counts of one principal (tests, logs): any pointer may be NULL. */
void quota_counts(const quota *q, const char *principal, uint32_t *running, uint32_t *jobs,
                  uint32_t *followers);
/* File descriptors rund has open now. */
uint64_t quota_fds_open(const quota *q);
/* The effective limits (fd_limit and fd_reserve filled in). */
const quota_config *quota_config_get(const quota *q);
/* New per-identity limits (a config reload): counts stay, the next start
 * or Logs stream is checked against them. */
void quota_limits_set(quota *q, uint32_t running, uint32_t jobs, uint32_t followers);
