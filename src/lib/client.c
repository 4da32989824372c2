/* librunrpc: connection, errors and conversions shared by every call. */
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"
#include "lib.h"
#include "rpc/compress.h"

RR_EXPORT const char *runrpc_version(void) { return "0.1.0"; }

RR_EXPORT const char *runrpc_code_name(int code) { return rr_code_name(code); }

RR_EXPORT const char *runrpc_job_state_name(runrpc_job_state state) {
  switch (state) {
  case RUNRPC_JOB_RUNNING:
    return "running";
  case RUNRPC_JOB_EXITED:
    return "exited";
  case RUNRPC_JOB_KILLED:
    return "killed";
  case RUNRPC_JOB_FAILED:
    return "failed";
  default:
    return "unspecified";
  }
}

RR_EXPORT bool runrpc_job_id_valid(const char *s) {
  if (!s || strlen(s) != 26)
    return false;
  if (s[0] < '0' || s[0] > '7') /* 26 chars carry 130 bits; a ULID has 128 */
    return false;
  for (size_t i = 0; i < 26; i++)
    if (!strchr("0123456789ABCDEFGHJKMNPQRSTVWXYZabcdefghjkmnpqrstvwxyz", s[i]) || !s[i])
      return false;
  return true;
}

int lib_job_id_check(const char *id, rr_err *e) {
  if (!id || !*id)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "missing job id");
  if (!runrpc_job_id_valid(id))
    return rr_err_set(e, RR_INVALID_ARGUMENT,
                      "invalid job id \"%.64s\": want a 26-character ULID (Crockford base32)", id);
  return 0;
}

int lib_err_out(const rr_err *e, runrpc_error *err) {
  if (err) {
    err->code = e->code == RR_OK ? RR_UNKNOWN : e->code;
    err->sys_errno = e->sys_errno;
    snprintf(err->message, sizeof err->message, "%s", e->msg);
  }
  return -1;
}

RR_EXPORT void runrpc_options_init(runrpc_options *opts) { memset(opts, 0, sizeof *opts); }

/* A token goes into a header: printable ASCII without spaces, bounded. */
static int lib_token_check(const char *token, rr_err *e) {
  size_t n = strlen(token);
  if (n == 0 || n > LIB_MAX_TOKEN)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "invalid bearer token: want 1 to %d characters",
                      LIB_MAX_TOKEN);
  for (size_t i = 0; i < n; i++)
    if (token[i] < 0x21 || token[i] > 0x7e)
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "invalid bearer token: only printable ASCII without spaces");
  return 0;
}

