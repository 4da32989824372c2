/* loader.Loader: Exec (execve in place of the server, once the answer is
 * out), Link (client-streamed bytes into a sealed memfd, kept by handle),
 * Load (a linked memfd run as a new process, or in place). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/util.h"
#include "shim/loader.pb-c.h"
#include "sandbox/spawn.h"
#include "shim/procs.h"

struct shim_link {
  shim_link *next;
  char handle[32];
  int fd;
  uint64_t size;
  bool sealed;
};

static void loader_finish_err(rpc_call *c, const rr_err *e) {
  rpc_call_finish(c, e->code ? e->code : RR_UNKNOWN, e->msg);
}

static void loader_reply(rpc_call *c, const ProtobufCMessage *m) {
  rr_err e = {0};
  if (rpc_call_send(c, m, &e) < 0)
    loader_finish_err(c, &e);
  else
    rpc_call_finish(c, RR_OK, NULL);
}

/* The command to run in place, kept in ctx until the answer is out. */
static int loader_plan_exec(shim_ctx *ctx, char *const *argv, size_t nargv, size_t nenv,
                            void *const *env, const char *cwd, int fd, rr_err *e) {
  if (ctx->exec_argv)
    return rr_err_set(e, RR_FAILED_PRECONDITION, "an exec in place is under way already");
  if (shim_strv_dup(argv, nargv, &ctx->exec_argv, e) < 0)
    return -1;
  if (shim_envp_build(nenv, env, &ctx->exec_envp, e) < 0 ||
      (cwd && *cwd && !(ctx->exec_cwd = strdup(cwd)))) {
    shim_strv_free(ctx->exec_argv);
    ctx->exec_argv = NULL;
    return e->code ? -1 : rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  }
  ctx->exec_fd = fd;
  return 0;
}

static void loader_plan_cancel(shim_ctx *ctx) {
  shim_strv_free(ctx->exec_argv);
  shim_strv_free(ctx->exec_envp);
  free(ctx->exec_cwd);
  free(ctx->exec_path);
  ctx->exec_argv = ctx->exec_envp = NULL;
  ctx->exec_cwd = ctx->exec_path = NULL;
  ctx->exec_fd = -1;
}

/* Exec and Load in place: the answer is queued, the exec waits for its
 * trailers to go out; an answer that cannot be queued calls the exec off. */
static void loader_reply_in_place(rpc_call *c, shim_ctx *ctx, const ProtobufCMessage *m) {
  rr_err e = {0};
  if (rpc_call_send(c, m, &e) < 0) {
    loader_plan_cancel(ctx);
    loader_finish_err(c, &e);
    return;
  }
  rpc_call_set_data(c, ctx); /* on_close: exec if FINISHED */
  rpc_call_finish(c, RR_OK, NULL);
}

/* Exec and Load in place: the answer went out whole (FINISHED) or the
 * exec is off. */
static void loader_on_close_in_place(rpc_call *c, rpc_close_reason reason) {
  shim_ctx *ctx = rpc_call_method_data(c);
  if (!rpc_call_data(c))
    return;
  if (reason == RPC_CLOSE_FINISHED)
    ctx->exec_ready = true;
  else
    loader_plan_cancel(ctx);
}

static void loader_on_exec(rpc_call *c, ProtobufCMessage *msg) {
  Loader__ExecutionArgs *a = (Loader__ExecutionArgs *)msg;
  shim_ctx *ctx = rpc_call_method_data(c);
  rr_err e = {0};
  shim_command_in in = {.argv = a->argv,
                        .nargv = a->n_argv,
                        .nenv = a->n_env,
                        .env = (void *const *)a->env,
                        .cwd = a->cwd};
  char *path = NULL;
  if (shim_command_check(&in, &e) < 0 ||
      spawn_resolve(a->argv[0], SPAWN_DEFAULT_PATH, a->cwd && *a->cwd ? a->cwd : NULL, &path, &e) <
          0 ||
      loader_plan_exec(ctx, a->argv, a->n_argv, a->n_env, (void *const *)a->env, a->cwd, -1, &e) <
          0) {
    loader_finish_err(c, &e);
  } else {
    ctx->exec_path = TAKE_PTR(path); /* what PATH gave: the lookup checked */
    Loader__ExecutionResult r = LOADER__EXECUTION_RESULT__INIT;
    r.pid = (uint32_t)getpid();
    loader_reply_in_place(c, ctx, &r.base);
  }
  free(path);
  protobuf_c_message_free_unpacked(msg, NULL);
}

