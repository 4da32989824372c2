#include "jobs/exec_session.h"
#include "common/util.h"
#include "jobs/exec_tty.h"
#include "jobs/job_sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "jobs/job_cgroup.h"
#include "jobs/kill.h"
#include "jobs/signame.h"
#include "sandbox/spawn.h"

#define EXEC_CHUNK (64u * 1024u)
/* Output pipes this large let a read take what a fast command wrote in
 * several writes (fewer wake-ups); the kernel's page cap may refuse. */
#define EXEC_PIPE_SIZE (1024 * 1024)
#define EXEC_STDIN_HIGH (1024u * 1024u)
#define EXEC_STDIN_LOW (256u * 1024u)
#define EXEC_DRAIN_MS 2000u /* after exit, how long leftover holders of the pipes may keep them */

typedef struct stdin_chunk {
  struct stdin_chunk *next;
  size_t len, off;
  uint8_t data[];
} stdin_chunk;

struct exec_session {
  exec_session_env env;
  const exec_session_ops *ops;
  void *data;
  bool started, exited, done;
  pid_t pid;
  int status_fd; /* a sandbox's init writes how the command ended here; -1: none */
  reaper_watch *rw;
  int in_fd, out_fd[2]; /* with a terminal: in_fd a dup of its master, out_fd[0] the master */
  bool has_tty;
  exec_tty tty;
  bool in_watched, out_paused;
  stdin_chunk *head, *tail;
  size_t stdin_queued;
  bool stdin_close, recv_paused;
  siginfo_t status;
  kill_ctl kill; /* timeout, and kills of the group (and cgroup) */
  uint64_t drain_timer;
  cg_job *cg;     /* while the command runs (none: rund runs without cgroups) */
  bool in_job;    /* exec --in: the cgroup is a child of job_cg's (none without) */
  cg_job *job_cg; /* borrowed until the start */
  bool has_usage;
  cg_usage usage; /* final counters (the cgroup's, or the rusage) */
  /* ended at the init's status line: the cgroup goes at the init's reap
   * (removed while it runs, it would be frozen and killed: a freezer write
   * costs milliseconds of kernel text patching); a session freed before
   * that lingers in a list until then */
  bool status_ended, lingering;
  exec_session *linger_next, **linger_prevp;
};

static exec_session *lingering;

/* One read buffer for every session: the loop is single-threaded. */
static uint8_t exec_buf[EXEC_CHUNK];

static void exec_close_fd(exec_session *x, int *fd) {
  if (*fd >= 0) {
    loop_fd_del(x->env.l, *fd); /* no-op when not watched */
    close(*fd);
    *fd = -1;
  }
}

static void exec_warn(exec_session *x, const char *what, const rr_err *e) {
  if (x->ops->warn)
    x->ops->warn(x->data, what, e->msg);
}

static void exec_kill_warn(void *data, const rr_err *e) {
  exec_warn(data, "exec: cannot kill the command's cgroup", e);
}

static void exec_on_output(loop *l, int fd, uint32_t events, void *data);
static void exec_on_stdin(loop *l, int fd, uint32_t events, void *data);

/* Watch or unwatch: epoll reports HUP/ERR even with no events asked, so a
 * paused fd must leave the loop or it spins. */
static int exec_output_watch(exec_session *x, bool on, rr_err *e) {
  for (int k = 0; k < 2; k++) {
    if (x->out_fd[k] < 0)
      continue;
    if (!on)
      loop_fd_del(x->env.l, x->out_fd[k]);
    else if (loop_fd_add(x->env.l, x->out_fd[k], EPOLLIN, "exec output", exec_on_output, x, e) < 0)
      return -1;
  }
  return 0;
}

static void exec_stdin_watch(exec_session *x, bool on) {
  if (x->in_fd < 0 || x->in_watched == on)
    return;
  if (on && loop_fd_add(x->env.l, x->in_fd, EPOLLOUT, "exec stdin", exec_on_stdin, x, NULL) < 0)
    return;
  if (!on)
    loop_fd_del(x->env.l, x->in_fd);
  x->in_watched = on;
}

