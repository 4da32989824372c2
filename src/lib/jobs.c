/* librunrpc: the unary and server-streaming Jobs calls. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "lib.h"

typedef ProtobufCMessage pbmsg;

static void pb_freep(void *p) {
  pbmsg **m = p;
  if (*m)
    protobuf_c_message_free_unpacked(*m, NULL);
}
#define _cleanup_pb_ _cleanup_(pb_freep)

static void status_clear(runrpc_job_status *s) {
  if (s)
    memset(s, 0, sizeof *s);
}

RR_EXPORT int runrpc_start(runrpc_client *c, const runrpc_start_request *req,
                           char job_id[RUNRPC_JOB_ID_SIZE], int *ret_pid, runrpc_error *err) {
  rr_err e = {0};
  if (!c || !req || !job_id)
    return lib_err_out(&(rr_err){RR_INVALID_ARGUMENT, 0, "runrpc_start: NULL argument"}, err);
  if (req->ntags && !req->tags)
    return lib_err_out(&(rr_err){RR_INVALID_ARGUMENT, 0, "runrpc_start: ntags set, tags NULL"},
                       err);
  Runrpc__V1__Command cmd;
  if (lib_command_build(&req->command, &cmd, &e) < 0) {
    rr_err_wrap(&e, "start");
    return lib_err_out(&e, err);
  }
  Runrpc__V1__StartRequest r = RUNRPC__V1__START_REQUEST__INIT;
  r.command = &cmd;
  r.n_tags = req->ntags;
  r.tags = (char **)req->tags;
  if (req->has_timeout) {
    r.timeout_case = RUNRPC__V1__START_REQUEST__TIMEOUT_TIMEOUT_MS;
    r.timeout_ms = req->timeout_ms;
  }
  if (req->timeout_grace_ms) {
    r.timeout_grace_case = RUNRPC__V1__START_REQUEST__TIMEOUT_GRACE_TIMEOUT_GRACE_MS;
    r.timeout_grace_ms = req->timeout_grace_ms;
  }
  Runrpc__V1__TerminalSize win = RUNRPC__V1__TERMINAL_SIZE__INIT;
  r.stdin = req->stdin_open;
  r.tty = req->tty;
  if (req->tty && req->rows && req->cols) {
    win.rows = req->rows;
    win.cols = req->cols;
    r.window = &win;
  }
  if (req->tty && req->term)
    r.term = (char *)req->term;
  lib_limits lim;
  int any = lib_limits_build(&req->limits, &lim, &e);
  if (any < 0) {
    lib_command_free(&cmd);
    rr_err_wrap(&e, "start");
    return lib_err_out(&e, err);
  }
  if (any)
    r.limits = &lim.msg;
  lib_sandbox sb;
  any = lib_sandbox_build(&req->sandbox, c->profile, &sb, &e);
  if (any < 0) {
    lib_command_free(&cmd);
    rr_err_wrap(&e, "start");
    return lib_err_out(&e, err);
  }
  if (any)
    r.sandbox = &sb.msg;
  _cleanup_pb_ pbmsg *m = NULL;
  int rv = lib_unary(c, LIB_JOBS_PATH("Start"), &r.base, &runrpc__v1__start_response__descriptor,
                     c->call_timeout_ms, &m, &e);
  lib_command_free(&cmd);
  if (rv < 0)
    return lib_err_out(&e, err);
  Runrpc__V1__StartResponse *resp = (Runrpc__V1__StartResponse *)m;
  if (!resp->job_id || strlen(resp->job_id) >= RUNRPC_JOB_ID_SIZE || !*resp->job_id) {
    rr_err_set(&e, RR_INTERNAL, "start: server returned an invalid job id \"%.64s\"",
               resp->job_id ? resp->job_id : "");
    return lib_err_out(&e, err);
  }
  snprintf(job_id, RUNRPC_JOB_ID_SIZE, "%s", resp->job_id);
  if (ret_pid)
    *ret_pid = resp->pid;
  return 0;
}

/* Calls whose response is {JobStatus status = 1}: Stop, Status, Wait. */
static int status_call(runrpc_client *c, const char *path, const pbmsg *req,
                       const ProtobufCMessageDescriptor *desc, uint64_t timeout_ms,
                       runrpc_job_status *ret, runrpc_error *err) {
  rr_err e = {0};
  _cleanup_pb_ pbmsg *m = NULL;
  if (lib_unary(c, path, req, desc, timeout_ms, &m, &e) < 0)
    return lib_err_out(&e, err);
  /* StopResponse, StatusResponse and WaitResponse share this layout */
  Runrpc__V1__StatusResponse *resp = (Runrpc__V1__StatusResponse *)m;
  if (lib_status_copy(resp->status, ret, &e) < 0)
    return lib_err_out(&e, err);
  return 0;
}

