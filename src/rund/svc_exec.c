/* Exec: one command per bidi stream. stdin in order through a bounded queue
 * (the client is paused when it is full), stdout/stderr through pipes read
 * only while the call's send queue has room (a slow client slows the
 * command), the exit status last, after every output byte. signal messages
 * go to the command's process group until it exits. A cancelled or broken
 * stream kills the command's process group. A command with limits runs in a
 * cgroup of its own: killed as a whole with the group, its usage sent with
 * the exit status, removed at the end. Without one, the usage sent is the
 * rusage of the main process. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "jobs/job_cgroup.h"
#include "jobs/signame.h"
#include "sandbox/spawn.h"
#include "rund.h"

#define EXEC_CHUNK (64u * 1024u)
#define EXEC_STDIN_HIGH (1024u * 1024u)
#define EXEC_STDIN_LOW (256u * 1024u)
#define EXEC_DRAIN_MS 2000u /* after exit, how long leftover holders of the pipes may keep them */
#define EXEC_GRACE_MS 10000u

typedef struct stdin_chunk {
  struct stdin_chunk *next;
  size_t len, off;
  uint8_t data[];
} stdin_chunk;

typedef struct exec_sess {
  rpc_call *c;
  rund_ctx *ctx;
  loop *l;
  bool started, exited, done;
  pid_t pid;
  reaper_watch *rw;
  int in_fd, out_fd[2];
  bool in_watched, out_paused;
  stdin_chunk *head, *tail;
  size_t stdin_queued;
  bool stdin_close, recv_paused;
  siginfo_t status;
  bool timed_out;
  uint64_t timeout_timer, kill_timer, drain_timer;
  cg_job *cg; /* while the command runs, when it has limits */
  bool has_usage;
  cg_usage usage; /* final counters (the cgroup's, or the rusage) */
} exec_sess;

static uint8_t exec_buf[EXEC_CHUNK];

static void exec_close_fd(exec_sess *x, int *fd) {
  if (*fd >= 0) {
    loop_fd_del(x->l, *fd); /* no-op when not watched */
    close(*fd);
    *fd = -1;
  }
}

static void exec_on_output(loop *l, int fd, uint32_t events, void *data);
static void exec_on_stdin(loop *l, int fd, uint32_t events, void *data);

/* Watch or unwatch: epoll reports HUP/ERR even with no events asked, so a
 * paused fd must leave the loop or it spins. */
static int exec_output_watch(exec_sess *x, bool on, rr_err *e) {
  for (int k = 0; k < 2; k++) {
    if (x->out_fd[k] < 0)
      continue;
    if (!on)
      loop_fd_del(x->l, x->out_fd[k]);
    else if (loop_fd_add(x->l, x->out_fd[k], EPOLLIN, "exec output", exec_on_output, x, e) < 0)
      return -1;
  }
  return 0;
}

static void exec_stdin_watch(exec_sess *x, bool on) {
  if (x->in_fd < 0 || x->in_watched == on)
    return;
  if (on && loop_fd_add(x->l, x->in_fd, EPOLLOUT, "exec stdin", exec_on_stdin, x, NULL) < 0)
    return;
  if (!on)
    loop_fd_del(x->l, x->in_fd);
  x->in_watched = on;
}

static void exec_kill(exec_sess *x, int sig) {
  rr_err e = {0};
  char q[RR_ERR_MSG_MAX + 16];
  /* not once exited: its pid may be another process's by now (its cgroup is gone then) */
  if (x->started && !x->exited && job_cgroup_signal_tree(x->pid, x->cg, sig, &e) < 0)
    rr_warn("exec: cannot kill the command's cgroup", "error=%s", rr_log_quote(q, sizeof q, e.msg));
}

/* The main process ended (or the stream is gone): final counters, then the
 * cgroup goes, with anything still in it. */
static void exec_cgroup_end(exec_sess *x) {
  if (!x->cg)
    return;
  rr_err e = {0};
  char q[RR_ERR_MSG_MAX + 16];
  if (job_cgroup_finish(x->ctx->l, x->cg, &x->usage, &x->has_usage, &e) < 0)
    rr_warn("exec: cgroup at the command's end", "error=%s", rr_log_quote(q, sizeof q, e.msg));
  x->cg = NULL;
}

