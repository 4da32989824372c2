/* Start, Stop, Status, List, Wait, Signal. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "jobs/signame.h"
#include "jobs/exec_tty.h"
#include "rund.h"

static rund_ctx *call_ctx(rpc_call *c) { return rpc_call_method_data(c); }

/* Send one JobStatus-bearing response (Stop/Status/Wait share the shape). */
static void reply_status(rpc_call *c, job *j, const ProtobufCMessageDescriptor *d) {
  status_msg m;
  rr_err e = {0};
  job_refresh(j); /* byte counts as of now, not of the last inotify batch */
  if (convert_status(j, &m, &e) < 0) {
    rund_call_fail(c, &e);
    return;
  }
  /* StopResponse, StatusResponse and WaitResponse are all { JobStatus status = 1; } */
  Runrpc__V1__StatusResponse resp = RUNRPC__V1__STATUS_RESPONSE__INIT;
  resp.base.descriptor = d;
  resp.status = &m.status;
  if (rpc_call_send(c, &resp.base, &e) < 0)
    rund_call_fail(c, &e);
  else
    rpc_call_finish(c, RR_OK, NULL);
  convert_status_clear(&m);
}

/* StartRequest's stdin, tty, window and term, checked. */
typedef struct start_input {
  bool stdin_open, tty;
  unsigned rows, cols;
  char term[EXEC_TTY_TERM_MAX + 1];
} start_input;

/* window and term only with tty; a tty implies stdin. */
static int start_input_decode(const Rundwire__StartRequest *req, start_input *ret, rr_err *e) {
  *ret = (start_input){.stdin_open = req->stdin};
  if (!req->tty) {
    if (req->window || req->term.len)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s without tty", req->window ? "window" : "term");
    return 0;
  }
  exec_tty t;
  const unsigned *rows = req->window ? &req->window->rows : NULL;
  const unsigned *cols = req->window ? &req->window->cols : NULL;
  if (exec_tty_init(&t, rows, cols, req->term.data, req->term.len, e) < 0)
    return -1;
  ret->tty = ret->stdin_open = true;
  ret->rows = t.rows;
  ret->cols = t.cols;
  memcpy(ret->term, t.term, sizeof ret->term);
  return 0;
}

static int start_input_apply(const start_input *in, job_request *r, rr_err *e) {
  r->stdin_open = in->stdin_open;
  r->tty = in->tty;
  r->rows = in->rows;
  r->cols = in->cols;
  if (in->tty && !(r->term = strdup(in->term)))
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  return 0;
}

/* A prepared Start run and answered. */
static void start_run(rpc_call *c, prepared *p, uint64_t t0, const start_input *in) {
  rr_err e = {0};
  job *j = NULL;
  job_start_opts o = prepare_start_opts(p, true);
  if (start_input_apply(in, &p->req, &e) < 0 ||
      job_table_start(call_ctx(c)->jobs, &p->req, &o, &j, &e) < 0) {
    rund_spawn_error_scrub(&p->req, p->child_env, &e);
    prepare_free(p);
    rund_call_fail(c, &e);
    return;
  }
  rund_metrics_spawned(call_ctx(c), rr_mono_us() - t0);
  if (p->image_root) { /* the sandbox has its copy of the root; it goes when the job ends */
    rund_image_root_detach(call_ctx(c), p->image_root);
    if (rund_image_root_watch(call_ctx(c), j, p->image_root, &e) == 0) {
      free(p->image_root);
      p->image_root = NULL;
    }
  }
  rr_err qe = {0}; /* ENOMEM only: the job runs, uncounted */
  quota_job_add(call_ctx(c)->quota, j, &qe);
  rund_secrets_log_use(&p->id, &j->req, j->id);
  prepare_free(p);
  Runrpc__V1__StartResponse resp = RUNRPC__V1__START_RESPONSE__INIT;
  resp.job_id = j->id;
  resp.pid = j->pid;
  if (rpc_call_send(c, &resp.base, &e) < 0)
    rund_call_fail(c, &e);
  else
    rpc_call_finish(c, RR_OK, NULL);
}

