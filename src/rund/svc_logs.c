/* Logs: a job's stored output from given offsets, optionally following it
 * until the job ended and both files were read to the end. Each follower
 * reads the files at its own pace (back-pressure from its call's queue), so a
 * slow one never holds back the job or the other followers.
 * Output comes in the order the job's keeper moved it (its order index,
 * jobs/logindex.h): stdout and stderr interleaved as written, each chunk
 * with its time. Bytes the index does not cover (a job stored before it
 * existed, or an index that fell behind on a full disk) come after it,
 * stream by stream, as they always did. */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "jobs/logindex.h"
#include "jobs/logstore.h"
#include "rund.h"

#define LOGS_CHUNK (32u * 1024u)
/* A follower stops reading past this much queued (the bytes wait on disk),
 * resumes below LOGS_LOW_WATER: a stalled reader holds ~64 KiB and no fd. */
#define LOGS_HIGH_WATER (2u * LOGS_CHUNK)
#define LOGS_LOW_WATER LOGS_CHUNK
#define LOGS_RECS 64 /* index records read at once */

typedef struct follower {
  job_watch w;
  rpc_call *c;
  job *j;
  bool follow;
  bool timestamps; /* one response per record (each with its time) */
  bool want[2];
  bool at_eof[2];
  int fd[2];
  int ifd;            /* the order index (the job's exit file); -1: closed or none */
  uint64_t offset[2]; /* next byte to send per stream */
  int next;           /* stream to read first, alternating for fairness */
  /* the walk through the order index */
  bool indexed;    /* the job has an index: its records lead */
  bool new_keeper; /* started by this rund, whose keepers write an index */
  int64_t since_ns;
  uint64_t pos[2];       /* where the next record of each stream starts */
  uint64_t lost_seen[2]; /* lost bytes in the records consumed */
  int64_t last_ns;       /* time of the last record consumed */
  logindex_rec recs[LOGS_RECS];
  size_t nrecs, irec; /* recs[irec..nrecs) follow those consumed */
  uint64_t rec;       /* records consumed */
} follower;

static uint8_t logs_buf[LOGS_CHUNK]; /* one loop thread: a shared scratch buffer */
static int64_t logs_started_ns;      /* jobs started since have an order index */

static void follower_close_files(follower *f);

static void follower_free(follower *f) {
  job_watch_del(&f->w);
  follower_close_files(f);
  free(f);
}

static Runrpc__V1__Stream stream_of(int s) {
  return s == LOG_STDOUT ? RUNRPC__V1__STREAM__STREAM_STDOUT : RUNRPC__V1__STREAM__STREAM_STDERR;
}

static int follower_send(follower *f, Runrpc__V1__LogsResponse *resp) {
  rr_err e = {0};
  if (rpc_call_send(f->c, &resp->base, &e) < 0) {
    rpc_call_finish(f->c, e.code, e.msg);
    return -1;
  }
  return 0;
}

/* Send one chunk of stream s, up to end; 1 sent, 0 at EOF (or end), -1
 * call failed. */
static int follower_send_one(follower *f, int s, uint64_t end, int64_t time_ns) {
  rr_err e = {0};
  uint64_t dropped = 0;
  uint64_t from = f->offset[s] < f->j->kept_from[s] ? f->j->kept_from[s] : f->offset[s];
  size_t len = sizeof logs_buf;
  if (end != UINT64_MAX)
    len = from >= end ? 0 : end - from < len ? (size_t)(end - from) : len;
  ssize_t n = logstore_stream_read(f->fd[s], f->j->kept_from[s], &f->offset[s], logs_buf, len,
                                   &dropped, &e);
  if (n < 0) {
    rpc_call_finish(f->c, e.code, e.msg);
    return -1;
  }
  if (n == 0 && !dropped)
    return 0;
  Runrpc__V1__LogsResponse resp = RUNRPC__V1__LOGS_RESPONSE__INIT;
  resp.stream = stream_of(s);
  resp.offset = f->offset[s] - (uint64_t)n;
  resp.data.data = logs_buf;
  resp.data.len = (size_t)n;
  resp.dropped = dropped;
  resp.time_unix_ns = time_ns;
  if (follower_send(f, &resp) < 0)
    return -1;
  return n ? 1 : 0;
}