static void exec_finish(exec_sess *x, const char *note) {
  if (x->done)
    return;
  x->done = true;
  Runrpc__V1__ExitStatus st = RUNRPC__V1__EXIT_STATUS__INIT;
  char reason[160];
  const char *base = "signaled";
  if (x->timed_out)
    base = "timeout";
  else if (x->status.si_code == CLD_EXITED)
    base = "exited";
  else if (x->has_usage && job_cgroup_oom_killed(&x->status, &x->usage))
    base = "oom-killed";
  Runrpc__V1__Usage usage;
  if (x->has_usage) {
    convert_usage(&x->usage, &usage);
    st.usage = &usage;
  }
  if (x->status.si_code == CLD_EXITED)
    st.exit_code = x->status.si_status;
  else
    st.signal = x->status.si_status;
  snprintf(reason, sizeof reason, "%s%s", base, note ? note : "");
  st.reason = reason;
  Runrpc__V1__ExecResponse resp = RUNRPC__V1__EXEC_RESPONSE__INIT;
  resp.msg_case = RUNRPC__V1__EXEC_RESPONSE__MSG_EXIT;
  resp.exit = &st;
  rr_err e = {0};
  if (rpc_call_send(x->c, &resp.base, &e) < 0)
    rpc_call_finish(x->c, e.code, e.msg);
  else
    rpc_call_finish(x->c, RR_OK, NULL);
}

static void exec_maybe_finish(exec_sess *x) {
  if (x->exited && x->out_fd[0] < 0 && x->out_fd[1] < 0)
    exec_finish(x, NULL);
}

/* Read what the pipes have while the client keeps up. */
static void exec_pump_output(exec_sess *x) {
  for (int s = 0; s < 2; s++) {
    while (x->out_fd[s] >= 0) {
      if (rpc_call_queued(x->c) > RPC_CALL_HIGH_WATER) {
        /* stop reading: the pipe fills and the command blocks */
        if (!x->out_paused) {
          x->out_paused = true;
          exec_output_watch(x, false, NULL);
        }
        return;
      }
      ssize_t n = read(x->out_fd[s], exec_buf, sizeof exec_buf);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && errno == EAGAIN)
        break;
      if (n <= 0) {
        exec_close_fd(x, &x->out_fd[s]);
        break;
      }
      Runrpc__V1__ExecResponse resp = RUNRPC__V1__EXEC_RESPONSE__INIT;
      resp.msg_case =
          s == 0 ? RUNRPC__V1__EXEC_RESPONSE__MSG_STDOUT : RUNRPC__V1__EXEC_RESPONSE__MSG_STDERR;
      if (s == 0)
        resp.stdout = (ProtobufCBinaryData){.len = (size_t)n, .data = exec_buf};
      else
        resp.stderr = (ProtobufCBinaryData){.len = (size_t)n, .data = exec_buf};
      rr_err e = {0};
      if (rpc_call_send(x->c, &resp.base, &e) < 0) {
        rpc_call_finish(x->c, e.code, e.msg);
        return;
      }
    }
  }
  exec_maybe_finish(x);
}

static void exec_on_output(loop *l, int fd, uint32_t events, void *data) { exec_pump_output(data); }

static void exec_on_writable(rpc_call *c) {
  exec_sess *x = rpc_call_data(c);
  if (!x || !x->started)
    return;
  if (x->out_paused) {
    x->out_paused = false;
    rr_err e = {0};
    if (exec_output_watch(x, true, &e) < 0) {
      exec_kill(x, SIGKILL);
      rpc_call_finish(c, e.code, e.msg);
      return;
    }
  }
  exec_pump_output(x);
}

static void exec_stdin_flush(exec_sess *x) {
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
  if (x->in_fd < 0) {
    while (x->head) {
      stdin_chunk *ch = x->head;
      x->head = ch->next;
      free(ch);
    }
    x->tail = NULL;
    x->stdin_queued = 0;
  }
  if (x->in_fd >= 0 && !x->head) {
    exec_stdin_watch(x, false);
    if (x->stdin_close)
      exec_close_fd(x, &x->in_fd); /* the command sees EOF */
  }
  if (x->recv_paused && x->stdin_queued < EXEC_STDIN_LOW) {
    x->recv_paused = false;
    rpc_call_pause_recv(x->c, false);
  }
}

