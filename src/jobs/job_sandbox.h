/* Starting a job's process in its sandbox (profile default or strict):
 * the OCI config its request makes (sandbox/profile.h) run by the engine
 * (sandbox/sandbox.h), with each profile's seccomp filter compiled once
 * per process and kept. Background jobs and Exec use it alike. */
#pragma once
#include <signal.h>
#include <stdint.h>

#include "common/err.h"
#include "jobs/request.h"
#include "sandbox/spawn.h"

/* Start what o describes (command, env, workdir, stdio, cgroup, ids) in
 * sandbox sb with limits (NULL: none; only recorded in the config: the
 * cgroup is o's); sb->fds (rund's checked rootfs and binds) are what is
 * mounted, and are closed after. The init records how the command ended on status_fd
 * ("exit N END_NS" / "signal N END_NS", as rund-waiter). Errors as
 * sb_spawn's: FAILED_PRECONDITION "sandbox: STEP: why", NOT_FOUND /
 * PERMISSION_DENIED for the executable. */
int job_sandbox_spawn(const job_sandbox *sb, const cg_limits *limits, const spawn_opts *o,
                      int status_fd, spawn_result *ret, rr_err *e);

/* A terminal opened in the sandbox (its devpts) for the command. */
typedef struct job_sandbox_tty {
  int console_fd;      /* connected unix socket (> 2) the master is sent over (pty.h) */
  unsigned rows, cols; /* its window before the command starts */
} job_sandbox_tty;
/* job_sandbox_spawn with tty (NULL: none): the command's stdio and
 * controlling terminal in a session of its own (o's stdio is the init's). */
int job_sandbox_spawn_tty(const job_sandbox *sb, const cg_limits *limits, const spawn_opts *o,
                          int status_fd, const job_sandbox_tty *tty, spawn_result *ret, rr_err *e);
/* strict's pids and memory limits where the request sets none (so that
 * Status shows what is enforced and the job gets its cgroup). */
int job_sandbox_default_limits(job_request *r, rr_err *e);
/* Parse a status line of rund-waiter or the sandbox's init into *si
 * (si_code CLD_EXITED or CLD_KILLED, si_status) and *end_ns; -1 if malformed. */
int job_status_line_parse(const char *line, siginfo_t *si, int64_t *end_ns);