RR_EXPORT int runrpc_connect(const char *addr, const runrpc_options *opts,
                             runrpc_client **ret_client, runrpc_error *err) {
  rr_err e = {0};
  if (err)
    memset(err, 0, sizeof *err);
  if (!ret_client)
    return lib_err_out(&(rr_err){RR_INVALID_ARGUMENT, 0, "runrpc_connect: ret_client is NULL"},
                       err);
  runrpc_options none = {0};
  if (!opts)
    opts = &none;
  rpc_address a;
  if (rpc_address_parse(addr, &a, &e) < 0)
    return lib_err_out(&e, err);
  bool tls = a.kind == RPC_ADDRESS_TCP && a.tls;
  if (opts->token && lib_token_check(opts->token, &e) < 0)
    return lib_err_out(&e, err);
  if (opts->token && !tls && !opts->allow_insecure) {
    rr_err_set(&e, RR_INVALID_ARGUMENT,
               "a bearer token needs TLS; use --allow-insecure to send it in the clear");
    return lib_err_out(&e, err);
  }
  /* only the files given: a library must not present credentials it finds
   * lying around (the admin certificate in the state dir) on its own */
  rpc_tls_client_config tc = {
      .ca_file = opts->tls_ca_file,
      .cert_file = opts->tls_cert_file,
      .key_file = opts->tls_key_file,
      .server_name = opts->tls_server_name,
      .session_cache_dir = opts->tls_session_cache_dir,
  };
  if (tls && !tc.ca_file) {
    rr_err_set(&e, RR_INVALID_ARGUMENT,
               "%s is a TLS address: give the CA that signed the server certificate "
               "(tls_ca_file)",
               addr);
    return lib_err_out(&e, err);
  }
  if (tls && !tc.cert_file != !tc.key_file) {
    rr_err_set(&e, RR_INVALID_ARGUMENT, "%s needs both a certificate and its key (tls_%s_file)",
               addr, tc.cert_file ? "key" : "cert");
    return lib_err_out(&e, err);
  }
  _cleanup_free_ char *authorization = NULL;
  if (opts->token && asprintf(&authorization, "Bearer %s", opts->token) < 0) {
    authorization = NULL;
    rr_err_set(&e, RR_RESOURCE_EXHAUSTED, "out of memory");
    return lib_err_out(&e, err);
  }
  runrpc_client *c = calloc(1, sizeof *c);
  if (!c) {
    rr_err_set(&e, RR_RESOURCE_EXHAUSTED, "out of memory");
    return lib_err_out(&e, err);
  }
  c->call_timeout_ms = opts->call_timeout_ms ? opts->call_timeout_ms : LIB_DEFAULT_CALL_TIMEOUT_MS;
  if (opts->profile && *opts->profile && !(c->profile = strdup(opts->profile))) {
    free(c);
    rr_err_set(&e, RR_RESOURCE_EXHAUSTED, "out of memory");
    return lib_err_out(&e, err);
  }
  rpc_client_options go = {
      .connect_timeout_ms = opts->connect_timeout_ms,
      .max_recv_message = opts->max_recv_message_bytes,
      .user_agent = "runrpc-c/0.1.0",
      .tls = tls ? &tc : NULL,
      .authorization = authorization,
      .compression = opts->compress ? RPC_ENCODING_GZIP : RPC_ENCODING_IDENTITY,
  };
  if (rpc_client_connect(addr, &go, &c->grpc, &e) < 0) {
    free(c->profile);
    free(c);
    return lib_err_out(&e, err);
  }
  *ret_client = c;
  return 0;
}

RR_EXPORT void runrpc_conn_info_get(const runrpc_client *client, runrpc_conn_info *info) {
  memset(info, 0, sizeof *info);
  const rpc_client_transport *t = client ? rpc_client_get_transport(client->grpc) : NULL;
  if (!t)
    return;
  info->tls = t->tls;
  info->resumed = t->resumed;
  info->handshake_us = t->handshake_us;
}

RR_EXPORT void runrpc_close(runrpc_client *client) {
  if (!client)
    return;
  rpc_client_free(client->grpc);
  free(client->profile);
  free(client);
}

int lib_pack(const ProtobufCMessage *m, uint8_t **ret_buf, size_t *ret_len, rr_err *e) {
  size_t n = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = malloc(n ? n : 1);
  if (!buf)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory packing a %zu-byte request", n);
  protobuf_c_message_pack(m, buf);
  *ret_buf = buf;
  *ret_len = n;
  return 0;
}

int lib_unary(runrpc_client *c, const char *path, const ProtobufCMessage *req,
              const ProtobufCMessageDescriptor *desc, uint64_t timeout_ms,
              ProtobufCMessage **ret_resp, rr_err *e) {
  _cleanup_free_ uint8_t *buf = NULL;
  size_t len = 0;
  if (lib_pack(req, &buf, &len, e) < 0)
    return -1;
  _cleanup_free_ uint8_t *resp = NULL;
  size_t resp_len = 0;
  if (rpc_client_unary(c->grpc, path, buf, len, timeout_ms, &resp, &resp_len, e) < 0)
    return -1;
  ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, resp_len, resp);
  if (!m)
    return rr_err_set(e, RR_INTERNAL, "%s: cannot decode the %zu-byte response as %s", path,
                      resp_len, desc->name);
  *ret_resp = m;
  return 0;
}

