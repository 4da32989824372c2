/* exec --in (ExecStart.job_id): a command run inside a running job, as
 * docker exec does. The job is looked up with the caller's rights (another
 * identity's is NOT_FOUND), must be running, and lends the command its env,
 * workdir, sandbox profile and namespaces (joined through /proc/PID of its
 * first process), its uid, and its cgroup (the command gets a child of it). */
#pragma once
#include "jobs/exec_session.h"
#include "rund.h"

typedef struct exec_in {
  job *job;                  /* NULL: a plain Exec */
  int procfd;                /* O_PATH /proc/PID of the job's first process */
  Rundwire__Command command; /* the request's, with the job's env and workdir */
  Rundwire__EnvEntry *entries;
  Rundwire__EnvEntry **env;
} exec_in;

/* For st->job_id (none: *ret stays a plain Exec): the job, checked, and the
 * command to decode instead of st->command (ret->command). */
int exec_in_open(rpc_call *c, const Rundwire__ExecStart *st, exec_in *ret, rr_err *e);
/* After prepare_request of ret->command (host only, no limits): the job's
 * profile, ids and cgroup for p's command in session x. */
int exec_in_apply(exec_in *in, prepared *p, exec_session *x, rr_err *e);
void exec_in_free(exec_in *in);
