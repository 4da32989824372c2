/* The sandbox spec of `runproc exec`: the process (from --process FILE, or
 * the container's config.json process with the flags' changes), the
 * container's seccomp; exec.c adds the namespaces to join
 * (sb_spec_join_namespaces). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "exec.h"
#include "sandbox/sandbox.h"
#include "sandbox/spec.h"

#define RUNPROC_PROCESS_MAX_BYTES (4u << 20)

/* FILE's process object parsed as the engine parses config.json's. */
static int runproc_process_file(const char *path, sb_spec **ret, rr_err *e) {
  _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return rr_err_sys(e, RR_NOT_FOUND, errno, "--process \"%s\"", path);
  _cleanup_free_ char *buf = malloc(RUNPROC_PROCESS_MAX_BYTES + 1);
  if (!buf)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  ssize_t n = rr_read(fd, buf, RUNPROC_PROCESS_MAX_BYTES + 1);
  if (n < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "--process \"%s\"", path);
  if ((size_t)n > RUNPROC_PROCESS_MAX_BYTES)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "--process \"%s\": larger than %u bytes", path,
                      RUNPROC_PROCESS_MAX_BYTES);
  json_tokener *tok = json_tokener_new();
  if (!tok)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
  json_object *p = json_tokener_parse_ex(tok, buf, (int)n);
  enum json_tokener_error jerr = json_tokener_get_error(tok);
  json_tokener_free(tok);
  if (!p || jerr != json_tokener_success) {
    json_object_put(p);
    return rr_err_set(e, RR_INVALID_ARGUMENT, "--process \"%s\": not valid JSON (%s)", path,
                      json_tokener_error_desc(jerr));
  }
  if (!json_object_is_type(p, json_type_object)) {
    json_object_put(p);
    return rr_err_set(e, RR_INVALID_ARGUMENT, "--process \"%s\": not a JSON object", path);
  }
  json_object *config = json_object_new_object();
  json_object_object_add(config, "process", p);
  int r = sb_spec_from_json(config, NULL, ret, e);
  json_object_put(config);
  if (r < 0)
    return rr_err_wrap(e, "--process \"%s\"", path);
  if (!(*ret)->process.nargs) {
    sb_spec_free(TAKE_PTR(*ret));
    return rr_err_set(e, RR_INVALID_ARGUMENT, "--process \"%s\": process.args: required", path);
  }
  return 0;
}

/* K=V replaces the entry of K, or is appended. */
static int runproc_env_set(sb_process *p, const char *kv, rr_err *e) {
  const char *eq = strchr(kv, '=');
  if (!eq || eq == kv)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "--env \"%s\": not KEY=VALUE", kv);
  char *copy = strdup(kv);
  if (!copy)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  size_t klen = (size_t)(eq - kv) + 1;
  for (size_t i = 0; i < p->nenv; i++)
    if (strncmp(p->env[i], kv, klen) == 0) {
      free(p->env[i]);
      p->env[i] = copy;
      return 0;
    }
  char **grown = realloc(p->env, (p->nenv + 2) * sizeof *grown);
  if (!grown) {
    free(copy);
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  }
  p->env = grown;
  p->env[p->nenv++] = copy;
  p->env[p->nenv] = NULL;
  return 0;
}

/* "UID[:GID]", numbers as runc takes them. */
static int runproc_user_parse(const char *u, sb_process *p, rr_err *e) {
  char *end;
  errno = 0;
  unsigned long uid = strtoul(u, &end, 10), gid = p->gid;
  if (end != u && *end == ':' && end[1]) {
    const char *g = end + 1;
    gid = strtoul(g, &end, 10);
    if (end == g)
      end = (char *)"x";
  }
  if (errno || end == u || *end || uid > UINT32_MAX - 1 || gid > UINT32_MAX - 1 || u[0] == '-')
    return rr_err_set(e, RR_INVALID_ARGUMENT, "--user \"%s\": want UID[:GID] (numbers)", u);
  p->uid = (uint32_t)uid;
  p->gid = (uint32_t)gid;
  return 0;
}

/* The container's process with the flags applied (runc's exec without
 * --process). */
static int runproc_process_flags(const runproc_exec_opts *o, sb_process *p, rr_err *e) {
  char **args = calloc(o->nargs + 1, sizeof *args);
  for (size_t i = 0; args && i < o->nargs; i++)
    if (!(args[i] = strdup(o->args[i]))) {
      while (i)
        free(args[--i]);
      free(TAKE_PTR(args));
    }
  if (!args)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  for (size_t i = 0; i < p->nargs; i++)
    free(p->args[i]);
  free(p->args);
  p->args = args;
  p->nargs = o->nargs;
  for (size_t i = 0; i < o->nenv; i++)
    if (runproc_env_set(p, o->env[i], e) < 0)
      return -1;
  if (o->cwd) {
    if (sb_path_check(o->cwd, "--cwd", e) < 0)
      return -1;
    free(p->cwd);
    if (!(p->cwd = strdup(o->cwd)))
      return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  }
  if (o->user && runproc_user_parse(o->user, p, e) < 0)
    return -1;
  if (o->ngids)
    p->ngids = 0; /* as runc: the flags replace the config's */
  for (size_t i = 0; i < o->ngids; i++) {
    char *end;
    errno = 0;
    unsigned long g = strtoul(o->gids[i], &end, 10);
    if (errno || end == o->gids[i] || *end || g > UINT32_MAX - 1 || o->gids[i][0] == '-')
      return rr_err_set(e, RR_INVALID_ARGUMENT, "--additional-gids \"%s\": want a gid (a number)",
                        o->gids[i]);
    if (p->ngids >= SB_MAX_GROUPS)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "--additional-gids: more than %d", SB_MAX_GROUPS);
    p->additional_gids[p->ngids++] = (uint32_t)g;
  }
  for (size_t i = 0; i < o->ncaps; i++) {
    int cap = sb_cap_from_name(o->caps[i]);
    if (cap < 0)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "--cap \"%s\": unknown capability", o->caps[i]);
    uint64_t bit = 1ull << cap;
    p->caps.bounding |= bit;
    p->caps.effective |= bit;
    p->caps.permitted |= bit;
  }
  if (o->no_new_privs)
    p->no_new_privileges = true;
  if (o->tty)
    p->terminal = true;
  return 0;
}

int runproc_exec_spec(const runproc_exec_opts *o, const char *bundle, sb_spec **ret, rr_err *e) {
  char config[PATH_MAX + 16];
  snprintf(config, sizeof config, "%s/config.json", bundle);
  sb_spec *base = NULL, *file = NULL, *s = sb_spec_new();
  if (!s)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  int rc = -1;
  if (sb_spec_load(config, bundle, &base, e) < 0) {
    rr_err_wrap(e, "the container's config");
    goto out;
  }
  if (o->process_file && runproc_process_file(o->process_file, &file, e) < 0)
    goto out;
  sb_spec *from = file ? file : base;
  s->process = from->process;
  memset(&from->process, 0, sizeof from->process);
  if (!file && runproc_process_flags(o, &s->process, e) < 0)
    goto out;
  s->seccomp = TAKE_PTR(base->seccomp);
  rc = 0;
out:
  sb_spec_free(base);
  sb_spec_free(file);
  if (rc < 0)
    sb_spec_free(s);
  else
    *ret = s;
  return rc;
}
