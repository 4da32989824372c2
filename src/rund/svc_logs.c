/* Logs: a job's stored output from given offsets, optionally following it
 * until the job ended and both files were read to the end. Each follower
 * reads the files at its own pace (back-pressure from its call's queue), so a
 * slow one never holds back the job or the other followers. */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jobs/logstore.h"
#include "rund.h"

#define LOGS_CHUNK (32u * 1024u)
/* A follower stops reading past this much queued (the bytes wait on disk),
 * resumes below LOGS_LOW_WATER: a stalled reader holds ~64 KiB and no fd. */
#define LOGS_HIGH_WATER (2u * LOGS_CHUNK)
#define LOGS_LOW_WATER LOGS_CHUNK

typedef struct follower {
  job_watch w;
  rpc_call *c;
  job *j;
  bool follow;
  bool want[2];
  bool at_eof[2];
  int fd[2];
  uint64_t offset[2];
  int next; /* stream to read first, alternating for fairness */
} follower;

static uint8_t logs_buf[LOGS_CHUNK]; /* one loop thread: a shared scratch buffer */

static void follower_close_files(follower *f);

static void follower_free(follower *f) {
  job_watch_del(&f->w);
  follower_close_files(f);
  free(f);
}

/* Send one chunk of stream s; 1 sent, 0 at EOF, -1 call failed. */
static int follower_send_one(follower *f, int s) {
  rr_err e = {0};
  uint64_t dropped = 0;
  ssize_t n = logstore_stream_read(f->fd[s], f->j->kept_from[s], &f->offset[s], logs_buf,
                                   sizeof logs_buf, &dropped, &e);
  if (n < 0) {
    rpc_call_finish(f->c, e.code, e.msg);
    return -1;
  }
  if (n == 0 && !dropped)
    return 0;
  Runrpc__V1__LogsResponse resp = RUNRPC__V1__LOGS_RESPONSE__INIT;
  resp.stream =
      s == LOG_STDOUT ? RUNRPC__V1__STREAM__STREAM_STDOUT : RUNRPC__V1__STREAM__STREAM_STDERR;
  resp.offset = f->offset[s] - (uint64_t)n;
  resp.data.data = logs_buf;
  resp.data.len = (size_t)n;
  resp.dropped = dropped;
  if (rpc_call_send(f->c, &resp.base, &e) < 0) {
    rpc_call_finish(f->c, e.code, e.msg);
    return -1;
  }
  return n ? 1 : 0;
}

static void follower_close_files(follower *f) {
  for (int s = 0; s < 2; s++)
    if (f->fd[s] >= 0) {
      close(f->fd[s]);
      f->fd[s] = -1;
    }
}

/* The files are opened while the follower reads and closed while its
 * reader is stalled. -1 (call finished) if one cannot be opened. */
static int follower_open_files(follower *f) {
  rr_err e = {0};
  for (int s = 0; s < 2; s++)
    if (f->want[s] && f->fd[s] < 0 &&
        (f->fd[s] = logstore_stream_open_read(f->j->dir, s, &e)) < 0) {
      rpc_call_finish(f->c, e.code, e.msg);
      return -1;
    }
  return 0;
}

/* Send what is there while the client keeps up; finish when it is all out. */
static void follower_pump(follower *f) {
  if (rpc_call_finished(f->c))
    return;
  if (rpc_call_queued(f->c) > LOGS_HIGH_WATER || follower_open_files(f) < 0)
    return;
  /* decide "the job is over" before reading, so bytes written just before
   * the end are read in this same pass */
  bool ended = f->j->state != JOB_RUNNING;
  f->at_eof[0] = f->at_eof[1] = false;
  for (;;) {
    if (rpc_call_queued(f->c) > LOGS_HIGH_WATER) {
      follower_close_files(f); /* resumed by on_writable */
      return;
    }
    bool progress = false;
    for (int k = 0; k < 2; k++) {
      int s = (f->next + k) % 2;
      if (!f->want[s] || f->at_eof[s])
        continue;
      int rc = follower_send_one(f, s);
      if (rc < 0)
        return;
      if (rc == 0)
        f->at_eof[s] = true;
      else
        progress = true;
    }
    f->next = (f->next + 1) % 2;
    if (!progress)
      break;
  }
  if (!f->follow || ended)
    rpc_call_finish(f->c, RR_OK, NULL);
  /* else: at EOF while it runs; job events wake us up */
}

