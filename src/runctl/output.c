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

json_object *runctl_status_json(const runrpc_job_status *s) {
  json_object *o = json_object_new_object();
  json_object_object_add(o, "job_id", json_object_new_string(s->job_id));
  json_object_object_add(o, "state", json_object_new_string(runrpc_job_state_name(s->state)));
  json_object_object_add(o, "pid", json_object_new_int(s->pid));
  json_object_object_add(o, "exit_code", json_object_new_int(s->exit_code));
  json_object_object_add(o, "signal", json_object_new_int(s->signal));
  json_object_object_add(o, "reason", json_object_new_string(s->reason ? s->reason : ""));
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
  json_object_object_add(o, "stdout_bytes", json_object_new_uint64(s->stdout_bytes));
  json_object_object_add(o, "stderr_bytes", json_object_new_uint64(s->stderr_bytes));
  return o;
}

/* Shell-style quoting so a command line reads unambiguously. */
static void print_quoted(const char *s) {
  if (*s && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.,/:=@%+") ==
                strlen(s)) {
    fputs(s, stdout);
    return;
  }
  putchar('\'');
  for (; *s; s++) {
    if (*s == '\'')
      fputs("'\\''", stdout);
    else
      putchar(*s);
  }
  putchar('\'');
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
  printf("exit_code: %d\n", s->exit_code);
  printf("signal: %d\n", s->signal);
  printf("reason: %s\n", s->reason ? s->reason : "");
  printf("start_time: %s\n", start);
  printf("end_time: %s\n", end);
  printf("command: ");
  print_quoted(s->path ? s->path : "");
  for (size_t i = 0; i < s->nargs; i++) {
    putchar(' ');
    print_quoted(s->args[i]);
  }
  putchar('\n');
  printf("env:");
  for (size_t i = 0; i < s->nenv; i++) {
    putchar(' ');
    print_quoted(s->env[i]);
  }
  putchar('\n');
  printf("workdir: %s\n", s->workdir ? s->workdir : "");
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
}

int runctl_status_exit(const runrpc_job_status *s) {
  switch (s->state) {
  case RUNRPC_JOB_EXITED:
    return s->exit_code & 0xff;
  case RUNRPC_JOB_KILLED:
    return 128 + s->signal;
  default:
    return -1;
  }
}
