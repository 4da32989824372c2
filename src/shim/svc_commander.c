/* commander.Commander/Shell: one command per bidi stream on an exec session
 * (jobs/exec_session.h). The first message starts it; stdin bytes of every
 * message feed it (the stream is paused while its queue is full); the
 * client's half-close or stdin_eof closes its stdin; output goes out while
 * the call's send queue has room, the exit last. A stream that ends early
 * (client gone, connection lost) kills the command's process group. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "shim/commander.pb-c.h"
#include "common/log.h"
#include "common/util.h"
#include "jobs/exec_session.h"
#include "jobs/request.h"
#include "shim/shim.h"

typedef struct shell_call {
  rpc_call *c;
  exec_session *x;
  bool stdin_closed;
  uint8_t *fill; /* the call's in-place output buffer, being read into */
} shell_call;

static void shell_send(shell_call *sc, Commander__Output *out) {
  rr_err e = {0};
  if (rpc_call_send(sc->c, &out->base, &e) < 0)
    rpc_call_finish(sc->c, e.code, e.msg);
}

static void shell_on_started(void *data, pid_t pid) {
  Commander__Started st = COMMANDER__STARTED__INIT;
  st.pid = (uint32_t)pid;
  Commander__Output out = COMMANDER__OUTPUT__INIT;
  out.kind_case = COMMANDER__OUTPUT__KIND_STARTED;
  out.started = &st;
  shell_send(data, &out);
}

static bool shell_output_blocked(void *data) {
  shell_call *sc = data;
  return rpc_call_queued(sc->c) > RPC_CALL_HIGH_WATER;
}

/* stdout/stderr (a response of that one bytes field) read straight into
 * the buffer that goes out */
static uint8_t *shell_output_buf(void *data, size_t *cap) {
  shell_call *sc = data;
  sc->fill = rpc_call_bytes_buf(sc->c);
  *cap = RPC_CALL_BYTES_MAX;
  return sc->fill;
}

static int shell_on_output(void *data, int stream, const uint8_t *buf, size_t len) {
  shell_call *sc = data;
  if (buf == sc->fill) { /* read in place into the call's buffer */
    rr_err e = {0};
    sc->fill = NULL;
    if (rpc_call_send_bytes(
            sc->c, stream == 0 ? COMMANDER__OUTPUT__KIND_STDOUT : COMMANDER__OUTPUT__KIND_STDERR,
            len, &e) < 0) {
      rpc_call_finish(sc->c, e.code, e.msg);
      return -1;
    }
    return 0;
  }
  Commander__Output out = COMMANDER__OUTPUT__INIT;
  ProtobufCBinaryData bytes = {.len = len, .data = (uint8_t *)buf};
  if (stream == 0) {
    out.kind_case = COMMANDER__OUTPUT__KIND_STDOUT;
    out.stdout = bytes;
  } else {
    out.kind_case = COMMANDER__OUTPUT__KIND_STDERR;
    out.stderr = bytes;
  }
  rr_err e = {0};
  if (rpc_call_send(sc->c, &out.base, &e) < 0) {
    rpc_call_finish(sc->c, e.code, e.msg);
    return -1;
  }
  return 0;
}

static void shell_stdin_pause(void *data, bool pause) {
  shell_call *sc = data;
  rpc_call_pause_recv(sc->c, pause);
}

static void shell_on_finished(void *data, const exec_session_end *end) {
  shell_call *sc = data;
  Commander__Exit ex = COMMANDER__EXIT__INIT;
  if (end->status->si_code == CLD_EXITED) {
    ex.code = end->status->si_status;
  } else {
    ex.signal = end->status->si_status;
    ex.code = 128 + ex.signal;
  }
  ex.timed_out = end->reason && !strncmp(end->reason, "timeout", 7);
  Commander__Output out = COMMANDER__OUTPUT__INIT;
  out.kind_case = COMMANDER__OUTPUT__KIND_EXIT;
  out.exit = &ex;
  rr_err e = {0};
  if (rpc_call_send(sc->c, &out.base, &e) < 0)
    rpc_call_finish(sc->c, e.code, e.msg);
  else
    rpc_call_finish(sc->c, RR_OK, NULL);
}

static void shell_warn(void *data, const char *what, const char *error) {
  char q[RR_ERR_MSG_MAX + 16];
  rr_warn(what, "error=%s", rr_log_quote(q, sizeof q, error));
}

static const exec_session_ops shell_ops = {
    .started = shell_on_started,
    .output_blocked = shell_output_blocked,
    .output = shell_on_output,
    .output_buf = shell_output_buf,
    .stdin_pause = shell_stdin_pause,
    .finished = shell_on_finished,
    .warn = shell_warn,
};

