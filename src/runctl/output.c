/* runctl output: job status as JSON or key: value lines. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "runctl.h"

void runctl_format_time(int64_t unix_ns, char *buf, size_t bufsz) {
  time_t secs = (time_t)(unix_ns / 1000000000);
  long us = (long)((unix_ns % 1000000000) / 1000);
  if (us < 0) {
    us += 1000000;
    secs -= 1;
  }
  struct tm tm;
  gmtime_r(&secs, &tm);
  char base[32];
  strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf, bufsz, "%s.%06ldZ", base, us);
}

static json_object *json_time(int64_t ns) {
  if (ns == 0)
    return NULL; /* null */
  char buf[48];
  runctl_format_time(ns, buf, sizeof buf);
  return json_object_new_string(buf);
}

/* Unset limits are null; io is an array of {device, rbps, wbps, riops, wiops}. */
static json_object *limits_json(const runrpc_limits *l) {
  json_object *o = json_object_new_object();
  json_object *cpu = NULL;
  if (l->has_cpu) {
    cpu = json_object_new_object();
    json_object_object_add(cpu, "quota_us", json_object_new_uint64(l->quota_us));
    json_object_object_add(
        cpu, "period_us",
        json_object_new_uint64(l->period_us ? l->period_us : RUNRPC_DEFAULT_CPU_PERIOD_US));
  }
  json_object_object_add(o, "cpu", cpu);
  json_object_object_add(o, "memory_max",
                         l->has_memory_max ? json_object_new_uint64(l->memory_max) : NULL);
  json_object_object_add(o, "pids_max",
                         l->has_pids_max ? json_object_new_uint64(l->pids_max) : NULL);
  json_object *io = json_object_new_array();
  for (size_t i = 0; i < l->nio; i++) {
    const runrpc_io_limit *d = &l->io[i];
    json_object *e = json_object_new_object();
    json_object_object_add(e, "device", json_object_new_string(d->device ? d->device : ""));
    json_object_object_add(e, "rbps", json_object_new_uint64(d->rbps));
    json_object_object_add(e, "wbps", json_object_new_uint64(d->wbps));
    json_object_object_add(e, "riops", json_object_new_uint64(d->riops));
    json_object_object_add(e, "wiops", json_object_new_uint64(d->wiops));
    json_object_array_add(io, e);
  }
  json_object_object_add(o, "io", io);
  return o;
}

json_object *runctl_usage_json(const runrpc_usage *u) {
  json_object *o = json_object_new_object();
#define U(f) json_object_object_add(o, #f, json_object_new_uint64(u->f))
  U(cpu_usec);
  U(cpu_user_usec);
  U(cpu_system_usec);
  U(memory_current);
  U(memory_peak);
  U(io_read_bytes);
  U(io_write_bytes);
  U(io_read_ops);
  U(io_write_ops);
  U(pids_current);
  U(oom_kills);
  U(cpu_throttled_usec);
  U(pids_refused);
#undef U
  return o;
}