int lib_command_build(const runrpc_command *cmd, Runrpc__V1__Command *out, rr_err *e) {
  runrpc__v1__command__init(out);
  if (!cmd->path || !*cmd->path)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "empty command");
  if (cmd->nargs && !cmd->args)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "nargs is %zu but args is NULL", cmd->nargs);
  if (cmd->nenv && !cmd->env)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "nenv is %zu but env is NULL", cmd->nenv);
  out->path = (char *)cmd->path;
  out->n_args = cmd->nargs;
  out->args = (char **)cmd->args;
  out->workdir = (char *)(cmd->workdir ? cmd->workdir : "");
  if (cmd->nenv == 0)
    return 0;
  /* one block: the pointer array, the entries, then "KEY\0" copies */
  size_t keybytes = 0;
  for (size_t i = 0; i < cmd->nenv; i++) {
    const char *eq = cmd->env[i] ? strchr(cmd->env[i], '=') : NULL;
    if (!eq || eq == cmd->env[i])
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "invalid environment entry \"%.100s\": want KEY=VALUE",
                        cmd->env[i] ? cmd->env[i] : "(null)");
    keybytes += (size_t)(eq - cmd->env[i]) + 1;
  }
  size_t n = cmd->nenv;
  char *block = malloc(n * (sizeof(void *) + sizeof(Runrpc__V1__Command__EnvEntry)) + keybytes);
  if (!block)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  Runrpc__V1__Command__EnvEntry **ptrs = (void *)block;
  Runrpc__V1__Command__EnvEntry *ents = (void *)(block + n * sizeof(void *));
  char *keys = (char *)(ents + n);
  for (size_t i = 0; i < n; i++) {
    const char *eq = strchr(cmd->env[i], '=');
    size_t kl = (size_t)(eq - cmd->env[i]);
    runrpc__v1__command__env_entry__init(&ents[i]);
    memcpy(keys, cmd->env[i], kl);
    keys[kl] = '\0';
    ents[i].key = keys;
    ents[i].value = (char *)(eq + 1);
    keys += kl + 1;
    ptrs[i] = &ents[i];
  }
  out->n_env = n;
  out->env = ptrs;
  return 0;
}

void lib_command_free(Runrpc__V1__Command *pc) {
  free(pc->env);
  pc->env = NULL;
  pc->n_env = 0;
}

static char *dup_or_empty(const char *s) { return strdup(s ? s : ""); }

