/* rund internals: the daemon context and the runrpc.v1.Jobs service glue
 * (one file per group of methods) that maps RPCs onto the job engine. */
#pragma once
#include <json-c/json.h>
#include <stdint.h>

#include "auth/authz.h"
#include "auth/secrets.h"
#include "auth/tokens.h"
#include "common/err.h"
#include "common/loop.h"
#include "jobs/job.h"
#include "jobs/reaper.h"
#include "rpc/server.h"
#include "rund/quota.h"
#include "rund_wire.pb-c.h"
#include "runrpc/v1/images.pb-c.h"
#include "runrpc/v1/jobs.pb-c.h"
#include "sandbox/spawn.h"

/* What rund allows of sandboxes (its flags). */
typedef struct rund_sandbox_policy {
  sb_profile default_profile;    /* of requests naming none */
  sb_profile min_profile;        /* weaker requests are raised to it */
  const char *const *bind_allow; /* host dirs binds and rootfs may come from */
  size_t nbind_allow;
} rund_sandbox_policy;

/* What a file was when it was last loaded (stat's identity and times). */
typedef struct rund_file_id {
  bool present;
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtime, ctime;
} rund_file_id;

typedef struct rund_exec_entry rund_exec_entry;

/* systemd.c: sockets handed over by systemd (socket activation). */
#define RUND_SD_MAX 64
typedef struct rund_sd_fds {
  size_t n;
  int fd[RUND_SD_MAX];         /* 3, 4, ... */
  int spare[RUND_SD_MAX];      /* CLOEXEC copies kept for a re-exec in place (-1: none) */
  char names[RUND_SD_MAX][32]; /* LISTEN_FDNAMES (FileDescriptorName=), cut at 31 bytes */
} rund_sd_fds;

typedef struct rund_ctx {
  loop *l;
  rpc_server *server;
  reaper *reaper;
  job_table *jobs;
  authz_config authz; /* authz.tokens points at tokens */
  token_file tokens;
  secrets *secrets;   /* NULL: no secret store */
  char *secrets_path; /* the store's directory (NULL: none); reopened when replaced */
  rund_file_id secrets_seen;
  char *token_path; /* reloaded when it changes, and on SIGHUP */
  rund_file_id token_seen;
  bool token_optional; /* the default STATE/tokens: may be missing */
  cg_manager *cgroups; /* NULL: --no-cgroups (commands with limits fail) */
  ulid_gen exec_ids;   /* names of Exec commands' cgroups */
  bool reexec;         /* SIGUSR2: exec ourselves again once shut down */
  quota *quota;        /* per-identity quotas and the fd reserve */
  rund_sandbox_policy sandbox;
  struct img_store *images; /* STATE/images */
  int image_roots;          /* rund_image_roots: overlay, copy or auto */
  const char *exe;          /* rund's own binary (for `rund image` children) */
  const char *state_dir;
  unsigned imports;             /* Import calls in progress */
  rund_exec_entry *execs;       /* running Exec commands, newest first (exec_list.c) */
  rund_sd_fds sd_fds;           /* sockets from systemd; served instead of --listen */
  struct rund_metrics *metrics; /* --metrics (NULL: off) */
  struct rund_audit *audit;     /* --audit-log (NULL: off) */
} rund_ctx;

/* audit.c: the per-call audit log, and the server's call-end hook (which
 * feeds the metrics and the audit log). */
typedef struct rund_audit rund_audit;
/* Log to where ("stderr", or a file opened O_APPEND 0600; NULL: stop).
 * Called again (SIGHUP) it reopens, so a rotated file is let go; when the
 * new one cannot be opened the old one stays and -1 says why. */
int rund_audit_apply(rund_ctx *ctx, const char *where, rr_err *e);
void rund_audit_free(rund_ctx *ctx);
/* rpc_call_end_fn with data = ctx. */
void rund_call_end(void *data, const rpc_call *c, int code, uint64_t duration_us);

/* metrics.c: the --metrics listener (HTTP GET /metrics, Prometheus text). */
typedef struct rund_metrics rund_metrics;
int rund_metrics_open(rund_ctx *ctx, const char *addr, rr_err *e);
/* Unhooks from the server: before rpc_server_free. */
void rund_metrics_free(rund_ctx *ctx);
/* A job or Exec command took us from request to running (no-op when off). */
void rund_metrics_spawned(rund_ctx *ctx, uint64_t us);
/* A call ended (from rund_call_end). */
void rund_metrics_call_end(rund_ctx *ctx, const rpc_call *c, int code, uint64_t us);
/* A connection refused: in its TLS handshake, or for another reason. */
void rund_metrics_conn_event(rund_ctx *ctx, bool tls_refused);

/* systemd.c. Take NOTIFY_SOCKET and WATCHDOG_* out of the environment
 * (first thing, before any job can inherit them). */
