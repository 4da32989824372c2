/* Start of a background job: its directory and log files, the pipes its
 * keeper (rund-waiter, or a sandbox's init) relays, its cgroup, the spawn,
 * and its record (job.json) before Start answers. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "jobs/job_cgroup.h"
#include "jobs/job_input.h"
#include "jobs/job_internal.h"
#include "jobs/job_sandbox.h"
#include "jobs/logstore.h"
#include "sandbox/spawn.h"

void job_remove_dir(const char *dir) {
  char p[PATH_MAX];
  static const char *const names[] = {"stdout",       "stderr",      "job.json",
                                      "job.json.tmp", JOB_EXIT_FILE, JOB_INPUT_SOCKET};
  for (size_t i = 0; i < RR_ARRAY_SIZE(names); i++) {
    snprintf(p, sizeof p, "%s/%s", dir, names[i]);
    unlink(p);
  }
  rmdir(dir);
}

/* Copy the owner principals into j. */
static int job_set_owner(job *j, const job_start_opts *opts, rr_err *e) {
  if (!opts || !opts->nowner)
    return 0;
  if (opts->nowner > JOB_MAX_OWNERS)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%zu owner principals (max %d)", opts->nowner,
                      JOB_MAX_OWNERS);
  if (!(j->owner = calloc(opts->nowner, sizeof *j->owner)))
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  for (; j->nowner < opts->nowner; j->nowner++)
    if (!(j->owner[j->nowner] = strdup(opts->owner[j->nowner])))
      return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  return 0;
}

static void job_pipes_close(int pipes[2][2]) {
  for (int s = 0; s < 2; s++)
    for (int k = 0; k < 2; k++)
      if (pipes[s][k] >= 0) {
        close(pipes[s][k]);
        pipes[s][k] = -1;
      }
}

/* The empty file rund-waiter writes the command's end to. */
static int job_exit_file_create(job *j, rr_err *e) {
  char p[PATH_MAX];
  snprintf(p, sizeof p, "%s/" JOB_EXIT_FILE, j->dir);
  int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot create \"%s\"", p);
  return fd;
}