/* The main process ended (or the session is going): final counters, then
 * the cgroup goes, with anything still in it. */
static void exec_cgroup_end(exec_session *x) {
  if (!x->cg)
    return;
  rr_err e = {0};
  if (job_cgroup_finish(x->env.l, x->cg, &x->usage, &x->has_usage, &e) < 0)
    exec_warn(x, "exec: cgroup at the command's end", &e);
  x->cg = NULL;
}

static void exec_finish(exec_session *x, const char *note) {
  if (x->done)
    return;
  x->done = true;
  char reason[160];
  const char *base = "signaled";
  if (x->kill.cause == KILL_CAUSE_TIMEOUT)
    base = "timeout";
  else if (x->status.si_code == CLD_EXITED)
    base = "exited";
  else if (x->has_usage && job_cgroup_oom_killed(&x->status, &x->usage))
    base = "oom-killed";
  snprintf(reason, sizeof reason, "%s%s", base, note ? note : "");
  exec_session_end end = {
      .status = &x->status, .reason = reason, .usage = x->has_usage ? &x->usage : NULL};
  x->ops->finished(x->data, &end);
}

static void exec_maybe_finish(exec_session *x) {
  if (x->exited && x->out_fd[0] < 0 && x->out_fd[1] < 0)
    exec_finish(x, NULL);
}

/* Bytes waiting in pipe s handed over unread when the consumer can move
 * them itself (splice): 0 done, 1 read them instead (none waiting: EOF or
 * empty, which only a read tells; a terminal), -1 the consumer failed. */
static int exec_splice_output(exec_session *x, int s) {
  int avail = 0;
  if (!x->ops->output_splice || x->has_tty || ioctl(x->out_fd[s], FIONREAD, &avail) < 0 ||
      avail <= 0)
    return 1;
  return x->ops->output_splice(x->data, s, x->out_fd[s], (size_t)avail);
}

/* Read what the pipes have while the consumer keeps up, a chunk of each in
 * turn, stderr first: a busy stdout must not hold back stderr (a pid or an
 * error printed before the flood), nor a full consumer stop it arriving. */
static void exec_pump_output(exec_session *x) {
  bool drained[2] = {false, false};
  while (!(drained[0] || x->out_fd[0] < 0) || !(drained[1] || x->out_fd[1] < 0)) {
    for (int s = 1; s >= 0; s--) {
      if (x->out_fd[s] < 0 || drained[s])
        continue;
      if (x->ops->output_blocked(x->data)) {
        /* stop reading: the pipe fills and the command blocks */
        if (!x->out_paused) {
          x->out_paused = true;
          exec_output_watch(x, false, NULL);
        }
        return;
      }
      int r = exec_splice_output(x, s);
      if (r < 0)
        return;
      if (r == 0)
        continue; /* taken where it lies: output_blocked until it is out */
      uint8_t *buf = exec_buf;
      size_t cap = sizeof exec_buf;
      if (x->ops->output_buf) {
        size_t want = 0;
        uint8_t *own = x->ops->output_buf(x->data, &want);
        if (own)
          buf = own, cap = want;
      }
      ssize_t n = read(x->out_fd[s], buf, cap);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && errno == EAGAIN) {
        drained[s] = true;
        continue;
      }
      if (n <= 0) {
        exec_close_fd(x, &x->out_fd[s]);
        continue;
      }
      /* a short read emptied the pipe (or terminal): the loop, level-
       * triggered, calls again when more comes; no read for EAGAIN (a
       * keystroke's echo costs one read, not two) */
      drained[s] = (size_t)n < cap;
      if (x->ops->output(x->data, s, buf, (size_t)n) < 0)
        return;
    }
  }
  exec_maybe_finish(x);
}

static void exec_on_output(loop *l, int fd, uint32_t events, void *data) { exec_pump_output(data); }

int exec_session_output_resume(exec_session *x, rr_err *e) {
  if (!x->started)
    return 0;
  if (x->out_paused) {
    x->out_paused = false;
    if (exec_output_watch(x, true, e) < 0) {
      kill_ctl_send(&x->kill, SIGKILL);
      return -1;
    }
  }
  exec_pump_output(x);
  return 0;
}