void rund_sd_init(void);
/* sd_notify: send "READY=1", "STOPPING=1", ... (no-op without
 * NOTIFY_SOCKET; failures only logged at debug level). */
void rund_sd_notify(const char *msg);
/* RELOADING=1 with MONOTONIC_USEC (systemd 253's reload protocol). */
void rund_sd_reloading(void);
/* WATCHDOG=1 from a loop timer at half of WATCHDOG_USEC (no-op without). */
void rund_sd_watchdog_start(loop *l);
/* The sockets passed for this pid (LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES,
 * then unset); INVALID_ARGUMENT when the variables are malformed or an fd is
 * not open. */
int rund_sd_listen_fds(rund_sd_fds *ret, rr_err *e);
/* Before an in-place re-exec: put the sockets back at their numbers and
 * set the variables the new image reads (notify socket, watchdog too). */
int rund_sd_pass_on(const rund_sd_fds *fds);

/* exec_list.c: a running Exec command shown by List (kind "exec") until
 * removed; r and caller are copied. */
int rund_exec_list_add(rund_ctx *ctx, const char *id, pid_t pid, const job_request *r,
                       const authz_identity *caller, rund_exec_entry **ret, rr_err *e);
/* Remove and free x (NULL: no-op). */
void rund_exec_list_remove(rund_ctx *ctx, rund_exec_entry *x);
/* Up to max running Exec commands id may see, newest first, as jobs for
 * convert_status (none when state is not running/any or a tag is asked). */
size_t rund_exec_list_visible(rund_ctx *ctx, const authz_identity *id, job_state state,
                              const char *tag, job **ret, size_t max);

struct rund_opts;
/* setup.c: token file, secret store and admins from the flags (one clear
 * error when a file is unsafe or malformed). */
int rund_security_load(rund_ctx *ctx, const struct rund_opts *o, rr_err *e);
/* auth_refresh.c: re-read the token file; the old one stays on failure. */
int rund_tokens_reload(rund_ctx *ctx, rr_err *e);
/* Reload the token file if it changed since it was read (one stat);
 * failures are logged once per change and keep the tokens loaded before. */
void rund_tokens_refresh(rund_ctx *ctx);
/* Open the secret store if its directory appeared or was replaced since
 * (one stat); a removed one is closed. */
int rund_secrets_refresh(rund_ctx *ctx, rr_err *e);
void rund_security_free(rund_ctx *ctx);
/* The cgroup manager (none with --no-cgroups), its subtree named after the
 * state dir so a restarted rund finds its jobs' cgroups; logs the version. */
int rund_cgroups_open(rund_ctx *ctx, const struct rund_opts *o, rr_err *e);
/* rund-waiter next to exe: EXEDIR/../libexec/runrpc (installed) or
 * EXEDIR/../waiter (build tree). 0 with its path in buf, -1 if none. */
int rund_waiter_find(const char *exe, char *buf, size_t n);
/* Remove job cgroups no running job claims (left by a crash of rund). */
void rund_cgroups_sweep(rund_ctx *ctx);
/* setup_quota.c: quotas and the fd reserve from the flags, counting the
 * loaded jobs; logs the limits. */
int rund_quota_open(rund_ctx *ctx, const struct rund_opts *o, rr_err *e);
/* Every listener of o (the embedded default's certificates made first);
 * logs each address. */
int rund_listen_all(rund_ctx *ctx, const struct rund_opts *o, rr_err *e);
/* service.c: the gRPC server's connection limits from the flags. */
void rund_server_configure(rund_ctx *ctx, const struct rund_opts *o);

/* Register every runrpc.v1.Jobs method on s. */
int jobs_service_register(rpc_server *s, rund_ctx *ctx, rr_err *e);
/* Per group of methods (svc_jobs.c, svc_logs.c, svc_exec.c). */
int svc_jobs_register(rpc_server *s, rund_ctx *ctx, rr_err *e);
int svc_logs_register(rpc_server *s, rund_ctx *ctx, rr_err *e);
int svc_exec_register(rpc_server *s, rund_ctx *ctx, rr_err *e);
/* svc_attach.c, svc_send.c: Attach (registers Send too) and Send. */
int svc_attach_register(rpc_server *s, rund_ctx *ctx, rr_err *e);
int svc_send_register(rpc_server *s, rund_ctx *ctx, rr_err *e);
/* svc_images.c, svc_images_import.c: runrpc.v1.Images. */
int svc_images_register(rpc_server *s, rund_ctx *ctx, rr_err *e);
int svc_images_import_register(rpc_server *s, rund_ctx *ctx, rr_err *e);
/* PERMISSION_DENIED unless the caller is an admin ("what images needs..."). */
int images_need_admin(rpc_call *c, const char *what, rr_err *e);
/* Collect unused layers in a `rund image gc` child. */
void images_gc_spawn(rund_ctx *ctx);
/* An Image message from a record (strings point into rec). */
typedef struct image_msg {
  Runrpc__V1__Image img;
  json_object *rec;
  char **names;
  Runrpc__V1__Layer *layers;
  Runrpc__V1__Layer **layer_ptrs;
} image_msg;
struct img_record;
int image_msg_from(const struct img_record *r, image_msg *m, rr_err *e);
void image_msg_clear(image_msg *m);

