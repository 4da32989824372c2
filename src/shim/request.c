/* RPC fields (argv or a shell string, env, cwd, timeout) into the jobs
 * library's request, checked with errors that name the RPC's fields. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "jobs/request.h"
#include "sandbox/spawn.h"
#include "shim/shim.h"

static bool shim_env_name_ok(const char *k) {
  if (!*k || (*k >= '0' && *k <= '9'))
    return false;
  for (const char *p = k; *p; p++)
    if (!(*p == '_' || (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
          (*p >= '0' && *p <= '9')))
      return false;
  return true;
}

int shim_command_check(const shim_command_in *in, rr_err *e) {
  bool shell = in->shell && *in->shell;
  if (shell && in->nargv)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "argv and shell are both set (give one)");
  if (!shell && !in->nargv)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "argv is empty (give argv or shell)");
  if (!shell && !*in->argv[0])
    return rr_err_set(e, RR_INVALID_ARGUMENT, "argv[0] is empty");
  if (in->nargv > REQUEST_MAX_ARGS)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "argv has %zu entries (max %d)", in->nargv,
                      REQUEST_MAX_ARGS);
  for (size_t i = 0; i < in->nenv; i++) {
    const shim_env_entry *en = in->env[i];
    if (!shim_env_name_ok(en->key))
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "env name \"%.100s\" is not a variable name ([A-Za-z_][A-Za-z0-9_]*)",
                        en->key);
  }
  if (in->cwd && *in->cwd) {
    struct stat st;
    if (in->cwd[0] != '/')
      return rr_err_set(e, RR_INVALID_ARGUMENT, "cwd \"%.200s\" is not absolute", in->cwd);
    if (stat(in->cwd, &st) < 0)
      return rr_err_sys(e, RR_NOT_FOUND, errno, "cwd \"%.200s\"", in->cwd);
    if (!S_ISDIR(st.st_mode))
      return rr_err_set(e, RR_INVALID_ARGUMENT, "cwd \"%.200s\" is not a directory", in->cwd);
  }
  return 0;
}

static int shim_strdup_into(char **dst, const char *s, rr_err *e) {
  if (!(*dst = strdup(s)))
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  return 0;
}

static int shim_request_argv(const shim_command_in *in, job_request *r, rr_err *e) {
  bool shell = in->shell && *in->shell;
  const char *path = shell ? "/bin/sh" : in->argv[0];
  r->nargs = shell ? 2 : in->nargv - 1;
  if (shim_strdup_into(&r->path, path, e) < 0)
    return -1;
  if (r->nargs && !(r->args = calloc(r->nargs, sizeof *r->args)))
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  for (size_t i = 0; i < r->nargs; i++)
    if (shim_strdup_into(&r->args[i], shell ? (i ? in->shell : "-c") : in->argv[i + 1], e) < 0)
      return -1;
  return 0;
}

static int shim_request_env(const shim_command_in *in, job_request *r, rr_err *e) {
  if (!in->nenv)
    return 0;
  if (!(r->env_keys = calloc(in->nenv, sizeof *r->env_keys)) ||
      !(r->env_values = calloc(in->nenv, sizeof *r->env_values)))
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  r->nenv = in->nenv;
  for (size_t i = 0; i < in->nenv; i++) {
    const shim_env_entry *en = in->env[i];
    if (shim_strdup_into(&r->env_keys[i], en->key, e) < 0 ||
        shim_strdup_into(&r->env_values[i], en->value, e) < 0)
      return -1;
  }
  return 0;
}

int shim_request_build(const shim_command_in *in, job_request *ret, rr_err *e) {
  memset(ret, 0, sizeof *ret);
  if (shim_command_check(in, e) < 0)
    return -1;
  if (in->timeout_ms > REQUEST_MAX_TIMEOUT_MS)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "timeout_ms %llu is over %llu",
                      (unsigned long long)in->timeout_ms,
                      (unsigned long long)REQUEST_MAX_TIMEOUT_MS);
  char cwd[PATH_MAX];
  const char *wd = in->cwd && *in->cwd ? in->cwd : getcwd(cwd, sizeof cwd);
  if (shim_request_argv(in, ret, e) < 0 || shim_request_env(in, ret, e) < 0 ||
      (wd && shim_strdup_into(&ret->workdir, wd, e) < 0))
    goto fail;
  ret->has_timeout = in->timeout_ms > 0;
  ret->timeout_ms = in->timeout_ms;
  ret->sandbox.profile = SB_PROFILE_HOST;
  if (job_request_validate(ret, e) < 0)
    goto fail;
  return 0;
fail:
  job_request_free(ret);
  return -1;
}

void shim_strv_free(char **v) { spawn_strv_free(v); }

int shim_strv_dup(char *const *argv, size_t n, char ***ret, rr_err *e) {
  char **v = calloc(n + 1, sizeof *v);
  if (!v)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  for (size_t i = 0; i < n; i++)
    if (!(v[i] = strdup(argv[i]))) {
      spawn_strv_free(v);
      return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
    }
  *ret = v;
  return 0;
}

int shim_envp_build(size_t nenv, void *const *env, char ***ret, rr_err *e) {
  _cleanup_free_ const char **keys = calloc(nenv + 1, sizeof *keys);
  _cleanup_free_ const char **values = calloc(nenv + 1, sizeof *values);
  if (!keys || !values)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  for (size_t i = 0; i < nenv; i++) {
    const shim_env_entry *en = env[i];
    keys[i] = en->key;
    values[i] = en->value;
  }
  spawn_opts o = {.env_keys = keys, .env_values = values, .nenv = nenv};
  return spawn_env_build(&o, ret, e);
}
