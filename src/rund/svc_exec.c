/* Exec: one command per bidi stream, mapped onto an exec session
 * (jobs/exec_session.h): the first message starts it, stdin and
 * close_stdin feed it (the stream is paused while its stdin queue is full),
 * signal messages go to the command's process group until it exits, resize
 * sets the window of its terminal (start's tty), its
 * output is sent while the call's send queue has room, the exit status
 * last. A cancelled or broken stream kills the command. */
#include <stdio.h>
#include <stdlib.h>

#include "common/log.h"
#include "common/util.h"
#include "jobs/exec_session.h"
#include "jobs/exec_tty.h"
#include "exec_in.h"
#include "rund.h"

typedef struct exec_call {
  rpc_call *c;
  rund_ctx *ctx;
  exec_session *x;
  pid_t pid;
  rund_exec_entry *listed;    /* shown by List while it runs */
  sb_profile profile;         /* applied */
  char profile_requested[16]; /* as named ("" none; longer names are refused) */
  char *image_root;           /* --image: released when the call ends */
  uint8_t *fill;              /* the call's in-place output buffer, being read into */
  prepare_wait *wait;         /* its image root being copied (recv paused meanwhile) */
  uint64_t t0;                /* when its start came (spawn latency) */
} exec_call;

static void exec_on_started(void *data, pid_t pid) {
  exec_call *ec = data;
  ec->pid = pid;
  Runrpc__V1__ExecResponse resp = RUNRPC__V1__EXEC_RESPONSE__INIT;
  resp.msg_case = RUNRPC__V1__EXEC_RESPONSE__MSG_STARTED_PID;
  resp.started_pid = pid;
  rpc_call_send(ec->c, &resp.base, NULL);
}

static bool exec_output_blocked(void *data) {
  exec_call *ec = data;
  return rpc_call_queued(ec->c) > RPC_CALL_HIGH_WATER || rpc_call_splice_pending(ec->c);
}

/* stdout/stderr moved from the command's pipe to the socket by the kernel
 * (a plain unix or TCP connection): no copy in rund at all */
static int exec_output_splice(void *data, int stream, int fd, size_t len) {
  exec_call *ec = data;
  if (!rpc_call_can_splice(ec->c))
    return 1;
  rr_err e = {0};
  if (rpc_call_send_spliced(ec->c,
                            stream == 0 ? RUNRPC__V1__EXEC_RESPONSE__MSG_STDOUT
                                        : RUNRPC__V1__EXEC_RESPONSE__MSG_STDERR,
                            fd, len < RPC_CALL_SPLICE_MAX ? len : RPC_CALL_SPLICE_MAX, &e) < 0) {
    rpc_call_finish(ec->c, e.code, e.msg);
    return -1;
  }
  return 0;
}

/* stdout/stderr (a response of that one bytes field) read straight into
 * the buffer that goes out */
static uint8_t *exec_output_buf(void *data, size_t *cap) {
  exec_call *ec = data;
  ec->fill = rpc_call_bytes_buf(ec->c);
  *cap = RPC_CALL_BYTES_MAX;
  return ec->fill;
}

static int exec_on_output(void *data, int stream, const uint8_t *buf, size_t len) {
  exec_call *ec = data;
  if (buf == ec->fill) { /* read in place into the call's buffer */
    rr_err e = {0};
    ec->fill = NULL;
    if (rpc_call_send_bytes(ec->c,
                            stream == 0 ? RUNRPC__V1__EXEC_RESPONSE__MSG_STDOUT
                                        : RUNRPC__V1__EXEC_RESPONSE__MSG_STDERR,
                            len, &e) < 0) {
      rpc_call_finish(ec->c, e.code, e.msg);
      return -1;
    }
    return 0;
  }
  Runrpc__V1__ExecResponse resp = RUNRPC__V1__EXEC_RESPONSE__INIT;
  ProtobufCBinaryData bytes = {.len = len, .data = (uint8_t *)buf};
  if (stream == 0) {
    resp.msg_case = RUNRPC__V1__EXEC_RESPONSE__MSG_STDOUT;
    resp.stdout = bytes;
  } else {
    resp.msg_case = RUNRPC__V1__EXEC_RESPONSE__MSG_STDERR;
    resp.stderr = bytes;
  }
  rr_err e = {0};
  if (rpc_call_send(ec->c, &resp.base, &e) < 0) {
    rpc_call_finish(ec->c, e.code, e.msg);
    return -1;
  }
  return 0;
}

