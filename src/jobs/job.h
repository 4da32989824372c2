/* The job table: background jobs by ULID, their state machine, waiters and
 * followers, timeouts, stop/signal, and reloading from the state dir.
 * Output goes from the job through pipes to its keeper (rund-waiter, or a
 * sandbox's init), which copies it into STATE/jobs/<ID>/{stdout,stderr};
 * growth is seen with inotify and the size cap enforced by punching holes. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"
#include "common/loop.h"
#include "jobs/kill.h"
#include "jobs/reaper.h"
#include "jobs/request.h"
#include "jobs/ulid.h"
#include "sandbox/cgroup.h"

/* Same numbers as runrpc.v1.JobState. */
typedef enum job_state {
  JOB_RUNNING = 1,
  JOB_EXITED = 2,
  JOB_KILLED = 3,
  JOB_FAILED = 4,
} job_state;

enum { JOB_EVENT_OUTPUT = 1, JOB_EVENT_EXIT = 2 };
#define JOB_DEFAULT_GRACE_MS KILL_DEFAULT_GRACE_MS
#define JOB_MAX_GRACE_MS 3600000u

typedef struct job job;
typedef struct job_table job_table;
typedef struct job_watch job_watch;

/* A waiter or follower: fn(w, JOB_EVENT_*) on new output and on exit. */
struct job_watch {
  job_watch *prev, *next;
  job *job;
  void (*fn)(job_watch *w, int event);
  void *data;
};

/* Read-only for users of the table. */
struct job {
  char id[ULID_LEN + 1];
  job_table *table;
  char *dir;
  job_request req;
  char **owner; /* principals of the starter (none: from before owners existed) */
  size_t nowner;
  job_state state;
  char reason[16]; /* "", "exited", "signaled", "stopped", "timeout", "oom-killed", "lost",
                    "corrupt" */
  char *detail;    /* NULL, or more for a person (why a job is "corrupt") */
  pid_t pid;
  uint64_t start_ticks;
  int exit_code, signal;
  int64_t start_ns, end_ns;
  uint64_t size[2];      /* bytes written per stream, dropped ones included */
  uint64_t kept_from[2]; /* first byte still stored per stream */
  /* Bytes the keeper could not store per stream (disk full...), and the
   * errno of its last failure (0: none). */
  uint64_t lost[2];
  int lost_errno[2];
  bool stdin_closed; /* started with stdin or tty, and job_stdin_close was called */
  cg_version cgroup; /* CG_NONE: the job has no cgroup (no limits) */
  bool has_usage;    /* usage holds the final counters (job ended) */
  cg_usage usage;
  /* private */
  bool logs_live;  /* running and ours: sizes read (by path) and the cap applied */
  bool lost_check; /* the exit file changed: read the lost counts again */
  int inotify_wd;
  uint64_t punched_to[2]; /* holes asked for up to here (kept_from: promised) */
  bool logs_dirty;        /* on the table's list of jobs to refresh this turn */
  job *dirty_next;
  reaper_watch *rw;
  cg_job *cg;              /* the job's cgroup while it runs (NULL: none, or not reopened) */
  kill_ctl kill;           /* stop, timeout, and why we are ending it */
  job_watch watchers;      /* list head */
  struct job_input *input; /* stdin's connection to the keeper (job_input.c); NULL */
};

typedef struct job_table_config {
  const char *state_dir;  /* jobs live in STATE/jobs */
  uint64_t max_log_bytes; /* per stream; 0 = no cap */
  bool no_sync;           /* skip fsync of job.json (survives rund crashes, not power loss) */
  /* Finished jobs are deleted (table entry, job.json and logs) this long
   * after they ended, once nobody watches them; 0: kept for ever. */
  uint64_t retention_ms;
  cg_manager *cgroups; /* jobs' cgroups (not owned); NULL: jobs with limits fail */
  /* rund-waiter (src/waiter): every job's first process, which writes how the
   * command ended to STATE/jobs/<ID>/exit, so a job that ends while no rund
   * runs keeps its real status. NULL: the command is the job's process. */
  const char *waiter;
  /* Problems met while loading (the table itself never logs). */
  void (*warn)(void *data, const char *msg);
  void *warn_data;
} job_table_config;