static void exec_stdin_drop(exec_session *x) {
  while (x->head) {
    stdin_chunk *ch = x->head;
    x->head = ch->next;
    free(ch);
  }
  x->tail = NULL;
  x->stdin_queued = 0;
}

static void exec_stdin_flush(exec_session *x) {
  while (x->head && x->in_fd >= 0) {
    stdin_chunk *ch = x->head;
    ssize_t n = write(x->in_fd, ch->data + ch->off, ch->len - ch->off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && errno == EAGAIN) {
      exec_stdin_watch(x, true);
      return;
    }
    if (n < 0) { /* EPIPE: the command closed its stdin; drop the rest */
      exec_close_fd(x, &x->in_fd);
      break;
    }
    ch->off += (size_t)n;
    x->stdin_queued -= (size_t)n;
    if (ch->off == ch->len) {
      x->head = ch->next;
      if (!x->head)
        x->tail = NULL;
      free(ch);
    }
  }
  if (x->in_fd < 0)
    exec_stdin_drop(x);
  if (x->in_fd >= 0 && !x->head) {
    exec_stdin_watch(x, false);
    if (x->stdin_close)
      exec_close_fd(x, &x->in_fd); /* the command sees EOF */
  }
  if (x->recv_paused && x->stdin_queued < EXEC_STDIN_LOW) {
    x->recv_paused = false;
    x->ops->stdin_pause(x->data, false);
  }
}

static void exec_on_stdin(loop *l, int fd, uint32_t events, void *data) { exec_stdin_flush(data); }

int exec_session_stdin_write(exec_session *x, const uint8_t *data, size_t len, rr_err *e) {
  if (x->stdin_close)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "stdin sent after close_stdin");
  if (x->in_fd < 0 || !len)
    return 0; /* the command closed its stdin or exited: discard */
  stdin_chunk *ch = malloc(sizeof *ch + len);
  if (!ch)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory queueing stdin");
  ch->next = NULL;
  ch->len = len;
  ch->off = 0;
  memcpy(ch->data, data, len);
  if (x->tail)
    x->tail->next = ch;
  else
    x->head = ch;
  x->tail = ch;
  x->stdin_queued += len;
  if (x->stdin_queued > EXEC_STDIN_HIGH && !x->recv_paused) {
    x->recv_paused = true;
    x->ops->stdin_pause(x->data, true);
  }
  exec_stdin_flush(x);
  return 0;
}

void exec_session_stdin_close(exec_session *x) {
  /* a terminal has no EOF of its own: its EOF character, after the input */
  int veof = x->has_tty && !x->stdin_close && x->in_fd >= 0 ? exec_tty_veof(x->in_fd) : -1;
  if (veof >= 0) {
    uint8_t c = (uint8_t)veof;
    rr_err e = {0};
    if (exec_session_stdin_write(x, &c, 1, &e) < 0)
      exec_warn(x, "exec: cannot queue the terminal's EOF character", &e);
  }
  x->stdin_close = true;
  exec_stdin_flush(x);
}

int exec_session_set_job_cgroup(exec_session *x, cg_job *job_cg, rr_err *e) {
  if (x->started)
    return rr_err_set(e, RR_FAILED_PRECONDITION, "the job is set before the start");
  x->in_job = true;
  x->job_cg = job_cg;
  return 0;
}

int exec_session_set_tty(exec_session *x, const exec_tty *t, rr_err *e) {
  if (x->started)
    return rr_err_set(e, RR_FAILED_PRECONDITION, "the terminal is set before the start");
  x->has_tty = true;
  x->tty = *t;
  return 0;
}

int exec_session_resize(exec_session *x, unsigned rows, unsigned cols, rr_err *e) {
  if (!x->has_tty)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "resize without a terminal (start has no tty)");
  if (exec_tty_size_check(rows, cols, "resize", e) < 0)
    return -1;
  if (x->done || x->out_fd[0] < 0)
    return 0; /* ended: a late resize races the exit */
  return exec_tty_resize(x->out_fd[0], rows, cols, e);
}