static void exec_stdin_pause(void *data, bool pause) {
  exec_call *ec = data;
  rpc_call_pause_recv(ec->c, pause);
}

static void exec_on_finished(void *data, const exec_session_end *end) {
  exec_call *ec = data;
  rund_exec_list_remove(ec->ctx, ec->listed);
  ec->listed = NULL;
  Runrpc__V1__ExitStatus st = RUNRPC__V1__EXIT_STATUS__INIT;
  Runrpc__V1__Usage usage;
  if (end->usage) {
    convert_usage(end->usage, &usage);
    st.usage = &usage;
  }
  if (end->status->si_code == CLD_EXITED)
    st.exit_code = end->status->si_status;
  else
    st.signal = end->status->si_status;
  st.reason = (char *)end->reason;
  st.profile = (char *)sb_profile_name(ec->profile);
  st.profile_requested = ec->profile_requested;
  Runrpc__V1__ExecResponse resp = RUNRPC__V1__EXEC_RESPONSE__INIT;
  resp.msg_case = RUNRPC__V1__EXEC_RESPONSE__MSG_EXIT;
  resp.exit = &st;
  rr_err e = {0};
  if (rpc_call_send(ec->c, &resp.base, &e) < 0)
    rpc_call_finish(ec->c, e.code, e.msg);
  else
    rpc_call_finish(ec->c, RR_OK, NULL);
}

static void exec_warn(void *data, const char *what, const char *error) {
  char q[RR_ERR_MSG_MAX + 16];
  rr_warn(what, "error=%s", rr_log_quote(q, sizeof q, error));
}

static const exec_session_ops exec_ops = {
    .started = exec_on_started,
    .output_blocked = exec_output_blocked,
    .output = exec_on_output,
    .output_buf = exec_output_buf,
    .output_splice = exec_output_splice,
    .stdin_pause = exec_stdin_pause,
    .finished = exec_on_finished,
    .warn = exec_warn,
};

/* tty, window and term: the terminal, or none (window and term refused). */
static int exec_tty_decode(exec_call *ec, const Rundwire__ExecStart *st, rr_err *e) {
  if (!st->tty) {
    if (st->window || st->term.len)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s without tty", st->window ? "window" : "term");
    return 0;
  }
  exec_tty t;
  const unsigned *rows = st->window ? &st->window->rows : NULL;
  const unsigned *cols = st->window ? &st->window->cols : NULL;
  if (exec_tty_init(&t, rows, cols, st->term.data, st->term.len, e) < 0)
    return -1;
  return exec_session_set_tty(ec->x, &t, e);
}

/* Shown by List while it runs; a failure here only costs that (logged). */
static void exec_list_add(exec_call *ec, const prepared *p) {
  char id[ULID_LEN + 1], q[RR_ERR_MSG_MAX + 16];
  rr_err e = {0};
  if (ulid_gen_next(&ec->ctx->exec_ids, (uint64_t)(rr_now_unix_ns() / 1000000), id, &e) < 0 ||
      rund_exec_list_add(ec->ctx, id, ec->pid, &p->req, &p->id, &ec->listed, &e) < 0)
    rr_warn("exec not listed", "error=%s", rr_log_quote(q, sizeof q, e.msg));
}

