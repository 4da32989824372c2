/* Starting a process in a sandbox described by an OCI config (spec.h):
 * clone3 with CLONE_PIDFD and the namespace flags (+ CLONE_INTO_CGROUP on
 * cgroup v2), a sync socket between parent and child; the parent writes the
 * uid/gid maps; the child sets up in bubblewrap's and crun's order (mount
 * propagation private, root, mounts, pivot_root and detach the old root,
 * masked and read-only paths, hostname, sysctls, rlimits, ids,
 * capabilities, no_new_privs, seccomp last, exec). Any step that fails is
 * reported to the parent as (step, errno, message) and the child _exits:
 * sb_spawn then fails with FAILED_PRECONDITION
 *   "sandbox: mount proc on /proc: Operation not permitted"
 * (NOT_FOUND / PERMISSION_DENIED for an executable that is missing or not
 * executable, as for plain processes).
 *
 * With a new pid namespace the command is not PID 1: a small init runs
 * first (reaps orphans, forwards every signal to the command's process
 * group, exits as the command did: its code, or 128+N for a signal), and
 * records how the command ended on status_fd when given. In a pid
 * namespace joined by path the init stays outside it (setns moves only
 * children) as a subreaper, the command inside.
 *
 * Seccomp is loaded last, just before execve, when no_new_privileges is
 * set; without it loading needs CAP_SYS_ADMIN, so (as runc does) it comes
 * before the ids and capabilities change, and the filter must allow what
 * follows (setgroups, setresuid/gid, capset, prctl, chdir, execve).
 * Not supported: a user namespace joined by path together with new
 * namespaces (UNIMPLEMENTED). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"
#include "sandbox/spec.h"

/* A seccomp filter compiled once (libseccomp to BPF) and loaded by any
 * number of children without allocating. */
typedef struct sb_filter sb_filter;

/* INVALID_ARGUMENT naming the rule for what libseccomp refuses. */
int sb_filter_compile(const sb_seccomp *s, sb_filter **ret, rr_err *e);
void sb_filter_free(sb_filter *f);

#define SB_MAX_PRESERVE_FDS 1024

typedef struct sb_spawn_opts {
  int stdin_fd, stdout_fd, stderr_fd; /* become the command's 0, 1, 2 */
  /* cgroup v2 directory fd: created in it (CLONE_INTO_CGROUP); <= 0 none. */
  int cgroup_fd;
  /* cgroup.procs fds the child writes "0" to first (v1, or v2 without
   * CLONE_INTO_CGROUP). */
  const int *cgroup_procs_fds;
  size_t ncgroup_procs;
  /* Compiled spec->seccomp (NULL: compiled now, for one-off callers). */
  const sb_filter *filter;
  /* >= 0: the init (or, without a pid namespace, nobody) writes
   * "exit N END_NS\n" or "signal N END_NS\n" here when the command ends
   * (the format of rund-waiter). */
  int status_fd;
  /* With a pid namespace: the init keeps the job's output (rund's
   * background jobs, src/waiter/relay.c): it copies the pipes' read ends
   * [0] and [1] (stdout_fd and stderr_fd are their write ends) into the log
   * files [2] and [3], and exits once the command ended and both pipes
   * reached EOF. NULL: none. */
  const int *relay_fds;
  /* Started with a process group of its own (rund kills the group). */
  bool new_process_group;
  /* A created container (runc's create/start): once everything is set up
   * and the executable found, sb_spawn returns while the command waits,
   * blocked reading one byte from start_fd (e.g. a fifo opened O_RDWR, a
   * pipe); it execs when the byte comes, and exits 127 on EOF or error.
   * Failures of the exec after that go to the command's stderr (exit 127). */
  bool wait_start;
  int start_fd;
  /* With process.terminal: a connected unix socket (> 2) over which the
   * master of a pty opened in the sandbox (its /dev/ptmx, after the
   * mounts) is sent (pty.h); the slave is the command's controlling
   * terminal and 0, 1, 2 in a session of its own. With new_process_group
   * only in a pid namespace (the init's group, the command's session). */
  int console_fd;
  /* The caller's fds 3 .. 3+preserve_fds-1 pass into the command as they
   * are (runc's --preserve-fds); none of the caller's own may be there. */
  int preserve_fds;
  /* Called in the parent while the child waits with its namespaces and
   * mounts made but before pivot_root (where runc runs the OCI prestart,
   * createRuntime and createContainer hooks), with the child's pid; a
   * failure (-1, e set) fails sb_spawn. NULL: no pause. */
  int (*setup_hook)(void *arg, pid_t pid, rr_err *e);
  void *setup_hook_arg;
  /* With a pid namespace: a listening unix stream socket (> 2) on which
   * whoever connects with the caller's euid gets fds of the sandbox's
   * namespaces (sb_nsfd_receive), answered by the command while it waits
   * for start and by the init after: for a caller that may not open
   * /proc/PID/ns of the init, which is never dumpable (rootless). The
   * fds are opened before any code of the sandbox runs. <= 2: none. */
  int ns_socket_fd;
  /* Hold the new mount namespace (sb_spawn_result.mntns_fd): whoever
   * closes that fd last tears it down (its unmounts and the RCU grace
   * period they wait for), not the last process's exit. */
  bool hold_mntns;
} sb_spawn_opts;

typedef struct sb_spawn_result {
  pid_t pid; /* in the caller's pid namespace: the init when there is one */
  int pidfd; /* CLOEXEC; owned by the caller */
  uint64_t start_ticks;
  int mntns_fd; /* hold_mntns: the mount namespace (CLOEXEC), else -1 */
} sb_spawn_result;

/* Start s's process; on failure nothing is left running. */
int sb_spawn(const sb_spec *s, const sb_spawn_opts *o, sb_spawn_result *ret, rr_err *e);
/* The fds of a sandbox's namespaces read from sock (connected to its
 * ns_socket_fd) into ret[sb_ns_type] (-1 where none came; CLOEXEC). */
int sb_nsfd_receive(int sock, int ret[SB_NS_COUNT], rr_err *e);
/* The file of namespace t in /proc/PID/ns ("mnt"; the pid namespace as
 * "pid_for_children": the one a joiner's children get). */
const char *sb_ns_proc_file(sb_ns_type t);
/* Join every namespace of the process at procfd (an O_PATH /proc/PID
 * directory fd, which keeps naming that process: a reused pid cannot be
 * joined by mistake) that differs from ours, the pid one its children get;
 * or, with ns_fds (indexed by sb_ns_type, -1 none), those fds (a sandbox's
 * init's answer, sb_nsfd_receive). whose names it in errors ("the job"). */
int sb_spec_join_namespaces(sb_spec *s, int procfd, const int *ns_fds, const char *whose,
                            rr_err *e);
/* Resolve mount destinations without openat2 (a walk refusing symlinks), as
 * before Linux 5.6: tests of that path. */
void sb_set_openat2_disabled(bool disabled);
/* Mount checked sources (sb_mount.source_fd, sb_spec.root_fd) without
 * open_tree, as a caller that is not root does (the path opened again and
 * used only if it is still that object): tests of that path. */
void sb_set_open_tree_disabled(bool disabled);
