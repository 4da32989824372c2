/* librunrpc: resource limits and usage between the public structs and the
 * protobuf messages (Start/Exec requests out, JobStatus/ExitStatus in). */
#include <stdlib.h>
#include <string.h>

#include "lib.h"

static bool limits_any(const runrpc_limits *l) {
  return l->has_cpu || l->has_memory_max || l->has_pids_max || l->nio > 0;
}

int lib_limits_build(const runrpc_limits *in, lib_limits *out, rr_err *e) {
  runrpc__v1__limits__init(&out->msg);
  if (!limits_any(in))
    return 0;
  if (in->nio > RUNRPC_MAX_IO_LIMITS)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "limits: %zu io devices (at most %d)", in->nio,
                      RUNRPC_MAX_IO_LIMITS);
  if (in->nio && !in->io)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "limits: nio is %zu but io is NULL", in->nio);
  if (in->has_cpu) {
    runrpc__v1__cpu_max__init(&out->cpu);
    out->cpu.quota_us = in->quota_us;
    out->cpu.period_us = in->period_us;
    out->msg.cpu = &out->cpu;
  }
  if (in->has_memory_max) {
    out->msg.memory_case = RUNRPC__V1__LIMITS__MEMORY_MEMORY_MAX;
    out->msg.memory_max = in->memory_max;
  }
  if (in->has_pids_max) {
    out->msg.pids_case = RUNRPC__V1__LIMITS__PIDS_PIDS_MAX;
    out->msg.pids_max = in->pids_max;
  }
  for (size_t i = 0; i < in->nio; i++) {
    Runrpc__V1__IoMax *m = &out->io[i];
    runrpc__v1__io_max__init(m);
    m->device = (char *)(in->io[i].device ? in->io[i].device : "");
    m->rbps = in->io[i].rbps;
    m->wbps = in->io[i].wbps;
    m->riops = in->io[i].riops;
    m->wiops = in->io[i].wiops;
    out->io_ptrs[i] = m;
  }
  out->msg.n_io = in->nio;
  out->msg.io = in->nio ? out->io_ptrs : NULL;
  return 1;
}

int lib_limits_copy(const Runrpc__V1__Limits *in, runrpc_limits *out, rr_err *e) {
  memset(out, 0, sizeof *out);
  if (!in)
    return 0;
  if (in->cpu) {
    out->has_cpu = true;
    out->quota_us = in->cpu->quota_us;
    out->period_us = in->cpu->period_us;
  }
  if (in->memory_case == RUNRPC__V1__LIMITS__MEMORY_MEMORY_MAX) {
    out->has_memory_max = true;
    out->memory_max = in->memory_max;
  }
  if (in->pids_case == RUNRPC__V1__LIMITS__PIDS_PIDS_MAX) {
    out->has_pids_max = true;
    out->pids_max = in->pids_max;
  }
  if (in->n_io == 0)
    return 0;
  runrpc_io_limit *io = calloc(in->n_io, sizeof *io);
  if (!io)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory copying %zu io limits", in->n_io);
  out->io = io;
  for (size_t i = 0; i < in->n_io; i++, out->nio++) {
    const Runrpc__V1__IoMax *m = in->io[i];
    io[i].device = strdup(m->device ? m->device : "");
    if (!io[i].device)
      return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory copying io limits");
    io[i].rbps = m->rbps;
    io[i].wbps = m->wbps;
    io[i].riops = m->riops;
    io[i].wiops = m->wiops;
  }
  return 0;
}

void lib_limits_free(runrpc_limits *l) {
  /* a copy made by lib_limits_copy: the library owns the array and strings */
  runrpc_io_limit *io = (runrpc_io_limit *)l->io;
  for (size_t i = 0; io && i < l->nio; i++)
    free((char *)io[i].device);
  free(io);
  memset(l, 0, sizeof *l);
}

void lib_usage_copy(const Runrpc__V1__Usage *in, runrpc_usage *out) {
  *out = (runrpc_usage){
      .cpu_usec = in->cpu_usec,
      .cpu_user_usec = in->cpu_user_usec,
      .cpu_system_usec = in->cpu_system_usec,
      .memory_current = in->memory_current,
      .memory_peak = in->memory_peak,
      .io_read_bytes = in->io_read_bytes,
      .io_write_bytes = in->io_write_bytes,
      .io_read_ops = in->io_read_ops,
      .io_write_ops = in->io_write_ops,
      .pids_current = in->pids_current,
      .oom_kills = in->oom_kills,
      .cpu_throttled_usec = in->cpu_throttled_usec,
      .pids_refused = in->pids_refused,
  };
}
