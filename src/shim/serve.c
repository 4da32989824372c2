/* The server: loop, reaper, gRPC server with runrpc's services, reflection
 * and health; the run until the stdio connection closes; exec in place. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "shim/shim.h"

/* The FileDescriptorSet of runrpc's protos (generated, see meson.build). */
static const uint8_t shim_descriptor_set[] = {
#include "shim_descriptor_set.inc"
};

const char *const shim_service_names[] = {
    "commander.Commander",
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
    "loader.Loader",
    "runner.Runner",
};
const size_t shim_service_count = RR_ARRAY_SIZE(shim_service_names);

/* A pipe has no idle client to drop: ssh or kubectl holds it open. */
#define SHIM_IDLE_TIMEOUT_MS (100ull * 365 * 24 * 3600 * 1000)

int shim_server_new(shim_ctx *ctx, rr_err *e) {
  ulid_gen_init(&ctx->exec_ids);
  ctx->exec_fd = -1;
  if (loop_new(&ctx->l, e) < 0 || reaper_new(&ctx->reaper, ctx->l, ctx->init, e) < 0)
    return -1;
  rpc_server_config cfg = {.idle_timeout_ms = SHIM_IDLE_TIMEOUT_MS, .check_strings = true};
  if (rpc_server_new(&ctx->server, ctx->l, &cfg, e) < 0)
    return -1;
  ctx->reflection = (reflection_config){
      .server = ctx->server, .set = shim_descriptor_set, .set_len = sizeof shim_descriptor_set};
  if (svc_commander_register(ctx, e) < 0 || svc_runner_register(ctx, e) < 0 ||
      svc_fork_register(ctx, e) < 0 || svc_loader_register(ctx, e) < 0 ||
      reflection_register_config(ctx->server, &ctx->reflection, e) < 0 ||
      health_register(ctx->server, &ctx->health, e) < 0)
    return rr_err_wrap(e, "cannot set up the gRPC server");
  return 0;
}

void shim_server_free(shim_ctx *ctx) {
  if (ctx->health)
    health_shutdown(ctx->health);
  rpc_server_free(ctx->server); /* ends every call: their commands are killed */
  ctx->server = NULL;
  health_free(ctx->health);
  ctx->health = NULL;
  shim_procs_free(ctx);
  shim_links_free(ctx);
  reaper_free(ctx->reaper);
  ctx->reaper = NULL;
  loop_free(ctx->l);
  ctx->l = NULL;
}

/* Before each sleep (after the server flushed its connections): an exec in
 * place is due, or the connection ended (init serves on). */
static void shim_wake(loop *l, void *data) {}

static void shim_on_idle(loop *l, void *data) {
  shim_ctx *ctx = data;
  if (loop_stopping(l))
    return;
  if (ctx->exec_ready || (!ctx->init && rpc_server_connection_count(ctx->server) == 0)) {
    loop_stop(l);
    loop_timer_add(l, 0, shim_wake, NULL); /* hooks run before the wait: do not sleep */
  }
}

int shim_run(shim_ctx *ctx, rr_err *e) {
  uint64_t hook = loop_hook_add(ctx->l, shim_on_idle, ctx);
  int rc = loop_run(ctx->l, e);
  loop_hook_del(ctx->l, hook);
  return rc;
}

static int shim_fd_blocking(int fd) {
  int fl = fcntl(fd, F_GETFL);
  return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
}

int shim_exec_in_place(shim_ctx *ctx, rr_err *e) {
  /* the command gets plain stdio and signals as a shell would give them */
  shim_fd_blocking(STDIN_FILENO);
  shim_fd_blocking(STDOUT_FILENO);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  signal(SIGPIPE, SIG_DFL);
  if (ctx->exec_cwd && chdir(ctx->exec_cwd) < 0)
    return rr_err_sys(e, RR_NOT_FOUND, errno, "cannot enter \"%s\"", ctx->exec_cwd);
  if (ctx->exec_fd >= 0)
    fexecve(ctx->exec_fd, ctx->exec_argv, ctx->exec_envp);
  else
    execve(ctx->exec_path, ctx->exec_argv, ctx->exec_envp);
  return rr_err_sys(e, errno == ENOENT ? RR_NOT_FOUND : RR_PERMISSION_DENIED, errno,
                    "cannot execute \"%s\"", ctx->exec_argv[0]);
}