/* Create STATE/jobs, load every job found there (adopting live ones). */
int job_table_new(job_table **ret, loop *l, reaper *r, const job_table_config *cfg, rr_err *e);
/* Running jobs keep running (a later rund adopts them). The cgroups of
 * ended jobs and Exec commands still waiting for removal are removed now. */
void job_table_free(job_table *t);
/* How to start a job beyond what it runs. */
typedef struct job_start_opts {
  const char *const *owner; /* recorded (copied) as the job's owner */
  size_t nowner;
  /* what the child gets instead of req->env_values (resolved secrets); the
   * job keeps req's values. NULL: req's values. */
  const char *const *env_values;
  const struct spawn_ids *ids; /* run as these credentials; NULL: rund's own */
} job_start_opts;

#define JOB_MAX_OWNERS 64

/* Validate, spawn, record. req is taken over on success. opts may be NULL. */
int job_table_start(job_table *t, job_request *req, const job_start_opts *opts, job **ret,
                    rr_err *e);
/* INVALID_ARGUMENT for a malformed id, NOT_FOUND for an unknown one. */
int job_table_lookup(job_table *t, const char *id, job **ret, rr_err *e);
/* Jobs in start order matching state (0 = any) and tag (NULL/"" = any);
 * *ret is a malloc'd array the caller frees. */
int job_table_list(job_table *t, job_state state, const char *tag, job ***ret, size_t *n,
                   rr_err *e);
size_t job_table_count(const job_table *t);
/* Whether the disk of the state dir has no space left for jobs (statvfs,
 * looked at most once a second): what running jobs write is then lost. */
bool job_table_disk_full(job_table *t);
/* Signal the job's process group through its pidfd (SIGKILL: its cgroup
 * too); FAILED_PRECONDITION when not running. */
int job_signal(job *j, int sig, rr_err *e);
/* SIGTERM to the group, SIGKILL after grace_ms (0 = at once). No-op when the
 * job already ended. Watch for JOB_EVENT_EXIT to learn the final status. */
int job_stop(job *j, uint64_t grace_ms, rr_err *e);
/* With a cgroup: its counters, live while it runs, the final ones after.
 * Without: the rusage (cpu only) once ended. False when there is none
 * (running without a cgroup, or lost). */
bool job_usage(job *j, cg_usage *ret);
/* Update size[] (and apply the cap) from the files now. */
void job_refresh(job *j);
void job_watch_add(job *j, job_watch *w);
void job_watch_del(job_watch *w);
const char *job_state_name(job_state s);
/* ---- stdin and terminal (StartRequest.stdin / tty; job_input.c) ---- */
/* Started with stdin or tty, stdin not closed, and running. */
bool job_has_stdin(const job *j);
bool job_has_tty(const job *j);
/* Queue bytes for the job's stdin: returns bytes accepted (< len when the keeper is full:
 * then writable(arg) is called once when more fits; any number of writers may
 * wait, one entry per arg); -1 with FAILED_PRECONDITION when
 * stdin is closed or the job ended. */
ssize_t job_stdin_write(job *j, const void *buf, size_t len, void (*writable)(void *), void *arg,
                        rr_err *e);
/* A writer that goes: its writable callback (by arg) is not called. */
void job_stdin_forget(job *j, void *arg);
/* EOF on the job's stdin (a terminal gets its VEOF character); recorded in job.json. */
int job_stdin_close(job *j, rr_err *e);
/* The window of the job's terminal: INVALID_ARGUMENT unless rows and cols are 1..10000,
 * FAILED_PRECONDITION without a tty or once the job ended. */
int job_resize(job *j, unsigned rows, unsigned cols, rr_err *e);
/* fn(data, j) just before retention deletes j (fn NULL: none); job_retention.c. */
void job_table_set_drop_hook(job_table *t, void (*fn)(void *data, job *j), void *data);