/* Link: bytes into an unsealed memfd while the stream goes on. */
static void loader_on_link_message(rpc_call *c, ProtobufCMessage *msg) {
  Loader__BytesValue *b = (Loader__BytesValue *)msg;
  shim_ctx *ctx = rpc_call_method_data(c);
  shim_link *k = rpc_call_data(c);
  rr_err e = {0};
  if (!k) {
    if (ctx->nlinks >= SHIM_MAX_LINKS) {
      rr_err_set(&e, RR_RESOURCE_EXHAUSTED, "%d linked handles are kept already", SHIM_MAX_LINKS);
      goto fail;
    }
    if (!(k = calloc(1, sizeof *k))) {
      rr_err_set(&e, RR_RESOURCE_EXHAUSTED, "out of memory");
      goto fail;
    }
    rpc_call_set_data(c, k);
    if ((k->fd = memfd_create("runrpc-link", MFD_CLOEXEC | MFD_ALLOW_SEALING)) < 0) {
      rr_err_sys(&e, RR_RESOURCE_EXHAUSTED, errno, "cannot create a memfd");
      goto fail;
    }
  }
  if (k->size + b->value.len > SHIM_MAX_LINK_BYTES) {
    rr_err_set(&e, RR_RESOURCE_EXHAUSTED, "Link is over %u bytes", SHIM_MAX_LINK_BYTES);
    goto fail;
  }
  if (b->value.len && rr_write_all(k->fd, b->value.data, b->value.len) < 0) {
    rr_err_sys(&e, RR_RESOURCE_EXHAUSTED, errno, "cannot write the memfd");
    goto fail;
  }
  k->size += b->value.len;
  protobuf_c_message_free_unpacked(msg, NULL);
  return;
fail:
  loader_finish_err(c, &e);
  protobuf_c_message_free_unpacked(msg, NULL);
}

static void loader_on_link_half_close(rpc_call *c) {
  shim_ctx *ctx = rpc_call_method_data(c);
  shim_link *k = rpc_call_data(c);
  if (rpc_call_finished(c))
    return;
  if (!k || !k->size) {
    rpc_call_finish(c, RR_INVALID_ARGUMENT, "Link got no bytes");
    return;
  }
  if (fcntl(k->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
    rr_err e = {0};
    rr_err_sys(&e, RR_INTERNAL, errno, "cannot seal the memfd");
    loader_finish_err(c, &e);
    return;
  }
  snprintf(k->handle, sizeof k->handle, "link-%llu", (unsigned long long)++ctx->next_link);
  k->sealed = true;
  rpc_call_set_data(c, NULL);
  k->next = ctx->links;
  ctx->links = k;
  ctx->nlinks++;
  Loader__LinkResult r = LOADER__LINK_RESULT__INIT;
  r.handle = k->handle;
  r.size = k->size;
  loader_reply(c, &r.base);
}

static void loader_on_link_close(rpc_call *c, rpc_close_reason reason) {
  shim_link *k = rpc_call_data(c); /* not handed over: the stream failed */
  if (!k)
    return;
  if (k->fd >= 0)
    close(k->fd);
  free(k);
}

static int loader_link_find(shim_ctx *ctx, const char *handle, shim_link **ret, rr_err *e) {
  if (!handle || !*handle)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "handle is empty");
  for (shim_link *k = ctx->links; k; k = k->next)
    if (!strcmp(k->handle, handle)) {
      *ret = k;
      return 0;
    }
  return rr_err_set(e, RR_NOT_FOUND, "no linked handle \"%.64s\"", handle);
}