/* After the spawn: the host's mount of the root goes (the sandbox has its own). */
void rund_image_root_detach(rund_ctx *ctx, const char *name);
/* The command ended: its root (upper layer) is removed in the background. */
void rund_image_root_release(rund_ctx *ctx, const char *name);
/* Release name when job j ends (name copied). */
int rund_image_root_watch(rund_ctx *ctx, job *j, char *name, rr_err *e);
/* At start: roots of adopted running jobs watched again, the others released. */
void rund_image_roots_adopt(rund_ctx *ctx);
/* At exit: forget the watches (running jobs keep their roots). */
void rund_image_roots_free(void);

/* convert.c: wire request -> engine, engine -> API messages. */
int convert_command(const Rundwire__Command *c, job_request *ret, rr_err *e);
/* Limits of a Start/Exec (l NULL: none) into r->limits: io devices resolved (""
 * = the device of workdir, NULL/"" = "/"), ranges checked; INVALID_ARGUMENT
 * naming the field ("limits.io[0].device") and the value. */
int convert_limits(const Rundwire__Limits *l, job_request *r, rr_err *e);
/* prepare.c: the one preparation of Start's and Exec's command requests.
 * The wire fields they share (tags: Start only, NULL/0 for Exec). */
typedef struct prepare_in {
  const Rundwire__Command *command;
  const ProtobufCBinaryData *tags;
  size_t ntags;
  bool has_timeout;
  uint64_t timeout_ms;
  bool has_timeout_grace;
  uint32_t timeout_grace_ms;
  const Rundwire__Limits *limits;
  const Rundwire__Sandbox *sandbox;
  const rund_sandbox_policy *policy; /* NULL: host only (profile default and minimum host) */
} prepare_in;
/* A request ready to run for its caller. */
typedef struct prepared {
  job_request req;   /* decoded and checked (job_table_start may take it over) */
  authz_identity id; /* the caller */
  char **child_env;  /* req's env values with secret:// references resolved */
  size_t nenv;       /* entries of child_env */
  spawn_ids ids;     /* the credentials to run as, when run_as */
  bool run_as;
  char *image_root;       /* --image: the command's root in STATE/images/roots (NULL: none) */
  json_object *image_rec; /* its record while its root is being copied */
  rund_ctx *ctx;
} prepared;
/* Decode and check in's command, tags, timeout and limits into *ret (in
 * this order: the first error wins); nothing about the caller. */
int prepare_decode(const prepare_in *in, job_request *ret, rr_err *e);
/* A request waiting for its image root's copy (copy mode). */
typedef struct prepare_wait prepare_wait;
/* The end of a wait: p the prepared request (the callee owns it: free with
 * prepare_free), or NULL and e why it failed. */
typedef void prepare_done_fn(void *data, prepared *p, const rr_err *e);
/* The caller's identity and running-jobs quota, prepare_decode, then the
 * secrets it may use and the credentials to run as. Free with prepare_free.
 * 0: ready in *ret; -1: e says why; 1: its image root is being copied (rund
 * goes on serving): done(data, ...) is called once it is, unless
 * prepare_wait_cancel(*ret_wait) came first. */
int prepare_request(rpc_call *c, const prepare_in *in, prepared *ret, prepare_done_fn *done,
                    void *data, prepare_wait **ret_wait, rr_err *e);
/* The caller went away: the copy is killed, its root released once it is
 * gone; done is not called. */
void prepare_wait_cancel(prepare_wait *w);
/* How to start p's command (owned: the caller is recorded as its owner). */
job_start_opts prepare_start_opts(const prepared *p, bool owned);
/* A request with an image and no command.path: the image's Entrypoint and
 * Cmd (the request's args replace Cmd), as docker does. */
typedef struct image_command {
  bool used; /* command is what to decode instead of the request's */
  Rundwire__Command command;
  ProtobufCBinaryData *words; /* point into keep and the request */
  json_object *keep;
} image_command;
int rund_image_command(rund_ctx *ctx, const prepare_in *in, image_command *ret, rr_err *e);
void rund_image_command_free(image_command *c);
/* image_root.c: p's image (if any) as an overlay root for its sandbox
 * (p->image_root), the image's Env, WorkingDir and User applied to p->req.
 * 1: a copy root (no overlayfs) made empty: rund_root_copy_start fills it,
 * then rund_image_root_finish applies the rest. */
