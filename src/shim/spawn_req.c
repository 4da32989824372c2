/* runner.SpawnRequest -> spawn_process, posix_spawn-like. */
#include "shim/spawn_req.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"

static int shim_open_flags(const char *mode, int *ret) {
  static const struct {
    const char *mode;
    int flags;
  } modes[] = {
      {"r", O_RDONLY}, {"w", O_WRONLY | O_CREAT | O_TRUNC}, {"a", O_WRONLY | O_CREAT | O_APPEND},
      {"r+", O_RDWR},  {"w+", O_RDWR | O_CREAT | O_TRUNC},  {"a+", O_RDWR | O_CREAT | O_APPEND},
  };
  for (size_t i = 0; i < RR_ARRAY_SIZE(modes); i++)
    if (!strcmp(mode, modes[i].mode)) {
      *ret = modes[i].flags;
      return 0;
    }
  return -1;
}

static int shim_fd_check(int fd, const char *field, const char *what, rr_err *e) {
  if (fd < 0 || fd > 2)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s%s %d: file actions act on fds 0, 1 and 2 only",
                      field, what, fd);
  return 0;
}

static int shim_devnull(rr_err *e) {
  int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (fd < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot open /dev/null");
  return fd;
}

static int shim_action_open(shim_spawn *s, const Runner__FileAction__Open *o, const char *field,
                            rr_err *e) {
  int flags;
  if (shim_fd_check(o->fd, field, "open.fd", e) < 0)
    return -1;
  if (!o->path || o->path[0] != '/')
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%sopen.path \"%.200s\" is not absolute", field,
                      o->path ? o->path : "");
  if (shim_open_flags(o->mode && *o->mode ? o->mode : "r", &flags) < 0)
    return rr_err_set(e, RR_INVALID_ARGUMENT,
                      "%sopen.mode \"%.16s\" is not one of r, w, a, r+, w+, a+", field, o->mode);
  if (o->perm > 07777)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%sopen.perm %o is over 07777", field, o->perm);
  int fd = open(o->path, flags | O_CLOEXEC | O_NOCTTY, o->perm ? o->perm : 0644);
  if (fd < 0)
    return rr_err_sys(e, errno == ENOENT ? RR_NOT_FOUND : RR_PERMISSION_DENIED, errno,
                      "%sopen: cannot open \"%.200s\"", field, o->path);
  close(s->fds[o->fd]);
  s->fds[o->fd] = fd;
  return 0;
}

static int shim_action(shim_spawn *s, const Runner__FileAction *a, const char *field, rr_err *e) {
  int fd;
  switch (a->action_case) {
  case RUNNER__FILE_ACTION__ACTION_OPEN:
    return shim_action_open(s, a->open, field, e);
  case RUNNER__FILE_ACTION__ACTION_CLOSE:
    if (shim_fd_check(a->close->fd, field, "close.fd", e) < 0 || (fd = shim_devnull(e)) < 0)
      return -1;
    close(s->fds[a->close->fd]);
    s->fds[a->close->fd] = fd;
    return 0;
  case RUNNER__FILE_ACTION__ACTION_DUP2:
    if (shim_fd_check(a->dup2->fd, field, "dup2.fd", e) < 0 ||
        shim_fd_check(a->dup2->new_fd, field, "dup2.new_fd", e) < 0)
      return -1;
    if (a->dup2->fd == a->dup2->new_fd)
      return 0;
    if ((fd = fcntl(s->fds[a->dup2->fd], F_DUPFD_CLOEXEC, 3)) < 0)
      return rr_err_sys(e, RR_INTERNAL, errno, "%sdup2", field);
    close(s->fds[a->dup2->new_fd]);
    s->fds[a->dup2->new_fd] = fd;
    return 0;
  default:
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%saction is not set (open, close or dup2)", field);
  }
}

static int shim_spawn_env(shim_spawn *s, const Runner__SpawnRequest *r, rr_err *e) {
  if (!r->n_env)
    return 0;
  if (!(s->env_keys = calloc(r->n_env, sizeof *s->env_keys)) ||
      !(s->env_values = calloc(r->n_env, sizeof *s->env_values)))
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  for (size_t i = 0; i < r->n_env; i++) {
    s->env_keys[i] = r->env[i]->key;
    s->env_values[i] = r->env[i]->value;
  }
  return 0;
}

int shim_spawn_prepare(const Runner__SpawnRequest *r, const char *field, shim_spawn *s, rr_err *e) {
  memset(s, 0, sizeof *s);
  s->fds[0] = s->fds[1] = s->fds[2] = -1;
  shim_command_in in = {.argv = r->argv,
                        .nargv = r->n_argv,
                        .nenv = r->n_env,
                        .env = (void *const *)r->env,
                        .cwd = r->cwd};
  if (shim_command_check(&in, e) < 0)
    return *field ? rr_err_wrap(e, "%.*s", (int)strlen(field) - 1, field) : -1;
  if (r->cwd && *r->cwd)
    snprintf(s->cwd, sizeof s->cwd, "%s", r->cwd);
  else if (!getcwd(s->cwd, sizeof s->cwd))
    snprintf(s->cwd, sizeof s->cwd, "/");
  for (int i = 0; i < 3; i++)
    if ((s->fds[i] = shim_devnull(e)) < 0)
      goto fail;
  for (size_t i = 0; i < r->n_file_actions; i++) {
    char f[64];
    snprintf(f, sizeof f, "%sfile_actions[%zu].", field, i);
    if (shim_action(s, r->file_actions[i], f, e) < 0)
      goto fail;
  }
  if (shim_spawn_env(s, r, e) < 0)
    goto fail;
  s->opts = (spawn_opts){.path = r->argv[0],
                         .args = (const char *const *)r->argv + 1,
                         .nargs = r->n_argv - 1,
                         .env_keys = s->env_keys,
                         .env_values = s->env_values,
                         .nenv = r->n_env,
                         .workdir = s->cwd,
                         .stdin_fd = s->fds[0],
                         .stdout_fd = s->fds[1],
                         .stderr_fd = s->fds[2]};
  return 0;
fail:
  shim_spawn_clear(s);
  return -1;
}

void shim_spawn_clear(shim_spawn *s) {
  for (int i = 0; i < 3; i++)
    if (s->fds[i] >= 0)
      close(s->fds[i]);
  s->fds[0] = s->fds[1] = s->fds[2] = -1;
  free(s->env_keys);
  free(s->env_values);
  s->env_keys = s->env_values = NULL;
}

int shim_spawn_start(shim_spawn *s, spawn_result *ret, rr_err *e) {
  return spawn_process(&s->opts, ret, e);
}