/* A Start waiting for its image root's copy (the call's data). */
typedef struct start_wait {
  prepare_wait *w;
  uint64_t t0;
  start_input input;
} start_wait;

static void start_prepared(void *data, prepared *p, const rr_err *e) {
  rpc_call *c = data;
  start_wait *sw = rpc_call_data(c);
  rpc_call_set_data(c, NULL);
  if (p)
    start_run(c, p, sw->t0, &sw->input);
  else
    rund_call_fail(c, e);
  free(sw);
}

static void on_start(rpc_call *c, ProtobufCMessage *msg) {
  Rundwire__StartRequest *req = (Rundwire__StartRequest *)msg;
  rr_err e = {0};
  prepared p;
  prepare_in in = {.command = req->command,
                   .tags = req->tags,
                   .ntags = req->n_tags,
                   .has_timeout = req->timeout_case == RUNDWIRE__START_REQUEST__TIMEOUT_TIMEOUT_MS,
                   .timeout_ms = req->timeout_ms,
                   .has_timeout_grace = req->timeout_grace_case ==
                                        RUNDWIRE__START_REQUEST__TIMEOUT_GRACE_TIMEOUT_GRACE_MS,
                   .timeout_grace_ms = req->timeout_grace_ms,
                   .limits = req->limits,
                   .sandbox = req->sandbox,
                   .policy = &call_ctx(c)->sandbox};
  uint64_t t0 = rr_mono_us();
  start_wait *sw = calloc(1, sizeof *sw);
  int rc = sw ? start_input_decode(req, &sw->input, &e)
              : rr_err_set(&e, RR_RESOURCE_EXHAUSTED, "out of memory");
  if (rc == 0)
    rc = prepare_request(c, &in, &p, start_prepared, c, &sw->w, &e);
  protobuf_c_message_free_unpacked(msg, NULL); /* prepared requests own copies */
  if (rc == 1) {                               /* answered when its root is made */
    sw->t0 = t0;
    rpc_call_set_data(c, sw);
    return;
  }
  if (rc < 0)
    rund_call_fail(c, &e);
  else
    start_run(c, &p, t0, &sw->input);
  free(sw);
}

/* A Start whose caller went away while its root was being copied. */
static void start_on_close(rpc_call *c, rpc_close_reason reason) {
  start_wait *sw = rpc_call_data(c);
  if (!sw)
    return;
  rpc_call_set_data(c, NULL);
  prepare_wait_cancel(sw->w);
  free(sw);
}

/* The caller's identity and the job it names, if it may see it. */
static int call_job(rpc_call *c, const ProtobufCBinaryData *job_id, job **ret, rr_err *e) {
  authz_identity id = {0};
  if (rund_call_identity(c, &id, e) < 0)
    return -1;
  int rc = rund_job_lookup_visible(call_ctx(c), &id, job_id, ret, e);
  authz_identity_clear(&id);
  return rc;
}

static void on_status(rpc_call *c, ProtobufCMessage *msg) {
  Rundwire__StatusRequest *req = (Rundwire__StatusRequest *)msg;
  rr_err e = {0};
  job *j;
  if (call_job(c, &req->job_id, &j, &e) < 0)
    rund_call_fail(c, &e);
  else
    reply_status(c, j, &runrpc__v1__status_response__descriptor);
  protobuf_c_message_free_unpacked(msg, NULL);
}

#define LIST_DEFAULT_PAGE 1000
#define LIST_MAX_PAGE 5000
/* Below the 4 MiB clients accept by default (grpcio, librunrpc). */
#define LIST_MAX_PAGE_BYTES (3u * 1024u * 1024u)

