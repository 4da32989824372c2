/* An Exec session: one command attached to its caller rather than to the
 * job table. stdin goes in order through a bounded queue (the producer is
 * paused when it is full), stdout/stderr through pipes read only while the
 * consumer keeps up (a slow consumer slows the command), the end last,
 * after every output byte. A command with limits runs in a cgroup of its
 * own: killed as a whole with its group, its usage given with the end,
 * removed at the end; without one, the usage is the rusage of the main
 * process. Timeouts and kills go through the jobs' kill path (kill.h).
 * Knows nothing of gRPC: the caller maps its stream onto exec_session_ops.
 * Nothing here logs. */
#pragma once
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"
#include "common/loop.h"
#include "jobs/job.h"
#include "jobs/reaper.h"
#include "jobs/request.h"
#include "jobs/ulid.h"
#include "sandbox/cgroup.h"

typedef struct exec_session exec_session;

/* How the command ended, for the caller's last message. */
typedef struct exec_session_end {
  const siginfo_t *status; /* si_code CLD_EXITED: si_status is the code; else the signal */
  /* "exited", "signaled", "timeout" or "oom-killed", then a note if any */
  const char *reason;
  const cg_usage *usage; /* NULL: none */
} exec_session_end;

/* What the session asks of its caller (data is exec_session_new's). */
typedef struct exec_session_ops {
  /* The command runs as pid (before any output is given). */
  void (*started)(void *data, pid_t pid);
  /* True while the consumer cannot take output: reading stops until
   * exec_session_output_resume. */
  bool (*output_blocked)(void *data);
  /* len bytes of stdout (stream 0) or stderr (1); -1 when the consumer
   * failed (the session stops giving output; the caller ends it). */
  int (*output)(void *data, int stream, const uint8_t *buf, size_t len);
  /* Optional: where to read the next chunk (room for *cap bytes, set), so
   * output() gets it in the consumer's own buffer; NULL: the session's. */
  uint8_t *(*output_buf)(void *data, size_t *cap);
  /* Optional: take the len bytes waiting in the pipe fd as output of
   * stream without their being read (1: not now, read them instead; -1
   * failed, as output()). The session does not read fd again before the
   * consumer calls exec_session_output_resume, and output_blocked must
   * hold meanwhile. */
  int (*output_splice)(void *data, int stream, int fd, size_t len);
  /* Pause or resume the producer of stdin (the queue is full, or drained). */
  void (*stdin_pause)(void *data, bool pause);
  /* The end, once: after this nothing more is given. */
  void (*finished)(void *data, const exec_session_end *end);
  /* Something failed that only the operator can act on (what, then why). */
  void (*warn)(void *data, const char *what, const char *error);
} exec_session_ops;

/* Where sessions run; all borrowed. */
typedef struct exec_session_env {
  loop *l;
  reaper *r;
  cg_manager *cgroups; /* NULL: commands with limits fail */
  ulid_gen *names;     /* names of the commands' cgroups ("exec-" + ULID) */
} exec_session_env;

/* A session that has not started anything yet. */
typedef struct exec_tty exec_tty;
int exec_session_new(const exec_session_env *env, const exec_session_ops *ops, void *data,
                     exec_session **ret, rr_err *e);
/* Kill what still runs (SIGKILL to its group and cgroup), stop watching it
 * (it is still reaped), close the pipes; NULL is a no-op. */
void exec_session_free(exec_session *x);
/* At shutdown, before the reaper and the cgroup releases go: sessions
 * freed after their command's end whose sandbox init was not reaped yet
 * (kept for their cgroup, removed at that reap). */
void exec_sessions_lingering_free(void);
/* Spawn r (validated) with opts' env values and credentials (owner
 * ignored) and start watching it; ops->started is called first. On
 * failure after the spawn the command is left for exec_session_abort. */
int exec_session_start(exec_session *x, const job_request *r, const job_start_opts *opts,
                       rr_err *e);
/* Run the command on a terminal t (checked, exec_tty.h), before the start:
 * its output comes as stdout, stdin_close sends its EOF character. */
int exec_session_set_tty(exec_session *x, const exec_tty *t, rr_err *e);
/* Run the command inside a running job (exec --in), before the start: its
 * cgroup is a child of job_cg (borrowed until the start; NULL: the job has
 * none, nor will the command), the command's limits are refused. */
int exec_session_set_job_cgroup(exec_session *x, cg_job *job_cg, rr_err *e);
/* The terminal's new window (INVALID_ARGUMENT without a terminal or out of
 * range); a no-op once the command ended. */
int exec_session_resize(exec_session *x, unsigned rows, unsigned cols, rr_err *e);
/* start succeeded once, or the command may run (failure after its spawn). */
bool exec_session_started(const exec_session *x);
/* finished was called or the session was aborted: it gives nothing more. */
bool exec_session_done(const exec_session *x);
/* Kill the command's group (and cgroup) and give nothing more. */
void exec_session_abort(exec_session *x);
/* Queue bytes for the command's stdin (dropped when it closed its stdin
 * or ended); INVALID_ARGUMENT after exec_session_stdin_close. */
int exec_session_stdin_write(exec_session *x, const uint8_t *data, size_t len, rr_err *e);
/* EOF to the command's stdin once the queue is written. */
void exec_session_stdin_close(exec_session *x);
/* sig (checked: 1..64, INVALID_ARGUMENT naming "signal") to the command's
 * group; no-op once it ended. */
int exec_session_signal(exec_session *x, int sig, rr_err *e);
/* The consumer can take output again; -1 (the command killed) when the
 * pipes cannot be watched again. */
int exec_session_output_resume(exec_session *x, rr_err *e);
