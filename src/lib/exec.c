/* librunrpc: runrpc_exec, the bidirectional Exec stream with stdin from an fd
 * and output to fds or callbacks, multiplexed with poll() and no threads. */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"
#include "lib.h"

#define EXEC_STDIN_CHUNK (64u * 1024u)

typedef struct exec_ctx {
  const runrpc_exec_request *req;
  grpc_call *call;
  bool got_exit;
  runrpc_exit_status exit;
  rr_err e;
} exec_ctx;

static int exec_send(exec_ctx *x, const Runrpc__V1__ExecRequest *m) {
  _cleanup_free_ uint8_t *buf = NULL;
  size_t len = 0;
  if (lib_pack(&m->base, &buf, &len, &x->e) < 0)
    return -1;
  return grpc_call_send(x->call, buf, len, &x->e);
}

static int exec_close_stdin(exec_ctx *x) {
  Runrpc__V1__ExecRequest m = RUNRPC__V1__EXEC_REQUEST__INIT;
  m.msg_case = RUNRPC__V1__EXEC_REQUEST__MSG_CLOSE_STDIN;
  m.close_stdin = 1;
  if (exec_send(x, &m) < 0)
    return -1;
  return grpc_call_close_send(x->call, &x->e);
}

static int exec_output(exec_ctx *x, runrpc_output_fn fn, int fd, const ProtobufCBinaryData *d,
                       const char *what) {
  if (d->len == 0)
    return 0;
  if (fn) {
    if (fn(d->data, d->len, x->req->userdata) != 0)
      return rr_err_set(&x->e, RR_CANCELLED, "exec: stopped by the %s callback", what);
    return 0;
  }
  if (fd < 0)
    return 0;
  if (lib_write_fd(fd, d->data, d->len, &x->e) < 0)
    return rr_err_wrap(&x->e, "exec: %s", what);
  return 0;
}

/* Handle one ExecResponse. */
static int exec_handle(exec_ctx *x, const uint8_t *msg, size_t len) {
  Runrpc__V1__ExecResponse *r = runrpc__v1__exec_response__unpack(NULL, len, msg);
  if (!r)
    return rr_err_set(&x->e, RR_INTERNAL, "exec: cannot decode a %zu-byte ExecResponse", len);
  int rv = 0;
  switch (r->msg_case) {
  case RUNRPC__V1__EXEC_RESPONSE__MSG_STARTED_PID:
    if (x->req->on_started)
      x->req->on_started(r->started_pid, x->req->userdata);
    break;
  case RUNRPC__V1__EXEC_RESPONSE__MSG_STDOUT:
    rv = exec_output(x, x->req->on_stdout, x->req->stdout_fd, &r->stdout, "stdout");
    break;
  case RUNRPC__V1__EXEC_RESPONSE__MSG_STDERR:
    rv = exec_output(x, x->req->on_stderr, x->req->stderr_fd, &r->stderr, "stderr");
    break;
  case RUNRPC__V1__EXEC_RESPONSE__MSG_EXIT:
    x->got_exit = true;
    if (r->exit) {
      x->exit.exit_code = r->exit->exit_code;
      x->exit.signal = r->exit->signal;
      snprintf(x->exit.reason, sizeof x->exit.reason, "%s", r->exit->reason ? r->exit->reason : "");
    }
    break;
  default:
    break; /* a newer server's message kind: ignore */
  }
  runrpc__v1__exec_response__free_unpacked(r, NULL);
  return rv;
}

/* Read one chunk of stdin and forward it; EOF closes the command's stdin. */
static int exec_pump_stdin(exec_ctx *x, bool *open) {
  uint8_t buf[EXEC_STDIN_CHUNK];
  ssize_t n = read(x->req->stdin_fd, buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
    return 0;
  if (n <= 0) { /* EOF, or an unreadable stdin: the command sees EOF either way */
    *open = false;
    return exec_close_stdin(x);
  }
  Runrpc__V1__ExecRequest m = RUNRPC__V1__EXEC_REQUEST__INIT;
  m.msg_case = RUNRPC__V1__EXEC_REQUEST__MSG_STDIN;
  m.stdin.data = buf;
  m.stdin.len = (size_t)n;
  return exec_send(x, &m);
}

static int exec_run(exec_ctx *x) {
  const runrpc_exec_request *req = x->req;
  Runrpc__V1__Command cmd;
  if (lib_command_build(&req->command, &cmd, &x->e) < 0)
    return rr_err_wrap(&x->e, "exec");
  Runrpc__V1__ExecStart st = RUNRPC__V1__EXEC_START__INIT;
  st.command = &cmd;
  if (req->has_timeout) {
    st.timeout_case = RUNRPC__V1__EXEC_START__TIMEOUT_TIMEOUT_MS;
    st.timeout_ms = req->timeout_ms;
  }
  Runrpc__V1__ExecRequest m = RUNRPC__V1__EXEC_REQUEST__INIT;
  m.msg_case = RUNRPC__V1__EXEC_REQUEST__MSG_START;
  m.start = &st;
  int rv = exec_send(x, &m);
  lib_command_free(&cmd);
  if (rv < 0)
    return -1;
  bool stdin_open = req->stdin_fd >= 0;
  if (!stdin_open && exec_close_stdin(x) < 0)
    return -1;
  for (;;) {
    for (;;) {
      _cleanup_free_ uint8_t *msg = NULL;
      size_t len;
      int r = grpc_call_try_recv(x->call, &msg, &len, &x->e);
      if (r == GRPC_CALL_AGAIN)
        break;
      if (r == GRPC_CALL_END) {
        if (!x->got_exit)
          return rr_err_set(&x->e, RR_INTERNAL, "exec: stream ended without an exit status");
        return 0;
      }
      if (r < 0)
        return -1;
      if (exec_handle(x, msg, len) < 0)
        return -1;
    }
    struct pollfd pfd = {.fd = req->stdin_fd, .events = POLLIN};
    size_t nfds = stdin_open && !grpc_call_send_full(x->call) ? 1 : 0;
    int r = grpc_call_wait(x->call, &pfd, nfds, -1, &x->e);
    if (r < 0)
      return -1;
    if (r == 1 && (pfd.revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL))) {
      if (pfd.revents & POLLNVAL) {
        stdin_open = false;
        if (exec_close_stdin(x) < 0)
          return -1;
      } else if (exec_pump_stdin(x, &stdin_open) < 0) {
        return -1;
      }
    }
  }
}

RR_EXPORT int runrpc_exec(runrpc_client *c, const runrpc_exec_request *req,
                          runrpc_exit_status *ret_exit, runrpc_error *err) {
  if (!c || !req || !ret_exit)
    return lib_err_out(&(rr_err){RR_INVALID_ARGUMENT, 0, "runrpc_exec: NULL argument"}, err);
  memset(ret_exit, 0, sizeof *ret_exit);
  exec_ctx x = {.req = req};
  if (grpc_call_start(c->grpc, LIB_JOBS_PATH("Exec"), req->deadline_ms, &x.call, &x.e) < 0)
    return lib_err_out(&x.e, err);
  int rv = exec_run(&x);
  grpc_call_free(x.call); /* cancels if unfinished: rund kills the command */
  if (rv < 0)
    return lib_err_out(&x.e, err);
  *ret_exit = x.exit;
  return 0;
}