int lib_status_copy(const Runrpc__V1__JobStatus *in, runrpc_job_status *out, rr_err *e) {
  memset(out, 0, sizeof *out);
  if (!in)
    return rr_err_set(e, RR_INTERNAL, "server response has no job status");
  snprintf(out->job_id, sizeof out->job_id, "%s", in->job_id ? in->job_id : "");
  out->state = (runrpc_job_state)in->state;
  out->pid = in->pid;
  out->exit_code = in->exit_code;
  out->signal = in->signal;
  out->start_time_unix_ns = in->start_time_unix_ns;
  out->end_time_unix_ns = in->end_time_unix_ns;
  out->stdout_bytes = in->stdout_bytes;
  out->stderr_bytes = in->stderr_bytes;
  out->stdout_lost_bytes = in->stdout_lost_bytes;
  out->stderr_lost_bytes = in->stderr_lost_bytes;
  out->reason = dup_or_empty(in->reason);
  out->detail = dup_or_empty(in->detail);
  out->log_error = dup_or_empty(in->log_error);
  bool ok = out->reason != NULL && out->detail != NULL && out->log_error != NULL;
  const Runrpc__V1__StartRequest *req = in->request;
  const Runrpc__V1__Command *cmd = req ? req->command : NULL;
  out->path = dup_or_empty(cmd ? cmd->path : NULL);
  out->workdir = dup_or_empty(cmd ? cmd->workdir : NULL);
  ok = ok && out->path && out->workdir;
  if (cmd && cmd->n_args && ok) {
    out->args = calloc(cmd->n_args, sizeof(char *));
    ok = out->args != NULL;
    for (size_t i = 0; ok && i < cmd->n_args; i++, out->nargs++)
      ok = (out->args[i] = dup_or_empty(cmd->args[i])) != NULL;
  }
  if (cmd && cmd->n_env && ok) {
    out->env = calloc(cmd->n_env, sizeof(char *));
    ok = out->env != NULL;
    for (size_t i = 0; ok && i < cmd->n_env; i++, out->nenv++) {
      const char *k = cmd->env[i]->key ? cmd->env[i]->key : "";
      const char *v = cmd->env[i]->value ? cmd->env[i]->value : "";
      ok = asprintf(&out->env[i], "%s=%s", k, v) >= 0;
      if (!ok)
        out->env[i] = NULL;
    }
  }
  if (req && req->n_tags && ok) {
    out->tags = calloc(req->n_tags, sizeof(char *));
    ok = out->tags != NULL;
    for (size_t i = 0; ok && i < req->n_tags; i++, out->ntags++)
      ok = (out->tags[i] = dup_or_empty(req->tags[i])) != NULL;
  }
  if (req && req->timeout_case == RUNRPC__V1__START_REQUEST__TIMEOUT_TIMEOUT_MS) {
    out->has_timeout = true;
    out->timeout_ms = req->timeout_ms;
  }
  if (req && req->timeout_grace_case == RUNRPC__V1__START_REQUEST__TIMEOUT_GRACE_TIMEOUT_GRACE_MS)
    out->timeout_grace_ms = req->timeout_grace_ms;
  if (in->limits && ok) {
    out->has_limits = true;
    ok = lib_limits_copy(in->limits, &out->limits, e) == 0;
  }
  if (in->usage) {
    out->has_usage = true;
    lib_usage_copy(in->usage, &out->usage);
  }
  if (ok)
    ok = (out->cgroup = dup_or_empty(in->cgroup)) != NULL;
  if (ok)
    ok = (out->profile = dup_or_empty(in->profile)) != NULL;
  if (ok)
    ok = (out->profile_requested = dup_or_empty(in->profile_requested)) != NULL;
  if (ok)
    ok = (out->kind = strdup(in->kind && *in->kind ? in->kind : "job")) != NULL;
  if (in->n_owner && ok) {
    out->owner = calloc(in->n_owner, sizeof(char *));
    ok = out->owner != NULL;
    for (size_t i = 0; ok && i < in->n_owner; i++, out->nowner++)
      ok = (out->owner[i] = dup_or_empty(in->owner[i])) != NULL;
  }
  if (!ok) {
    runrpc_job_status_free(out);
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory copying a job status");
  }
  return 0;
}

static void free_strv(char **v, size_t n) {
  for (size_t i = 0; v && i < n; i++)
    free(v[i]);
  free(v);
}

RR_EXPORT void runrpc_job_status_free(runrpc_job_status *s) {
  if (!s)
    return;
  free(s->reason);
  free(s->detail);
  free(s->log_error);
  free(s->path);
  free(s->workdir);
  free_strv(s->args, s->nargs);
  free_strv(s->env, s->nenv);
  free_strv(s->tags, s->ntags);
  free_strv(s->owner, s->nowner);
  free(s->kind);
  lib_limits_free(&s->limits);
  free(s->cgroup);
  free(s->profile);
  free(s->profile_requested);
  memset(s, 0, sizeof *s);
}

RR_EXPORT void runrpc_job_list_free(runrpc_job_status *jobs, size_t count) {
  for (size_t i = 0; jobs && i < count; i++)
    runrpc_job_status_free(&jobs[i]);
  free(jobs);
}

int lib_write_fd(int fd, const void *buf, size_t len, rr_err *e) {
  const uint8_t *p = buf;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        poll(&pfd, 1, -1);
        continue;
      }
      return rr_err_sys(e, RR_CANCELLED, errno, "cannot write output to fd %d", fd);
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}