/* Page size and the id to start after ("" = the first) from a ListRequest. */
static int list_page_args(const Rundwire__ListRequest *req, size_t *size, char after[ULID_LEN + 1],
                          rr_err *e) {
  if (req->page_size < 0 || req->page_size > LIST_MAX_PAGE)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "page_size %d is out of range (1..%d; 0 = %d)",
                      req->page_size, LIST_MAX_PAGE, LIST_DEFAULT_PAGE);
  *size = req->page_size ? (size_t)req->page_size : LIST_DEFAULT_PAGE;
  after[0] = '\0';
  if (!req->page_token.len)
    return 0;
  const char *t = (const char *)req->page_token.data;
  if (!ulid_parse(t, req->page_token.len, NULL)) {
    char shown[40] = "";
    for (size_t i = 0; i < req->page_token.len && i < 32; i++)
      shown[i] = (t[i] > ' ' && t[i] < 0x7f && t[i] != '"') ? t[i] : '?';
    return rr_err_set(e, RR_INVALID_ARGUMENT,
                      "page_token \"%s%s\" is not a next_page_token of a List (%zu bytes)", shown,
                      req->page_token.len > 32 ? "..." : "", req->page_token.len);
  }
  for (size_t i = 0; i < ULID_LEN; i++)
    after[i] = (t[i] >= 'a' && t[i] <= 'z') ? (char)(t[i] - 32) : t[i];
  after[ULID_LEN] = '\0';
  return 0;
}

/* First index of v (sorted by id) whose id sorts after `after` (newest
 * first: the number of ids before it, the next one being at that - 1). */