int exec_session_signal(exec_session *x, int sig, rr_err *e) {
  if (signame_check_number(sig, "signal", e) < 0)
    return -1;
  kill_ctl_send(&x->kill, sig); /* no-op once exited: a late Ctrl-C races the exit */
  return 0;
}

static void exec_on_drain_timer(loop *l, void *data) {
  exec_session *x = data;
  x->drain_timer = 0;
  if (x->done)
    return;
  if (x->out_paused) { /* the consumer is still taking output: not stuck */
    x->drain_timer = loop_timer_add(l, EXEC_DRAIN_MS, exec_on_drain_timer, x);
    return;
  }
  exec_pump_output(x);
  if (x->done)
    return;
  exec_close_fd(x, &x->out_fd[0]);
  exec_close_fd(x, &x->out_fd[1]);
  exec_finish(x, x->has_tty ? " (the terminal still open in a leftover process 2 s after exit;"
                              " later output not sent)"
                            : " (output pipes still held open by a leftover process 2 s after exit;"
                              " later output not sent)");
}

/* The command ended (status in x->status): what is left of it goes, and the
 * end follows once the pipes are drained. */
static void exec_ended(exec_session *x, const struct rusage *ru) {
  x->exited = true;
  if (ru && !x->cg) { /* a cgroup's numbers count every process in it: those win */
    job_usage_from_rusage(ru, &x->usage);
    x->has_usage = true;
  }
  kill_ctl_ended(&x->kill);
  if (!x->status_ended)
    exec_cgroup_end(x);
  exec_close_fd(x, &x->in_fd);
  exec_pump_output(x);
  if (!x->done)
    x->drain_timer = loop_timer_add(x->env.l, EXEC_DRAIN_MS, exec_on_drain_timer, x);
}

/* The sandbox's init wrote how the command ended into status_fd: 0 and
 * *si; 1 nothing yet; -1 none (EOF) or no valid line. The init ends with
 * 128+N for signal N: its record says N. */
static int exec_status_read(exec_session *x, siginfo_t *si) {
  char line[64];
  ssize_t n = read(x->status_fd, line, sizeof line - 1);
  int64_t end_ns;
  if (n <= 0)
    return n < 0 && (errno == EAGAIN || errno == EINTR) ? 1 : -1;
  line[n] = '\0';
  return job_status_line_parse(line, si, &end_ns) == 0 ? 0 : -1;
}

/* The status line came: the command ended and its usage is in its cgroup,
 * so the end need not wait for the init's own exit (its namespaces, the
 * image's overlay with them) and reap. A line-less EOF (the init killed)
 * leaves the end to the reap. */
static void exec_on_status(loop *l, int fd, uint32_t events, void *data) {
  exec_session *x = data;
  siginfo_t rec;
  int r = exec_status_read(x, &rec);
  if (r > 0)
    return;
  exec_close_fd(x, &x->status_fd);
  if (r < 0 || x->exited || !x->cg)
    return;
  x->status.si_code = rec.si_code;
  x->status.si_status = rec.si_status;
  rr_err e = {0};
  x->has_usage = cg_job_usage_final(x->cg, &x->usage, &e) == 0;
  if (!x->has_usage)
    exec_warn(x, "exec: cgroup at the command's end", &e);
  x->status_ended = true;
  exec_ended(x, NULL);
}

static void exec_linger_free(exec_session *x) {
  *x->linger_prevp = x->linger_next;
  if (x->linger_next)
    x->linger_next->linger_prevp = x->linger_prevp;
  free(x);
}

/* Its cgroup, once the init is gone (the usage was taken at the end). */
static void exec_cgroup_release(exec_session *x) {
  cg_usage u;
  bool has;
  if (x->cg)
    job_cgroup_finish(x->env.l, x->cg, &u, &has, NULL);
  x->cg = NULL;
}

static void exec_on_exit(void *data, pid_t pid, const siginfo_t *si, const struct rusage *ru) {
  exec_session *x = data;
  x->rw = NULL;
  if (x->status_ended) {
    exec_cgroup_release(x);
    if (x->lingering)
      exec_linger_free(x);
    return;
  }
  if (si)
    x->status = *si;
  siginfo_t rec;
  if (x->status_fd >= 0 && exec_status_read(x, &rec) == 0)
    x->status.si_code = rec.si_code, x->status.si_status = rec.si_status;
  exec_close_fd(x, &x->status_fd);
  exec_ended(x, ru);
}

