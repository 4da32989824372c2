/* What a job runs, as requested; validation with errors naming the field
 * ("command.args[3]"), and its job.json form. */
#pragma once
#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "sandbox/cgroup.h"
#include "sandbox/profile.h"

#define REQUEST_MAX_ARGS 4096
#define REQUEST_MAX_ENV 4096
#define REQUEST_MAX_ITEM (128u * 1024u)   /* one arg or env entry */
#define REQUEST_MAX_TOTAL (1024u * 1024u) /* all args + env */
#define REQUEST_MAX_TAGS 32
#define REQUEST_MAX_TAG_LEN 64
#define REQUEST_MAX_TIMEOUT_MS (366ull * 24 * 3600 * 1000)
#define REQUEST_MAX_TIMEOUT_GRACE_MS 3600000u

typedef struct job_bind {
  char *source, *destination;
  bool readonly;
} job_bind;

/* How the job is confined (runrpc.v1.Sandbox after rund's decisions). */
typedef struct job_sandbox {
  sb_profile profile;      /* applied (after rund's default and minimum) */
  char *profile_requested; /* as named; NULL: none */
  char *rootfs;            /* NULL: the host's root, read-only */
  char *image;             /* the image named (rund's store), as asked; NULL: none */
  job_bind *binds;
  size_t nbinds;
  sb_net net;
  char *hostname; /* NULL: the profile's */
  bool has_user;  /* ids inside the sandbox */
  uint32_t uid, gid;
  uint32_t *groups; /* supplementary groups inside (an image's user); NULL: gid alone */
  size_t ngroups;
  /* rund's check of rootfs and binds kept (sb_binds_open): fds[0] the
   * rootfs (-1 without), fds[1 + i] binds[i]; what the sandbox mounts,
   * closed once it has. NULL: none (not checked, or a job.json). */
  int *fds;
  bool root_is_tree; /* fds[0] is a detached mount (an image's overlay): moved in */
  /* > 0 (exec --in): an O_PATH /proc/PID directory of a running sandbox
   * whose namespaces, and so its root, are joined with the profile's
   * process (ids, capabilities, seccomp, no_new_privs, rlimits); nothing
   * is made or mounted. Borrowed. */
  int join_procfd;
} job_sandbox;

typedef struct job_request {
  char *path;
  char **args;
  size_t nargs;
  char **env_keys, **env_values;
  size_t nenv;
  char *workdir; /* NULL or "" = "/" */
  char **tags;
  size_t ntags;
  bool has_timeout;
  uint64_t timeout_ms;
  bool has_timeout_grace; /* else KILL_DEFAULT_GRACE_MS */
  uint32_t timeout_grace_ms;
  cg_limits *limits; /* NULL: no limit, no cgroup; io devices already resolved */
  job_sandbox sandbox;
  /* Background jobs: stdin kept open (a pipe held by the keeper), or a
   * terminal (rows x cols, TERM; NULL: "xterm"), which implies stdin. */
  bool stdin_open;
  bool tty;
  unsigned rows, cols;
  char *term;
} job_request;

void job_request_free(job_request *r);
/* Copy len bytes into a new C string, refusing NUL bytes and invalid UTF-8
 * (INVALID_ARGUMENT naming field). */
int request_string_dup(const void *data, size_t len, const char *field, char **ret, rr_err *e);
/* Check everything but existence of the executable (limits included). */
int job_request_validate(const job_request *r, rr_err *e);
/* Check one tag's syntax; field names it in the error. */
int request_tag_check(const char *tag, const char *field, rr_err *e);
json_object *job_request_to_json(const job_request *r);
/* Take a copy of *l as r's limits when any is set (else none): the copy is
 * on the heap so that jobs without limits do not carry its io table. */
int job_request_set_limits(job_request *r, const cg_limits *l, rr_err *e);
/* The "limits" object of job.json (NULL when no limit is set). */
json_object *request_limits_to_json(const cg_limits *l);
int request_limits_from_json(json_object *o, cg_limits *ret, rr_err *e);
int job_request_from_json(json_object *o, job_request *ret, rr_err *e);

void job_sandbox_free(job_sandbox *s);
/* Close s->fds (each becomes -1): after the spawn that mounted them. */
void job_sandbox_close_fds(const job_sandbox *s);
/* Form only (no file is looked at): INVALID_ARGUMENT naming the field
 * ("sandbox.binds[1].destination: must be absolute"); a host profile with
 * anything set is refused (it would be silently ignored). */
int job_sandbox_validate(const job_sandbox *s, rr_err *e);
/* The "sandbox" object of job.json; NULL for a host job that named no profile. */
json_object *job_sandbox_to_json(const job_sandbox *s);
int job_sandbox_from_json(json_object *o, job_sandbox *ret, rr_err *e);