RR_EXPORT int runrpc_stop(runrpc_client *c, const char *job_id, int64_t grace_ms,
                          runrpc_job_status *ret, runrpc_error *err) {
  rr_err e = {0};
  status_clear(ret);
  if (!c || !ret)
    return lib_err_out(&(rr_err){RR_INVALID_ARGUMENT, 0, "runrpc_stop: NULL argument"}, err);
  if (lib_job_id_check(job_id, &e) < 0)
    return lib_err_out(&e, err);
  if (grace_ms > (int64_t)UINT32_MAX) {
    rr_err_set(&e, RR_INVALID_ARGUMENT, "grace of %lld ms too long", (long long)grace_ms);
    return lib_err_out(&e, err);
  }
  Runrpc__V1__StopRequest r = RUNRPC__V1__STOP_REQUEST__INIT;
  r.job_id = (char *)job_id;
  uint64_t grace = 10000;
  if (grace_ms >= 0) {
    r.grace_case = RUNRPC__V1__STOP_REQUEST__GRACE_GRACE_MS;
    r.grace_ms = (uint32_t)grace_ms;
    grace = (uint64_t)grace_ms;
  }
  /* the server may take the whole grace period before answering */
  return status_call(c, LIB_JOBS_PATH("Stop"), &r.base, &runrpc__v1__stop_response__descriptor,
                     grace + c->call_timeout_ms, ret, err);
}

RR_EXPORT int runrpc_status(runrpc_client *c, const char *job_id, runrpc_job_status *ret,
                            runrpc_error *err) {
  rr_err e = {0};
  status_clear(ret);
  if (!c || !ret)
    return lib_err_out(&(rr_err){RR_INVALID_ARGUMENT, 0, "runrpc_status: NULL argument"}, err);
  if (lib_job_id_check(job_id, &e) < 0)
    return lib_err_out(&e, err);
  Runrpc__V1__StatusRequest r = RUNRPC__V1__STATUS_REQUEST__INIT;
  r.job_id = (char *)job_id;
  return status_call(c, LIB_JOBS_PATH("Status"), &r.base, &runrpc__v1__status_response__descriptor,
                     c->call_timeout_ms, ret, err);
}

RR_EXPORT int runrpc_wait(runrpc_client *c, const char *job_id, uint64_t timeout_ms,
                          runrpc_job_status *ret, runrpc_error *err) {
  rr_err e = {0};
  status_clear(ret);
  if (!c || !ret)
    return lib_err_out(&(rr_err){RR_INVALID_ARGUMENT, 0, "runrpc_wait: NULL argument"}, err);
  if (lib_job_id_check(job_id, &e) < 0)
    return lib_err_out(&e, err);
  Runrpc__V1__WaitRequest r = RUNRPC__V1__WAIT_REQUEST__INIT;
  r.job_id = (char *)job_id;
  return status_call(c, LIB_JOBS_PATH("Wait"), &r.base, &runrpc__v1__wait_response__descriptor,
                     timeout_ms, ret, err);
}