int job_table_start(job_table *t, job_request *req, const job_start_opts *opts, job **ret,
                    rr_err *e) {
  if (job_request_validate(req, e) < 0)
    return -1;
  if (req->has_timeout && loop_timer_reserve(t->l, 1) < 0)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory for the job's timeout");
  char id[ULID_LEN + 1];
  if (ulid_gen_next(&t->gen, 0, id, e) < 0)
    return -1;
  int status_fd = -1; /* rund-waiter's STATE/jobs/<ID>/exit */
  /* the log files, and the pipes the job writes into (its keeper copies
   * them into the files): ours only until it is spawned */
  _cleanup_close_ int out_fd = -1;
  _cleanup_close_ int err_fd = -1;
  _cleanup_close_ int json_fd = -1; /* an empty job.json made ahead (job_dirs.c) */
  int pipes[2][2] = {{-1, -1}, {-1, -1}};
  job_input_fds inf = {-1, {-1, -1}, -1, -1}; /* stdin or tty: what the keeper holds */
  job *j = job_alloc(t, id);
  if (!j)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  if (job_set_owner(j, opts, e) < 0) {
    job_free(j);
    return -1;
  }
  /* a sandbox's init records the end as rund-waiter does, in its place */
  bool sandboxed = req->sandbox.profile != SB_PROFILE_HOST;
  bool relay = t->waiter || sandboxed; /* their keeper: rund-waiter or the init */
  int dfd[JOB_DIR_FDS];
  if (relay && t->dirs && job_dirs_take(t->dirs, id, dfd)) { /* made ahead: one rename */
    out_fd = dfd[JOB_DIR_OUT];
    err_fd = dfd[JOB_DIR_ERR];
    status_fd = dfd[JOB_DIR_EXIT];
    json_fd = dfd[JOB_DIR_JSON];
  } else if (logstore_job_dir_create(j->dir, e) < 0) {
    job_free(j);
    return -1;
  } else if ((out_fd = logstore_stream_create(j->dir, LOG_STDOUT, e)) < 0 ||
             (err_fd = logstore_stream_create(j->dir, LOG_STDERR, e)) < 0)
    goto fail;
  bool input = req->stdin_open || req->tty;
  if (input && (!t->waiter || sandboxed)) {
    rr_err_set(e, RR_INVALID_ARGUMENT, "%s with %s: not supported yet for background jobs",
               req->tty ? "tty" : "stdin",
               sandboxed ? "a sandbox profile" : "rund without rund-waiter");
    goto fail;
  }
  for (int s = 0; relay && !req->tty && s < 2; s++)
    if (pipe2(pipes[s], O_CLOEXEC) < 0) {
      rr_err_sys(e, RR_RESOURCE_EXHAUSTED, errno, "cannot make the pipes of job %s", id);
      goto fail;
    }
  int relay_fds[4] = {pipes[0][0], pipes[1][0], out_fd, err_fd};
  spawn_opts o = {
      .path = req->path,
      .args = (const char *const *)req->args,
      .nargs = req->nargs,
      .env_keys = (const char *const *)req->env_keys,
      .env_values =
          opts && opts->env_values ? opts->env_values : (const char *const *)req->env_values,
      .nenv = req->nenv,
      .workdir = req->workdir,
      .stdin_fd = t->devnull_fd,
      .stdout_fd = relay ? pipes[0][1] : out_fd,
      .stderr_fd = relay ? pipes[1][1] : err_fd,
      .ids = opts ? opts->ids : NULL,
      .waiter_relay_fds = relay ? relay_fds : NULL,
  };
  if (input) {
    if (job_input_prepare(req, j->dir, &o, &inf, e) < 0)
      goto fail;
    relay_fds[0] = inf.relay_in >= 0 ? inf.relay_in : relay_fds[0];
    o.waiter_input_fds = inf.keeper;
    o.waiter_tty = req->tty;
    o.waiter_stdio_fd = t->devnull_fd;
  }
  if (t->waiter || sandboxed) {
    if (status_fd < 0 && (status_fd = job_exit_file_create(j, e)) < 0)
      goto fail;
    o.waiter = sandboxed ? NULL : t->waiter;
    o.waiter_status_fd = status_fd;
  }
  /* limits or not, outside rund's cgroup (its limits, restarts and OOM are
   * not the job's), and a stop kills the whole tree */
  if (job_cgroup_create(t->cgm, id, req->limits, &o, &j->cg, e) < 0)
    goto fail;
  if (j->cg)
    j->cgroup = cg_job_version(j->cg);
  spawn_result sr;
  j->start_ns = rr_now_unix_ns();
  if ((sandboxed ? job_sandbox_spawn(&req->sandbox, req->limits, &o, status_fd, &sr, e)
                 : spawn_process(&o, &sr, e)) < 0)
    goto fail;
  if (j->cg)
    cg_job_close_fds(j->cg); /* a live job holds no fd of its cgroup */
  /* the child has them: a running job keeps only its pidfd open in rund */
  if (status_fd >= 0) {
    close(status_fd);
    status_fd = -1;
  }
  close(TAKE_FD(out_fd));
  close(TAKE_FD(err_fd));
  job_pipes_close(pipes);
  job_input_fds_close(&inf);
  j->pid = sr.pid;
  kill_ctl_attach(&j->kill, sr.pid, sr.start_ticks);
  if (relay && j->cg) /* a kill leaves it to drain the pipes (kill.h) */
    job_keeper_spare(j);
  j->start_ticks = sr.start_ticks;
  j->state = JOB_RUNNING;
  j->req = *req;
  if (reaper_watch_add(t->r, sr.pid, sr.pidfd, job_on_reaped, j, &j->rw, e) < 0 ||
      (json_fd >= 0 ? job_persist_fresh(j, json_fd, e) : job_persist(j, e)) < 0 ||
      job_logs_watch(j, e) < 0 || job_table_insert(t, j, e) < 0) {
    /* cannot track it: do not leave it running */
    kill(-sr.pid, SIGKILL);
    if (j->rw)
      reaper_watch_forget(j->rw);
    memset(&j->req, 0, sizeof j->req);
    goto fail;
  }
  memset(req, 0, sizeof *req);
  /* watched only now so that writing job.json raised no events: take what
   * the job wrote before the watch existed (and apply the cap to it) */
  j->logs_live = true;
  job_logs_refresh(j);
  if (j->req.has_timeout)
    kill_ctl_timeout_arm(&j->kill, j->req.timeout_ms, j->req.timeout_grace_ms);
  *ret = j;
  return 0;
fail:
  if (status_fd >= 0)
    close(status_fd);
  job_pipes_close(pipes);
  job_input_fds_close(&inf);
  if (j->cg) { /* its removal (on a timer) also kills a child we could not track */
    cg_job_kill(j->cg, NULL);
    cg_usage unused;
    bool has;
    job_cgroup_finish(t->l, j->cg, &unused, &has, NULL);
    j->cg = NULL;
  }
  job_close_logs(j);
  job_remove_dir(j->dir);
  job_free(j);
  return -1;
}
