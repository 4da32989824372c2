/* Internals shared by job.c (the table), job_start.c, job_exit.c,
 * job_logs.c (log growth) and job_load.c (persistence and reloading). Not
 * for users of the table. */
#pragma once
#include <signal.h>
#include <sys/resource.h>

#include "jobs/intmap.h"
#include "jobs/job.h"
#include "jobs/punch.h"

typedef struct job_dirs job_dirs;

struct job_table {
  loop *l;
  reaper *r;
  char *jobs_dir;
  uint64_t max_log_bytes;
  bool sync;
  void (*warn)(void *, const char *);
  void *warn_data;
  ulid_gen gen;
  job **jobs; /* sorted by id */
  size_t njobs, cap;
  int inotify_fd;
  int jobs_dir_fd; /* STATE/jobs: logs are looked at as ID/stdout below it */
  int lock_fd;     /* flock on STATE/rund.lock */
  int devnull_fd;  /* O_RDONLY, the stdin of every job */
  cg_manager *cgm; /* not owned; NULL: no cgroups */
  char *waiter;    /* rund-waiter's path; NULL: none */
  bool inotify_paused;
  uint64_t inotify_timer;
  job *dirty;         /* jobs whose logs grew, refreshed once per inotify batch */
  punch_queue *punch; /* NULL: punch on the loop (no thread could be made) */
  job_dirs *dirs;     /* directories made ahead (job_dirs.c); NULL: made at start */
  uint64_t punch_warned_ms;
  uint64_t disk_checked_ms; /* job_table_disk_full's last look */
  bool disk_full;
  uint64_t retention_ms, retention_timer; /* 0: finished jobs are kept */
  intmap by_wd;                           /* inotify wd -> job */
  /* job_table_set_drop_hook: told before retention deletes a job */
  void (*on_drop)(void *data, job *j);
  void *on_drop_data;
};

job_state job_state_parse(const char *s);
void job_table_warn(job_table *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Write j's job.json (atomically). */
int job_persist(job *j, rr_err *e);
/* A job struct for id with its directory path; NULL on ENOMEM. */
job *job_alloc(job_table *t, const char *id);
void job_close_logs(job *j);
void job_free(job *j);
int job_table_insert(job_table *t, job *j, rr_err *e);
/* Free t->jobs[i] and take it out of the table. */
void job_table_drop_at(job_table *t, size_t i);
/* Delete a job's files and directory (what is there of them). */
void job_remove_dir(const char *dir);
/* job_retention.c: start the timer that deletes finished jobs older than
 * t->retention_ms (no-op when 0); its timer is cancelled by the table. */
void job_retention_start(job_table *t);
/* stat the log files of a live job (no fd is kept), apply the cap. */
void job_logs_refresh(job *j);
/* inotify watch on the job's directory. */
int job_logs_watch(job *j, rr_err *e);
/* The table's inotify fd is readable: refresh the jobs whose logs grew. */
void job_table_on_inotify(loop *l, int fd, uint32_t events, void *data);
/* Tell j's watchers of event (JOB_EVENT_*); they may come and go meanwhile. */
void job_notify(job *j, int event);
/* Reaper callback: record how the job ended (si NULL = unknown). */
void job_on_exit(void *data, pid_t pid, const siginfo_t *si);
/* The reaper's callback for jobs this rund started (usage from ru when the
 * job has no cgroup). */
void job_on_reaped(void *data, pid_t pid, const siginfo_t *si, const struct rusage *ru);
/* At the end of j's main process: final usage, "oom-killed", remove the
 * cgroup. */
void job_cgroup_end(job *j, const siginfo_t *si);
/* After loading j from job.json: reopen the cgroup of a running job, remove
 * that of one found dead. */
void job_cgroup_reload(job *j);
json_object *job_usage_to_json(const cg_usage *u);
int job_usage_from_json(json_object *o, cg_usage *ret, rr_err *e);
/* Fill j's fields from its parsed job.json (DATA_LOSS naming what is wrong). */
int job_load_fields(job *j, json_object *o, rr_err *e);
/* How j's command ended, from the file rund-waiter wrote (JOB_EXIT_FILE):
 * 0 with *ret (si_code CLD_EXITED or CLD_KILLED, si_status) and *end_ns,
 * -1 when it says nothing (no waiter, or it could not tell). */
int job_exit_file_read(job *j, siginfo_t *ret, int64_t *end_ns);
#define JOB_EXIT_FILE "exit"
/* Whether j has the file its keeper records the end in (a keeper started it). */
bool job_has_exit_file(const job *j);
/* j's first process is its keeper: kills spare it (kill_ctl_keeper). */
void job_keeper_spare(job *j);
/* Read the keeper's lost counts (its exit file's second line) into j. */
void job_lost_read(job *j);
/* Load every job directory under t->jobs_dir. */
int job_table_load(job_table *t, rr_err *e);

/* ---- job directories made ahead of need (job_dirs.c) ---- */
/* The fds of a ready directory's files, in this order. */
enum { JOB_DIR_OUT, JOB_DIR_ERR, JOB_DIR_EXIT, JOB_DIR_JSON, JOB_DIR_FDS };
/* Ready directories are STATE/jobs/.new-N (never listed: a dot name). */
#define JOB_DIR_NEW_PREFIX ".new-"
/* Start the worker that keeps ready directories in jobs_dir_fd; NULL if it
 * cannot start (starts make their own). sync: fsync each new directory. */
job_dirs *job_dirs_new(int jobs_dir_fd, bool sync);
/* Rename a ready directory to id and give its fds (JOB_DIR_*; the files
 * are empty); false when none is ready (the caller makes its own). */
bool job_dirs_take(job_dirs *d, const char *id, int fds[JOB_DIR_FDS]);
/* Stop the worker and remove the directories still unused. */
void job_dirs_free(job_dirs *d);
/* Remove the leftover ready directory t->jobs_dir/name (a crash's). */
void job_dirs_remove_leftover(job_table *t, const char *name);
/* Write j's first job.json into fd, its fresh empty file (job_dirs_take). */
int job_persist_fresh(job *j, int fd, rr_err *e);