RR_EXPORT int runrpc_signal(runrpc_client *c, const char *job_id, int number, const char *name,
                            runrpc_error *err) {
  rr_err e = {0};
  if (!c)
    return lib_err_out(&(rr_err){RR_INVALID_ARGUMENT, 0, "runrpc_signal: NULL client"}, err);
  if (lib_job_id_check(job_id, &e) < 0)
    return lib_err_out(&e, err);
  Runrpc__V1__SignalRequest r = RUNRPC__V1__SIGNAL_REQUEST__INIT;
  r.job_id = (char *)job_id;
  if (name) {
    if (!*name) {
      rr_err_set(&e, RR_INVALID_ARGUMENT, "empty signal name");
      return lib_err_out(&e, err);
    }
    r.sig_case = RUNRPC__V1__SIGNAL_REQUEST__SIG_NAME;
    r.name = (char *)name;
  } else {
    if (number < 1 || number > 64) {
      rr_err_set(&e, RR_INVALID_ARGUMENT, "invalid signal number %d (want 1..64)", number);
      return lib_err_out(&e, err);
    }
    r.sig_case = RUNRPC__V1__SIGNAL_REQUEST__SIG_NUMBER;
    r.number = number;
  }
  _cleanup_pb_ pbmsg *m = NULL;
  if (lib_unary(c, LIB_JOBS_PATH("Signal"), &r.base, &runrpc__v1__signal_response__descriptor,
                c->call_timeout_ms, &m, &e) < 0)
    return lib_err_out(&e, err);
  return 0;
}

RR_EXPORT int runrpc_list_page(runrpc_client *c, runrpc_job_state state, const char *tag,
                               uint32_t page_size, const char *page_token,
                               runrpc_job_status **ret_jobs, size_t *ret_count,
                               char next_token[RUNRPC_PAGE_TOKEN_SIZE], runrpc_error *err) {
  runrpc_list_request q = {
      .state = state, .tag = tag, .page_size = page_size, .page_token = page_token};
  return runrpc_list_query(c, &q, ret_jobs, ret_count, next_token, err);
}

RR_EXPORT int runrpc_list_query(runrpc_client *c, const runrpc_list_request *q,
                                runrpc_job_status **ret_jobs, size_t *ret_count,
                                char next_token[RUNRPC_PAGE_TOKEN_SIZE], runrpc_error *err) {
  rr_err e = {0};
  if (!c || !q || !ret_jobs || !ret_count || !next_token)
    return lib_err_out(&(rr_err){RR_INVALID_ARGUMENT, 0, "runrpc_list_query: NULL argument"}, err);
  runrpc_job_state state = q->state;
  const char *tag = q->tag, *page_token = q->page_token;
  uint32_t page_size = q->page_size;
  *ret_jobs = NULL;
  *ret_count = 0;
  next_token[0] = '\0';
  if ((int)state < 0 || state > RUNRPC_JOB_FAILED) {
    rr_err_set(&e, RR_INVALID_ARGUMENT, "invalid job state %d", (int)state);
    return lib_err_out(&e, err);
  }
  if (page_size > INT32_MAX) {
    rr_err_set(&e, RR_INVALID_ARGUMENT, "page size %u too large", page_size);
    return lib_err_out(&e, err);
  }
  Runrpc__V1__ListRequest r = RUNRPC__V1__LIST_REQUEST__INIT;
  r.state = (Runrpc__V1__JobState)state;
  r.tag = (char *)(tag ? tag : "");
  r.page_size = (int32_t)page_size;
  r.page_token = (char *)(page_token ? page_token : "");
  r.newest_first = q->newest_first;
  _cleanup_pb_ pbmsg *m = NULL;
  if (lib_unary(c, LIB_JOBS_PATH("List"), &r.base, &runrpc__v1__list_response__descriptor,
                c->call_timeout_ms, &m, &e) < 0)
    return lib_err_out(&e, err);
  Runrpc__V1__ListResponse *resp = (Runrpc__V1__ListResponse *)m;
  const char *next = resp->next_page_token ? resp->next_page_token : "";
  if (strlen(next) >= RUNRPC_PAGE_TOKEN_SIZE) {
    rr_err_set(&e, RR_INTERNAL, "list: server returned a %zu-byte page token (max %d)",
               strlen(next), RUNRPC_PAGE_TOKEN_SIZE - 1);
    return lib_err_out(&e, err);
  }
  runrpc_job_status *jobs = calloc(resp->n_jobs ? resp->n_jobs : 1, sizeof *jobs);
  if (!jobs) {
    rr_err_set(&e, RR_RESOURCE_EXHAUSTED, "out of memory for %zu jobs", resp->n_jobs);
    return lib_err_out(&e, err);
  }
  for (size_t i = 0; i < resp->n_jobs; i++) {
    if (lib_status_copy(resp->jobs[i], &jobs[i], &e) < 0) {
      runrpc_job_list_free(jobs, i);
      return lib_err_out(&e, err);
    }
  }
  snprintf(next_token, RUNRPC_PAGE_TOKEN_SIZE, "%s", next);
  *ret_jobs = jobs;
  *ret_count = resp->n_jobs;
  return 0;
}

