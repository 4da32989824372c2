/* Glue between commands with limits (jobs and Exec) and the cgroup module:
 * the command gets a cgroup it enters before its first instruction; when it
 * ends, the final counters are read, an OOM kill is recognised and the
 * cgroup is removed. Commands without a cgroup get their usage from the
 * rusage of their main process instead. */
#pragma once
#include <signal.h>
#include <stdbool.h>
#include <sys/resource.h>

#include "common/err.h"
#include "common/loop.h"
#include "sandbox/cgroup.h"
#include "sandbox/spawn.h"

/* FAILED_PRECONDITION unless m can enforce l (m NULL: rund runs without
 * cgroups); then create cgroup name with l and point o's cgroup fields at
 * it. *ret stays NULL on failure (nothing left behind). */
int job_cgroup_create(cg_manager *m, const char *name, const cg_limits *l, spawn_opts *o,
                      cg_job **ret, rr_err *e);
/* The command's main process has ended: read the final counters into *usage
 * (*has_usage tells whether that worked; memory and pids "current" are 0:
 * nothing runs); then, from a timer of l (after the exit status went out),
 * what is left in the cgroup is killed and the cgroup removed. cg is taken
 * over in any case; -1 with e when reading failed. */
int job_cgroup_finish(loop *l, cg_job *cg, cg_usage *usage, bool *has_usage, rr_err *e);
/* Remove the cgroups still on their way out now (shutdown; bounded waits). */
void job_cgroup_release_flush(loop *l);
/* Whether an ending is an OOM kill: SIGKILL while the cgroup counted one. */
bool job_cgroup_oom_killed(const siginfo_t *si, const cg_usage *u);
/* The usage of a command without a cgroup from its main process's rusage
 * (which counts the descendants it waited for): cpu and memory_peak, the
 * rest 0. */
void job_usage_from_rusage(const struct rusage *ru, cg_usage *ret);
/* "v1", "v2", or "" for CG_NONE. */
const char *job_cgroup_version_name(cg_version v);
