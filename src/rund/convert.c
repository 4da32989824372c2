#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "common/log.h"
#include "common/util.h"
#include "jobs/job_cgroup.h"
#include "jobs/request.h"
#include "jobs/logstore.h"
#include "rund.h"

/* FNV-1a of an env name. */
static size_t convert_env_hash(const char *s) {
  size_t h = 14695981039346656037ull;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

/* c's env into r (r->env_* allocated for c->n_env entries); on failure
 * r->nenv entries are filled, for job_request_free. A map on the wire may
 * repeat a key: the last value wins (protobuf's rule, and job.json's object
 * keeps one), so the job runs with the environment Status shows. */
static int convert_env(const Rundwire__Command *c, job_request *r, rr_err *e) {
  size_t nslots = 16;
  while (nslots < 2 * c->n_env)
    nslots *= 2;
  _cleanup_free_ size_t *slot = calloc(nslots, sizeof *slot); /* index + 1; 0 = free */
  if (!slot)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  for (size_t i = 0; i < c->n_env; i++) {
    size_t k = r->nenv;
    char field[64];
    snprintf(field, sizeof field, "command.env[%zu] name", i);
    if (request_string_dup(c->env[i]->key.data, c->env[i]->key.len, field, &r->env_keys[k], e) < 0)
      return -1;
    snprintf(field, sizeof field, "command.env[\"%.32s\"]", r->env_keys[k]);
    char *value = NULL;
    if (request_string_dup(c->env[i]->value.data, c->env[i]->value.len, field, &value, e) < 0) {
      free(r->env_keys[k]);
      r->env_keys[k] = NULL;
      return -1;
    }
    size_t h = convert_env_hash(r->env_keys[k]) & (nslots - 1);
    while (slot[h] && strcmp(r->env_keys[slot[h] - 1], r->env_keys[k]) != 0)
      h = (h + 1) & (nslots - 1);
    if (slot[h]) { /* seen: replace its value */
      free(r->env_values[slot[h] - 1]);
      r->env_values[slot[h] - 1] = value;
      free(r->env_keys[k]);
      r->env_keys[k] = NULL;
      continue;
    }
    slot[h] = k + 1;
    r->env_values[k] = value;
    r->nenv++;
  }
  return 0;
}

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
  if (convert_env(c, r, e) < 0)
    goto fail;
  return 0;
fail:
  job_request_free(r);
  return -1;
}

/* Into *r (devices resolved, values checked); all zero when l is NULL. */
static int convert_limits_in(const Rundwire__Limits *l, const char *workdir, cg_limits *r,
                             rr_err *e) {
  memset(r, 0, sizeof *r);
  if (!l)
    return 0;
  if (l->cpu) {
    r->has_cpu = true;
    r->cpu_quota_us = l->cpu->quota_us;
    /* shown in Status as in force */
    r->cpu_period_us = l->cpu->period_us ? l->cpu->period_us : CG_DEFAULT_CPU_PERIOD_US;
  }
  if (l->memory_case == RUNDWIRE__LIMITS__MEMORY_MEMORY_MAX) {
    r->has_memory = true;
    r->memory_max = l->memory_max;
  }
  if (l->pids_case == RUNDWIRE__LIMITS__PIDS_PIDS_MAX) {
    r->has_pids = true;
    r->pids_max = l->pids_max;
  }
  if (l->n_io > CG_MAX_IO)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "limits.io has %zu entries (max %d)", l->n_io,
                      CG_MAX_IO);
  for (size_t i = 0; i < l->n_io; i++) {
    const Rundwire__IoMax *in = l->io[i];
    cg_io_limit *d = &r->io[i];
    char field[48];
    _cleanup_free_ char *spec = NULL;
    snprintf(field, sizeof field, "limits.io[%zu].device", i);
    if (in->device.len > 4096)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s is longer than 4096 bytes", field);
    if (request_string_dup(in->device.data, in->device.len, field, &spec, e) < 0)
      return -1;
    const char *dev = *spec ? spec : workdir && *workdir ? workdir : "/";
    if (cg_device_resolve(dev, field, &d->major, &d->minor, e) < 0)
      return -1;
    for (size_t k = 0; k < i; k++)
      if (r->io[k].major == d->major && r->io[k].minor == d->minor)
        return rr_err_set(e, RR_INVALID_ARGUMENT,
                          "%s \"%.200s\" is device %u:%u again (as limits.io[%zu])", field, dev,
                          d->major, d->minor, k);
    d->rbps = in->rbps;
    d->wbps = in->wbps;
    d->riops = in->riops;
    d->wiops = in->wiops;
    r->nio++;
  }
  return cg_limits_any(r) ? cg_limits_validate(r, e) : 0;
}

int convert_limits(const Rundwire__Limits *l, job_request *r, rr_err *e) {
  cg_limits lim;
  if (convert_limits_in(l, r->workdir, &lim, e) < 0)
    return -1;
  return job_request_set_limits(r, &lim, e);
}

