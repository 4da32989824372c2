/* librunrpc: runrpc_attach (the Attach stream: output out, the writer's
 * stdin and window in, detach keys caught here) and runrpc_send (the Send
 * stream: an fd into a job's stdin). poll() and no threads, as runrpc_exec. */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "common/util.h"
#include "lib.h"

#define ATTACH_CHUNK (64u * 1024u)

/* The self-pipe of the call following SIGWINCH (-1: none): handlers get
 * no user data, hence one such call per process. */
static atomic_int attach_winch_wfd = -1;

typedef struct attach_ctx {
  const runrpc_attach_request *req;
  runrpc_attach_result *ret;
  rpc_client_call *call;
  bool attached, stdin_open;
  size_t matched; /* detach key bytes read in a row, held back */
  int winch[2];   /* self-pipe; -1 */
  bool winch_installed;
  struct sigaction winch_old;
  rr_err e;
} attach_ctx;

static void attach_on_winch(int sig) {
  int saved = errno;
  int fd = atomic_load(&attach_winch_wfd);
  if (fd >= 0 && write(fd, "w", 1) < 0) {
    /* full: a resize is pending already */
  }
  errno = saved;
  (void)sig;
}

static int attach_winch_install(attach_ctx *x) {
  if (pipe2(x->winch, O_CLOEXEC | O_NONBLOCK) < 0)
    return rr_err_sys(&x->e, RR_RESOURCE_EXHAUSTED, errno, "attach: cannot create a pipe");
  int none = -1;
  if (!atomic_compare_exchange_strong(&attach_winch_wfd, &none, x->winch[1]))
    return rr_err_set(&x->e, RR_FAILED_PRECONDITION,
                      "attach: another runrpc_attach in this process follows a window");
  struct sigaction sa = {.sa_handler = attach_on_winch, .sa_flags = SA_RESTART};
  sigemptyset(&sa.sa_mask);
  x->winch_installed = sigaction(SIGWINCH, &sa, &x->winch_old) == 0;
  return 0;
}

static void attach_winch_restore(attach_ctx *x) {
  if (x->winch_installed)
    sigaction(SIGWINCH, &x->winch_old, NULL);
  if (x->winch[1] >= 0) {
    int mine = x->winch[1];
    atomic_compare_exchange_strong(&attach_winch_wfd, &mine, -1);
  }
  for (int i = 0; i < 2; i++)
    if (x->winch[i] >= 0)
      close(x->winch[i]);
}

static int attach_send(attach_ctx *x, const Runrpc__V1__AttachRequest *m) {
  _cleanup_free_ uint8_t *buf = NULL;
  size_t len = 0;
  if (lib_pack(&m->base, &buf, &len, &x->e) < 0)
    return -1;
  return rpc_client_call_send(x->call, buf, len, &x->e);
}

static bool attach_window_get(int fd, Runrpc__V1__TerminalSize *w) {
  struct winsize ws;
  if (fd < 0 || ioctl(fd, TIOCGWINSZ, &ws) < 0 || !ws.ws_row || !ws.ws_col)
    return false;
  w->rows = ws.ws_row;
  w->cols = ws.ws_col;
  return true;
}

/* The window now, for the writer of a tty job (a burst of SIGWINCH: one). */
static int attach_resize(attach_ctx *x) {
  char drain[64];
  while (read(x->winch[0], drain, sizeof drain) > 0)
    ;
  Runrpc__V1__TerminalSize w = RUNRPC__V1__TERMINAL_SIZE__INIT;
  if (!x->ret->info.writer || !x->ret->info.tty || !attach_window_get(x->req->tty_size_fd, &w))
    return 0;
  Runrpc__V1__AttachRequest m = RUNRPC__V1__ATTACH_REQUEST__INIT;
  m.msg_case = RUNRPC__V1__ATTACH_REQUEST__MSG_RESIZE;
  m.resize = &w;
  return attach_send(x, &m);
}