json_object *runctl_status_json(const runrpc_job_status *s) {
  json_object *o = json_object_new_object();
  json_object_object_add(o, "job_id", json_object_new_string(s->job_id));
  json_object_object_add(o, "state", json_object_new_string(runrpc_job_state_name(s->state)));
  json_object_object_add(o, "pid", json_object_new_int(s->pid));
  /* null where it does not apply: 0 would read as success for a job whose
   * end is unknown (failed/"lost") or that still runs */
  json_object_object_add(o, "exit_code",
                         s->state == RUNRPC_JOB_EXITED ? json_object_new_int(s->exit_code) : NULL);
  json_object_object_add(o, "signal",
                         s->state == RUNRPC_JOB_KILLED ? json_object_new_int(s->signal) : NULL);
  json_object_object_add(o, "reason", json_object_new_string(s->reason ? s->reason : ""));
  if (s->detail && *s->detail)
    json_object_object_add(o, "detail", json_object_new_string(s->detail));
  if (s->profile && *s->profile) { /* a rund before sandboxes sends none */
    json_object_object_add(o, "profile", json_object_new_string(s->profile));
    json_object_object_add(
        o, "profile_requested",
        json_object_new_string(s->profile_requested ? s->profile_requested : ""));
  }
  json_object_object_add(o, "start_time", json_time(s->start_time_unix_ns));
  json_object_object_add(o, "end_time", json_time(s->end_time_unix_ns));
  json_object *cmd = json_object_new_array();
  json_object_array_add(cmd, json_object_new_string(s->path ? s->path : ""));
  for (size_t i = 0; i < s->nargs; i++)
    json_object_array_add(cmd, json_object_new_string(s->args[i]));
  json_object_object_add(o, "command", cmd);
  json_object *env = json_object_new_object();
  for (size_t i = 0; i < s->nenv; i++) {
    const char *eq = strchr(s->env[i], '=');
    if (!eq)
      continue;
    char key[256];
    snprintf(key, sizeof key, "%.*s", (int)(eq - s->env[i]), s->env[i]);
    json_object_object_add(env, key, json_object_new_string(eq + 1));
  }
  json_object_object_add(o, "env", env);
  json_object_object_add(o, "workdir", json_object_new_string(s->workdir ? s->workdir : ""));
  json_object *tags = json_object_new_array();
  for (size_t i = 0; i < s->ntags; i++)
    json_object_array_add(tags, json_object_new_string(s->tags[i]));
  json_object_object_add(o, "tags", tags);
  json_object_object_add(o, "timeout_ms",
                         s->has_timeout ? json_object_new_uint64(s->timeout_ms) : NULL);
  json_object_object_add(
      o, "timeout_grace_ms",
      s->has_timeout ? json_object_new_uint64(s->timeout_grace_ms ? s->timeout_grace_ms : 10000)
                     : NULL);
  json_object_object_add(o, "stdout_bytes", json_object_new_uint64(s->stdout_bytes));
  json_object_object_add(o, "stderr_bytes", json_object_new_uint64(s->stderr_bytes));
  json_object_object_add(o, "stdout_lost_bytes", json_object_new_uint64(s->stdout_lost_bytes));
  json_object_object_add(o, "stderr_lost_bytes", json_object_new_uint64(s->stderr_lost_bytes));
  /* null while every byte was stored (as limits/cgroup: always there) */
  json_object_object_add(
      o, "log_error", s->log_error && *s->log_error ? json_object_new_string(s->log_error) : NULL);
  json_object *owner = json_object_new_array();
  for (size_t i = 0; i < s->nowner; i++)
    json_object_array_add(owner, json_object_new_string(s->owner[i]));
  json_object_object_add(o, "owner", owner);
  json_object_object_add(o, "kind", json_object_new_string(s->kind ? s->kind : "job"));
  /* every key always there (null when it does not apply): scripts need no
   * "is the key there" test */
  json_object_object_add(o, "limits", s->has_limits ? limits_json(&s->limits) : NULL);
  /* ended jobs without a cgroup have usage too (from the rusage) */
  json_object_object_add(o, "usage", s->has_usage ? runctl_usage_json(&s->usage) : NULL);
  json_object_object_add(o, "cgroup",
                         s->cgroup && *s->cgroup ? json_object_new_string(s->cgroup) : NULL);
  return o;
}

/* Shell-style quoting so a command line reads unambiguously. */
void runctl_print_quoted(const char *s) {
  if (*s && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.,/:=@%+") ==
                strlen(s)) {
    fputs(s, stdout);
    return;
  }
  bool control = false;
  for (const char *p = s; *p && !control; p++)
    control = (unsigned char)*p < 0x20 || *p == 0x7f;
  if (!control) { /* 'as is', a quote as '\'' */
    putchar('\'');
    for (; *s; s++)
      *s == '\'' ? (void)fputs("'\\''", stdout) : (void)putchar(*s);
    putchar('\'');
    return;
  }
  /* bash's $'...': a newline stays on one line of the output */
  fputs("$'", stdout);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '\n')
      fputs("\\n", stdout);
    else if (c == '\t')
      fputs("\\t", stdout);
    else if (c == '\'' || c == '\\')
      printf("\\%c", c);
    else if (c < 0x20 || c == 0x7f)
      printf("\\x%02x", c);
    else
      putchar(c);
  }
  putchar('\'');
}

