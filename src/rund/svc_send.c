/* Send: bytes from a client stream into a running job's stdin, and EOF,
 * without attaching (runctl send). The stream is paused while the keeper's
 * queue is full, so a job that does not read holds the client back, not
 * rund's memory. */
#include <stdlib.h>

#include "rund.h"

typedef struct sender {
  job_watch w; /* keeps retention from deleting the job under us */
  rpc_call *c;
  job *j;                      /* NULL until the first message */
  Rundwire__SendRequest *held; /* being written */
  size_t held_off;
  bool half_closed, closed, done;
  uint64_t bytes;
} sender;

static void sender_on_event(job_watch *w, int event) {}

static void sender_fail(sender *s, const rr_err *e) {
  s->done = true;
  rund_call_fail(s->c, e);
}

static void sender_reply(sender *s) {
  Runrpc__V1__SendResponse r = RUNRPC__V1__SEND_RESPONSE__INIT;
  r.bytes = s->bytes;
  r.closed = s->closed;
  rr_err e = {0};
  s->done = true;
  if (rpc_call_send(s->c, &r.base, &e) < 0)
    rund_call_fail(s->c, &e);
  else
    rpc_call_finish(s->c, RR_OK, NULL);
}

static void sender_on_room(void *arg);

/* Write the held message's data, then its close; answer after the last. */
static void sender_feed(sender *s) {
  rr_err e = {0};
  const ProtobufCBinaryData *d = &s->held->data;
  while (s->held_off < d->len) {
    ssize_t n =
        job_stdin_write(s->j, d->data + s->held_off, d->len - s->held_off, sender_on_room, s, &e);
    if (n < 0) {
      sender_fail(s, &e);
      return;
    }
    s->held_off += (size_t)n;
    s->bytes += (uint64_t)n;
    if (s->held_off < d->len) {
      rpc_call_pause_recv(s->c, true); /* sender_on_room resumes */
      return;
    }
  }
  bool close = s->held->close;
  protobuf_c_message_free_unpacked(&s->held->base, NULL);
  s->held = NULL;
  if (close && !s->closed) {
    if (job_stdin_close(s->j, &e) < 0) {
      sender_fail(s, &e);
      return;
    }
    s->closed = true;
  }
  rpc_call_pause_recv(s->c, false);
  if (s->half_closed)
    sender_reply(s);
}

static void sender_on_room(void *arg) {
  sender *s = arg;
  if (s->held && !s->done)
    sender_feed(s);
}

static int sender_open(sender *s, const Rundwire__SendRequest *req, rr_err *e) {
  rund_ctx *ctx = rpc_call_method_data(s->c);
  authz_identity id = {0};
  job *j;
  int rc = rund_call_identity(s->c, &id, e);
  if (rc == 0)
    rc = rund_job_lookup_visible(ctx, &id, &req->job_id, &j, e);
  authz_identity_clear(&id);
  if (rc < 0)
    return -1;
  if (!job_has_stdin(j)) {
    if (j->state != JOB_RUNNING)
      return rr_err_set(e, RR_FAILED_PRECONDITION, "job %s has ended (%s): its stdin is gone",
                        j->id, j->reason[0] ? j->reason : job_state_name(j->state));
    if (j->stdin_closed)
      return rr_err_set(e, RR_FAILED_PRECONDITION, "the stdin of job %s is closed", j->id);
    return rr_err_set(e, RR_FAILED_PRECONDITION,
                      "job %s has no stdin (it was started without stdin or tty)", j->id);
  }
  s->j = j;
  s->w.fn = sender_on_event;
  s->w.data = s;
  job_watch_add(j, &s->w);
  return 0;
}

static void send_on_message(rpc_call *c, ProtobufCMessage *msg) {
  Rundwire__SendRequest *req = (Rundwire__SendRequest *)msg;
  sender *s = rpc_call_data(c);
  rr_err e = {0};
  if (!s) {
    if (!(s = calloc(1, sizeof *s))) {
      rpc_call_finish(c, RR_RESOURCE_EXHAUSTED, "out of memory");
      goto out;
    }
    s->c = c;
    rpc_call_set_data(c, s);
    if (sender_open(s, req, &e) < 0) {
      sender_fail(s, &e);
      goto out;
    }
  }
  if (s->done)
    goto out;
  s->held = req;
  s->held_off = 0;
  sender_feed(s);
  return;
out:
  protobuf_c_message_free_unpacked(msg, NULL);
}

static void send_on_half_close(rpc_call *c) {
  sender *s = rpc_call_data(c);
  if (!s) {
    rpc_call_finish(c, RR_INVALID_ARGUMENT, "Send stream closed before a message naming the job");
    return;
  }
  s->half_closed = true;
  if (!s->held && !s->done)
    sender_reply(s);
}

static void send_on_close(rpc_call *c, rpc_close_reason reason) {
  sender *s = rpc_call_data(c);
  if (!s)
    return;
  if (s->j) {
    job_stdin_forget(s->j, s);
    job_watch_del(&s->w);
  }
  if (s->held)
    protobuf_c_message_free_unpacked(&s->held->base, NULL);
  free(s);
}

int svc_send_register(rpc_server *s, rund_ctx *ctx, rr_err *e) {
  const rpc_method m = {"/runrpc.v1.Jobs/Send",
                        &rundwire__send_request__descriptor,
                        true,
                        false,
                        send_on_message,
                        send_on_half_close,
                        NULL,
                        send_on_close,
                        ctx};
  return rpc_server_add_method(s, &m, e);
}
