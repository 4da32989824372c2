#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "jobs/request.h"
#include "rund.h"

int convert_command(const Rundwire__Command *c, job_request *r, rr_err *e) {
  memset(r, 0, sizeof *r);
  if (!c)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "command is required");
  if (c->n_args > REQUEST_MAX_ARGS)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "command.args has %zu entries (max %d)", c->n_args,
                      REQUEST_MAX_ARGS);
  if (c->n_env > REQUEST_MAX_ENV)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "command.env has %zu entries (max %d)", c->n_env,
                      REQUEST_MAX_ENV);
  if (request_string_dup(c->path.data, c->path.len, "command.path", &r->path, e) < 0)
    goto fail;
  if (c->workdir.len &&
      request_string_dup(c->workdir.data, c->workdir.len, "command.workdir", &r->workdir, e) < 0)
    goto fail;
  r->args = calloc(c->n_args + 1, sizeof *r->args);
  r->env_keys = calloc(c->n_env + 1, sizeof *r->env_keys);
  r->env_values = calloc(c->n_env + 1, sizeof *r->env_values);
  if (!r->args || !r->env_keys || !r->env_values) {
    rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
    goto fail;
  }
  char field[64];
  for (size_t i = 0; i < c->n_args; i++, r->nargs++) {
    snprintf(field, sizeof field, "command.args[%zu]", i);
    if (request_string_dup(c->args[i].data, c->args[i].len, field, &r->args[i], e) < 0)
      goto fail;
  }
  for (size_t i = 0; i < c->n_env; i++) {
    snprintf(field, sizeof field, "command.env[%zu] name", i);
    if (request_string_dup(c->env[i]->key.data, c->env[i]->key.len, field, &r->env_keys[i], e) < 0)
      goto fail;
    snprintf(field, sizeof field, "command.env[\"%.32s\"]", r->env_keys[i]);
    if (request_string_dup(c->env[i]->value.data, c->env[i]->value.len, field, &r->env_values[i],
                           e) < 0) {
      free(r->env_keys[i]);
      r->env_keys[i] = NULL;
      goto fail;
    }
    r->nenv++;
  }
  return 0;
fail:
  job_request_free(r);
  return -1;
}

int convert_job_lookup(rund_ctx *ctx, const ProtobufCBinaryData *id, job **ret, rr_err *e) {
  _cleanup_free_ char *s = NULL;
  if (id->len > 64)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "job_id is not a ULID (%zu bytes)", id->len);
  if (request_string_dup(id->data, id->len, "job_id", &s, e) < 0)
    return -1;
  return job_table_lookup(ctx->jobs, s, ret, e);
}

int convert_status(const job *j, status_msg *m, rr_err *e) {
  memset(m, 0, sizeof *m);
  Runrpc__V1__JobStatus st = RUNRPC__V1__JOB_STATUS__INIT;
  Runrpc__V1__StartRequest rq = RUNRPC__V1__START_REQUEST__INIT;
  Runrpc__V1__Command cmd = RUNRPC__V1__COMMAND__INIT;
  const job_request *r = &j->req;
  if (r->nenv) {
    m->env = calloc(r->nenv, sizeof *m->env);
    m->env_ptrs = calloc(r->nenv, sizeof *m->env_ptrs);
    if (!m->env || !m->env_ptrs) {
      convert_status_clear(m);
      return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
    }
  }
  for (size_t i = 0; i < r->nenv; i++) {
    Runrpc__V1__Command__EnvEntry en = RUNRPC__V1__COMMAND__ENV_ENTRY__INIT;
    en.key = r->env_keys[i];
    en.value = r->env_values[i];
    m->env[i] = en;
    m->env_ptrs[i] = &m->env[i];
  }
  cmd.path = r->path;
  cmd.n_args = r->nargs;
  cmd.args = r->args;
  cmd.n_env = r->nenv;
  cmd.env = m->env_ptrs;
  cmd.workdir = r->workdir ? r->workdir : (char *)"";
  m->command = cmd;
  rq.command = &m->command;
  rq.n_tags = r->ntags;
  rq.tags = r->tags;
  if (r->has_timeout) {
    rq.timeout_case = RUNRPC__V1__START_REQUEST__TIMEOUT_TIMEOUT_MS;
    rq.timeout_ms = r->timeout_ms;
  }
  m->request = rq;
  st.job_id = (char *)j->id;
  st.state = (Runrpc__V1__JobState)j->state;
  st.pid = j->pid;
  st.exit_code = j->exit_code;
  st.signal = j->signal;
  st.reason = (char *)j->reason;
  st.start_time_unix_ns = j->start_ns;
  st.end_time_unix_ns = j->end_ns;
  st.request = &m->request;
  st.stdout_bytes = j->size[0];
  st.stderr_bytes = j->size[1];
  st.n_owner = j->nowner;
  st.owner = j->owner;
  m->status = st;
  return 0;
}

void convert_status_clear(status_msg *m) {
  free(m->env);
  free(m->env_ptrs);
  m->env = NULL;
  m->env_ptrs = NULL;
}

void rund_call_fail(grpc_call *c, const rr_err *e) {
  grpc_call_finish(c, e->code ? e->code : RR_UNKNOWN, e->msg);
}
