/* Attach: a running job's output live (a tty job's recent screen replayed
 * first) and, for the one writer, its stdin, EOF and window; the job's
 * status last. The writer rule: the first attached call that asks for stdin
 * types until its call ends; later ones only watch. Detaching (the call
 * ended by the client) leaves the job and its stdin as they are. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jobs/exec_tty.h"
#include "jobs/logstore.h"
#include "rund.h"

#define ATTACH_CHUNK (32u * 1024u)
/* Output is read while less than this waits in the call's queue; the rest
 * waits on disk (a stalled watcher holds ~64 KiB, never the job). */
#define ATTACH_HIGH_WATER (2u * ATTACH_CHUNK)
#define ATTACH_LOW_WATER ATTACH_CHUNK
#define ATTACH_REPLAY_TTY 4096u
#define ATTACH_REPLAY_MAX (1024u * 1024u)

typedef struct attacher attacher;
struct attacher {
  job_watch w;
  rpc_call *c;
  job *j; /* NULL until start */
  attacher *prev, *next;
  bool writer;
  bool done; /* exit sent (or the call failed) */
  int fd[2];
  uint64_t offset[2];
  int turn;                      /* stream read first, alternating */
  Rundwire__AttachRequest *held; /* stdin the keeper's queue did not take yet */
  size_t held_off;
};

/* Every started attacher, to find a job's writer (one loop thread). */
static attacher *attach_list;
static uint8_t attach_buf[ATTACH_CHUNK];

static attacher *attach_writer_of(const job *j) {
  for (attacher *a = attach_list; a; a = a->next)
    if (a->j == j && a->writer)
      return a;
  return NULL;
}

static void attach_fail(attacher *a, const rr_err *e) {
  a->done = true;
  rund_call_fail(a->c, e);
}

/* Send one chunk of stream s: 1 sent, 0 at its end, -1 the call failed. */
static int attach_send_one(attacher *a, int s) {
  rr_err e = {0};
  uint64_t dropped = 0;
  ssize_t n = logstore_stream_read(a->fd[s], a->j->kept_from[s], &a->offset[s], attach_buf,
                                   sizeof attach_buf, &dropped, &e);
  if (n < 0) {
    attach_fail(a, &e);
    return -1;
  }
  if (n == 0)
    return dropped ? 1 : 0; /* bytes the log cap dropped are skipped */
  Runrpc__V1__AttachResponse r = RUNRPC__V1__ATTACH_RESPONSE__INIT;
  ProtobufCBinaryData d = {.len = (size_t)n, .data = attach_buf};
  if (s == LOG_STDOUT) {
    r.msg_case = RUNRPC__V1__ATTACH_RESPONSE__MSG_STDOUT;
    r.stdout = d;
  } else {
    r.msg_case = RUNRPC__V1__ATTACH_RESPONSE__MSG_STDERR;
    r.stderr = d;
  }
  if (rpc_call_send(a->c, &r.base, &e) < 0) {
    attach_fail(a, &e);
    return -1;
  }
  return 1;
}

static void attach_send_exit(attacher *a) {
  status_msg m;
  rr_err e = {0};
  a->done = true;
  job_refresh(a->j);
  if (convert_status(a->j, &m, &e) < 0) {
    rund_call_fail(a->c, &e);
    return;
  }
  Runrpc__V1__AttachResponse r = RUNRPC__V1__ATTACH_RESPONSE__INIT;
  r.msg_case = RUNRPC__V1__ATTACH_RESPONSE__MSG_EXIT;
  r.exit = &m.status;
  if (rpc_call_send(a->c, &r.base, &e) < 0)
    rund_call_fail(a->c, &e);
  else
    rpc_call_finish(a->c, RR_OK, NULL);
  convert_status_clear(&m);
}

/* Send what the logs hold while the client keeps up; the exit once the job
 * ended and all of it is out. */