static void follower_close_files(follower *f) {
  for (int s = 0; s < 2; s++)
    if (f->fd[s] >= 0) {
      close(f->fd[s]);
      f->fd[s] = -1;
    }
  if (f->ifd >= 0) {
    close(f->ifd);
    f->ifd = -1;
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
  if (f->ifd < 0 && (f->ifd = logindex_open(f->j->dir, &e)) < 0 && e.code != RR_NOT_FOUND) {
    rpc_call_finish(f->c, e.code, e.msg);
    return -1;
  }
  return 0;
}

static bool follower_stalled(const follower *f) { return rpc_call_queued(f->c) > LOGS_HIGH_WATER; }

/* Bytes [pos, end) of stream s (those before offset[s] were sent already);
 * 1 all sent, 0 stalled, -1 call failed. */
static int follower_send_range(follower *f, int s, uint64_t end, int64_t time_ns) {
  while (f->offset[s] < end) {
    if (follower_stalled(f))
      return 0;
    int rc = follower_send_one(f, s, end, time_ns);
    if (rc < 0)
      return -1;
    if (rc == 0 && f->offset[s] < end) {
      f->offset[s] = end; /* the log is shorter than its index says: go on */
      break;
    }
  }
  return 1;
}

static void follower_consume(follower *f, size_t n) {
  for (size_t i = 0; i < n; i++, f->irec++, f->rec++) {
    const logindex_rec *r = &f->recs[f->irec];
    if (r->lost)
      f->lost_seen[r->stream] += r->len;
    else
      f->pos[r->stream] += r->len;
    f->last_ns = r->time_ns;
  }
}

/* A record of bytes the keeper could not store: said where they are missing. */
static int follower_send_lost(follower *f, int s, uint64_t at, uint64_t n, int64_t time_ns) {
  Runrpc__V1__LogsResponse resp = RUNRPC__V1__LOGS_RESPONSE__INIT;
  resp.stream = stream_of(s);
  resp.offset = at;
  resp.lost = n;
  resp.time_unix_ns = time_ns;
  return follower_send(f, &resp);
}

/* Send what the index records, in its order: 1 caught up with it, 0
 * stalled, -1 call failed. */
static int follower_walk(follower *f) {
  for (;;) {
    if (follower_stalled(f))
      return 0;
    if (f->irec == f->nrecs) {
      rr_err e = {0};
      ssize_t k = logindex_read(f->ifd, f->rec, f->recs, LOGS_RECS, &e);
      if (k < 0) {
        rpc_call_finish(f->c, e.code, e.msg);
        return -1;
      }
      f->irec = 0;
      f->nrecs = (size_t)k;
      if (k == 0)
        return 1;
    }
    const logindex_rec *r = &f->recs[f->irec];
    int s = r->stream;
    bool wanted = f->want[s] && r->time_ns >= f->since_ns;
    if (r->lost) {
      if (wanted && f->pos[s] >= f->offset[s] &&
          follower_send_lost(f, s, f->pos[s], r->len, r->time_ns) < 0)
        return -1;
      follower_consume(f, 1);
      continue;
    }
    /* without times asked, this stream's next records go along (they are
     * contiguous in its log) */
    uint64_t end = f->pos[s] + r->len;
    size_t n = 1;
    while (!f->timestamps && f->irec + n < f->nrecs && f->recs[f->irec + n].stream == s &&
           !f->recs[f->irec + n].lost)
      end += f->recs[f->irec + n++].len;
    if (!wanted) {
      if (f->offset[s] < end)
        f->offset[s] = end;
    } else if (f->offset[s] < end) {
      if (f->offset[s] < f->pos[s])
        f->offset[s] = f->pos[s]; /* cannot happen: the walk sends every byte */
      int rc = follower_send_range(f, s, end, r->time_ns);
      if (rc <= 0)
        return rc;
    }
    follower_consume(f, n);
  }
}

/* What the index does not cover, stream by stream from offset[] to EOF: 1
 * done, 0 stalled, -1 call failed. */
static int follower_send_rest(follower *f) {
  int64_t t = f->indexed ? f->last_ns : 0; /* written at or after it */
  f->at_eof[0] = f->at_eof[1] = false;
  for (;;) {
    if (follower_stalled(f))
      return 0;
    bool progress = false;
    for (int k = 0; k < 2; k++) {
      int s = (f->next + k) % 2;
      if (!f->want[s] || f->at_eof[s])
        continue;
      int rc = follower_send_one(f, s, UINT64_MAX, t);
      if (rc < 0)
        return -1;
      if (rc == 0)
        f->at_eof[s] = true;
      else
        progress = true;
    }
    f->next = (f->next + 1) % 2;
    if (!progress)
      return 1;
  }
}

/* Lost bytes of an ended job that no record placed (an index that fell
 * behind, or a job from before it): said at the end of what was sent. */
static int follower_send_unplaced(follower *f) {
  for (int s = 0; s < 2; s++)
    if (f->want[s] && f->j->lost[s] > f->lost_seen[s]) {
      if (follower_send_lost(f, s, f->offset[s], f->j->lost[s] - f->lost_seen[s], 0) < 0)
        return -1;
      f->lost_seen[s] = f->j->lost[s];
    }
  return 0;
}

/* Send what is there while the client keeps up; finish when it is all out. */
static void follower_pump(follower *f) {
  if (rpc_call_finished(f->c))
    return;
  if (follower_stalled(f) || follower_open_files(f) < 0)
    return;
  /* decide "the job is over" before reading, so bytes written just before
   * the end are read in this same pass */
  bool ended = f->j->state != JOB_RUNNING;
  if (!f->indexed && f->ifd >= 0)
    f->indexed = logindex_present(f->ifd);
  int rc = f->indexed ? follower_walk(f) : 1;
  /* a follower of a running job whose keeper writes an index waits for
   * its records; else the rest goes out now */
  if (rc > 0 && !(f->follow && !ended && (f->indexed || f->new_keeper)))
    rc = follower_send_rest(f);
  if (rc == 0)
    follower_close_files(f); /* stalled: resumed by on_writable */
  if (rc <= 0)
    return;
  if (ended && follower_send_unplaced(f) < 0)
    return;
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

/* Times need the index: a job stored without one has none to filter on. */
static int logs_check_times(follower *f, const Rundwire__LogsRequest *req, rr_err *e) {
  if (!req->timestamps && !req->since_unix_ns)
    return 0;
  if (f->indexed || (f->new_keeper && f->j->state == JOB_RUNNING) ||
      f->j->size[0] + f->j->size[1] == 0)
    return 0;
  return rr_err_set(e, RR_FAILED_PRECONDITION,
                    "job %s's output was stored without times (by a rund older than its order "
                    "index): timestamps and since do not apply to it",
                    f->j->id);
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
  if (req->since_unix_ns < 0) {
    rr_err_set(&e, RR_INVALID_ARGUMENT, "since_unix_ns %lld is before the epoch",
               (long long)req->since_unix_ns);
    goto fail;
  }
  if (!(f = calloc(1, sizeof *f))) {
    rr_err_set(&e, RR_RESOURCE_EXHAUSTED, "out of memory");
    goto fail;
  }
  f->c = c;
  f->j = j;
  f->follow = req->follow;
  f->timestamps = req->timestamps;
  f->since_ns = req->since_unix_ns;
  f->new_keeper = j->start_ns >= logs_started_ns;
  f->fd[0] = f->fd[1] = f->ifd = -1;
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
  if ((f->ifd = logindex_open(j->dir, &e)) < 0 && e.code != RR_NOT_FOUND)
    goto fail;
  f->indexed = f->ifd >= 0 && logindex_present(f->ifd);
  if (logs_check_times(f, req, &e) < 0)
    goto fail;
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
  logs_started_ns = rr_now_unix_ns();
  return rpc_server_add_method(s, &m, e);
}