static void exec_on_stdin(loop *l, int fd, uint32_t events, void *data) { exec_stdin_flush(data); }

static void exec_on_drain_timer(loop *l, void *data) {
  exec_sess *x = data;
  x->drain_timer = 0;
  if (x->done)
    return;
  if (x->out_paused) { /* the client is still taking output: not stuck */
    x->drain_timer = loop_timer_add(l, EXEC_DRAIN_MS, exec_on_drain_timer, x);
    return;
  }
  exec_pump_output(x);
  if (x->done)
    return;
  exec_close_fd(x, &x->out_fd[0]);
  exec_close_fd(x, &x->out_fd[1]);
  exec_finish(x, " (output pipes still held open by a leftover process 2 s after exit;"
                 " later output not sent)");
}

static void exec_on_exit(void *data, pid_t pid, const siginfo_t *si, const struct rusage *ru) {
  exec_sess *x = data;
  x->rw = NULL;
  x->exited = true;
  if (si)
    x->status = *si;
  if (ru && !x->cg) { /* a cgroup's numbers count every process in it: those win */
    job_usage_from_rusage(ru, &x->usage);
    x->has_usage = true;
  }
  loop_timer_cancel(x->l, x->timeout_timer);
  loop_timer_cancel(x->l, x->kill_timer);
  x->timeout_timer = x->kill_timer = 0;
  if (x->timed_out) /* we were ending the whole group: no stragglers */
    kill(-x->pid, SIGKILL);
  exec_cgroup_end(x);
  exec_close_fd(x, &x->in_fd);
  exec_pump_output(x);
  if (!x->done)
    x->drain_timer = loop_timer_add(x->l, EXEC_DRAIN_MS, exec_on_drain_timer, x);
}

static void exec_on_kill_timer(loop *l, void *data) {
  exec_sess *x = data;
  x->kill_timer = 0;
  exec_kill(x, SIGKILL);
}

static void exec_on_timeout(loop *l, void *data) {
  exec_sess *x = data;
  x->timeout_timer = 0;
  x->timed_out = true;
  exec_kill(x, SIGTERM);
  exec_kill(x, SIGCONT); /* a stopped command acts on the TERM only once continued */
  x->kill_timer = loop_timer_add(l, EXEC_GRACE_MS, exec_on_kill_timer, x);
  if (!x->kill_timer) /* no memory to wait: end it now rather than never */
    exec_kill(x, SIGKILL);
}