static void attach_pump(attacher *a) {
  if (a->done || rpc_call_finished(a->c))
    return;
  /* "ended" decided before reading: bytes written just before the end are
   * read in this same pass */
  bool ended = a->j->state != JOB_RUNNING;
  bool at_eof[2] = {false, false};
  for (;;) {
    if (rpc_call_queued(a->c) > ATTACH_HIGH_WATER)
      return; /* resumed by on_writable */
    bool progress = false;
    for (int k = 0; k < 2; k++) {
      int s = (a->turn + k) % 2;
      if (at_eof[s])
        continue;
      int rc = attach_send_one(a, s);
      if (rc < 0)
        return;
      if (rc == 0)
        at_eof[s] = true;
      else
        progress = true;
    }
    a->turn = (a->turn + 1) % 2;
    if (!progress)
      break;
  }
  if (ended)
    attach_send_exit(a);
}

static void attach_on_event(job_watch *w, int event) { attach_pump(w->data); }

static void attach_on_writable(rpc_call *c) {
  attacher *a = rpc_call_data(c);
  if (a && a->j)
    attach_pump(a);
}

static void attach_held_free(attacher *a) {
  if (a->held)
    protobuf_c_message_free_unpacked(&a->held->base, NULL);
  a->held = NULL;
  a->held_off = 0;
}

static void attach_on_stdin_room(void *arg);

/* Hand the held stdin to the job; the call's messages wait meanwhile. */
static void attach_stdin_feed(attacher *a) {
  rr_err e = {0};
  const ProtobufCBinaryData *d = &a->held->stdin;
  while (a->held_off < d->len) {
    if (a->j->state != JOB_RUNNING) /* what it did not read is gone; its exit follows */
      break;
    ssize_t n = job_stdin_write(a->j, d->data + a->held_off, d->len - a->held_off,
                                attach_on_stdin_room, a, &e);
    if (n < 0) {
      attach_held_free(a);
      attach_fail(a, &e);
      return;
    }
    a->held_off += (size_t)n;
    if (a->held_off < d->len) {
      rpc_call_pause_recv(a->c, true); /* attach_on_stdin_room resumes */
      return;
    }
  }
  attach_held_free(a);
  rpc_call_pause_recv(a->c, false);
}

static void attach_on_stdin_room(void *arg) {
  attacher *a = arg;
  if (a->held && !a->done)
    attach_stdin_feed(a);
}

static int attach_window_check(const Rundwire__TerminalSize *w, rr_err *e) {
  return w ? exec_tty_size_check(w->rows, w->cols, "window", e) : 0;
}

/* Where output starts: replay bytes back from the end of each stream, from
 * after the first newline in their first half (a whole line, not half an
 * escape sequence), never before what the log cap kept. */
static int attach_open_streams(attacher *a, uint64_t replay, rr_err *e) {
  for (int s = 0; s < 2; s++) {
    if ((a->fd[s] = logstore_stream_open_read(a->j->dir, s, e)) < 0)
      return -1;
    struct stat st;
    if (fstat(a->fd[s], &st) < 0)
      return rr_err_sys(e, RR_INTERNAL, errno, "cannot stat the %s of job %s",
                        logstore_stream_name(s), a->j->id);
    uint64_t size = (uint64_t)st.st_size, from = size > replay ? size - replay : 0;
    if (from < a->j->kept_from[s])
      from = a->j->kept_from[s];
    if (from > 0 && from < size) {
      size_t look = (size_t)(size - from) / 2;
      ssize_t n = pread(a->fd[s], attach_buf, look < sizeof attach_buf ? look : sizeof attach_buf,
                        (off_t)from);
      const uint8_t *nl = n > 0 ? memchr(attach_buf, '\n', (size_t)n) : NULL;
      if (nl)
        from += (uint64_t)(nl - attach_buf) + 1;
    }
    a->offset[s] = from;
  }
  return 0;
}