static size_t list_first_after(job *const *v, size_t n, const char *after, bool newest_first) {
  size_t lo = 0, hi = n;
  if (!*after)
    return newest_first ? n : 0;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int cmp = strcmp(v[mid]->id, after);
    if (newest_first ? cmp < 0 : cmp <= 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* Exec commands shown at most per List answer (beyond page_size). */
#define LIST_MAX_EXECS 256

/* Running Exec commands into ms/ptrs as jobs of kind "exec". */
static int list_add_execs(job *const *ex, size_t nx, status_msg *ms, Runrpc__V1__JobStatus **ptrs,
                          size_t *k, rr_err *e) {
  for (size_t i = 0; i < nx; i++, (*k)++) {
    if (convert_status(ex[i], &ms[*k], e) < 0)
      return -1;
    ms[*k].status.kind = (char *)"exec";
    ptrs[*k] = &ms[*k].status;
  }
  return 0;
}

static void on_list(rpc_call *c, ProtobufCMessage *msg) {
  Rundwire__ListRequest *req = (Rundwire__ListRequest *)msg;
  rr_err e = {0};
  _cleanup_free_ char *tag = NULL;
  job **v = NULL;
  size_t n = 0, page = 0, k = 0;
  char after[ULID_LEN + 1], next[ULID_LEN + 1] = "";
  authz_identity id = {0};
  status_msg *ms = NULL;
  Runrpc__V1__JobStatus **ptrs = NULL;
  if (rund_call_identity(c, &id, &e) < 0)
    goto out;
  if (req->state < 0 || req->state > JOB_FAILED) {
    rr_err_set(&e, RR_INVALID_ARGUMENT, "state %d is not a JobState", req->state);
    goto out;
  }
  if (req->tag.len) {
    if (request_string_dup(req->tag.data, req->tag.len, "tag", &tag, &e) < 0 ||
        request_tag_check(tag, "tag", &e) < 0)
      goto out;
  }
  if (list_page_args(req, &page, after, &e) < 0)
    goto out;
  if (job_table_list(call_ctx(c)->jobs, (job_state)req->state, tag, &v, &n, &e) < 0)
    goto out;
  bool back = req->newest_first;
  size_t i = list_first_after(v, n, after, back);
  size_t left = back ? i : n - i;
  size_t cap = left < page ? left : page;
  /* running Exec commands: first when newest first, else after the last job */
  job *ex[LIST_MAX_EXECS];
  size_t nx =
      rund_exec_list_visible(call_ctx(c), &id, (job_state)req->state, tag, ex, LIST_MAX_EXECS);
  if (back && *after)
    nx = 0;
  ms = calloc(cap + nx + 1, sizeof *ms);
  ptrs = calloc(cap + nx + 1, sizeof *ptrs);
  if (!ms || !ptrs) {
    rr_err_set(&e, RR_RESOURCE_EXHAUSTED, "out of memory listing %zu jobs", cap);
    goto out;
  }
  size_t bytes = 0;
  if (back && list_add_execs(ex, nx, ms, ptrs, &k, &e) < 0)
    goto out;
  size_t first_job = k;
  for (size_t step = 0; step < left; step++) {
    job *jb = v[back ? i - 1 - step : i + step];
    if (!authz_can_see(&id, jb->owner, jb->nowner))
      continue; /* only the caller's jobs */
    if (k - first_job == page) {
      memcpy(next, ms[k - 1].status.job_id, ULID_LEN + 1); /* more follow */
      break;
    }
    if (convert_status(jb, &ms[k], &e) < 0)
      goto out;
    size_t sz = protobuf_c_message_get_packed_size(&ms[k].status.base) + 8;
    if (k > first_job && bytes + sz > LIST_MAX_PAGE_BYTES) {
      convert_status_clear(&ms[k]);
      memcpy(next, ms[k - 1].status.job_id, ULID_LEN + 1);
      break;
    }
    bytes += sz;
    ptrs[k] = &ms[k].status;
    k++;
  }
  if (!back && !*next && list_add_execs(ex, nx, ms, ptrs, &k, &e) < 0)
    goto out;
  Runrpc__V1__ListResponse resp = RUNRPC__V1__LIST_RESPONSE__INIT;
  resp.n_jobs = k;
  resp.jobs = ptrs;
  resp.next_page_token = next;
  rpc_call_send(c, &resp.base, &e);
out:
  if (ms)
    for (size_t x = 0; x < k; x++)
      convert_status_clear(&ms[x]);
  free(ms);
  free(ptrs);
  free(v);
  authz_identity_clear(&id);
  if (e.code)
    rund_call_fail(c, &e);
  else
    rpc_call_finish(c, RR_OK, NULL);
  protobuf_c_message_free_unpacked(msg, NULL);
}

static void on_signal(rpc_call *c, ProtobufCMessage *msg) {
  Rundwire__SignalRequest *req = (Rundwire__SignalRequest *)msg;
  rr_err e = {0};
  job *j;
  int sig = 0;
  _cleanup_free_ char *name = NULL;
  if (call_job(c, &req->job_id, &j, &e) < 0)
    goto out;
  if (req->sig_case == RUNDWIRE__SIGNAL_REQUEST__SIG_NUMBER) {
    if (signame_check_number(req->number, "number", &e) < 0)
      goto out;
    sig = req->number;
  } else if (req->sig_case == RUNDWIRE__SIGNAL_REQUEST__SIG_NAME) {
    if (req->name.len > 32) {
      rr_err_set(&e, RR_INVALID_ARGUMENT, "name is not a known signal name (too long)");
      goto out;
    }
    if (request_string_dup(req->name.data, req->name.len, "name", &name, &e) < 0 ||
        signame_parse(name, "name", &sig, &e) < 0)
      goto out;
  } else {
    rr_err_set(&e, RR_INVALID_ARGUMENT, "a signal is required: set number or name");
    goto out;
  }
  if (job_signal(j, sig, &e) < 0)
    goto out;
  Runrpc__V1__SignalResponse resp = RUNRPC__V1__SIGNAL_RESPONSE__INIT;
  rpc_call_send(c, &resp.base, &e);
out:
  if (e.code)
    rund_call_fail(c, &e);
  else
    rpc_call_finish(c, RR_OK, NULL);
  protobuf_c_message_free_unpacked(msg, NULL);
}

/* Wait and Stop: answer once the job has ended. */
typedef struct waiter {
  job_watch w;
  rpc_call *c;
  const ProtobufCMessageDescriptor *resp;
} waiter;

static void waiter_on_event(job_watch *w, int event) {
  waiter *wt = w->data;
  if (event != JOB_EVENT_EXIT)
    return;
  job_watch_del(w);
  reply_status(wt->c, w->job, wt->resp);
}

static void waiter_start(rpc_call *c, job *j, const ProtobufCMessageDescriptor *d) {
  if (j->state != JOB_RUNNING) {
    reply_status(c, j, d);
    return;
  }
  waiter *wt = calloc(1, sizeof *wt);
  if (!wt) {
    rpc_call_finish(c, RR_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  wt->c = c;
  wt->resp = d;
  wt->w.fn = waiter_on_event;
  wt->w.data = wt;
  job_watch_add(j, &wt->w);
  rpc_call_set_data(c, wt);
}

static void waiter_on_close(rpc_call *c, rpc_close_reason reason) {
  waiter *wt = rpc_call_data(c);
  if (!wt)
    return;
  job_watch_del(&wt->w); /* the job keeps running whatever the reason */
  free(wt);
}

static void on_wait(rpc_call *c, ProtobufCMessage *msg) {
  Rundwire__WaitRequest *req = (Rundwire__WaitRequest *)msg;
  rr_err e = {0};
  job *j;
  if (call_job(c, &req->job_id, &j, &e) < 0)
    rund_call_fail(c, &e);
  else
    waiter_start(c, j, &runrpc__v1__wait_response__descriptor);
  protobuf_c_message_free_unpacked(msg, NULL);
}

static void on_stop(rpc_call *c, ProtobufCMessage *msg) {
  Rundwire__StopRequest *req = (Rundwire__StopRequest *)msg;
  rr_err e = {0};
  job *j;
  uint64_t grace = JOB_DEFAULT_GRACE_MS;
  if (req->grace_case == RUNDWIRE__STOP_REQUEST__GRACE_GRACE_MS)
    grace = req->grace_ms;
  if (call_job(c, &req->job_id, &j, &e) < 0 || job_stop(j, grace, &e) < 0)
    rund_call_fail(c, &e);
  else
    waiter_start(c, j, &runrpc__v1__stop_response__descriptor);
  protobuf_c_message_free_unpacked(msg, NULL);
}

static void plain_on_close(rpc_call *c, rpc_close_reason reason) {}

int svc_jobs_register(rpc_server *s, rund_ctx *ctx, rr_err *e) {
  const rpc_method methods[] = {
      {"/runrpc.v1.Jobs/Start", &rundwire__start_request__descriptor, false, false, on_start, NULL,
       NULL, start_on_close, ctx},
      {"/runrpc.v1.Jobs/Status", &rundwire__status_request__descriptor, false, false, on_status,
       NULL, NULL, plain_on_close, ctx},
      {"/runrpc.v1.Jobs/List", &rundwire__list_request__descriptor, false, false, on_list, NULL,
       NULL, plain_on_close, ctx},
      {"/runrpc.v1.Jobs/Signal", &rundwire__signal_request__descriptor, false, false, on_signal,
       NULL, NULL, plain_on_close, ctx},
      {"/runrpc.v1.Jobs/Wait", &rundwire__wait_request__descriptor, false, false, on_wait, NULL,
       NULL, waiter_on_close, ctx},
      {"/runrpc.v1.Jobs/Stop", &rundwire__stop_request__descriptor, false, false, on_stop, NULL,
       NULL, waiter_on_close, ctx},
  };
  for (size_t i = 0; i < RR_ARRAY_SIZE(methods); i++)
    if (rpc_server_add_method(s, &methods[i], e) < 0)
      return -1;
  return 0;
}