static int loader_load_new(shim_ctx *ctx, const Loader__LoadArgs *a, shim_link *k, shim_proc **ret,
                           rr_err *e) {
  if (ctx->nprocs >= SHIM_MAX_PROCS)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "%d processes are kept already", SHIM_MAX_PROCS);
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", k->fd);
  _cleanup_free_ const char **keys = calloc(a->n_env + 1, sizeof *keys);
  _cleanup_free_ const char **values = calloc(a->n_env + 1, sizeof *values);
  if (!keys || !values)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  for (size_t i = 0; i < a->n_env; i++) {
    keys[i] = a->env[i]->key;
    values[i] = a->env[i]->value;
  }
  _cleanup_close_ int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  char cwd[4096];
  if (devnull < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot open /dev/null");
  spawn_opts o = {.path = path,
                  .args = (const char *const *)a->argv + 1,
                  .nargs = a->n_argv - 1,
                  .env_keys = keys,
                  .env_values = values,
                  .nenv = a->n_env,
                  .workdir = a->cwd && *a->cwd ? a->cwd : getcwd(cwd, sizeof cwd),
                  .stdin_fd = devnull,
                  .stdout_fd = devnull,
                  .stderr_fd = STDERR_FILENO};
  spawn_result sr;
  if (spawn_process(&o, &sr, e) < 0)
    return rr_err_wrap(e, "cannot load %s", k->handle);
  return shim_proc_add(ctx, sr.pid, sr.pidfd, sr.start_ticks, ret, e);
}

static void loader_on_load(rpc_call *c, ProtobufCMessage *msg) {
  Loader__LoadArgs *a = (Loader__LoadArgs *)msg;
  shim_ctx *ctx = rpc_call_method_data(c);
  shim_link *k = NULL;
  shim_proc *p = NULL;
  rr_err e = {0};
  shim_command_in in = {.argv = a->argv,
                        .nargv = a->n_argv,
                        .nenv = a->n_env,
                        .env = (void *const *)a->env,
                        .cwd = a->cwd};
  Loader__LoadResult r = LOADER__LOAD_RESULT__INIT;
  if (loader_link_find(ctx, a->handle, &k, &e) < 0 || shim_command_check(&in, &e) < 0)
    goto fail;
  if (a->in_place) {
    if (loader_plan_exec(ctx, a->argv, a->n_argv, a->n_env, (void *const *)a->env, a->cwd, k->fd,
                         &e) < 0)
      goto fail;
    r.pid = (uint32_t)getpid();
    loader_reply_in_place(c, ctx, &r.base);
    protobuf_c_message_free_unpacked(msg, NULL);
    return;
  }
  if (loader_load_new(ctx, a, k, &p, &e) < 0)
    goto fail;
  r.pid = (uint32_t)p->pid;
  r.process = (char *)shim_proc_handle(p);
  loader_reply(c, &r.base);
  protobuf_c_message_free_unpacked(msg, NULL);
  return;
fail:
  loader_finish_err(c, &e);
  protobuf_c_message_free_unpacked(msg, NULL);
}

void shim_links_free(shim_ctx *ctx) {
  while (ctx->links) {
    shim_link *k = ctx->links;
    ctx->links = k->next;
    close(k->fd);
    free(k);
  }
  ctx->nlinks = 0;
}

int svc_loader_register(shim_ctx *ctx, rr_err *e) {
  const rpc_method methods[] = {
      {.path = "/loader.Loader/Exec",
       .request = &loader__execution_args__descriptor,
       .on_message = loader_on_exec,
       .on_close = loader_on_close_in_place,
       .data = ctx},
      {.path = "/loader.Loader/Link",
       .request = &loader__bytes_value__descriptor,
       .client_streaming = true,
       .on_message = loader_on_link_message,
       .on_half_close = loader_on_link_half_close,
       .on_close = loader_on_link_close,
       .data = ctx},
      {.path = "/loader.Loader/Load",
       .request = &loader__load_args__descriptor,
       .on_message = loader_on_load,
       .on_close = loader_on_close_in_place,
       .data = ctx},
  };
  for (size_t i = 0; i < RR_ARRAY_SIZE(methods); i++)
    if (rpc_server_add_method(ctx->server, &methods[i], e) < 0)
      return -1;
  return 0;
}