/* The writer rule and the window: who types, and why not. */
static int attach_take_stdin(attacher *a, const Rundwire__AttachStart *st, char *why, size_t n,
                             rr_err *e) {
  job *j = a->j;
  if (!st->stdin)
    return 0;
  const attacher *w = attach_writer_of(j);
  if (!job_has_stdin(j))
    snprintf(why, n, "job %s has no open stdin (%s)", j->id,
             j->stdin_closed ? "it was closed" : "started without -i or -t");
  else if (w)
    snprintf(why, n, "another client is attached to job %s as its writer (one types at a time)",
             j->id);
  else
    a->writer = true;
  if (a->writer && j->req.tty && st->window &&
      job_resize(j, st->window->rows, st->window->cols, e) < 0)
    return -1;
  return 0;
}

static void attach_start(attacher *a, const Rundwire__AttachStart *st) {
  rund_ctx *ctx = rpc_call_method_data(a->c);
  rr_err e = {0};
  authz_identity id = {0};
  job *j;
  int rc = rund_call_identity(a->c, &id, &e);
  if (rc == 0)
    rc = rund_job_lookup_visible(ctx, &id, &st->job_id, &j, &e);
  if (rc == 0)
    rc = quota_follower_add(ctx->quota, &id, a->c, &e); /* until attach_on_close */
  authz_identity_clear(&id);
  if (rc < 0)
    goto fail;
  if (j->state != JOB_RUNNING) {
    rr_err_set(&e, RR_FAILED_PRECONDITION,
               "job %s has ended (%s): there is nothing to attach to (its output: runctl logs %s)",
               j->id, j->reason[0] ? j->reason : job_state_name(j->state), j->id);
    goto fail;
  }
  uint64_t replay = j->req.tty ? ATTACH_REPLAY_TTY : 0;
  if (st->replay_case == RUNDWIRE__ATTACH_START__REPLAY_REPLAY_BYTES)
    replay = st->replay_bytes;
  if (replay > ATTACH_REPLAY_MAX) {
    rr_err_set(&e, RR_INVALID_ARGUMENT, "replay_bytes %llu is over %u", (unsigned long long)replay,
               ATTACH_REPLAY_MAX);
    goto fail;
  }
  if (attach_window_check(st->window, &e) < 0)
    goto fail;
  a->j = j;
  char why[160] = "";
  if (attach_open_streams(a, replay, &e) < 0 || attach_take_stdin(a, st, why, sizeof why, &e) < 0)
    goto fail;
  Runrpc__V1__AttachInfo info = RUNRPC__V1__ATTACH_INFO__INIT;
  info.writer = a->writer;
  info.tty = j->req.tty;
  info.stdin_open = job_has_stdin(j);
  info.read_only_reason = why;
  info.stdout_offset = a->offset[0];
  info.stderr_offset = a->offset[1];
  Runrpc__V1__AttachResponse r = RUNRPC__V1__ATTACH_RESPONSE__INIT;
  r.msg_case = RUNRPC__V1__ATTACH_RESPONSE__MSG_ATTACHED;
  r.attached = &info;
  if (rpc_call_send(a->c, &r.base, &e) < 0)
    goto fail;
  if ((a->next = attach_list))
    attach_list->prev = a;
  attach_list = a;
  a->w.fn = attach_on_event;
  a->w.data = a;
  job_watch_add(j, &a->w); /* also keeps retention from deleting the job under us */
  rpc_call_set_low_water(a->c, ATTACH_LOW_WATER);
  attach_pump(a);
  return;
fail:
  a->writer = false;
  a->j = NULL;
  attach_fail(a, &e);
}

