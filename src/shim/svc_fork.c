/* runner.Runner/Fork: a child runrpc serving one gRPC connection over a new
 * socketpair, its bytes carried by this call: request data go to the
 * child's socket, what the child writes comes back as response data. The
 * first answer is the child's pid and depth. The client's half-close shuts
 * the socket's write side (the child's stdin ends, so the child ends); the
 * call ends once the child closed its side. A call that ends early closes
 * the socket: the child's connection is lost, it kills what it started
 * and exits. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "shim/runner.pb-c.h"
#include "sandbox/spawn.h"
#include "shim/shim.h"

#define FORK_READ_CHUNK (64u * 1024u)
#define FORK_MAX_PENDING (1024u * 1024u) /* client bytes the socket did not take yet */

typedef struct fork_call {
  rpc_call *c;
  shim_ctx *ctx;
  int fd; /* our end of the socketpair */
  pid_t pid;
  reaper_watch *rw;
  uint8_t *pending; /* client bytes not yet written */
  size_t plen, poff;
  bool half_closed, shut, eof, paused_read;
} fork_call;

static void fork_watch(fork_call *fc) {
  uint32_t ev = 0;
  if (!fc->eof && !fc->paused_read)
    ev |= EPOLLIN;
  if (fc->poff < fc->plen)
    ev |= EPOLLOUT;
  loop_fd_mod(fc->ctx->l, fc->fd, ev, NULL);
}

static void fork_fail(fork_call *fc, int code, const char *fmt, int err) {
  char m[256];
  snprintf(m, sizeof m, fmt, strerror(err));
  rpc_call_finish(fc->c, code, m);
}

/* Write pending client bytes; when all are out and the client half-closed,
 * the child's stdin ends. */