void convert_usage(const cg_usage *u, Runrpc__V1__Usage *m) {
  Runrpc__V1__Usage init = RUNRPC__V1__USAGE__INIT;
  *m = init;
  m->cpu_usec = u->cpu_usec;
  m->cpu_user_usec = u->cpu_user_usec;
  m->cpu_system_usec = u->cpu_system_usec;
  m->memory_current = u->memory_current;
  m->memory_peak = u->memory_peak;
  m->io_read_bytes = u->io_read_bytes;
  m->io_write_bytes = u->io_write_bytes;
  m->io_read_ops = u->io_read_ops;
  m->io_write_ops = u->io_write_ops;
  m->pids_current = u->pids_current;
  m->oom_kills = u->oom_kills;
  m->cpu_throttled_usec = u->cpu_throttled_usec;
  m->pids_refused = u->pids_refused;
}

/* The limits in force as API messages inside m. */
static void convert_limits_out(const cg_limits *l, status_msg *m) {
  Runrpc__V1__Limits lim = RUNRPC__V1__LIMITS__INIT;
  if (l->has_cpu) {
    Runrpc__V1__CpuMax cpu = RUNRPC__V1__CPU_MAX__INIT;
    cpu.quota_us = l->cpu_quota_us;
    cpu.period_us = l->cpu_period_us;
    m->cpu = cpu;
    lim.cpu = &m->cpu;
  }
  if (l->has_memory) {
    lim.memory_case = RUNRPC__V1__LIMITS__MEMORY_MEMORY_MAX;
    lim.memory_max = l->memory_max;
  }
  if (l->has_pids) {
    lim.pids_case = RUNRPC__V1__LIMITS__PIDS_PIDS_MAX;
    lim.pids_max = l->pids_max;
  }
  for (size_t i = 0; i < l->nio && i < CG_MAX_IO; i++) {
    Runrpc__V1__IoMax io = RUNRPC__V1__IO_MAX__INIT;
    snprintf(m->io_dev[i], sizeof m->io_dev[i], "%u:%u", l->io[i].major, l->io[i].minor);
    io.device = m->io_dev[i];
    io.rbps = l->io[i].rbps;
    io.wbps = l->io[i].wbps;
    io.riops = l->io[i].riops;
    io.wiops = l->io[i].wiops;
    m->io[i] = io;
    m->io_ptrs[i] = &m->io[i];
    lim.n_io++;
  }
  lim.io = m->io_ptrs;
  m->limits = lim;
}

int convert_job_lookup(rund_ctx *ctx, const ProtobufCBinaryData *id, job **ret, rr_err *e) {
  _cleanup_free_ char *s = NULL;
  if (id->len > 64)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "job_id is not a ULID (%zu bytes)", id->len);
  if (request_string_dup(id->data, id->len, "job_id", &s, e) < 0)
    return -1;
  return job_table_lookup(ctx->jobs, s, ret, e);
}

/* The request's sandbox as an API message inside m (as asked: the profile
 * named, "" for none; the applied one is JobStatus.profile). */
static int convert_sandbox_out(const job_sandbox *s, status_msg *m, rr_err *e) {
  Runrpc__V1__Sandbox sb = RUNRPC__V1__SANDBOX__INIT;
  sb.profile = s->profile_requested ? s->profile_requested : (char *)"";
  /* an image's root is rund's own overlay: the image is what was asked */
  sb.rootfs = s->rootfs && !s->image ? s->rootfs : (char *)"";
  sb.image = s->image ? s->image : (char *)"";
  sb.hostname = s->hostname ? s->hostname : (char *)"";
  sb.net = (Runrpc__V1__Net)s->net;
  if (s->nbinds) {
    m->binds = calloc(s->nbinds, sizeof *m->binds);
    m->bind_ptrs = calloc(s->nbinds, sizeof *m->bind_ptrs);
    if (!m->binds || !m->bind_ptrs)
      return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = 0; i < s->nbinds; i++) {
      runrpc__v1__bind__init(&m->binds[i]);
      m->binds[i].source = s->binds[i].source;
      m->binds[i].destination = s->binds[i].destination;
      m->binds[i].readonly = s->binds[i].readonly;
      m->bind_ptrs[i] = &m->binds[i];
    }
    sb.n_binds = s->nbinds;
    sb.binds = m->bind_ptrs;
  }
  if (s->has_user) {
    runrpc__v1__user__init(&m->user);
    m->user.uid = s->uid;
    m->user.gid = s->gid;
    sb.user = &m->user;
  }
  m->sandbox = sb;
  return 0;
}