static int shell_start(shell_call *sc, const Commander__Command *cmd, rr_err *e) {
  shim_command_in in = {.argv = cmd->argv,
                        .nargv = cmd->n_argv,
                        .shell = cmd->shell,
                        .nenv = cmd->n_env,
                        .env = (void *const *)cmd->env,
                        .cwd = cmd->cwd,
                        .timeout_ms = cmd->timeout_ms};
  job_request r;
  if (shim_request_build(&in, &r, e) < 0)
    return -1;
  int rc = exec_session_start(sc->x, &r, NULL, e);
  job_request_free(&r);
  return rc;
}

static void shell_fail(shell_call *sc, const rr_err *e) {
  exec_session_abort(sc->x);
  rpc_call_finish(sc->c, e->code ? e->code : RR_UNKNOWN, e->msg);
}

/* Later messages carry stdin only. */
static int shell_check_later(const Commander__Command *cmd, rr_err *e) {
  if (cmd->n_argv || (cmd->shell && *cmd->shell) || cmd->n_env || (cmd->cwd && *cmd->cwd) ||
      cmd->timeout_ms)
    return rr_err_set(e, RR_INVALID_ARGUMENT,
                      "only the first Command may set argv, shell, env, cwd or timeout_ms "
                      "(later ones carry stdin)");
  return 0;
}

static void shell_feed(shell_call *sc, const Commander__Command *cmd) {
  rr_err e = {0};
  if (cmd->stdin.len && sc->stdin_closed) {
    rr_err_set(&e, RR_INVALID_ARGUMENT, "stdin bytes after stdin_eof");
    shell_fail(sc, &e);
    return;
  }
  if (cmd->stdin.len && exec_session_stdin_write(sc->x, cmd->stdin.data, cmd->stdin.len, &e) < 0) {
    shell_fail(sc, &e);
    return;
  }
  if (cmd->stdin_eof && !sc->stdin_closed) {
    sc->stdin_closed = true;
    exec_session_stdin_close(sc->x);
  }
}

static void shell_on_message(rpc_call *c, ProtobufCMessage *msg) {
  Commander__Command *cmd = (Commander__Command *)msg;
  shell_call *sc = rpc_call_data(c);
  rr_err e = {0};
  if (exec_session_done(sc->x))
    goto out;
  if (!exec_session_started(sc->x)) {
    if (shell_start(sc, cmd, &e) < 0) {
      shell_fail(sc, &e);
      goto out;
    }
  } else if (shell_check_later(cmd, &e) < 0) {
    shell_fail(sc, &e);
    goto out;
  }
  shell_feed(sc, cmd);
out:
  protobuf_c_message_free_unpacked(msg, NULL);
}

/* The session exists from the first message. */
static void shell_on_message_first(rpc_call *c, ProtobufCMessage *msg) {
  if (!rpc_call_data(c)) {
    shim_ctx *ctx = rpc_call_method_data(c);
    shell_call *sc = calloc(1, sizeof *sc);
    exec_session_env env = {.l = ctx->l, .r = ctx->reaper, .names = &ctx->exec_ids};
    if (!sc || exec_session_new(&env, &shell_ops, sc, &sc->x, NULL) < 0) {
      free(sc);
      rpc_call_finish(c, RR_RESOURCE_EXHAUSTED, "out of memory");
      protobuf_c_message_free_unpacked(msg, NULL);
      return;
    }
    sc->c = c;
    rpc_call_set_data(c, sc);
  }
  shell_on_message(c, msg);
}

static void shell_on_half_close(rpc_call *c) {
  shell_call *sc = rpc_call_data(c);
  if (!sc) {
    rpc_call_finish(c, RR_INVALID_ARGUMENT, "Shell stream closed before a Command");
    return;
  }
  if (exec_session_done(sc->x) || sc->stdin_closed)
    return;
  sc->stdin_closed = true;
  exec_session_stdin_close(sc->x);
}

static void shell_on_writable(rpc_call *c) {
  shell_call *sc = rpc_call_data(c);
  rr_err e = {0};
  if (sc && exec_session_output_resume(sc->x, &e) < 0)
    rpc_call_finish(c, e.code, e.msg);
}

static void shell_on_close(rpc_call *c, rpc_close_reason reason) {
  shell_call *sc = rpc_call_data(c);
  if (!sc)
    return;
  exec_session_free(sc->x); /* kills what still runs */
  free(sc);
}

int svc_commander_register(shim_ctx *ctx, rr_err *e) {
  const rpc_method m = {.path = "/commander.Commander/Shell",
                        .request = &commander__command__descriptor,
                        .client_streaming = true,
                        .server_streaming = true,
                        .on_message = shell_on_message_first,
                        .on_half_close = shell_on_half_close,
                        .on_writable = shell_on_writable,
                        .on_close = shell_on_close,
                        .data = ctx};
  return rpc_server_add_method(ctx->server, &m, e);
}
