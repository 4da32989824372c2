/* Starting a process: executable resolution, environment, a vfork-style
 * clone (CLONE_VM|CLONE_VFORK) with a
 * pidfd (fork + pidfd_open fallback), placement into a cgroup before any of
 * its code runs (clone3 CLONE_INTO_CGROUP, or the child joins first thing),
 * new process group, clean signal state, stdio, workdir, and synchronous
 * exec-failure reporting. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

#define SPAWN_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#define SPAWN_MAX_GROUPS 256

/* A user's passwd entry as a login would use it (HOME, USER, SHELL, the
 * start directory); known false when the uid has none. */
typedef struct spawn_account {
  bool known;
  char name[64];
  char home[512];
  char shell[256];
} spawn_account;

/* Credentials the child switches to before chdir and exec. */
typedef struct spawn_ids {
  uid_t uid;
  gid_t gid;
  gid_t groups[SPAWN_MAX_GROUPS]; /* supplementary groups */
  size_t ngroups;
  spawn_account account;
} spawn_ids;

/* spawn_account.c: the passwd entry of uid (an entry with fields too long
 * for ours counts as none). */
int spawn_account_lookup(uid_t uid, spawn_account *ret, rr_err *e);
/* Our own euid's entry, looked up once. */
const spawn_account *spawn_account_self(void);

typedef struct spawn_opts {
  const char *path;        /* as requested: "ls", "./x", "/bin/sh" */
  const char *const *args; /* argv[1..], nargs entries */
  size_t nargs;
  const char *const *env_keys; /* added to the default env; later wins */
  const char *const *env_values;
  size_t nenv;
  const char *workdir;                /* absolute; NULL = "/" */
  int stdin_fd, stdout_fd, stderr_fd; /* become the child's 0, 1, 2 */
  const spawn_ids *ids;               /* NULL: keep ours */
  /* cgroup v2 directory fd: the child is created in it (clone3
   * CLONE_INTO_CGROUP); <= 0 = none, so zeroed opts place nothing. */
  int cgroup_fd;
  /* cgroup.procs (v1: tasks) fds the child writes "0" to before anything
   * else (before dropping privileges); skipped when cgroup_fd placed it. */
  const int *cgroup_procs_fds;
  size_t ncgroup_procs;
  /* Background jobs: rund-waiter's path. It becomes the process (pid and
   * group leader; stdin_fd as its 0, 1 and 2) and the command its child; it
   * writes how the command ended to waiter_status_fd and ends the same way.
   * NULL: the command is the process. */
  const char *waiter;
  int waiter_status_fd;
  /* With waiter: it keeps the job's output (src/waiter/relay.c), copying
   * the pipes' read ends [0] and [1] (stdout_fd and stderr_fd are their
   * write ends) into the log files [2] and [3]. NULL: no relay. */
  const int *waiter_relay_fds;
  /* With waiter_relay_fds: the job's input, held by the keeper: [0] the
   * write end of the command's stdin pipe (or, with waiter_tty, the pty's
   * master), [1] the listening socket it takes stdin bytes, EOF and window
   * sizes from (src/waiter/input.h). NULL: stdin_fd is all (/dev/null). */
  const int *waiter_input_fds;
  bool waiter_tty;
  int waiter_stdio_fd; /* rund-waiter's own 0, 1, 2 (/dev/null); <= 0: stdin_fd */
  /* stdin_fd is a pty's slave (stdout_fd, stderr_fd too): the command gets
   * it as its controlling terminal in a new session (its own process group
   * as without). With waiter, the command's session is not the waiter's
   * group: rund-waiter forwards it what its group gets. */
  bool controlling_tty;
  const char *term; /* TERM unless env sets it; NULL: none */
} spawn_opts;

typedef struct spawn_result {
  pid_t pid;            /* also the process group id */
  int pidfd;            /* CLOEXEC; owned by the caller */
  uint64_t start_ticks; /* /proc/PID/stat starttime, to detect pid reuse */
} spawn_result;

/* Find the executable as execvp would with the given PATH value (NULL = the
 * default). A name with a slash is taken relative to workdir. NOT_FOUND or
 * PERMISSION_DENIED with the name when it cannot be run. */
int spawn_resolve(const char *path, const char *search_path, const char *workdir, char **ret,
                  rr_err *e);
/* NULL-terminated "K=V" array: default PATH/HOME/LANG, then opts' env. */
int spawn_env_build(const spawn_opts *o, char ***ret, rr_err *e);
void spawn_strv_free(char **v);
/* The credentials of user uid: its passwd gid (else gid) and its groups. */
int spawn_ids_for_user(uid_t uid, gid_t gid, spawn_ids *ret, rr_err *e);
/* Start the process; on any failure nothing is left running. */
int spawn_process(const spawn_opts *o, spawn_result *ret, rr_err *e);
/* starttime (field 22) of /proc/PID/stat; -1 if the process is gone. */
int spawn_proc_start_ticks(pid_t pid, uint64_t *ret);
/* Children get this RLIMIT_NOFILE soft limit (0 = inherit ours): a daemon
 * that raised its own limit must not hand select()-based programs fds >= 1024. */
void spawn_set_child_nofile(uint64_t soft);
/* Force the fork + pidfd_open path (tests of the fallback). */
void spawn_set_clone3_disabled(bool disabled);
