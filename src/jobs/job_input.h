/* A background job's stdin (StartRequest.stdin / tty), rund's side: what the
 * job's keeper holds is made at start (job_input_prepare), and bytes, EOF
 * and window sizes go to the keeper over the unix socket in the job's
 * directory (src/waiter/input.h has the frames), connected when first used
 * (also by a rund that adopted the job). */
#pragma once
#include <stdbool.h>

#include "common/err.h"
#include "jobs/job.h"
#include "sandbox/spawn.h"

#define JOB_INPUT_SOCKET "stdin"
#define JOB_INPUT_BUF (64u * 1024u) /* frames queued in rund per job */

/* What start hands the keeper, and what rund closes after the spawn. */
typedef struct job_input_fds {
  int stdin_read; /* the command's stdin (pipe's read end); -1 */
  int keeper[2];  /* stdin's write end or the pty master, the listening socket */
  int relay_in;   /* with a tty: the master, also the output relay's stdout */
  int slave;      /* with a tty: the command's 0, 1, 2 */
} job_input_fds;

/* For r (stdin_open or tty): the socket (0600) in dir, and a pipe or pty.
 * Sets o's stdin (and, with a tty, stdout/stderr and controlling_tty). */
int job_input_prepare(const job_request *r, const char *dir, spawn_opts *o, job_input_fds *f,
                      rr_err *e);
/* Close what rund holds of f. */
void job_input_fds_close(job_input_fds *f);
/* The job ended: drop the connection; a waiting writer is told (once). */
void job_input_end(job *j);
