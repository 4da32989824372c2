/* runproc exec: its options and the sandbox spec made of them (exec.c,
 * exec_spec.c). */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "sandbox/spec.h"

typedef struct runproc_exec_opts {
  const char *id, *process_file, *pid_file, *console_socket, *cwd, *user;
  bool tty, detach, no_new_privs;
  char **env, **caps, **gids; /* --env K=V, --cap CAP_X, --additional-gids N (repeatable) */
  size_t nenv, ncaps, ngids;
  int preserve_fds;
  char **args; /* the command after the id */
  size_t nargs;
} runproc_exec_opts;

/* The process to run (--process FILE, else the container's config.json
 * process changed by the flags) with the container's seccomp; no
 * namespaces yet. */
int runproc_exec_spec(const runproc_exec_opts *o, const char *bundle, sb_spec **ret, rr_err *e);
