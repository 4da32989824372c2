/* runproc: an OCI runtime with runc's command line, on the sandbox engine
 * (src/sandbox). One file per verb; this header is what they share: the
 * context of the global options, the command table's entry, the state of
 * a container in ROOT/ID/ (container.c), errors and the log (util.c). */
#pragma once
#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

#define RUNPROC_DEFAULT_ROOT "/run/runproc"
#define RUNPROC_OCI_VERSION "1.0.2"
#define RUNPROC_CGROUP_ROOT "/sys/fs/cgroup"
/* ROOT/ID/ns.sock: where the init of a container with a user namespace
 * hands its namespaces to exec (sb_spawn_opts.ns_socket_fd). */
#define RUNPROC_NS_SOCKET "ns.sock"

typedef struct runproc_ctx {
  const char *root; /* state directory: ROOT/ID/ per container */
  const char *log_path;
  bool log_json;
  bool debug;
  bool systemd_cgroup, rootless; /* accepted, not acted on */
  const char *verb;
} runproc_ctx;

typedef struct runproc_command {
  const char *name;
  const char *usage;
  int (*run)(runproc_ctx *ctx, int argc, char **argv); /* exit code */
} runproc_command;

/* What ROOT/ID/state.json keeps. */
typedef struct runproc_container {
  char *id;
  char *bundle;
  char *rootfs;
  char *created; /* RFC 3339 */
  char *owner;
  pid_t pid; /* the container's init (0 before it exists) */
  uint64_t start_ticks;
  json_object *annotations; /* owned; an object */
  char *cgroup;             /* the cgroup made for it ("" none) */
  json_object *hooks;       /* config.json's hooks (owned), NULL if none */
  int dirfd;                /* ROOT/ID, locked (flock) while we hold it */
} runproc_container;

typedef enum runproc_status {
  RUNPROC_CREATED,
  RUNPROC_RUNNING,
  RUNPROC_PAUSED,
  RUNPROC_STOPPED,
} runproc_status;