int rund_image_root_prepare(rund_ctx *ctx, prepared *p, rr_err *e);
int rund_image_root_finish(rund_ctx *ctx, prepared *p, rr_err *e);
/* image_copy.c: roots/NAME filled by a `rund image root-copy` child watched
 * on the loop; done(data, e) when it ends (e->code 0: copied). */
typedef struct rund_root_copy rund_root_copy;
typedef void rund_root_copy_done_fn(void *data, const rr_err *e);
int rund_root_copy_start(rund_ctx *ctx, const char *name, rund_root_copy_done_fn *done, void *data,
                         rund_root_copy **ret, rr_err *e);
/* Kill the copy; its root is released once the child is gone (no done). */
void rund_root_copy_cancel(rund_root_copy *rc);
/* At rund's end: copies still running are killed and forgotten. */
void rund_root_copies_free(void);
void prepare_free(prepared *p);
/* prepare_sandbox.c: in's sandbox (NULL: none) decoded, its profile (or
 * pol's default) raised to pol's minimum. */
int prepare_sandbox_decode(const Rundwire__Sandbox *in, const rund_sandbox_policy *pol,
                           job_sandbox *ret, rr_err *e);
/* What needs the caller and the host: rootfs and binds below pol's allowed
 * dirs, ids inside (others than the caller's only for admins, but under
 * strict), strict's limits (when cgroups are there). */
int prepare_sandbox_check(const rund_sandbox_policy *pol, bool cgroups, const authz_identity *id,
                          const spawn_ids *run_as, job_request *r, rr_err *e);
/* May id run s's command as s's ids (its own, an admin, or strict's mapped ones)? */
bool prepare_sandbox_user_allowed(const job_sandbox *s, const authz_identity *id,
                                  const spawn_ids *run_as);
/* Usage message from counters. */
void convert_usage(const cg_usage *u, Runrpc__V1__Usage *ret);
/* A job id field: NUL/UTF-8 checked, then looked up. */
int convert_job_lookup(rund_ctx *ctx, const ProtobufCBinaryData *id, job **ret, rr_err *e);
/* JobStatus for j; free with convert_status_clear. */
typedef struct status_msg {
  Runrpc__V1__JobStatus status;
  Runrpc__V1__StartRequest request;
  Runrpc__V1__Command command;
  Runrpc__V1__Command__EnvEntry *env;
  Runrpc__V1__Command__EnvEntry **env_ptrs;
  Runrpc__V1__Limits limits;
  Runrpc__V1__CpuMax cpu;
  Runrpc__V1__IoMax io[CG_MAX_IO];
  Runrpc__V1__IoMax *io_ptrs[CG_MAX_IO];
  char io_dev[CG_MAX_IO][24];
  Runrpc__V1__Usage usage;
  Runrpc__V1__Sandbox sandbox;
  Runrpc__V1__User user;
  Runrpc__V1__Bind *binds;
  Runrpc__V1__Bind **bind_ptrs;
  char log_error[160];
  Runrpc__V1__TerminalSize window;
} status_msg;
/* (j is not const: a running job's usage is read live.) */
int convert_status(job *j, status_msg *m, rr_err *e);
void convert_status_clear(status_msg *m);
/* svc_auth.c: the caller's identity (UNAUTHENTICATED when it has none). */
int rund_call_identity(rpc_call *c, authz_identity *ret, rr_err *e);
/* Credentials for the caller's commands: a unix-socket peer other than
 * rund's own uid runs as itself (*set true); everyone else as rund. */
int rund_call_run_as(rpc_call *c, spawn_ids *ids, bool *set, rr_err *e);
/* Look a job id up for caller id: a job it may not see is NOT_FOUND with
 * the same message as an unknown id. */
int rund_job_lookup_visible(rund_ctx *ctx, const authz_identity *id,
                            const ProtobufCBinaryData *job_id, job **ret, rr_err *e);
/* svc_secrets.c: child env values for r with secret:// references resolved
 * for caller id (names it may not use: NOT_FOUND as missing ones; refusals
 * logged); free with secrets_values_free(v, r->nenv). */
int rund_env_resolve(rund_ctx *ctx, const authz_identity *id, const job_request *r, char ***ret,
                     rr_err *e);
/* Log each secret r uses, for id, in job ("exec" for Exec); never a value. */
void rund_secrets_log_use(const authz_identity *id, const job_request *r, const char *job);
/* After a spawn failure: replace an error that would show a secret value. */
void rund_spawn_error_scrub(const job_request *r, char *const *resolved, rr_err *e);
/* Finish c with the error's code and message. */
void rund_call_fail(rpc_call *c, const rr_err *e);