static double usec_to_s(uint64_t us) { return (double)us / 1e6; }

/* "cgroup:", "cpu:", "memory:", "pids:", "io:" and "io_max:" lines. */
static void print_resources(const runrpc_job_status *s) {
  const runrpc_limits *l = &s->limits;
  const runrpc_usage *u = s->has_usage ? &s->usage : &(runrpc_usage){0};
  char a[64], b[64], c[64];
  printf("cgroup: %s\n", s->cgroup && *s->cgroup ? s->cgroup : "-");
  printf("cpu: %.3f s (user %.3f s, system %.3f s, throttled %.3f s", usec_to_s(u->cpu_usec),
         usec_to_s(u->cpu_user_usec), usec_to_s(u->cpu_system_usec),
         usec_to_s(u->cpu_throttled_usec));
  if (l->has_cpu) {
    runctl_format_cpu(l->quota_us, l->period_us, a, sizeof a);
    printf("; max %s", a);
  }
  printf(")\n");
  runctl_format_bytes(u->memory_current, a, sizeof a);
  runctl_format_bytes(u->memory_peak, b, sizeof b);
  printf("memory: %s (peak %s", a, b);
  if (l->has_memory_max) {
    runctl_format_bytes(l->memory_max, c, sizeof c);
    printf(", max %s", c);
  }
  printf(", oom kills %llu)\n", (unsigned long long)u->oom_kills);
  printf("pids: %llu (", (unsigned long long)u->pids_current);
  if (l->has_pids_max)
    printf("max %llu, ", (unsigned long long)l->pids_max);
  printf("forks refused %llu)\n", (unsigned long long)u->pids_refused);
  runctl_format_bytes(u->io_read_bytes, a, sizeof a);
  runctl_format_bytes(u->io_write_bytes, b, sizeof b);
  printf("io: read %s / %llu ops, write %s / %llu ops\n", a, (unsigned long long)u->io_read_ops, b,
         (unsigned long long)u->io_write_ops);
  for (size_t i = 0; i < l->nio; i++) {
    const runrpc_io_limit *d = &l->io[i];
    printf("io_max: %s", d->device && *d->device ? d->device : "(workdir)");
    if (d->rbps)
      runctl_format_bytes(d->rbps, a, sizeof a), printf(" rbps %s/s", a);
    if (d->wbps)
      runctl_format_bytes(d->wbps, a, sizeof a), printf(" wbps %s/s", a);
    if (d->riops)
      printf(" riops %llu", (unsigned long long)d->riops);
    if (d->wiops)
      printf(" wiops %llu", (unsigned long long)d->wiops);
    putchar('\n');
  }
}

/* A job without a cgroup: usage from the rusage, cpu time only. */
static void print_rusage(const runrpc_usage *u) {
  printf("cpu: %.3f s (user %.3f s, system %.3f s)\n", usec_to_s(u->cpu_usec),
         usec_to_s(u->cpu_user_usec), usec_to_s(u->cpu_system_usec));
}