/* util.c */
/* "runproc: VERB: msg" on stderr (and a log line with --log); returns 1. */
int runproc_fail(runproc_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same for an error object. */
int runproc_fail_err(runproc_ctx *ctx, const rr_err *e);
/* A warning line in the log (--log; nothing without one). */
void runproc_warn(runproc_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A debug line in the log (with --debug). */
void runproc_debug(runproc_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Now (or t) in RFC 3339 with nanoseconds, UTC, into buf (>= 40 bytes). */
char *runproc_rfc3339(char *buf, size_t size);
/* Signal number of "9", "KILL", "SIGKILL", "kill"; -1 if none. */
int runproc_signal_parse(const char *s);
/* Write data to path through a temporary file and rename (0644). */
int runproc_write_atomic(const char *path, const char *data, size_t len, rr_err *e);
/* A container id: [A-Za-z0-9_.+-], 1..1024 bytes, not "." or "..". */
int runproc_id_check(const char *id, rr_err *e);
/* Whether arg is the boolean flag NAME ("--name", "-name", "-s"). */
bool runproc_flag(const char *arg, const char *name, char s);
/* argv[*i] is option NAME ("--name V", "--name=V", "-s V"): 1 and *ret (*i
 * moved past V); 0 when it is not; -1 when V is missing. */
int runproc_opt(int argc, char **argv, int *i, const char *name, char s, const char **ret);

/* argv[i] that no option of the verb took: the container id if none was
 * seen (*id set, 0), else a failure naming it as an unknown option or an
 * unexpected argument (runproc_fail's status). */
int runproc_arg_id(runproc_ctx *ctx, const char *arg, const char **id);

/* Write pid (decimal) to path atomically. */
int runproc_write_pid_file(const char *path, pid_t pid, rr_err *e);
/* The console socket's connected fd when terminal (and path) are given;
 * -2 when neither is; -1 (e set) on a mismatch or a failed connect. */
int runproc_console_connect(bool terminal, const char *path, rr_err *e);
/* SIGKILL the process of pidfd and reap it (our child). */
void runproc_kill_reap(int pidfd);

/* run.c: wait for our child pidfd, passing our signals on; its status
 * (code, or 128+N for signal N). */
int runproc_wait_forwarding(int pidfd);

/* hooks.c: config.json's hooks, in the order the runtime spec calls them. */
typedef enum runproc_hook_kind {
  RUNPROC_HOOK_PRESTART,
  RUNPROC_HOOK_CREATE_RUNTIME,
  RUNPROC_HOOK_CREATE_CONTAINER,
  RUNPROC_HOOK_START_CONTAINER,
  RUNPROC_HOOK_POSTSTART,
  RUNPROC_HOOK_POSTSTOP,
  RUNPROC_HOOK_KINDS
} runproc_hook_kind;
#define RUNPROC_NS_FILES 7
/* INVALID_ARGUMENT naming the field (hooks.prestart[0].path) of a bad one. */
int runproc_hooks_check(json_object *hooks, rr_err *e);
/* Whether hooks has any of kind. */
bool runproc_hooks_any(json_object *hooks, runproc_hook_kind kind);
/* Run the hooks of kind in order with state (its status set for kind) on
 * their stdin; in the namespaces of ns_pid that are not ours when > 0.
 * The first that fails is the error, with its output. */
int runproc_hooks_run(json_object *hooks, runproc_hook_kind kind, json_object *state, pid_t ns_pid,
                      rr_err *e);

/* container.c */
/* Make ROOT/ID (ALREADY_EXISTS when there) and lock it. */
int runproc_container_new(runproc_ctx *ctx, const char *id, runproc_container *ret, rr_err *e);
/* Open and lock ROOT/ID, read its state (NOT_FOUND: no such container). */
int runproc_container_load(runproc_ctx *ctx, const char *id, runproc_container *ret, rr_err *e);
/* ROOT/ID without a state.json (left by a create that crashed) is removed,
 * under its lock, as runc's delete does. */
void runproc_container_remove_leftover(runproc_ctx *ctx, const char *id);
/* Write state.json atomically. */
int runproc_container_save(const runproc_container *c, rr_err *e);
/* Remove ROOT/ID and its files. */
int runproc_container_remove(runproc_ctx *ctx, runproc_container *c, rr_err *e);
/* Lock c (loaded, then unlocked with flock) again: NOT_FOUND when it was
 * removed meanwhile. */
int runproc_container_relock(runproc_container *c, rr_err *e);
/* Unlock and free. */
void runproc_container_free(runproc_container *c);
/* What the container is now: its process checked by pid and start time. */
runproc_status runproc_container_status(const runproc_container *c);
const char *runproc_status_name(runproc_status s);
/* runc's state object (ociVersion, id, pid, status, bundle, rootfs, created,
 * owner, annotations). */
json_object *runproc_container_state_json(const runproc_container *c);
/* A pidfd of the container's process when it is still that process; -1
 * when it ended (or its pid was reused). */
int runproc_container_pidfd(const runproc_container *c);
/* Send sig to the process, or with all to every process of its pid
 * namespace (or its cgroup); for a caller that may not look at the init's
 * (a rootless container's) the namespace is a child's of the init, or the
 * init's answer on ns.sock (runproc_container_nsfds). */
int runproc_container_signal(const runproc_container *c, int sig, bool all, rr_err *e);
/* SIGKILL everything and wait (up to ~5 s) until the process is gone. */
int runproc_container_kill_wait(const runproc_container *c, rr_err *e);
/* Kill what is left in the container's cgroup and remove it (none, or
 * gone already: 0). */
int runproc_container_cgroup_remove(const runproc_container *c, rr_err *e);
/* The container's cgroup (FAILED_PRECONDITION naming linux.cgroupsPath
 * when it has none). */
struct cg_job;
int runproc_container_cgroup(const runproc_container *c, struct cg_job **ret, rr_err *e);
/* Pids of the container (its cgroup's, else its pid namespace's), malloc'd. */
int runproc_container_pids(const runproc_container *c, int **ret, size_t *ret_n, rr_err *e);
/* start.c: startContainer hooks, the byte that starts it, poststart hooks
 * (a failure of those kills it). */
int runproc_container_start(runproc_container *c, rr_err *e);
/* poststart hooks of a container that runs (a failure kills it). */
int runproc_container_poststart(runproc_container *c, rr_err *e);
/* poststop hooks of a container that stopped (before its state goes). */
int runproc_container_poststop(runproc_container *c, rr_err *e);
/* The unix socket address of ROOT/ID/ns.sock through the container's
 * locked dirfd (short whatever ROOT and ID are). */
struct sockaddr_un;
void runproc_ns_socket_addr(const runproc_container *c, struct sockaddr_un *ret);
/* The container's namespaces (fds, -1 where none, in sb_ns_type order)
 * asked from its init over ROOT/ID/ns.sock: for a caller that may not
 * open /proc/PID/ns of it (a rootless container's init is not dumpable). */
int runproc_container_nsfds(const runproc_container *c, int fds[], rr_err *e);
/* Path of ROOT/ID/exec.fifo into buf. */
void runproc_fifo_path(runproc_ctx *ctx, const char *id, char *buf, size_t size);

/* create.c: the shared part of create and run. Leaves the container
 * created; *ret_pidfd (when not NULL) gets the init's pidfd. With
 * ret_started (run) a container without startContainer hooks is started
 * at once (no exec.fifo) and *ret_started says so; its poststart hooks
 * are the caller's (runproc_container_poststart). ret (when not NULL)
 * gets the container as saved, still locked; ret_mntns (when not NULL)
 * its mount namespace, held (sb_spawn_opts.hold_mntns), or -1. */
typedef struct runproc_create_opts {
  const char *id, *bundle, *pid_file, *console_socket;
  int preserve_fds;
  bool no_pivot, no_new_keyring;
} runproc_create_opts;
int runproc_create(runproc_ctx *ctx, const runproc_create_opts *o, int *ret_pidfd,
                   bool *ret_started, runproc_container *ret, int *ret_mntns, rr_err *e);
/* Parse create's and run's flags from argv; returns an exit code >= 0 on
 * error/help, -1 to go on. */
int runproc_create_parse(runproc_ctx *ctx, int argc, char **argv, runproc_create_opts *o,
                         bool *detach);

extern const runproc_command runproc_cmd_create, runproc_cmd_start, runproc_cmd_state,
    runproc_cmd_kill, runproc_cmd_delete, runproc_cmd_run, runproc_cmd_list, runproc_cmd_spec,
    runproc_cmd_features, runproc_cmd_pause, runproc_cmd_resume, runproc_cmd_ps, runproc_cmd_exec,
    runproc_cmd_update, runproc_cmd_events;