/* stdin, close_stdin and resize: the writer's only. */
static int attach_input(attacher *a, Rundwire__AttachRequest *req, rr_err *e) {
  if (!a->writer)
    return rr_err_set(e, RR_FAILED_PRECONDITION,
                      "this call is not the writer of job %s (attach asking for stdin, while no "
                      "other client is its writer)",
                      a->j->id);
  switch (req->msg_case) {
  case RUNDWIRE__ATTACH_REQUEST__MSG_STDIN:
    a->held = req;
    a->held_off = 0;
    attach_stdin_feed(a);
    return 1; /* req is held (or freed) */
  case RUNDWIRE__ATTACH_REQUEST__MSG_CLOSE_STDIN:
    if (a->j->stdin_closed || a->j->state != JOB_RUNNING)
      return 0; /* closed already: the same EOF */
    return job_stdin_close(a->j, e);
  default: /* resize */
    if (!req->resize)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "resize without a size");
    return job_resize(a->j, req->resize->rows, req->resize->cols, e);
  }
}

static void attach_on_message(rpc_call *c, ProtobufCMessage *msg) {
  Rundwire__AttachRequest *req = (Rundwire__AttachRequest *)msg;
  attacher *a = rpc_call_data(c);
  rr_err e = {0};
  if (!a) {
    if (!(a = calloc(1, sizeof *a))) {
      rpc_call_finish(c, RR_RESOURCE_EXHAUSTED, "out of memory");
      goto out;
    }
    a->c = c;
    a->fd[0] = a->fd[1] = -1;
    rpc_call_set_data(c, a);
    if (req->msg_case != RUNDWIRE__ATTACH_REQUEST__MSG_START) {
      rr_err_set(&e, RR_INVALID_ARGUMENT, "the first AttachRequest must be start");
      attach_fail(a, &e);
    } else {
      attach_start(a, req->start);
    }
    goto out;
  }
  if (a->done || !a->j)
    goto out;
  switch (req->msg_case) {
  case RUNDWIRE__ATTACH_REQUEST__MSG_START:
    rr_err_set(&e, RR_INVALID_ARGUMENT, "start sent twice on one Attach stream");
    attach_fail(a, &e);
    break;
  case RUNDWIRE__ATTACH_REQUEST__MSG_STDIN:
  case RUNDWIRE__ATTACH_REQUEST__MSG_CLOSE_STDIN:
  case RUNDWIRE__ATTACH_REQUEST__MSG_RESIZE: {
    int rc = attach_input(a, req, &e);
    if (rc < 0)
      attach_fail(a, &e);
    if (rc == 1)
      return;
    break;
  }
  default:
    rr_err_set(&e, RR_INVALID_ARGUMENT,
               "empty AttachRequest (set start, stdin, close_stdin or resize)");
    attach_fail(a, &e);
  }
out:
  protobuf_c_message_free_unpacked(msg, NULL);
}

/* The client's half-close is no detach by itself: output flows on until it
 * cancels or the job ends. A stream with no start is refused. */
static void attach_on_half_close(rpc_call *c) {
  if (!rpc_call_data(c))
    rpc_call_finish(c, RR_INVALID_ARGUMENT, "Attach stream closed before a start message");
}

static void attach_on_close(rpc_call *c, rpc_close_reason reason) {
  attacher *a = rpc_call_data(c);
  quota_follower_del(((rund_ctx *)rpc_call_method_data(c))->quota, c);
  if (!a)
    return;
  if (a->j) {
    job_stdin_forget(a->j, a);
    job_watch_del(&a->w);
    if (a->prev)
      a->prev->next = a->next;
    else if (attach_list == a)
      attach_list = a->next;
    if (a->next)
      a->next->prev = a->prev;
  }
  attach_held_free(a);
  for (int s = 0; s < 2; s++)
    if (a->fd[s] >= 0)
      close(a->fd[s]);
  free(a);
}

int svc_attach_register(rpc_server *s, rund_ctx *ctx, rr_err *e) {
  const rpc_method m = {"/runrpc.v1.Jobs/Attach",
                        &rundwire__attach_request__descriptor,
                        true,
                        true,
                        attach_on_message,
                        attach_on_half_close,
                        attach_on_writable,
                        attach_on_close,
                        ctx};
  return rpc_server_add_method(s, &m, e) < 0 ? -1 : svc_send_register(s, ctx, e);
}