/* A prepared Exec started (its output then streams). */
static int exec_run(exec_call *ec, prepared *p, rr_err *e) {
  job_start_opts o = prepare_start_opts(p, false);
  ec->profile = p->req.sandbox.profile;
  snprintf(ec->profile_requested, sizeof ec->profile_requested, "%s",
           p->req.sandbox.profile_requested ? p->req.sandbox.profile_requested : "");
  int rc = exec_session_start(ec->x, &p->req, &o, e);
  if (exec_session_started(ec->x) && p->image_root) {
    rund_image_root_detach(ec->ctx, p->image_root);
    ec->image_root = p->image_root;
    p->image_root = NULL;
  }
  if (exec_session_started(ec->x)) {
    rund_metrics_spawned(ec->ctx, rr_mono_us() - ec->t0);
    rund_secrets_log_use(&p->id, &p->req, "exec");
  } else if (rc < 0)
    rund_spawn_error_scrub(&p->req, p->child_env, e);
  if (rc == 0)
    exec_list_add(ec, p);
  prepare_free(p);
  return rc;
}

static void exec_fail(exec_call *ec, const rr_err *e);

/* Its image root copied: the messages held back meanwhile come after. */
static void exec_prepared(void *data, prepared *p, const rr_err *perr) {
  exec_call *ec = data;
  rr_err e = *perr;
  ec->wait = NULL;
  rpc_call_pause_recv(ec->c, false);
  if (!p || exec_run(ec, p, &e) < 0)
    exec_fail(ec, &e);
}

static int exec_start(exec_call *ec, const Rundwire__ExecStart *st, rr_err *e) {
  if (exec_tty_decode(ec, st, e) < 0)
    return -1;
  exec_in job_in;
  if (exec_in_open(ec->c, st, &job_in, e) < 0)
    return -1;
  /* any identity may run commands; it decides which secrets they get */
  prepared p;
  prepare_in in = {.command = job_in.job && st->command ? &job_in.command : st->command,
                   .has_timeout = st->timeout_case == RUNDWIRE__EXEC_START__TIMEOUT_TIMEOUT_MS,
                   .timeout_ms = st->timeout_ms,
                   .has_timeout_grace = st->timeout_grace_case ==
                                        RUNDWIRE__EXEC_START__TIMEOUT_GRACE_TIMEOUT_GRACE_MS,
                   .timeout_grace_ms = st->timeout_grace_ms,
                   .limits = st->limits,
                   .sandbox = st->sandbox,
                   .policy = &ec->ctx->sandbox};
  if (job_in.job) /* the job's sandbox, set below */
    in.policy = NULL;
  ec->t0 = rr_mono_us();
  int rc = prepare_request(ec->c, &in, &p, exec_prepared, ec, &ec->wait, e);
  if (rc == 1) { /* its root is being copied (an image: never with a job) */
    exec_in_free(&job_in);
    rpc_call_pause_recv(ec->c, true);
    return 0;
  }
  if (rc == 0 && job_in.job && exec_in_apply(&job_in, &p, ec->x, e) < 0) {
    prepare_free(&p);
    rc = -1;
  }
  if (rc == 0)
    rc = exec_run(ec, &p, e);
  exec_in_free(&job_in); /* the sandbox joined (or failed) */
  return rc;
}

static void exec_fail(exec_call *ec, const rr_err *e) {
  exec_session_abort(ec->x);
  rund_call_fail(ec->c, e);
}