static int exec_start(exec_sess *x, const Rundwire__ExecStart *st, rr_err *e) {
  job_request r;
  /* any identity may run commands; it decides which secrets they get */
  _cleanup_(authz_identity_clear) authz_identity id = {0};
  /* a command is a process and 4 fds: the caller's running-jobs quota and
   * the fd reserve hold for it as for a Start */
  if (rund_call_identity(x->c, &id, e) < 0 || quota_start_check(x->ctx->quota, &id, e) < 0)
    return -1;
  if (convert_command(st->command, &r, e) < 0)
    return -1;
  if (st->timeout_case == RUNDWIRE__EXEC_START__TIMEOUT_TIMEOUT_MS) {
    r.has_timeout = true;
    r.timeout_ms = st->timeout_ms;
  }
  int rc = -1, in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
  char **child_env = NULL;
  spawn_ids ids;
  bool run_as;
  if (job_request_validate(&r, e) < 0 || convert_limits(st->limits, &r, e) < 0 ||
      rund_env_resolve(x->ctx, &id, &r, &child_env, e) < 0 ||
      rund_call_run_as(x->c, &ids, &run_as, e) < 0)
    goto out;
  if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
    rr_err_sys(e, RR_RESOURCE_EXHAUSTED, errno, "cannot create pipes");
    goto out;
  }
  spawn_opts o = {.path = r.path,
                  .args = (const char *const *)r.args,
                  .nargs = r.nargs,
                  .env_keys = (const char *const *)r.env_keys,
                  .env_values = (const char *const *)child_env,
                  .nenv = r.nenv,
                  .workdir = r.workdir,
                  .stdin_fd = in[0],
                  .stdout_fd = out[1],
                  .stderr_fd = err[1],
                  .ids = run_as ? &ids : NULL};
  if (r.has_timeout && loop_timer_reserve(x->l, 2) < 0) {
    rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory for the command's timeout");
    goto out;
  }
  if (r.limits) {
    char name[ULID_LEN + 8] = "exec-";
    if (ulid_gen_next(&x->ctx->exec_ids, 0, name + 5, e) < 0 ||
        job_cgroup_create(x->ctx->cgroups, name, r.limits, &o, &x->cg, e) < 0)
      goto out;
  }
  spawn_result sr;
  if (spawn_process(&o, &sr, e) < 0) {
    rund_spawn_error_scrub(&r, child_env, e);
    exec_cgroup_end(x);
    goto out;
  }
  rund_secrets_log_use(&id, &r, "exec");
  x->started = true;
  x->pid = sr.pid;
  x->in_fd = in[1];
  x->out_fd[0] = out[0];
  x->out_fd[1] = err[0];
  in[1] = out[0] = err[0] = -1;
  for (int i = 0; i < 3; i++) {
    int fd = i == 0 ? x->in_fd : x->out_fd[i - 1], fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
      /* a blocking pipe would stall the loop: do not run it */
      rr_err_sys(e, RR_INTERNAL, errno, "cannot make the command's pipes non-blocking");
      kill(-sr.pid, SIGKILL);
      close(sr.pidfd); /* unwatched: the orphan reaper reaps it */
      goto out;
    }
  }
  /* the started_pid message goes first, before any output */
  Runrpc__V1__ExecResponse resp = RUNRPC__V1__EXEC_RESPONSE__INIT;
  resp.msg_case = RUNRPC__V1__EXEC_RESPONSE__MSG_STARTED_PID;
  resp.started_pid = sr.pid;
  rpc_call_send(x->c, &resp.base, NULL);
  if (exec_output_watch(x, true, e) < 0 ||
      reaper_watch_add(x->ctx->reaper, sr.pid, sr.pidfd, exec_on_exit, x, &x->rw, e) < 0) {
    kill(-sr.pid, SIGKILL);
    goto out; /* on_close closes the fds; the orphan reaper reaps */
  }
  if (r.has_timeout)
    x->timeout_timer = loop_timer_add(x->l, r.timeout_ms, exec_on_timeout, x);
  rc = 0;
out:
  for (int i = 0; i < 2; i++) {
    if (in[i] >= 0)
      close(in[i]);
    if (out[i] >= 0)
      close(out[i]);
    if (err[i] >= 0)
      close(err[i]);
  }
  secrets_values_free(child_env, r.nenv);
  job_request_free(&r);
  return rc;
}

static void exec_fail(exec_sess *x, const rr_err *e) {
  exec_kill(x, SIGKILL);
  x->done = true;
  rund_call_fail(x->c, e);
}