void runctl_status_print(const runrpc_job_status *s) {
  char start[48] = "-", end[48] = "-";
  if (s->start_time_unix_ns)
    runctl_format_time(s->start_time_unix_ns, start, sizeof start);
  if (s->end_time_unix_ns)
    runctl_format_time(s->end_time_unix_ns, end, sizeof end);
  printf("job_id: %s\n", s->job_id);
  printf("state: %s\n", runrpc_job_state_name(s->state));
  printf("pid: %d\n", s->pid);
  if (s->state == RUNRPC_JOB_EXITED)
    printf("exit_code: %d\n", s->exit_code);
  else
    printf("exit_code: -\n");
  if (s->state == RUNRPC_JOB_KILLED)
    printf("signal: %d\n", s->signal);
  else
    printf("signal: -\n");
  printf("reason: %s\n", s->reason ? s->reason : "");
  if (s->detail && *s->detail)
    printf("detail: %s\n", s->detail);
  printf("profile: %s", s->profile && *s->profile ? s->profile : "-");
  if (s->profile_requested && *s->profile_requested &&
      (!s->profile || strcmp(s->profile, s->profile_requested) != 0))
    printf(" (requested %s)", s->profile_requested);
  putchar('\n');
  printf("start_time: %s\n", start);
  printf("end_time: %s\n", end);
  printf("command: ");
  runctl_print_quoted(s->path ? s->path : "");
  for (size_t i = 0; i < s->nargs; i++) {
    putchar(' ');
    runctl_print_quoted(s->args[i]);
  }
  putchar('\n');
  printf("env:");
  for (size_t i = 0; i < s->nenv; i++) {
    putchar(' ');
    runctl_print_quoted(s->env[i]);
  }
  putchar('\n');
  printf("workdir: %s\n", s->workdir ? s->workdir : "");
  printf("owner:");
  for (size_t i = 0; i < s->nowner; i++)
    printf("%s%s", i ? "," : " ", s->owner[i]);
  putchar('\n');
  printf("tags:");
  for (size_t i = 0; i < s->ntags; i++)
    printf("%s%s", i ? "," : " ", s->tags[i]);
  putchar('\n');
  if (s->has_timeout)
    printf("timeout_ms: %llu\n", (unsigned long long)s->timeout_ms);
  else
    printf("timeout_ms: -\n");
  printf("stdout_bytes: %llu\n", (unsigned long long)s->stdout_bytes);
  printf("stderr_bytes: %llu\n", (unsigned long long)s->stderr_bytes);
  if (s->stdout_lost_bytes || s->stderr_lost_bytes)
    printf("lost_bytes: stdout %llu, stderr %llu (%s)\n", (unsigned long long)s->stdout_lost_bytes,
           (unsigned long long)s->stderr_lost_bytes,
           s->log_error && *s->log_error ? s->log_error : "not stored");
  if (s->has_limits || (s->cgroup && *s->cgroup))
    print_resources(s);
  else if (s->has_usage)
    print_rusage(&s->usage);
}

int runctl_status_exit(const runrpc_job_status *s) {
  switch (s->state) {
  case RUNRPC_JOB_EXITED:
    return s->exit_code & 0xff;
  case RUNRPC_JOB_KILLED:
    /* the OOM killer sends SIGKILL; say 137 even if a server leaves signal 0 */
    if (s->signal == 0 && s->reason && strcmp(s->reason, "oom-killed") == 0)
      return 128 + 9;
    return 128 + s->signal;
  default:
    return -1;
  }
}

void runctl_timeout_note(const char *what, uint64_t timeout_ms, int signal) {
  char dur[48];
  if (timeout_ms % 1000 == 0)
    snprintf(dur, sizeof dur, "%llus", (unsigned long long)(timeout_ms / 1000));
  else
    snprintf(dur, sizeof dur, "%llums", (unsigned long long)timeout_ms);
  char how[96];
  if (signal == 9)
    snprintf(how, sizeof how, "killed by SIGKILL after the grace period (--timeout-grace)");
  else if (signal == 15)
    snprintf(how, sizeof how, "ended by SIGTERM");
  else if (signal)
    snprintf(how, sizeof how, "ended by signal %d after SIGTERM", signal);
  else
    snprintf(how, sizeof how, "it exited after SIGTERM");
  fprintf(stderr, "runctl: %s: timed out after %s (--timeout): %s\n", what, dur, how);
}

void runctl_oom_note(const char *what, bool has_memory_max, uint64_t memory_max) {
  char max[64] = "";
  if (has_memory_max) {
    char b[48];
    runctl_format_bytes(memory_max, b, sizeof b);
    snprintf(max, sizeof max, " (memory.max %s)", b);
  }
  fprintf(stderr, "runctl: %s: killed by the OOM killer%s\n", what, max);
}