int exec_session_new(const exec_session_env *env, const exec_session_ops *ops, void *data,
                     exec_session **ret, rr_err *e) {
  exec_session *x = calloc(1, sizeof *x);
  if (!x)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  x->env = *env;
  x->ops = ops;
  x->data = data;
  x->in_fd = x->out_fd[0] = x->out_fd[1] = x->status_fd = -1;
  kill_ctl_init(&x->kill, env->l, &x->rw, &x->cg, exec_kill_warn, x);
  *ret = x;
  return 0;
}

/* After the spawn: our ends of the pipes non-blocking (a blocking pipe
 * would stall the loop), then watch them and the process. */
static int exec_watch(exec_session *x, const spawn_result *sr, rr_err *e) {
  for (int i = 0; i < 3; i++) {
    int fd = i == 0 ? x->in_fd : x->out_fd[i - 1], fl = fd < 0 ? 0 : fcntl(fd, F_GETFL);
    if (fd >= 0 && (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)) {
      rr_err_sys(e, RR_INTERNAL, errno, "cannot make the command's pipes non-blocking");
      kill(-sr->pid, SIGKILL);
      close(sr->pidfd); /* unwatched: the orphan reaper reaps it */
      return -1;
    }
  }
  /* the start goes first, before any output */
  x->ops->started(x->data, sr->pid);
  if (exec_output_watch(x, true, e) < 0) {
    kill(-sr->pid, SIGKILL);
    close(sr->pidfd); /* not handed to the reaper yet */
    return -1;        /* exec_session_free closes the pipes; the orphan reaper reaps */
  }
  if (reaper_watch_add(x->env.r, sr->pid, sr->pidfd, exec_on_exit, x, &x->rw, e) < 0) {
    kill(-sr->pid, SIGKILL); /* the reaper took and closed the pidfd */
    return -1;
  }
  return 0;
}

/* On a terminal: its master is the command's stdin (through a dup, which
 * stdin_close may close) and output. */
static int exec_spawn_tty(exec_session *x, const job_request *r, spawn_opts *o, int status_fd,
                          spawn_result *sr, int in[2], int out[2], rr_err *e) {
  int master;
  if (exec_tty_spawn(r, o, &x->tty, status_fd, sr, &master, e) < 0)
    return -1;
  out[0] = master;
  if ((in[1] = fcntl(master, F_DUPFD_CLOEXEC, 3)) < 0) {
    rr_err_sys(e, RR_RESOURCE_EXHAUSTED, errno, "cannot duplicate the terminal's master");
    kill(-sr->pid, SIGKILL);
    close(sr->pidfd); /* unwatched: the orphan reaper reaps it */
    return -1;
  }
  return 0;
}

