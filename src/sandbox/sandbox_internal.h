/* Internals of sb_spawn shared by its files: sandbox.c (parent),
 * sandbox_child.c (the child's steps), sandbox_mount.c (root and mounts),
 * sandbox_init.c (PID 1 of a new pid namespace). Not for users of sandbox.h.
 * Everything the child runs is prepared by the parent before the clone:
 * the child (a real fork) allocates nothing and reports its first failure
 * over the sync socket before _exit(127). */
#pragma once
#include <linux/filter.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/capability.h>

#include "sandbox/sandbox.h"

struct sb_filter {
  struct sock_fprog prog;
};

/* What a failed child step sends: errno and "mount proc on /proc". */
struct sb_report {
  int err;
  int exec;   /* 1: the exec itself failed (NOT_FOUND / PERMISSION_DENIED) */
  int ready;  /* 1: set up and waiting for start_fd (wait_start) */
  int paused; /* 1: namespaces and mounts made, waiting before pivot_root (setup_hook) */
  char what[480];
};

/* Everything the child needs, prepared by the parent (copied by the fork). */
struct sb_child {
  const sb_spec *s;
  const sb_spawn_opts *o;
  int sock;                 /* the child's end of the sync socket */
  int status_fd;            /* o->status_fd, moved above 2 in the child */
  int start_fd;             /* o->start_fd with wait_start, moved above 2; else -1 */
  int console_fd;           /* o->console_fd with process.terminal; else -1 */
  int tty_fd;               /* the pty's slave once opened; else -1 */
  int relay_fds[4];         /* o->relay_fds, moved above 2; else -1 */
  int first_own_fd;         /* 3 + o->preserve_fds: ours are moved at or above it */
  int ns_fds[SB_NS_COUNT];  /* namespaces joined by path; -1 none */
  bool new_ns[SB_NS_COUNT]; /* created by the clone */
  bool wait_maps;           /* new user ns: wait for the parent's maps */
  bool setgroups_allowed;   /* not "deny" in /proc/PID/setgroups */
  /* ids the child sets up as in a new user ns (root when 0 is mapped, else
   * the first mapped ids, keeping its caps) */
  uint32_t setup_uid, setup_gid;
  bool setup_unmapped_root; /* 0 is not mapped: setup_* are not 0 */
  bool with_init;           /* new pid ns: PID 1 forks the command */
  bool unshare_cgroup;      /* new cgroup ns made after joining the cgroup (v1) */
  char *const *argv, *const *envp;
  const char *search;            /* PATH value to look args[0] up in */
  cap_t caps;                    /* process.capabilities' e/p/i sets; NULL: keep ours */
  const struct sock_fprog *prog; /* NULL: no filter */
  /* Detached copies (open_tree) of the checked bind sources (per mount)
   * and root: what the child attaches; -1 where there is no source fd, or
   * none could be made (not root: the child then binds the path only if it
   * is still that object). */
  int *trees;
  int root_tree;
  /* o->ns_socket_fd (listening) with a pid namespace, moved above 2; else
   * -1. ns_own: our namespaces' fds once opened (-1: none, or a kind the
   * kernel lacks); ns_peer_uid: who may have them, as our user namespace
   * sees the caller's euid. */
  int ns_sock;
  int ns_own[SB_NS_COUNT];
  uint32_t ns_peer_uid;
};

/* Child side: report (errno, what...) over the socket and _exit(127); the
 * string pieces are joined, NULL ends them. */
_Noreturn void sb_child_fail(const struct sb_child *c, int err, const char *what, ...);
/* The child's whole life (sandbox_child.c): never returns. */
_Noreturn void sb_child_run(struct sb_child *c);
/* setup_hook: tell the parent we are set up but for pivot_root and wait
 * until its hook ran (sandbox_child.c). */
void sb_child_setup_pause(const struct sb_child *c);
/* Mount namespace set-up (sandbox_mount.c): propagation, root, mounts,
 * devices, pivot_root; then, after hostname and sysctls (which write
 * /proc/sys), masked and read-only paths and the root read-only. */
void sb_mount_setup(const struct sb_child *c);
void sb_mount_finish(const struct sb_child *c);
/* PID 1 (sandbox_init.c): forward signals to the command's group (pid cmd),
 * reap everything, record and mirror how cmd ended. */
_Noreturn void sb_init_run(const struct sb_child *c, pid_t cmd);
/* Close every fd from `from` up but the n in keep (sorted here). */
void sb_close_fds_except(unsigned from, int *keep, size_t n);
/* sandbox_nsfd.c: our namespaces (/proc/self/ns) into c->ns_own, above our fds. */
void sb_nsfd_open_own(struct sb_child *c);
/* Answer every pending connection on c->ns_sock (non-blocking). */
void sb_nsfd_serve(const struct sb_child *c);
/* Decimal of v into buf (>= 24 bytes); returns buf. No libc formatting in
 * the child. */
char *sb_fmt_u64(char *buf, unsigned long long v);
