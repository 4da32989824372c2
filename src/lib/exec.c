/* librunrpc: runrpc_exec, the bidirectional Exec stream with stdin from an fd
 * and output to fds or callbacks, multiplexed with poll() and no threads.
 * With forward_signals, SIGINT/SIGTERM/SIGHUP/SIGQUIT reach the loop through
 * a self-pipe and go out as ExecRequest.signal; with a terminal whose window
 * is followed, SIGWINCH comes the same way and goes out as resize. */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "common/util.h"
#include "lib.h"

#define EXEC_STDIN_CHUNK (64u * 1024u)
#define EXEC_NSIGS 5
#define EXEC_NFWD 4 /* the first ones are forwarded; then SIGWINCH */

static const int exec_fwd_sigs[EXEC_NSIGS] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGWINCH};

/* Write end of the self-pipe of the call forwarding signals, -1 if none:
 * handlers get no user data, hence one forwarding call per process. */
static atomic_int exec_sig_wfd = -1;

typedef struct exec_sigfwd {
  int rfd, wfd;
  bool installed[EXEC_NSIGS];
  struct sigaction old[EXEC_NSIGS];
} exec_sigfwd;

typedef struct exec_ctx {
  const runrpc_exec_request *req;
  const char *default_profile; /* the client's options.profile */
  rpc_client_call *call;
  exec_sigfwd *fwd; /* NULL: not forwarding */
  bool got_exit;
  runrpc_exit_status exit;
  rr_err e;
  bool out_failed; /* the output sink stopped the call: why is in out_e */
  rr_err out_e;
} exec_ctx;

static void exec_sig_handler(int sig) {
  int saved = errno;
  int fd = atomic_load(&exec_sig_wfd);
  unsigned char b = (unsigned char)sig;
  if (fd >= 0 && write(fd, &b, 1) < 0) {
    /* pipe full (64 KiB of pending signals): dropping more changes nothing */
  }
  errno = saved;
}