static int attach_send_stdin(attach_ctx *x, const uint8_t *p, size_t n) {
  if (!n)
    return 0;
  Runrpc__V1__AttachRequest m = RUNRPC__V1__ATTACH_REQUEST__INIT;
  m.msg_case = RUNRPC__V1__ATTACH_REQUEST__MSG_STDIN;
  m.stdin.data = (uint8_t *)p;
  m.stdin.len = n;
  return attach_send(x, &m);
}

/* Bytes typed: sent, but the detach keys (held while they match). 1: the
 * keys came (detach), 0: go on, -1: failed. */
static int attach_typed(attach_ctx *x, const uint8_t *in, size_t n) {
  const unsigned char *keys = x->req->detach_keys;
  size_t nk = keys ? x->req->detach_keys_len : 0;
  uint8_t out[ATTACH_CHUNK + 64];
  size_t len = 0;
  for (size_t i = 0; i < n; i++) {
    if (nk && in[i] == keys[x->matched]) {
      if (++x->matched == nk)
        return attach_send_stdin(x, out, len) < 0 ? -1 : 1;
      continue;
    }
    memcpy(out + len, keys, x->matched); /* a partial match is typed after all */
    len += x->matched;
    x->matched = 0;
    if (nk && in[i] == keys[0])
      x->matched = 1;
    else
      out[len++] = in[i];
    if (len > ATTACH_CHUNK) {
      if (attach_send_stdin(x, out, len) < 0)
        return -1;
      len = 0;
    }
  }
  return attach_send_stdin(x, out, len);
}