RR_EXPORT int runrpc_list(runrpc_client *c, runrpc_job_state state, const char *tag,
                          runrpc_job_status **ret_jobs, size_t *ret_count, runrpc_error *err) {
  if (!c || !ret_jobs || !ret_count)
    return lib_err_out(&(rr_err){RR_INVALID_ARGUMENT, 0, "runrpc_list: NULL argument"}, err);
  *ret_jobs = NULL;
  *ret_count = 0;
  runrpc_job_status *all = NULL;
  size_t n = 0;
  char token[RUNRPC_PAGE_TOKEN_SIZE] = "";
  do {
    runrpc_job_status *page;
    size_t k;
    char next[RUNRPC_PAGE_TOKEN_SIZE];
    if (runrpc_list_page(c, state, tag, 0, token, &page, &k, next, err) < 0)
      goto fail;
    if (*next && !strcmp(next, token)) { /* would loop for ever */
      runrpc_job_list_free(page, k);
      lib_err_out(&(rr_err){RR_INTERNAL, 0, "list: the server returned the same page token twice"},
                  err);
      goto fail;
    }
    runrpc_job_status *grown = k ? realloc(all, (n + k) * sizeof *all) : all;
    if (k && !grown) {
      runrpc_job_list_free(page, k);
      lib_err_out(&(rr_err){RR_RESOURCE_EXHAUSTED, 0, "list: out of memory"}, err);
      goto fail;
    }
    all = grown;
    if (k)
      memcpy(all + n, page, k * sizeof *page);
    n += k;
    free(page); /* the strings moved into all */
    memcpy(token, next, sizeof token);
  } while (*token);
  *ret_jobs = all ? all : calloc(1, sizeof *all);
  *ret_count = n;
  if (!*ret_jobs)
    return lib_err_out(&(rr_err){RR_RESOURCE_EXHAUSTED, 0, "list: out of memory"}, err);
  return 0;
fail:
  runrpc_job_list_free(all, n);
  return -1;
}