int convert_status(job *j, status_msg *m, rr_err *e) {
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
  cmd.path = r->path ? r->path : (char *)"";
  cmd.n_args = r->nargs;
  cmd.args = r->args;
  cmd.n_env = r->nenv;
  cmd.env = m->env_ptrs;
  /* where it started: a request without one started in "/" (a rootfs's own too) */
  cmd.workdir = r->workdir && *r->workdir ? r->workdir : (char *)"/";
  m->command = cmd;
  rq.command = &m->command;
  rq.n_tags = r->ntags;
  rq.tags = r->tags;
  if (r->has_timeout_grace) {
    rq.timeout_grace_case = RUNRPC__V1__START_REQUEST__TIMEOUT_GRACE_TIMEOUT_GRACE_MS;
    rq.timeout_grace_ms = r->timeout_grace_ms;
  }
  if (r->has_timeout) {
    rq.timeout_case = RUNRPC__V1__START_REQUEST__TIMEOUT_TIMEOUT_MS;
    rq.timeout_ms = r->timeout_ms;
  }
  if (r->limits) {
    convert_limits_out(r->limits, m);
    rq.limits = &m->limits;
    st.limits = &m->limits;
  }
  if (r->sandbox.profile != SB_PROFILE_HOST || r->sandbox.profile_requested) {
    if (convert_sandbox_out(&r->sandbox, m, e) < 0) {
      convert_status_clear(m);
      return -1;
    }
    rq.sandbox = &m->sandbox;
  }
  rq.stdin = r->stdin_open || r->tty;
  rq.tty = r->tty;
  if (r->tty) {
    m->window = (Runrpc__V1__TerminalSize)RUNRPC__V1__TERMINAL_SIZE__INIT;
    m->window.rows = r->rows;
    m->window.cols = r->cols;
    rq.window = &m->window;
    rq.term = r->term ? r->term : (char *)"xterm";
  }
  m->request = rq;
  cg_usage u;
  if (job_usage(j, &u)) {
    convert_usage(&u, &m->usage);
    st.usage = &m->usage;
  }
  st.cgroup = (char *)job_cgroup_version_name(j->cgroup);
  st.job_id = (char *)j->id;
  st.state = (Runrpc__V1__JobState)j->state;
  st.pid = j->pid;
  st.exit_code = j->exit_code;
  st.signal = j->signal;
  st.reason = (char *)j->reason;
  st.profile = (char *)sb_profile_name(r->sandbox.profile);
  st.profile_requested = r->sandbox.profile_requested ? r->sandbox.profile_requested : (char *)"";
  st.detail = j->detail ? j->detail : (char *)"";
  if (!j->detail && j->state == JOB_RUNNING && job_table_disk_full(j->table))
    st.detail = (char *)"the disk of rund's state dir is full: output the job writes now is "
                        "lost (it may fail), until space frees";
  st.start_time_unix_ns = j->start_ns;
  st.end_time_unix_ns = j->end_ns;
  st.request = &m->request;
  st.kind = (char *)"job";
  st.stdout_bytes = j->size[0];
  st.stderr_bytes = j->size[1];
  st.stdout_lost_bytes = j->lost[0];
  st.stderr_lost_bytes = j->lost[1];
  size_t at = 0;
  m->log_error[0] = '\0';
  for (int s = 0; s < 2; s++)
    if (j->lost[s] && at < sizeof m->log_error)
      at += (size_t)snprintf(m->log_error + at, sizeof m->log_error - at, "%s%s: %s",
                             at ? "; " : "", logstore_stream_name(s),
                             j->lost_errno[s] ? strerror(j->lost_errno[s]) : "not stored");
  st.log_error = m->log_error;
  st.n_owner = j->nowner;
  st.owner = j->owner;
  m->status = st;
  return 0;
}

void convert_status_clear(status_msg *m) {
  free(m->env);
  free(m->env_ptrs);
  free(m->binds);
  free(m->bind_ptrs);
  m->env = NULL;
  m->env_ptrs = NULL;
  m->binds = NULL;
  m->bind_ptrs = NULL;
}

/* A call that failed for want of a file descriptor says so (and rund
 * logs it, at most once a second): the limit, not a fault of the request. */
static void rund_call_fail_fds(rpc_call *c, const rr_err *e) {
  static uint64_t logged_ms, not_logged;
  struct rlimit rl = {0};
  getrlimit(RLIMIT_NOFILE, &rl);
  unsigned long long limit = rl.rlim_cur == RLIM_INFINITY ? 0 : (unsigned long long)rl.rlim_cur;
  uint64_t now = rr_now_mono_ms();
  if (!logged_ms || now - logged_ms >= 1000) {
    char q[RR_ERR_MSG_MAX + 16];
    rr_warn("refused: out of file descriptors", "fd_limit=%llu error=%s refusals_not_logged=%llu",
            limit, rr_log_quote(q, sizeof q, e->msg), (unsigned long long)not_logged);
    logged_ms = now;
    not_logged = 0;
  } else {
    not_logged++;
  }
  char msg[RR_ERR_MSG_MAX + 128];
  snprintf(msg, sizeof msg,
           "rund is out of file descriptors (RLIMIT_NOFILE %llu); try again once jobs or "
           "connections end: %s",
           limit, e->msg);
  rpc_call_finish(c, RR_RESOURCE_EXHAUSTED, msg);
}

void rund_call_fail(rpc_call *c, const rr_err *e) {
  if (e->sys_errno == EMFILE || e->sys_errno == ENFILE) {
    rund_call_fail_fds(c, e);
    return;
  }
  rpc_call_finish(c, e->code ? e->code : RR_UNKNOWN, e->msg);
}
