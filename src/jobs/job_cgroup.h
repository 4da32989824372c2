/* Glue between commands (jobs and Exec) and the cgroup module: when rund
 * has cgroups, every command gets a cgroup of its own (outside rund's), which
 * it enters before its first instruction; when it ends, the final counters
 * are read, an OOM kill is recognised, what is left in the cgroup is killed
 * and the cgroup removed. Commands without a cgroup (--no-cgroups) get
 * their usage from the rusage of their main process instead. */
#pragma once
#include <signal.h>
#include <stdbool.h>
#include <sys/resource.h>

#include "common/err.h"
#include "common/loop.h"
#include "sandbox/cgroup.h"
#include "sandbox/spawn.h"

/* Create cgroup name for a command with limits l (NULL: none) and point o's
 * cgroup fields at it. l set: FAILED_PRECONDITION unless m can enforce it
 * (m NULL: rund runs without cgroups). l NULL: 0 with *ret NULL when m has
 * no cgroups (the command stays in rund's). *ret stays NULL on failure
 * (nothing left behind). */
int job_cgroup_create(cg_manager *m, const char *name, const cg_limits *l, spawn_opts *o,
                      cg_job **ret, rr_err *e);
/* job_cgroup_create for a command inside a job (exec --in): cgroup name
 * below the job's cgroup parent, no limits of its own. */
int job_cgroup_create_in(cg_job *parent, const char *name, spawn_opts *o, cg_job **ret, rr_err *e);
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