static void follower_on_event(job_watch *w, int event) { follower_pump(w->data); }

static void logs_on_writable(rpc_call *c) {
  follower *f = rpc_call_data(c);
  if (f)
    follower_pump(f);
}

static void logs_on_close(rpc_call *c, rpc_close_reason reason) {
  follower *f = rpc_call_data(c);
  quota_follower_del(((rund_ctx *)rpc_call_method_data(c))->quota, c);
  if (f)
    follower_free(f);
}

static void logs_on_message(rpc_call *c, ProtobufCMessage *msg) {
  Rundwire__LogsRequest *req = (Rundwire__LogsRequest *)msg;
  rund_ctx *ctx = rpc_call_method_data(c);
  rr_err e = {0};
  job *j;
  follower *f = NULL;
  authz_identity id = {0};
  int rc = rund_call_identity(c, &id, &e);
  if (rc == 0)
    rc = rund_job_lookup_visible(ctx, &id, &req->job_id, &j, &e);
  if (rc == 0)
    rc = quota_follower_add(ctx->quota, &id, c, &e); /* counted until logs_on_close */
  authz_identity_clear(&id);
  if (rc < 0)
    goto fail;
  if (req->stream < 0 || req->stream > 2) {
    rr_err_set(&e, RR_INVALID_ARGUMENT, "stream %d is not a Stream", req->stream);
    goto fail;
  }
  if (!(f = calloc(1, sizeof *f))) {
    rr_err_set(&e, RR_RESOURCE_EXHAUSTED, "out of memory");
    goto fail;
  }
  f->c = c;
  f->j = j;
  f->follow = req->follow;
  f->fd[0] = f->fd[1] = -1;
  f->offset[0] = req->stdout_offset;
  f->offset[1] = req->stderr_offset;
  f->want[1] = req->stream != 1;
  f->want[0] = req->stream != 2;
  for (int s = 0; s < 2; s++) {
    if (!f->want[s])
      continue;
    if ((f->fd[s] = logstore_stream_open_read(j->dir, s, &e)) < 0)
      goto fail;
    struct stat st;
    if (fstat(f->fd[s], &st) == 0 && f->offset[s] > (uint64_t)st.st_size) {
      rr_err_set(&e, RR_OUT_OF_RANGE, "%s_offset %llu is past the end of %s (%llu bytes)",
                 logstore_stream_name(s), (unsigned long long)f->offset[s], logstore_stream_name(s),
                 (unsigned long long)st.st_size);
      goto fail;
    }
  }
  protobuf_c_message_free_unpacked(msg, NULL);
  f->w.fn = follower_on_event;
  f->w.data = f;
  /* also while reading a finished job: a watched job is in use, which keeps
   * retention from deleting it under the reader */
  job_watch_add(j, &f->w);
  rpc_call_set_data(c, f);
  rpc_call_set_low_water(c, LOGS_LOW_WATER);
  follower_pump(f);
  return;
fail:
  if (f)
    follower_free(f);
  rund_call_fail(c, &e);
  protobuf_c_message_free_unpacked(msg, NULL);
}

int svc_logs_register(rpc_server *s, rund_ctx *ctx, rr_err *e) {
  const rpc_method m = {"/runrpc.v1.Jobs/Logs",
                        &rundwire__logs_request__descriptor,
                        false,
                        true,
                        logs_on_message,
                        NULL,
                        logs_on_writable,
                        logs_on_close,
                        ctx};
  return rpc_server_add_method(s, &m, e);
}