static void fork_flush(fork_call *fc) {
  while (fc->poff < fc->plen) {
    ssize_t n = send(fc->fd, fc->pending + fc->poff, fc->plen - fc->poff, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      break;
    if (n < 0) {
      fork_fail(fc, RR_UNAVAILABLE, "the forked runrpc's connection broke: %s", errno);
      return;
    }
    fc->poff += (size_t)n;
  }
  if (fc->poff == fc->plen) {
    fc->poff = fc->plen = 0;
    rpc_call_pause_recv(fc->c, false);
    if (fc->half_closed && !fc->shut) {
      shutdown(fc->fd, SHUT_WR);
      fc->shut = true;
    }
  }
  fork_watch(fc);
}

static int fork_queue(fork_call *fc, const uint8_t *p, size_t n) {
  if (!n)
    return 0;
  if (fc->poff) { /* compact */
    memmove(fc->pending, fc->pending + fc->poff, fc->plen - fc->poff);
    fc->plen -= fc->poff;
    fc->poff = 0;
  }
  uint8_t *q = realloc(fc->pending, fc->plen + n);
  if (!q)
    return -1;
  memcpy(q + fc->plen, p, n);
  fc->pending = q;
  fc->plen += n;
  if (fc->plen > FORK_MAX_PENDING)
    rpc_call_pause_recv(fc->c, true);
  return 0;
}

static void fork_read(fork_call *fc) {
  static uint8_t buf[FORK_READ_CHUNK];
  for (int i = 0; i < 4 && !fc->eof && !fc->paused_read; i++) {
    ssize_t n = rr_read(fc->fd, buf, sizeof buf);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      break;
    if (n <= 0) { /* the child closed its connection: it is done */
      fc->eof = true;
      rpc_call_finish(fc->c, RR_OK, NULL);
      break;
    }
    Runner__ForkResponse resp = RUNNER__FORK_RESPONSE__INIT;
    resp.data.data = buf;
    resp.data.len = (size_t)n;
    rr_err e = {0};
    if (rpc_call_send(fc->c, &resp.base, &e) < 0) {
      rpc_call_finish(fc->c, e.code, e.msg);
      return;
    }
    if (rpc_call_queued(fc->c) > RPC_CALL_HIGH_WATER)
      fc->paused_read = true; /* on_writable resumes */
  }
  if (!rpc_call_finished(fc->c))
    fork_watch(fc);
}

static void fork_on_io(loop *l, int fd, uint32_t events, void *data) {
  fork_call *fc = data;
  if (rpc_call_finished(fc->c))
    return;
  if (events & EPOLLOUT)
    fork_flush(fc);
  if (!rpc_call_finished(fc->c) && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
    fork_read(fc);
}

static void fork_on_exit(void *data, pid_t pid, const siginfo_t *si, const struct rusage *ru) {
  fork_call *fc = data;
  fc->rw = NULL; /* the socket's EOF ends the call */
}

static int fork_start(fork_call *fc, rr_err *e) {
  int sv[2];
  if (!fc->ctx->exe[0])
    return rr_err_set(e, RR_FAILED_PRECONDITION, "own executable unknown: cannot fork runrpc");
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
    return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, errno, "cannot create a socketpair");
  char depth[16];
  snprintf(depth, sizeof depth, "%u", fc->ctx->depth + 1);
  const char *keys[] = {SHIM_DEPTH_ENV}, *values[] = {depth};
  spawn_opts o = {.path = fc->ctx->exe,
                  .env_keys = keys,
                  .env_values = values,
                  .nenv = 1,
                  .workdir = "/",
                  .stdin_fd = sv[1],
                  .stdout_fd = sv[1],
                  .stderr_fd = STDERR_FILENO};
  spawn_result sr;
  int rc = spawn_process(&o, &sr, e);
  close(sv[1]);
  if (rc < 0) {
    close(sv[0]);
    return rr_err_wrap(e, "cannot fork runrpc");
  }
  fc->fd = sv[0];
  fc->pid = sr.pid;
  if (fcntl(fc->fd, F_SETFL, O_NONBLOCK) < 0 ||
      reaper_watch_add(fc->ctx->reaper, sr.pid, sr.pidfd, fork_on_exit, fc, &fc->rw, e) < 0 ||
      loop_fd_add(fc->ctx->l, fc->fd, EPOLLIN, "fork", fork_on_io, fc, e) < 0)
    return -1; /* fork_on_close closes the socket: the child ends */
  Runner__ForkResponse resp = RUNNER__FORK_RESPONSE__INIT;
  resp.pid = (uint32_t)sr.pid;
  resp.depth = fc->ctx->depth + 1;
  return rpc_call_send(fc->c, &resp.base, e);
}

static void fork_on_message(rpc_call *c, ProtobufCMessage *msg) {
  Runner__ForkRequest *r = (Runner__ForkRequest *)msg;
  fork_call *fc = rpc_call_data(c);
  rr_err e = {0};
  if (!fc) {
    if (!(fc = calloc(1, sizeof *fc))) {
      rpc_call_finish(c, RR_RESOURCE_EXHAUSTED, "out of memory");
      goto out;
    }
    fc->c = c;
    fc->ctx = rpc_call_method_data(c);
    fc->fd = -1;
    rpc_call_set_data(c, fc);
    if (fork_start(fc, &e) < 0) {
      rpc_call_finish(c, e.code, e.msg);
      goto out;
    }
  }
  if (rpc_call_finished(c))
    goto out;
  if (fork_queue(fc, r->data.data, r->data.len) < 0)
    rpc_call_finish(c, RR_RESOURCE_EXHAUSTED, "out of memory");
  else
    fork_flush(fc);
out:
  protobuf_c_message_free_unpacked(msg, NULL);
}

static void fork_on_half_close(rpc_call *c) {
  fork_call *fc = rpc_call_data(c);
  if (!fc) {
    rpc_call_finish(c, RR_INVALID_ARGUMENT, "Fork stream closed before its first message");
    return;
  }
  fc->half_closed = true;
  if (!rpc_call_finished(c))
    fork_flush(fc);
}

static void fork_on_writable(rpc_call *c) {
  fork_call *fc = rpc_call_data(c);
  if (fc && fc->paused_read && !rpc_call_finished(c)) {
    fc->paused_read = false;
    fork_read(fc);
  }
}

static void fork_on_close(rpc_call *c, rpc_close_reason reason) {
  fork_call *fc = rpc_call_data(c);
  if (!fc)
    return;
  if (fc->fd >= 0) { /* the child sees its connection end and exits */
    loop_fd_del(fc->ctx->l, fc->fd);
    close(fc->fd);
  }
  reaper_watch_forget(fc->rw); /* still reaped */
  free(fc->pending);
  free(fc);
}

int svc_fork_register(shim_ctx *ctx, rr_err *e) {
  const rpc_method m = {.path = "/runner.Runner/Fork",
                        .request = &runner__fork_request__descriptor,
                        .client_streaming = true,
                        .server_streaming = true,
                        .on_message = fork_on_message,
                        .on_half_close = fork_on_half_close,
                        .on_writable = fork_on_writable,
                        .on_close = fork_on_close,
                        .data = ctx};
  return rpc_server_add_method(ctx->server, &m, e);
}