static void exec_on_message(rpc_call *c, ProtobufCMessage *msg) {
  Rundwire__ExecRequest *req = (Rundwire__ExecRequest *)msg;
  exec_sess *x = rpc_call_data(c);
  rr_err e = {0};
  if (!x || x->done)
    goto out;
  if (!x->started) {
    if (req->msg_case != RUNDWIRE__EXEC_REQUEST__MSG_START) {
      rr_err_set(&e, RR_INVALID_ARGUMENT, "the first ExecRequest must be start");
      exec_fail(x, &e);
    } else if (exec_start(x, req->start, &e) < 0)
      exec_fail(x, &e);
    goto out;
  }
  switch (req->msg_case) {
  case RUNDWIRE__EXEC_REQUEST__MSG_START:
    rr_err_set(&e, RR_INVALID_ARGUMENT, "start sent twice on one Exec stream");
    exec_fail(x, &e);
    break;
  case RUNDWIRE__EXEC_REQUEST__MSG_STDIN:
    if (x->stdin_close) {
      rr_err_set(&e, RR_INVALID_ARGUMENT, "stdin sent after close_stdin");
      exec_fail(x, &e);
      break;
    }
    if (x->in_fd < 0 || !req->stdin.len)
      break; /* the command closed its stdin or exited: discard */
    stdin_chunk *ch = malloc(sizeof *ch + req->stdin.len);
    if (!ch) {
      rr_err_set(&e, RR_RESOURCE_EXHAUSTED, "out of memory queueing stdin");
      exec_fail(x, &e);
      break;
    }
    ch->next = NULL;
    ch->len = req->stdin.len;
    ch->off = 0;
    memcpy(ch->data, req->stdin.data, ch->len);
    if (x->tail)
      x->tail->next = ch;
    else
      x->head = ch;
    x->tail = ch;
    x->stdin_queued += ch->len;
    if (x->stdin_queued > EXEC_STDIN_HIGH && !x->recv_paused) {
      x->recv_paused = true;
      rpc_call_pause_recv(c, true);
    }
    exec_stdin_flush(x);
    break;
  case RUNDWIRE__EXEC_REQUEST__MSG_CLOSE_STDIN:
    x->stdin_close = true;
    exec_stdin_flush(x);
    break;
  case RUNDWIRE__EXEC_REQUEST__MSG_SIGNAL:
    if (signame_check_number(req->signal, "signal", &e) < 0) {
      exec_fail(x, &e);
      break;
    }
    exec_kill(x, req->signal); /* no-op once exited: a late Ctrl-C races the exit */
    break;
  default:
    rr_err_set(&e, RR_INVALID_ARGUMENT,
               "empty ExecRequest (set start, stdin, close_stdin or signal)");
    exec_fail(x, &e);
  }
out:
  protobuf_c_message_free_unpacked(msg, NULL);
}

static void exec_on_half_close(rpc_call *c) {
  exec_sess *x = rpc_call_data(c);
  if (!x || x->done)
    return;
  if (!x->started) {
    rr_err e = {0};
    rr_err_set(&e, RR_INVALID_ARGUMENT, "Exec stream closed before a start message");
    exec_fail(x, &e);
    return;
  }
  x->stdin_close = true;
  exec_stdin_flush(x);
}

static void exec_on_close(rpc_call *c, rpc_close_reason reason) {
  exec_sess *x = rpc_call_data(c);
  if (!x)
    return;
  /* the client went away (or we are shutting down) before the end: kill */
  exec_kill(x, SIGKILL);
  exec_cgroup_end(x);
  reaper_watch_forget(x->rw); /* still reaped, no callback */
  loop_timer_cancel(x->l, x->timeout_timer);
  loop_timer_cancel(x->l, x->kill_timer);
  loop_timer_cancel(x->l, x->drain_timer);
  exec_close_fd(x, &x->in_fd);
  exec_close_fd(x, &x->out_fd[0]);
  exec_close_fd(x, &x->out_fd[1]);
  while (x->head) {
    stdin_chunk *ch = x->head;
    x->head = ch->next;
    free(ch);
  }
  free(x);
}

/* The session exists from the first callback; on_message creates it lazily. */
static void exec_on_message_first(rpc_call *c, ProtobufCMessage *msg) {
  if (!rpc_call_data(c)) {
    exec_sess *x = calloc(1, sizeof *x);
    if (!x) {
      rpc_call_finish(c, RR_RESOURCE_EXHAUSTED, "out of memory");
      protobuf_c_message_free_unpacked(msg, NULL);
      return;
    }
    x->c = c;
    x->ctx = rpc_call_method_data(c);
    x->l = rpc_call_loop(c);
    x->in_fd = x->out_fd[0] = x->out_fd[1] = -1;
    rpc_call_set_data(c, x);
  }
  exec_on_message(c, msg);
}

static void exec_on_half_close_first(rpc_call *c) {
  if (!rpc_call_data(c)) {
    rpc_call_finish(c, RR_INVALID_ARGUMENT, "Exec stream closed before a start message");
    return;
  }
  exec_on_half_close(c);
}

int svc_exec_register(rpc_server *s, rund_ctx *ctx, rr_err *e) {
  const rpc_method m = {"/runrpc.v1.Jobs/Exec",
                        &rundwire__exec_request__descriptor,
                        true,
                        true,
                        exec_on_message_first,
                        exec_on_half_close_first,
                        exec_on_writable,
                        exec_on_close,
                        ctx};
  return rpc_server_add_method(s, &m, e);
}