static int exec_sigfwd_install(exec_sigfwd *s, bool forward, bool winch, rr_err *e) {
  int p[2];
  if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
    return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, errno, "exec: cannot create the signal pipe");
  /* never on 0-2: the caller's closed stdin must stay closed, not become our pipe */
  if ((p[0] = rr_fd_above_stdio(p[0])) < 0 || (p[1] = rr_fd_above_stdio(p[1])) < 0) {
    int err = errno;
    if (p[0] >= 0)
      close(p[0]);
    if (p[1] >= 0)
      close(p[1]);
    return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, err,
                      "exec: cannot move the signal pipe above fd 2");
  }
  int none = -1;
  if (!atomic_compare_exchange_strong(&exec_sig_wfd, &none, p[1])) {
    close(p[0]);
    close(p[1]);
    return rr_err_set(e, RR_FAILED_PRECONDITION,
                      "exec: another runrpc_exec in this process is already forwarding signals");
  }
  s->rfd = p[0];
  s->wfd = p[1];
  for (int i = 0; i < EXEC_NSIGS; i++) {
    if (i < EXEC_NFWD ? !forward : !winch)
      continue;
    struct sigaction sa = {.sa_handler = exec_sig_handler, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    struct sigaction old;
    if (sigaction(exec_fwd_sigs[i], NULL, &old) < 0)
      continue;
    /* ignored here (nohup, background job): a local command would ignore it too */
    if (!(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_IGN)
      continue;
    if (sigaction(exec_fwd_sigs[i], &sa, &s->old[i]) == 0)
      s->installed[i] = true;
  }
  return 0;
}

static void exec_sigfwd_restore(exec_sigfwd *s) {
  if (s->rfd < 0)
    return;
  for (int i = 0; i < EXEC_NSIGS; i++)
    if (s->installed[i])
      sigaction(exec_fwd_sigs[i], &s->old[i], NULL);
  atomic_store(&exec_sig_wfd, -1);
  close(s->rfd);
  close(s->wfd);
  s->rfd = s->wfd = -1;
}

static int exec_send(exec_ctx *x, const Runrpc__V1__ExecRequest *m) {
  _cleanup_free_ uint8_t *buf = NULL;
  size_t len = 0;
  if (lib_pack(&m->base, &buf, &len, &x->e) < 0)
    return -1;
  return rpc_client_call_send(x->call, buf, len, &x->e);
}

static int exec_close_stdin(exec_ctx *x) {
  Runrpc__V1__ExecRequest m = RUNRPC__V1__EXEC_REQUEST__INIT;
  m.msg_case = RUNRPC__V1__EXEC_REQUEST__MSG_CLOSE_STDIN;
  m.close_stdin = 1;
  if (exec_send(x, &m) < 0)
    return -1;
  if (x->fwd) /* keep our side open: signals may still follow the EOF */
    return 0;
  return rpc_client_call_close_send(x->call, &x->e);
}

/* The window of terminal fd; false when it is none or has no size. */
static bool exec_window_get(int fd, unsigned *rows, unsigned *cols) {
  struct winsize ws;
  if (fd < 0 || ioctl(fd, TIOCGWINSZ, &ws) < 0 || !ws.ws_row || !ws.ws_col)
    return false;
  *rows = ws.ws_row;
  *cols = ws.ws_col;
  return true;
}

static int exec_send_resize(exec_ctx *x) {
  Runrpc__V1__TerminalSize size = RUNRPC__V1__TERMINAL_SIZE__INIT;
  if (!exec_window_get(x->req->tty_size_fd, &size.rows, &size.cols))
    return 0;
  Runrpc__V1__ExecRequest m = RUNRPC__V1__EXEC_REQUEST__INIT;
  m.msg_case = RUNRPC__V1__EXEC_REQUEST__MSG_RESIZE;
  m.resize = &size;
  return exec_send(x, &m);
}

/* Send the signals the handler queued in the self-pipe (our side of the
 * stream stays open after stdin EOF for them; the server's status ends it):
 * SIGWINCH as the window now (one for a burst), the others as signals. */
static int exec_forward_signals(exec_ctx *x) {
  unsigned char sigs[64];
  ssize_t n = read(x->fwd->rfd, sigs, sizeof sigs);
  bool winch = false;
  for (ssize_t i = 0; i < n && !x->got_exit; i++) {
    if (sigs[i] == SIGWINCH) {
      winch = true;
      continue;
    }
    Runrpc__V1__ExecRequest m = RUNRPC__V1__EXEC_REQUEST__INIT;
    m.msg_case = RUNRPC__V1__EXEC_REQUEST__MSG_SIGNAL;
    m.signal = sigs[i];
    if (exec_send(x, &m) < 0)
      return -1;
  }
  return winch && !x->got_exit ? exec_send_resize(x) : 0;
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

/* A response of stdout or stderr alone (how output comes): its bytes
 * taken where they lie, without unpacking (a copy). 1 if msg is not one. */
static int exec_handle_output(exec_ctx *x, const uint8_t *msg, size_t len, int *rv) {
  if (len < 2 || (msg[0] & 7) != 2)
    return 1;
  unsigned field = msg[0] >> 3;
  if (field != RUNRPC__V1__EXEC_RESPONSE__MSG_STDOUT &&
      field != RUNRPC__V1__EXEC_RESPONSE__MSG_STDERR)
    return 1;
  uint64_t n = 0;
  size_t i = 1;
  for (unsigned shift = 0; i < len && shift < 35; i++, shift += 7) {
    n |= (uint64_t)(msg[i] & 0x7f) << shift;
    if (!(msg[i] & 0x80))
      break;
  }
  if (i >= len || n != len - i - 1) /* one field, exactly the rest */
    return 1;
  ProtobufCBinaryData d = {.len = (size_t)n, .data = (uint8_t *)msg + i + 1};
  if (field == RUNRPC__V1__EXEC_RESPONSE__MSG_STDOUT)
    *rv = exec_output(x, x->req->on_stdout, x->req->stdout_fd, &d, "stdout");
  else
    *rv = exec_output(x, x->req->on_stderr, x->req->stderr_fd, &d, "stderr");
  return 0;
}

/* Output straight from the client's receive buffer (rpc_client_call_set_sink). */
static int exec_sink(void *ud, uint32_t field, const uint8_t *data, size_t len) {
  exec_ctx *x = ud;
  ProtobufCBinaryData d = {.len = len, .data = (uint8_t *)data};
  int rv = field == RUNRPC__V1__EXEC_RESPONSE__MSG_STDOUT
               ? exec_output(x, x->req->on_stdout, x->req->stdout_fd, &d, "stdout")
               : exec_output(x, x->req->on_stderr, x->req->stderr_fd, &d, "stderr");
  if (rv < 0) {
    x->out_failed = true;
    x->out_e = x->e;
  }
  return rv;
}

/* Handle one ExecResponse. */
static int exec_handle(exec_ctx *x, const uint8_t *msg, size_t len) {
  int rv = 0;
  if (exec_handle_output(x, msg, len, &rv) == 0)
    return rv;
  Runrpc__V1__ExecResponse *r = runrpc__v1__exec_response__unpack(NULL, len, msg);
  if (!r)
    return rr_err_set(&x->e, RR_INTERNAL, "exec: cannot decode a %zu-byte ExecResponse", len);
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
      snprintf(x->exit.profile, sizeof x->exit.profile, "%s",
               r->exit->profile ? r->exit->profile : "");
      snprintf(x->exit.profile_requested, sizeof x->exit.profile_requested, "%s",
               r->exit->profile_requested ? r->exit->profile_requested : "");
      if (r->exit->usage) {
        x->exit.has_usage = true;
        lib_usage_copy(r->exit->usage, &x->exit.usage);
      }
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
  if (req->timeout_grace_ms) {
    st.timeout_grace_case = RUNRPC__V1__EXEC_START__TIMEOUT_GRACE_TIMEOUT_GRACE_MS;
    st.timeout_grace_ms = req->timeout_grace_ms;
  }
  lib_limits lim;
  int any = lib_limits_build(&req->limits, &lim, &x->e);
  if (any < 0) {
    lib_command_free(&cmd);
    return rr_err_wrap(&x->e, "exec");
  }
  if (any)
    st.limits = &lim.msg;
  lib_sandbox sb;
  bool in_job = req->job_id && *req->job_id;
  if (in_job)
    st.job_id = (char *)req->job_id;
  /* inside a job its sandbox holds: the client's default profile is not sent */
  any = lib_sandbox_build(&req->sandbox, in_job ? NULL : x->default_profile, &sb, &x->e);
  if (any < 0) {
    lib_command_free(&cmd);
    return rr_err_wrap(&x->e, "exec");
  }
  if (any)
    st.sandbox = &sb.msg;
  Runrpc__V1__TerminalSize window = RUNRPC__V1__TERMINAL_SIZE__INIT;
  if (req->tty) {
    st.tty = true;
    st.term = (char *)(req->tty_term ? req->tty_term : "");
    if (req->tty_rows && req->tty_cols) {
      window.rows = req->tty_rows;
      window.cols = req->tty_cols;
      st.window = &window;
    } else if (exec_window_get(req->tty_size_fd, &window.rows, &window.cols)) {
      st.window = &window;
    }
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
      int r = rpc_client_call_try_recv(x->call, &msg, &len, &x->e);
      if (r == RPC_CLIENT_CALL_AGAIN)
        break;
      if (r == RPC_CLIENT_CALL_END) {
        if (!x->got_exit)
          return rr_err_set(&x->e, RR_INTERNAL, "exec: stream ended without an exit status");
        return 0;
      }
      if (r < 0)
        return -1;
      if (exec_handle(x, msg, len) < 0)
        return -1;
    }
    /* while the send queue is full, stdin and signals wait (in their fd and pipe) */
    struct pollfd pfd[2];
    size_t nfds = 0;
    int in_i = -1, sig_i = -1;
    if (!rpc_client_call_send_full(x->call)) {
      if (stdin_open) {
        in_i = (int)nfds;
        pfd[nfds++] = (struct pollfd){.fd = req->stdin_fd, .events = POLLIN};
      }
      if (x->fwd) {
        sig_i = (int)nfds;
        pfd[nfds++] = (struct pollfd){.fd = x->fwd->rfd, .events = POLLIN};
      }
    }
    int r = rpc_client_call_wait(x->call, pfd, nfds, -1, &x->e);
    if (r < 0)
      return -1;
    if (r != 1)
      continue;
    if (sig_i >= 0 && (pfd[sig_i].revents & POLLIN) && exec_forward_signals(x) < 0)
      return -1;
    short in_ev = in_i >= 0 ? pfd[in_i].revents : 0;
    if (in_ev & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) {
      if (in_ev & POLLNVAL) {
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
  exec_ctx x = {.req = req, .default_profile = c->profile};
  exec_sigfwd fwd = {.rfd = -1, .wfd = -1};
  bool winch = req->tty && req->tty_size_fd >= 0;
  if (req->forward_signals || winch) {
    /* before the start's window is read: no change is missed */
    if (exec_sigfwd_install(&fwd, req->forward_signals, winch, &x.e) < 0)
      return lib_err_out(&x.e, err);
    x.fwd = &fwd;
  }
  int rv = rpc_client_call_start(c->grpc, LIB_JOBS_PATH("Exec"), req->deadline_ms, &x.call, &x.e);
  if (rv == 0) {
    rpc_client_call_set_sink(x.call,
                             1u << RUNRPC__V1__EXEC_RESPONSE__MSG_STDOUT |
                                 1u << RUNRPC__V1__EXEC_RESPONSE__MSG_STDERR,
                             exec_sink, &x);
    rv = exec_run(&x);
    if (rv < 0 && x.out_failed) /* not the call's CANCELLED: the output's own error */
      x.e = x.out_e;
  }
  rpc_client_call_free(x.call); /* cancels if unfinished: rund kills the command */
  exec_sigfwd_restore(&fwd);    /* no-op if not installed or already given back */
  if (rv < 0)
    return lib_err_out(&x.e, err);
  *ret_exit = x.exit;
  return 0;
}