RR_EXPORT int runrpc_logs_chunks(runrpc_client *c, const runrpc_logs_request *req,
                                 const runrpc_logs_times *times, runrpc_log_chunk_fn fn,
                                 void *userdata, runrpc_error *err) {
  rr_err e = {0};
  if (!c || !req || !fn)
    return lib_err_out(&(rr_err){RR_INVALID_ARGUMENT, 0, "runrpc_logs: NULL argument"}, err);
  if (lib_job_id_check(req->job_id, &e) < 0)
    return lib_err_out(&e, err);
  if ((int)req->stream < 0 || req->stream > RUNRPC_STREAM_STDERR) {
    rr_err_set(&e, RR_INVALID_ARGUMENT, "invalid stream %d", (int)req->stream);
    return lib_err_out(&e, err);
  }
  Runrpc__V1__LogsRequest r = RUNRPC__V1__LOGS_REQUEST__INIT;
  r.job_id = (char *)req->job_id;
  r.follow = req->follow;
  r.stream = (Runrpc__V1__Stream)req->stream;
  r.stdout_offset = req->stdout_offset;
  r.stderr_offset = req->stderr_offset;
  if (times) {
    r.timestamps = times->timestamps;
    r.since_unix_ns = times->since_unix_ns;
  }
  _cleanup_free_ uint8_t *buf = NULL;
  size_t len = 0;
  if (lib_pack(&r.base, &buf, &len, &e) < 0)
    return lib_err_out(&e, err);
  rpc_client_call *call;
  if (rpc_client_call_start(c->grpc, LIB_JOBS_PATH("Logs"), req->timeout_ms, &call, &e) < 0)
    return lib_err_out(&e, err);
  int rv = -1;
  if (rpc_client_call_send(call, buf, len, &e) < 0 || rpc_client_call_close_send(call, &e) < 0)
    goto out;
  for (;;) {
    _cleanup_free_ uint8_t *msg = NULL;
    size_t mlen;
    int r2 = rpc_client_call_recv(call, &msg, &mlen, &e);
    if (r2 == RPC_CLIENT_CALL_END)
      break;
    if (r2 < 0)
      goto out;
    Runrpc__V1__LogsResponse *lr = runrpc__v1__logs_response__unpack(NULL, mlen, msg);
    if (!lr) {
      rr_err_set(&e, RR_INTERNAL, "logs: cannot decode a %zu-byte LogsResponse", mlen);
      goto out;
    }
    runrpc_log_chunk ch = {.stream = (runrpc_stream)lr->stream,
                           .offset = lr->offset,
                           .data = lr->data.data,
                           .len = lr->data.len,
                           .dropped = lr->dropped,
                           .lost = lr->lost,
                           .time_unix_ns = lr->time_unix_ns};
    int stop = fn(&ch, userdata);
    runrpc__v1__logs_response__free_unpacked(lr, NULL);
    if (stop) {
      rr_err_set(&e, RR_CANCELLED, "logs: stopped by the caller");
      goto out;
    }
  }
  rv = 0;
out:
  rpc_client_call_free(call);
  return rv < 0 ? lib_err_out(&e, err) : 0;
}

typedef struct logs_plain {
  runrpc_logs_fn fn;
  void *userdata;
} logs_plain;

static int logs_plain_chunk(const runrpc_log_chunk *ch, void *ud) {
  const logs_plain *p = ud;
  if (!ch->len && !ch->dropped)
    return 0; /* only lost bytes: nothing this callback can say */
  return p->fn(ch->stream, ch->offset, ch->data, ch->len, ch->dropped, p->userdata);
}

RR_EXPORT int runrpc_logs(runrpc_client *c, const runrpc_logs_request *req, runrpc_logs_fn fn,
                          void *userdata, runrpc_error *err) {
  logs_plain p = {fn, userdata};
  if (!fn)
    return lib_err_out(&(rr_err){RR_INVALID_ARGUMENT, 0, "runrpc_logs: NULL argument"}, err);
  return runrpc_logs_chunks(c, req, NULL, logs_plain_chunk, &p, err);
}

typedef struct logs_fds {
  int out, err;
  rr_err e;
} logs_fds;

static int logs_to_fd(runrpc_stream stream, uint64_t offset, const void *data, size_t len,
                      uint64_t dropped, void *ud) {
  logs_fds *f = ud;
  int fd = stream == RUNRPC_STREAM_STDERR ? f->err : f->out;
  if (fd < 0 || len == 0)
    return 0;
  return lib_write_fd(fd, data, len, &f->e) < 0 ? 1 : 0;
}

RR_EXPORT int runrpc_logs_to_fds(runrpc_client *c, const runrpc_logs_request *req, int stdout_fd,
                                 int stderr_fd, runrpc_error *err) {
  logs_fds f = {.out = stdout_fd, .err = stderr_fd};
  if (runrpc_logs(c, req, logs_to_fd, &f, err) < 0) {
    if (f.e.code != RR_OK) /* the output failed, not the call */
      return lib_err_out(&f.e, err);
    return -1;
  }
  return 0;
}
