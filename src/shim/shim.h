/* runrpc, the shim: one binary that execs a command, lists its services,
 * serves gRPC on stdin/stdout, or runs as init serving on listeners. The
 * services map RPCs onto the project's libraries (spawn, exec sessions,
 * reaper, kill path); this header is their shared context. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"
#include "common/loop.h"
#include "jobs/reaper.h"
#include "jobs/ulid.h"
#include "rpc/server.h"
#include "rpc/services/health.h"
#include "rpc/services/reflection.h"

#define SHIM_NAME "runrpc"
/* Fork children learn their depth from it. */
#define SHIM_DEPTH_ENV "RUNRPC_FORK_DEPTH"
/* Processes (Spawn, Load) and linked memfds a server keeps at once. */
#define SHIM_MAX_PROCS 1024
#define SHIM_MAX_LINKS 64
#define SHIM_MAX_LINK_BYTES (256u * 1024u * 1024u)

typedef struct shim_proc shim_proc;
typedef struct shim_link shim_link;

typedef struct shim_ctx {
  loop *l;
  reaper *reaper;
  rpc_server *server;
  health *health;
  reflection_config reflection;
  ulid_gen exec_ids;
  unsigned depth;   /* Fork depth: 0 for a server nobody forked */
  bool init;        /* PID 1 (or --init): serve forever, reap, forward signals */
  char exe[4096];   /* our own executable, for Fork */
  shim_proc *procs; /* Spawn and Load processes, by handle */
  size_t nprocs;
  uint64_t next_proc;
  shim_link *links; /* Link's memfds */
  size_t nlinks;
  uint64_t next_link;
  /* Exec/Load in place: set by the handler, done by main once the answer
   * is out (argv/envp NULL-terminated, owned here). */
  char **exec_argv, **exec_envp;
  char *exec_path; /* NULL: look argv[0] up in PATH */
  int exec_fd;     /* >= 0: fexecve this memfd */
  char *exec_cwd;
  bool exec_ready; /* the answer went out: exec now */
  /* init.c */
  int sigfd;
  struct shim_auth *auth;
} shim_ctx;

/* The services runrpc serves, sorted, one a line (the listing). */
extern const char *const shim_service_names[];
extern const size_t shim_service_count;

/* serve.c */
int shim_server_new(shim_ctx *ctx, rr_err *e);
void shim_server_free(shim_ctx *ctx);
/* Run the loop until the last stdio connection closes (init: forever, or
 * until an in-place exec is due). */
int shim_run(shim_ctx *ctx, rr_err *e);
/* In place of the server now (ctx->exec_* set): returns only on failure. */
int shim_exec_in_place(shim_ctx *ctx, rr_err *e);

/* Services (svc_*.c). */
int svc_commander_register(shim_ctx *ctx, rr_err *e);
int svc_runner_register(shim_ctx *ctx, rr_err *e);
int svc_fork_register(shim_ctx *ctx, rr_err *e);
int svc_batch_register(shim_ctx *ctx, rr_err *e);
int svc_loader_register(shim_ctx *ctx, rr_err *e);
/* Close every linked memfd. */
void shim_links_free(shim_ctx *ctx);

/* request.c: RPC fields into a validated job request (errors name the field). */
struct job_request;
/* Every protobuf-c map<string, string> entry has this layout. */
typedef struct shim_env_entry {
  ProtobufCMessage base;
  char *key;
  char *value;
} shim_env_entry;
typedef struct shim_command_in {
  char **argv;
  size_t nargv;
  const char *shell; /* NULL/"": use argv */
  size_t nenv;
  void *const *env; /* shim_env_entry * each */
  const char *cwd;  /* NULL/"": the server's working directory */
  uint64_t timeout_ms;
} shim_command_in;
/* Validate and copy into *ret (zeroed first; job_request_free it). */
int shim_request_build(const shim_command_in *in, struct job_request *ret, rr_err *e);
/* argv, env and cwd only (Exec, Load): INVALID_ARGUMENT naming the field. */
int shim_command_check(const shim_command_in *in, rr_err *e);
/* NULL-terminated "K=V" copies of the default env (PATH, HOME, LANG) plus
 * env entries (later wins). */
int shim_envp_build(size_t nenv, void *const *env, char ***ret, rr_err *e);
/* NULL-terminated copy of argv. */
int shim_strv_dup(char *const *argv, size_t n, char ***ret, rr_err *e);
void shim_strv_free(char **v);

/* procs.c: processes addressed by handle (Spawn, Load) */
int shim_proc_add(shim_ctx *ctx, pid_t pid, int pidfd, uint64_t start_ticks, shim_proc **ret,
                  rr_err *e);
const char *shim_proc_handle(const shim_proc *p);
int shim_proc_find(shim_ctx *ctx, const char *handle, shim_proc **ret, rr_err *e);
/* Kill every process left (SIGKILL to its group) and forget them. */
void shim_procs_free(shim_ctx *ctx);