int exec_session_start(exec_session *x, const job_request *r, const job_start_opts *opts,
                       rr_err *e) {
  int rc = -1, in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, st[2] = {-1, -1};
  bool sandboxed = r->sandbox.profile != SB_PROFILE_HOST;
  if ((!x->has_tty &&
       (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0)) ||
      (sandboxed && pipe2(st, O_CLOEXEC | O_NONBLOCK) < 0)) {
    rr_err_sys(e, RR_RESOURCE_EXHAUSTED, errno, "cannot create pipes");
    goto out;
  }
  spawn_opts o = {.path = r->path,
                  .args = (const char *const *)r->args,
                  .nargs = r->nargs,
                  .env_keys = (const char *const *)r->env_keys,
                  .env_values = opts && opts->env_values ? opts->env_values
                                                         : (const char *const *)r->env_values,
                  .nenv = r->nenv,
                  .workdir = r->workdir,
                  .stdin_fd = in[0],
                  .stdout_fd = out[1],
                  .stderr_fd = err[1],
                  .ids = opts ? opts->ids : NULL};
  /* the timeout's two timers cannot fail later */
  if (r->has_timeout && loop_timer_reserve(x->env.l, 2) < 0) {
    rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory for the command's timeout");
    goto out;
  }
  /* as a job: a cgroup of its own, limits or not, when rund has cgroups;
   * inside a job: below the job's */
  if (x->in_job ? x->job_cg != NULL : r->limits || x->env.cgroups) {
    char name[ULID_LEN + 8] = "exec-";
    if (ulid_gen_next(x->env.names, 0, name + 5, e) < 0 ||
        (x->in_job ? job_cgroup_create_in(x->job_cg, name, &o, &x->cg, e)
                   : job_cgroup_create(x->env.cgroups, name, r->limits, &o, &x->cg, e)) < 0)
      goto out;
  }
  x->job_cg = NULL;
  spawn_result sr;
  if ((x->has_tty  ? exec_spawn_tty(x, r, &o, st[1], &sr, in, out, e)
       : sandboxed ? job_sandbox_spawn(&r->sandbox, r->limits, &o, st[1], &sr, e)
                   : spawn_process(&o, &sr, e)) < 0) {
    exec_cgroup_end(x);
    goto out;
  }
  if (x->cg)
    cg_job_close_fds(x->cg);
  x->status_fd = st[0];
  st[0] = -1;
  x->started = true;
  x->pid = sr.pid;
  kill_ctl_attach(&x->kill, sr.pid, sr.start_ticks);
  x->in_fd = in[1];
  x->out_fd[0] = out[0];
  x->out_fd[1] = err[0];
  for (int k = 0; k < 2 && !x->has_tty; k++)
    if (x->out_fd[k] >= 0)
      (void)fcntl(x->out_fd[k], F_SETPIPE_SZ, EXEC_PIPE_SIZE); /* best effort */
  in[1] = out[0] = err[0] = -1;
  if (exec_watch(x, &sr, e) < 0)
    goto out;
  /* with a cgroup (its usage) the status line ends it; else the reap does
   * (the init's rusage); a failed watch only costs the time (the reap) */
  if (x->cg && x->status_fd >= 0)
    (void)loop_fd_add(x->env.l, x->status_fd, EPOLLIN, "exec status", exec_on_status, x, NULL);
  if (r->has_timeout)
    kill_ctl_timeout_arm(&x->kill, r->timeout_ms, r->timeout_grace_ms);
  rc = 0;
out:
  for (int i = 0; i < 2; i++) {
    if (in[i] >= 0)
      close(in[i]);
    if (out[i] >= 0)
      close(out[i]);
    if (err[i] >= 0)
      close(err[i]);
    if (st[i] >= 0)
      close(st[i]);
  }
  return rc;
}

bool exec_session_started(const exec_session *x) { return x->started; }

bool exec_session_done(const exec_session *x) { return x->done; }

void exec_session_abort(exec_session *x) {
  kill_ctl_send(&x->kill, SIGKILL);
  x->done = true;
}

void exec_session_free(exec_session *x) {
  if (!x)
    return;
  /* the consumer went away (or we are shutting down) before the end: kill */
  kill_ctl_send(&x->kill, SIGKILL);
  kill_ctl_cancel(&x->kill);
  loop_timer_cancel(x->env.l, x->drain_timer);
  x->drain_timer = 0;
  exec_close_fd(x, &x->in_fd);
  exec_close_fd(x, &x->out_fd[0]);
  exec_close_fd(x, &x->out_fd[1]);
  exec_close_fd(x, &x->status_fd);
  exec_stdin_drop(x);
  if (x->status_ended && x->rw && x->cg) { /* its cgroup goes at the init's reap */
    x->lingering = true;
    x->linger_next = lingering;
    x->linger_prevp = &lingering;
    if (lingering)
      lingering->linger_prevp = &x->linger_next;
    lingering = x;
    return;
  }
  exec_cgroup_end(x);
  reaper_watch_forget(x->rw); /* still reaped, no callback */
  free(x);
}

void exec_sessions_lingering_free(void) {
  while (lingering) {
    exec_session *x = lingering;
    exec_cgroup_release(x); /* the release list removes it (or the next rund) */
    reaper_watch_forget(x->rw);
    exec_linger_free(x);
  }
}