static void exec_on_message(rpc_call *c, ProtobufCMessage *msg) {
  Rundwire__ExecRequest *req = (Rundwire__ExecRequest *)msg;
  exec_call *ec = rpc_call_data(c);
  rr_err e = {0};
  if (!ec || exec_session_done(ec->x))
    goto out;
  if (!exec_session_started(ec->x)) {
    if (req->msg_case != RUNDWIRE__EXEC_REQUEST__MSG_START) {
      rr_err_set(&e, RR_INVALID_ARGUMENT, "the first ExecRequest must be start%s",
                 req->msg_case == RUNDWIRE__EXEC_REQUEST__MSG_RESIZE ? " (resize before start)"
                                                                     : "");
      exec_fail(ec, &e);
    } else if (exec_start(ec, req->start, &e) < 0)
      exec_fail(ec, &e);
    goto out;
  }
  switch (req->msg_case) {
  case RUNDWIRE__EXEC_REQUEST__MSG_START:
    rr_err_set(&e, RR_INVALID_ARGUMENT, "start sent twice on one Exec stream");
    exec_fail(ec, &e);
    break;
  case RUNDWIRE__EXEC_REQUEST__MSG_STDIN:
    if (exec_session_stdin_write(ec->x, req->stdin.data, req->stdin.len, &e) < 0)
      exec_fail(ec, &e);
    break;
  case RUNDWIRE__EXEC_REQUEST__MSG_CLOSE_STDIN:
    exec_session_stdin_close(ec->x);
    break;
  case RUNDWIRE__EXEC_REQUEST__MSG_SIGNAL:
    if (exec_session_signal(ec->x, req->signal, &e) < 0)
      exec_fail(ec, &e);
    break;
  case RUNDWIRE__EXEC_REQUEST__MSG_RESIZE:
    if (exec_session_resize(ec->x, req->resize ? req->resize->rows : 0,
                            req->resize ? req->resize->cols : 0, &e) < 0)
      exec_fail(ec, &e);
    break;
  default:
    rr_err_set(&e, RR_INVALID_ARGUMENT,
               "empty ExecRequest (set start, stdin, close_stdin, signal or resize)");
    exec_fail(ec, &e);
  }
out:
  protobuf_c_message_free_unpacked(msg, NULL);
}

static void exec_on_writable(rpc_call *c) {
  exec_call *ec = rpc_call_data(c);
  rr_err e = {0};
  if (ec && exec_session_output_resume(ec->x, &e) < 0)
    rpc_call_finish(c, e.code, e.msg);
}

static void exec_on_close(rpc_call *c, rpc_close_reason reason) {
  exec_call *ec = rpc_call_data(c);
  if (!ec)
    return;
  /* the client went away (or we are shutting down) before the end: kill */
  rund_exec_list_remove(ec->ctx, ec->listed);
  prepare_wait_cancel(ec->wait);
  exec_session_free(ec->x);
  if (ec->image_root) {
    rund_image_root_release(ec->ctx, ec->image_root);
    free(ec->image_root);
  }
  free(ec);
}

/* The session exists from the first message; a stream without one has none. */
static void exec_on_message_first(rpc_call *c, ProtobufCMessage *msg) {
  if (!rpc_call_data(c)) {
    rund_ctx *ctx = rpc_call_method_data(c);
    exec_call *ec = calloc(1, sizeof *ec);
    exec_session_env env = {
        .l = rpc_call_loop(c), .r = ctx->reaper, .cgroups = ctx->cgroups, .names = &ctx->exec_ids};
    rr_err e = {0};
    if (!ec || exec_session_new(&env, &exec_ops, ec, &ec->x, &e) < 0) {
      free(ec);
      rpc_call_finish(c, RR_RESOURCE_EXHAUSTED, "out of memory");
      protobuf_c_message_free_unpacked(msg, NULL);
      return;
    }
    ec->c = c;
    ec->ctx = ctx;
    rpc_call_set_data(c, ec);
  }
  exec_on_message(c, msg);
}

static void exec_on_half_close(rpc_call *c) {
  exec_call *ec = rpc_call_data(c);
  if (!ec) {
    rpc_call_finish(c, RR_INVALID_ARGUMENT, "Exec stream closed before a start message");
    return;
  }
  if (exec_session_done(ec->x))
    return;
  if (!exec_session_started(ec->x)) {
    rr_err e = {0};
    rr_err_set(&e, RR_INVALID_ARGUMENT, "Exec stream closed before a start message");
    exec_fail(ec, &e);
    return;
  }
  exec_session_stdin_close(ec->x);
}

int svc_exec_register(rpc_server *s, rund_ctx *ctx, rr_err *e) {
  const rpc_method m = {"/runrpc.v1.Jobs/Exec",
                        &rundwire__exec_request__descriptor,
                        true,
                        true,
                        exec_on_message_first,
                        exec_on_half_close,
                        exec_on_writable,
                        exec_on_close,
                        ctx};
  return rpc_server_add_method(s, &m, e);
}