/* Read one chunk of stdin: 1 detach keys, 0 go on, -1 failed. */
static int attach_pump_stdin(attach_ctx *x) {
  uint8_t buf[ATTACH_CHUNK - 64];
  ssize_t n = read(x->req->stdin_fd, buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
    return 0;
  if (n > 0)
    return attach_typed(x, buf, (size_t)n);
  x->stdin_open = false; /* EOF (or unreadable): we stop typing */
  if (!x->req->close_on_eof)
    return 0;
  Runrpc__V1__AttachRequest m = RUNRPC__V1__ATTACH_REQUEST__INIT;
  m.msg_case = RUNRPC__V1__ATTACH_REQUEST__MSG_CLOSE_STDIN;
  m.close_stdin = true;
  return attach_send(x, &m);
}

static int attach_output(attach_ctx *x, int fd, const ProtobufCBinaryData *d, const char *what) {
  if (fd < 0 || !d->len)
    return 0;
  if (lib_write_fd(fd, d->data, d->len, &x->e) < 0)
    return rr_err_wrap(&x->e, "attach: %s", what);
  return 0;
}

static void attach_info_copy(const Runrpc__V1__AttachInfo *in, runrpc_attach_info *out) {
  out->writer = in->writer;
  out->tty = in->tty;
  out->stdin_open = in->stdin_open;
  snprintf(out->read_only_reason, sizeof out->read_only_reason, "%s",
           in->read_only_reason ? in->read_only_reason : "");
  out->stdout_offset = in->stdout_offset;
  out->stderr_offset = in->stderr_offset;
}

static int attach_handle(attach_ctx *x, const uint8_t *msg, size_t len) {
  Runrpc__V1__AttachResponse *r = runrpc__v1__attach_response__unpack(NULL, len, msg);
  if (!r)
    return rr_err_set(&x->e, RR_INTERNAL, "attach: cannot decode a %zu-byte AttachResponse", len);
  int rv = 0;
  switch (r->msg_case) {
  case RUNRPC__V1__ATTACH_RESPONSE__MSG_ATTACHED:
    if (r->attached)
      attach_info_copy(r->attached, &x->ret->info);
    x->attached = true;
    x->stdin_open = x->ret->info.writer && x->req->stdin_fd >= 0;
    if (x->req->on_attached)
      x->req->on_attached(&x->ret->info, x->req->userdata);
    break;
  case RUNRPC__V1__ATTACH_RESPONSE__MSG_STDOUT:
    rv = attach_output(x, x->req->stdout_fd, &r->stdout, "stdout");
    break;
  case RUNRPC__V1__ATTACH_RESPONSE__MSG_STDERR:
    rv = attach_output(x, x->req->stderr_fd, &r->stderr, "stderr");
    break;
  case RUNRPC__V1__ATTACH_RESPONSE__MSG_EXIT:
    if (r->exit && !x->ret->ended) {
      rv = lib_status_copy(r->exit, &x->ret->status, &x->e);
      x->ret->ended = rv == 0;
    }
    break;
  default:
    break; /* a newer server's message kind */
  }
  runrpc__v1__attach_response__free_unpacked(r, NULL);
  return rv;
}

static int attach_run(attach_ctx *x) {
  const runrpc_attach_request *req = x->req;
  Runrpc__V1__AttachStart st = RUNRPC__V1__ATTACH_START__INIT;
  Runrpc__V1__TerminalSize w = RUNRPC__V1__TERMINAL_SIZE__INIT;
  st.job_id = (char *)req->job_id;
  st.stdin = req->want_stdin;
  if (req->has_replay) {
    st.replay_case = RUNRPC__V1__ATTACH_START__REPLAY_REPLAY_BYTES;
    st.replay_bytes = req->replay_bytes;
  }
  if (req->want_stdin && attach_window_get(req->tty_size_fd, &w))
    st.window = &w; /* applied if we become the writer of a tty job */
  Runrpc__V1__AttachRequest m = RUNRPC__V1__ATTACH_REQUEST__INIT;
  m.msg_case = RUNRPC__V1__ATTACH_REQUEST__MSG_START;
  m.start = &st;
  if (attach_send(x, &m) < 0)
    return -1;
  for (;;) {
    for (;;) {
      _cleanup_free_ uint8_t *msg = NULL;
      size_t len;
      int r = rpc_client_call_try_recv(x->call, &msg, &len, &x->e);
      if (r == RPC_CLIENT_CALL_AGAIN)
        break;
      if (r == RPC_CLIENT_CALL_END)
        return x->ret->ended ? 0
                             : rr_err_set(&x->e, RR_INTERNAL,
                                          "attach: the stream ended without the job's status");
      if (r < 0 || attach_handle(x, msg, len) < 0)
        return -1;
    }
    struct pollfd pfd[2];
    size_t nfds = 0;
    int in_i = -1, winch_i = -1;
    if (x->attached && !rpc_client_call_send_full(x->call)) {
      if (x->stdin_open) {
        in_i = (int)nfds;
        pfd[nfds++] = (struct pollfd){.fd = req->stdin_fd, .events = POLLIN};
      }
      if (x->winch[0] >= 0) {
        winch_i = (int)nfds;
        pfd[nfds++] = (struct pollfd){.fd = x->winch[0], .events = POLLIN};
      }
    }
    int r = rpc_client_call_wait(x->call, pfd, nfds, -1, &x->e);
    if (r < 0)
      return -1;
    if (r != 1)
      continue;
    if (winch_i >= 0 && (pfd[winch_i].revents & POLLIN) && attach_resize(x) < 0)
      return -1;
    if (in_i >= 0 && pfd[in_i].revents) {
      int rc = (pfd[in_i].revents & POLLNVAL) ? (x->stdin_open = false, 0) : attach_pump_stdin(x);
      if (rc < 0)
        return -1;
      if (rc == 1) {
        x->ret->detached = true;
        return 0;
      }
    }
  }
}

RR_EXPORT int runrpc_attach(runrpc_client *c, const runrpc_attach_request *req,
                            runrpc_attach_result *ret, runrpc_error *err) {
  if (!c || !req || !ret)
    return lib_err_out(&(rr_err){RR_INVALID_ARGUMENT, 0, "runrpc_attach: NULL argument"}, err);
  memset(ret, 0, sizeof *ret);
  attach_ctx x = {.req = req, .ret = ret, .winch = {-1, -1}};
  if (lib_job_id_check(req->job_id, &x.e) < 0)
    return lib_err_out(&x.e, err);
  if (req->detach_keys && req->detach_keys_len > 64)
    return lib_err_out(&(rr_err){RR_INVALID_ARGUMENT, 0, "attach: detach keys over 64 bytes"}, err);
  int rv = 0;
  /* before the window is read for start: no change is missed */
  if (req->want_stdin && req->tty_size_fd >= 0)
    rv = attach_winch_install(&x);
  if (rv == 0)
    rv = rpc_client_call_start(c->grpc, LIB_JOBS_PATH("Attach"), 0, &x.call, &x.e);
  if (rv == 0)
    rv = attach_run(&x);
  rpc_client_call_free(x.call); /* cancels if unfinished: that is the detach */
  attach_winch_restore(&x);
  if (rv < 0) {
    if (ret->ended)
      runrpc_job_status_free(&ret->status);
    ret->ended = false;
    return lib_err_out(&x.e, err);
  }
  return 0;
}

static int send_msg(rpc_client_call *call, const char *job_id, const uint8_t *data, size_t n,
                    bool close_stdin, rr_err *e) {
  Runrpc__V1__SendRequest m = RUNRPC__V1__SEND_REQUEST__INIT;
  m.job_id = (char *)job_id;
  m.data.data = (uint8_t *)data;
  m.data.len = n;
  m.close = close_stdin;
  _cleanup_free_ uint8_t *buf = NULL;
  size_t len = 0;
  if (lib_pack(&m.base, &buf, &len, e) < 0)
    return -1;
  return rpc_client_call_send(call, buf, len, e);
}

RR_EXPORT int runrpc_send(runrpc_client *c, const char *job_id, int fd, bool close_stdin,
                          uint64_t *ret_bytes, runrpc_error *err) {
  rr_err e = {0};
  if (!c)
    return lib_err_out(&(rr_err){RR_INVALID_ARGUMENT, 0, "runrpc_send: NULL client"}, err);
  if (lib_job_id_check(job_id, &e) < 0)
    return lib_err_out(&e, err);
  _cleanup_free_ uint8_t *chunk = malloc(ATTACH_CHUNK);
  if (!chunk)
    return lib_err_out(&(rr_err){RR_RESOURCE_EXHAUSTED, ENOMEM, "send: out of memory"}, err);
  rpc_client_call *call;
  if (rpc_client_call_start(c->grpc, LIB_JOBS_PATH("Send"), 0, &call, &e) < 0)
    return lib_err_out(&e, err);
  int rv = -1;
  /* the job named first: a refusal comes before anything is read */
  if (send_msg(call, job_id, NULL, 0, false, &e) < 0)
    goto out;
  while (fd >= 0) {
    ssize_t n = read(fd, chunk, ATTACH_CHUNK);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      rr_err_sys(&e, RR_CANCELLED, errno, "send: cannot read fd %d", fd);
      goto out;
    }
    if (n == 0)
      break;
    if (send_msg(call, "", chunk, (size_t)n, false, &e) < 0)
      goto out;
  }
  if (close_stdin && send_msg(call, "", NULL, 0, true, &e) < 0)
    goto out;
  _cleanup_free_ uint8_t *msg = NULL;
  size_t len = 0;
  if (rpc_client_call_close_send(call, &e) < 0)
    goto out;
  int r = rpc_client_call_recv(call, &msg, &len, &e);
  if (r == RPC_CLIENT_CALL_END)
    rr_err_set(&e, RR_INTERNAL, "send: the call ended without a SendResponse");
  if (r != RPC_CLIENT_CALL_MESSAGE)
    goto out;
  Runrpc__V1__SendResponse *resp = runrpc__v1__send_response__unpack(NULL, len, msg);
  if (!resp) {
    rr_err_set(&e, RR_INTERNAL, "send: cannot decode a %zu-byte SendResponse", len);
    goto out;
  }
  if (ret_bytes)
    *ret_bytes = resp->bytes;
  runrpc__v1__send_response__free_unpacked(resp, NULL);
  rv = 0;
out:
  rpc_client_call_free(call);
  return rv < 0 ? lib_err_out(&e, err) : 0;
}
