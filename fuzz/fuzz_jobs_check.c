#include "fuzz_jobs_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "jobs/request.h"
#include "jobs/signame.h"
#include "jobs/ulid.h"
#include "rund/rund.h"

enum { M_START, M_STATUS, M_LIST, M_SIGNAL, M_WAIT, M_STOP, M_LOGS, M_EXEC, M_COUNT };

static const struct {
  const char *path;
  const ProtobufCMessageDescriptor *d;
} fuzz_methods[M_COUNT] = {
    [M_START] = {"/runrpc.v1.Jobs/Start", &rundwire__start_request__descriptor},
    [M_STATUS] = {"/runrpc.v1.Jobs/Status", &rundwire__status_request__descriptor},
    [M_LIST] = {"/runrpc.v1.Jobs/List", &rundwire__list_request__descriptor},
    [M_SIGNAL] = {"/runrpc.v1.Jobs/Signal", &rundwire__signal_request__descriptor},
    [M_WAIT] = {"/runrpc.v1.Jobs/Wait", &rundwire__wait_request__descriptor},
    [M_STOP] = {"/runrpc.v1.Jobs/Stop", &rundwire__stop_request__descriptor},
    [M_LOGS] = {"/runrpc.v1.Jobs/Logs", &rundwire__logs_request__descriptor},
    [M_EXEC] = {"/runrpc.v1.Jobs/Exec", &rundwire__exec_request__descriptor},
};

const ProtobufCMessageDescriptor *fuzz_jobs_method(unsigned i, const char **path) {
  if (i >= M_COUNT)
    return NULL;
  *path = fuzz_methods[i].path;
  return fuzz_methods[i].d;
}

/* convert_job_lookup without the table: the id must be a ULID. */
static int check_job_id(const ProtobufCBinaryData *id, rr_err *e) {
  _cleanup_free_ char *s = NULL;
  if (id->len > 64)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "job_id is not a ULID (%zu bytes)", id->len);
  if (request_string_dup(id->data, id->len, "job_id", &s, e) < 0)
    return -1;
  if (!ulid_parse(s, strlen(s), NULL))
    return rr_err_set(e, RR_NOT_FOUND, "no job \"%s\"", s);
  return 0;
}

/* A request that passed must survive job.json and come back the same. */
static void check_json_round_trip(const job_request *r) {
  json_object *o = job_request_to_json(r);
  job_request back;
  rr_err e = {0};
  memset(&back, 0, sizeof back);
  if (!o || job_request_from_json(o, &back, &e) < 0) {
    fprintf(stderr, "job.json form of a valid request does not load: %s\n", e.msg);
    abort();
  }
  if (strcmp(back.path, r->path) != 0 || back.nargs != r->nargs || back.nenv != r->nenv ||
      back.ntags != r->ntags || back.has_timeout != r->has_timeout ||
      (r->has_timeout && back.timeout_ms != r->timeout_ms) || !back.limits != !r->limits) {
    fprintf(stderr, "job.json form of a request loads differently\n");
    abort();
  }
  for (size_t i = 0; i < r->nargs; i++)
    if (strcmp(back.args[i], r->args[i]) != 0)
      abort();
  job_request_free(&back);
  json_object_put(o);
}

/* on_start / exec_start up to the point where secrets and spawning begin. */
static int check_command(const prepare_in *in, rr_err *e) {
  job_request r;
  if (prepare_decode(in, &r, e) < 0)
    return -1;
  check_json_round_trip(&r);
  job_request_free(&r);
  return 0;
}

static int check_signal(const Rundwire__SignalRequest *req, rr_err *e) {
  int sig = 0;
  _cleanup_free_ char *name = NULL;
  if (check_job_id(&req->job_id, e) < 0)
    return -1;
  if (req->sig_case == RUNDWIRE__SIGNAL_REQUEST__SIG_NUMBER)
    return signame_check_number(req->number, "number", e);
  if (req->sig_case != RUNDWIRE__SIGNAL_REQUEST__SIG_NAME)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "a signal is required: set number or name");
  if (req->name.len > 32)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "name is not a known signal name (too long)");
  if (request_string_dup(req->name.data, req->name.len, "name", &name, e) < 0 ||
      signame_parse(name, "name", &sig, e) < 0)
    return -1;
  if (sig < 1 || sig > SIGNAME_MAX_NUMBER)
    abort(); /* signame_parse said yes to something that is no signal */
  return 0;
}

static int check_list(const Rundwire__ListRequest *req, rr_err *e) {
  _cleanup_free_ char *tag = NULL;
  if (req->state < 0 || req->state > JOB_FAILED)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "state %d is not a JobState", req->state);
  if (req->tag.len && (request_string_dup(req->tag.data, req->tag.len, "tag", &tag, e) < 0 ||
                       request_tag_check(tag, "tag", e) < 0))
    return -1;
  if (req->page_size < 0 || req->page_size > 5000)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "page_size %d is out of range", req->page_size);
  if (req->page_token.len &&
      !ulid_parse((const char *)req->page_token.data, req->page_token.len, NULL))
    return rr_err_set(e, RR_INVALID_ARGUMENT, "page_token is not a next_page_token of a List");
  return 0;
}

int fuzz_jobs_check(unsigned i, const ProtobufCMessage *msg, rr_err *e) {
  switch (i) {
  case M_START: {
    const Rundwire__StartRequest *r = (const Rundwire__StartRequest *)msg;
    return check_command(
        &(prepare_in){.command = r->command,
                      .tags = r->tags,
                      .ntags = r->n_tags,
                      .has_timeout = r->timeout_case == RUNDWIRE__START_REQUEST__TIMEOUT_TIMEOUT_MS,
                      .timeout_ms = r->timeout_ms,
                      .limits = r->limits,
                      .sandbox = r->sandbox},
        e);
  }
  case M_STATUS:
    return check_job_id(&((const Rundwire__StatusRequest *)msg)->job_id, e);
  case M_WAIT:
    return check_job_id(&((const Rundwire__WaitRequest *)msg)->job_id, e);
  case M_STOP:
    return check_job_id(&((const Rundwire__StopRequest *)msg)->job_id, e);
  case M_LIST:
    return check_list((const Rundwire__ListRequest *)msg, e);
  case M_SIGNAL:
    return check_signal((const Rundwire__SignalRequest *)msg, e);
  case M_LOGS: {
    const Rundwire__LogsRequest *r = (const Rundwire__LogsRequest *)msg;
    if (r->stream < 0 || r->stream > 2)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "stream %d is not a Stream", r->stream);
    return check_job_id(&r->job_id, e);
  }
  case M_EXEC: {
    const Rundwire__ExecRequest *r = (const Rundwire__ExecRequest *)msg;
    if (r->msg_case == RUNDWIRE__EXEC_REQUEST__MSG_START && r->start)
      return check_command(&(prepare_in){.command = r->start->command,
                                         .has_timeout = r->start->timeout_case ==
                                                        RUNDWIRE__EXEC_START__TIMEOUT_TIMEOUT_MS,
                                         .timeout_ms = r->start->timeout_ms,
                                         .limits = r->start->limits,
                                         .sandbox = r->start->sandbox},
                           e);
    if (r->msg_case == RUNDWIRE__EXEC_REQUEST__MSG_SIGNAL)
      return signame_check_number(r->signal, "signal", e);
    if (r->msg_case == RUNDWIRE__EXEC_REQUEST__MSG__NOT_SET)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "empty ExecRequest");
    return 0;
  }
  default:
    return rr_err_set(e, RR_UNIMPLEMENTED, "no method %u", i);
  }
}
