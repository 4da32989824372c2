/* sb_spawn, the parent's side: prepare everything the child needs (argv,
 * env, namespace fds, capability sets, the BPF filter), clone3 a real fork
 * into new namespaces (and the cgroup), write the uid/gid maps while the
 * child waits, then read the sync socket: EOF once the command exec'd, or
 * the (errno, step) of the first step that failed. */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "sandbox/sandbox_internal.h"
#include "sandbox/spawn.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static const int sb_ns_clone_flag[SB_NS_COUNT] = {
    [SB_NS_PID] = CLONE_NEWPID,   [SB_NS_MOUNT] = CLONE_NEWNS,      [SB_NS_IPC] = CLONE_NEWIPC,
    [SB_NS_UTS] = CLONE_NEWUTS,   [SB_NS_CGROUP] = CLONE_NEWCGROUP, [SB_NS_NET] = CLONE_NEWNET,
    [SB_NS_USER] = CLONE_NEWUSER, [SB_NS_TIME] = CLONE_NEWTIME,
};

/* "K=V" of PATH in env, or the default search path. */
static const char *sb_env_path(const sb_process *p) {
  for (size_t i = 0; i < p->nenv; i++)
    if (strncmp(p->env[i], "PATH=", 5) == 0)
      return p->env[i] + 5;
  return SPAWN_DEFAULT_PATH;
}

/* Whether we may write any gid map (CAP_SETGID here): then setgroups stays
 * allowed in the new user namespace, else it must be denied first. */
static bool sb_have_setgid(void) {
  cap_t c = cap_get_proc();
  cap_flag_value_t v = CAP_CLEAR;
  if (c)
    cap_get_flag(c, CAP_SETGID, CAP_EFFECTIVE, &v);
  cap_free(c);
  return v == CAP_SET;
}

static int sb_caps_prepare(const sb_caps *k, cap_t *ret, rr_err *e) {
  cap_t c = cap_init();
  if (!c)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "sandbox: out of memory");
  int max = (int)cap_max_bits();
  const uint64_t sets[] = {k->effective, k->permitted, k->inheritable};
  const cap_flag_t flags[] = {CAP_EFFECTIVE, CAP_PERMITTED, CAP_INHERITABLE};
  for (size_t i = 0; i < 3; i++)
    for (int b = 0; b < 64 && b < max; b++) {
      cap_value_t v = b;
      if ((sets[i] >> b & 1) && cap_set_flag(c, flags[i], 1, &v, CAP_SET) < 0) {
        cap_free(c);
        return rr_err_sys(e, RR_INVALID_ARGUMENT, errno, "sandbox: capability %d", b);
      }
    }
  *ret = c;
  return 0;
}

/* "inside outside count" lines into /proc/PID/{uid,gid}_map. */
static int sb_write_map(pid_t pid, const char *file, const sb_id_map *m, size_t n, rr_err *e) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
  _cleanup_free_ char *buf = malloc(n * 36 + 1);
  if (!buf)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "sandbox: out of memory");
  size_t len = 0;
  for (size_t i = 0; i < n; i++)
    len += (size_t)sprintf(buf + len, "%u %u %u\n", m[i].container_id, m[i].host_id, m[i].size);
  _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0 || write(fd, buf, len) != (ssize_t)len)
    return rr_err_sys(e, RR_FAILED_PRECONDITION, errno, "sandbox: write %s", file);
  return 0;
}

static int sb_write_maps(pid_t pid, const sb_spec *s, bool setgroups_allowed, rr_err *e) {
  if (!setgroups_allowed) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/setgroups", (int)pid);
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "deny", 4) != 4)
      return rr_err_sys(e, RR_FAILED_PRECONDITION, errno, "sandbox: write setgroups");
  }
  if (s->nuid_maps && sb_write_map(pid, "uid_map", s->uid_maps, s->nuid_maps, e) < 0)
    return -1;
  if (s->ngid_maps && sb_write_map(pid, "gid_map", s->gid_maps, s->ngid_maps, e) < 0)
    return -1;
  return 0;
}

/* The error of a child's report. */
static int sb_report_error(const struct sb_report *r, rr_err *e) {
  int code = RR_FAILED_PRECONDITION;
  if (r->exec && (r->err == ENOENT || r->err == ENOTDIR))
    code = RR_NOT_FOUND;
  else if (r->exec && (r->err == EACCES || r->err == EPERM || r->err == EISDIR))
    code = RR_PERMISSION_DENIED;
  else if (r->err == ENOMEM || r->err == EAGAIN)
    code = RR_RESOURCE_EXHAUSTED;
  return rr_err_sys(e, code, r->err, "sandbox: %.*s", (int)sizeof r->what, r->what);
}

static void sb_kill_reap(pid_t pid, int pidfd) {
  syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
  siginfo_t si;
  while (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED) < 0 && errno == EINTR)
    ;
  (void)pid;
}

/* clone3 the child, which never returns from here. */
static pid_t sb_clone(struct sb_child *c, uint64_t flags, int *pidfd) {
  struct clone_args ca;
  memset(&ca, 0, sizeof ca);
  ca.flags = flags | CLONE_PIDFD;
  ca.pidfd = (uint64_t)(uintptr_t)pidfd;
  ca.exit_signal = SIGCHLD;
  if (c->o->cgroup_fd > 0) {
    ca.flags |= CLONE_INTO_CGROUP;
    ca.cgroup = (uint64_t)c->o->cgroup_fd;
  }
  /* no handler of ours may run in the child before it has reset them */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  long r = syscall(SYS_clone3, &ca, sizeof ca);
  if (r == 0)
    sb_child_run(c);
  int saved = errno;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  errno = saved;
  return (pid_t)r;
}

/* /proc/PID/ns/mnt (-1 where we may not open it: a child that is not
 * dumpable any more). */
static int sb_open_mntns(pid_t pid) {
  char p[48];
  snprintf(p, sizeof p, "/proc/%d/ns/mnt", (int)pid);
  return open(p, O_RDONLY | O_CLOEXEC);
}

/* After the clone: maps, then wait for the exec (EOF) or a report. */
static int sb_parent_sync(const struct sb_child *c, pid_t pid, int pidfd, int sock, rr_err *e) {
  struct sb_report r;
  if (c->wait_maps) {
    if (sb_write_maps(pid, c->s, c->setgroups_allowed, e) < 0) {
      sb_kill_reap(pid, pidfd);
      /* a child that failed first said why: that is the root cause */
      if (recv(sock, &r, sizeof r, MSG_DONTWAIT) == (ssize_t)sizeof r)
        return sb_report_error(&r, e);
      return -1;
    }
    /* a child gone already has sent its report: read below */
    (void)!send(sock, "", 1, MSG_NOSIGNAL);
  }
  ssize_t n;
  for (;;) {
    while ((n = recv(sock, &r, sizeof r, 0)) < 0 && errno == EINTR)
      ;
    if (n != (ssize_t)sizeof r || !r.paused || !c->o->setup_hook)
      break;
    if (c->o->setup_hook(c->o->setup_hook_arg, pid, e) < 0) {
      sb_kill_reap(pid, pidfd);
      return -1;
    }
    /* a child gone meanwhile has sent its report, or EOF: read next */
    (void)!send(sock, "", 1, MSG_NOSIGNAL);
  }
  if (n == 0 && !c->o->wait_start)
    return 0;
  if (n == (ssize_t)sizeof r && r.ready && c->o->wait_start)
    return 0;
  int err = errno;
  sb_kill_reap(pid, pidfd);
  if (n == (ssize_t)sizeof r && !r.ready && !r.paused)
    return sb_report_error(&r, e);
  if (n == 0)
    return rr_err_set(e, RR_FAILED_PRECONDITION, "sandbox: the command ended before it was ready");
  return rr_err_sys(e, RR_INTERNAL, n < 0 ? err : EPROTO, "sandbox: lost the child's report");
}

/* A detached copy of what fd names, in our mount namespace (a mount of an
 * fd from it is refused in the child's: EINVAL); -1 if the kernel has no
 * open_tree or we may not (not root). */
static bool sb_no_open_tree;

void sb_set_open_tree_disabled(bool disabled) { sb_no_open_tree = disabled; }

static int sb_tree_open(int fd, bool recursive) {
  if (sb_no_open_tree)
    return -1;
  return open_tree(
      fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0));
}

static int sb_trees_prepare(const sb_spec *s, struct sb_child *c, rr_err *e) {
  /* a detached tree (an image's overlay) is moved in by the child as it is:
   * no copy here, and nothing for the caller to unmount after */
  c->root_tree = !s->has_root_fd      ? -1
                 : s->root_fd_is_tree ? fcntl(s->root_fd, F_DUPFD_CLOEXEC, 3)
                                      : sb_tree_open(s->root_fd, true);
  if (!s->nmounts)
    return 0;
  if (!(c->trees = malloc(s->nmounts * sizeof *c->trees)))
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "sandbox: out of memory");
  for (size_t i = 0; i < s->nmounts; i++) {
    const sb_mount *m = &s->mounts[i];
    c->trees[i] = m->bind && m->has_source_fd ? sb_tree_open(m->source_fd, m->flags & MS_REC) : -1;
  }
  return 0;
}

/* The uid an unmapped one reads as in a user namespace. */
static uint32_t sb_overflow_uid(void) {
  char buf[24] = "";
  _cleanup_close_ int fd = open("/proc/sys/kernel/overflowuid", O_RDONLY | O_CLOEXEC);
  if (fd < 0 || read(fd, buf, sizeof buf - 1) <= 0)
    return 65534;
  return (uint32_t)strtoul(buf, NULL, 10);
}

/* The caller's euid as the sandbox's user namespace sees it (what
 * SO_PEERCRED says to its init): through a new namespace's uid map;
 * UINT32_MAX (nobody) when unmapped, when the namespace is joined, or when
 * it maps onto the overflow uid (every unmapped peer would read as that). */
static uint32_t sb_peer_uid(const sb_spec *s, const struct sb_child *c) {
  uint32_t uid = (uint32_t)geteuid();
  if (c->ns_fds[SB_NS_USER] >= 0)
    return UINT32_MAX;
  if (!c->new_ns[SB_NS_USER])
    return uid;
  for (size_t i = 0; i < s->nuid_maps; i++) {
    const sb_id_map *m = &s->uid_maps[i];
    if (uid >= m->host_id && uid - m->host_id < m->size) {
      uint32_t inside = m->container_id + (uid - m->host_id);
      return inside == sb_overflow_uid() ? UINT32_MAX : inside;
    }
  }
  return UINT32_MAX;
}

/* Checks, namespace fds, argv/env, caps: everything before the clone. */
static int sb_prepare(const sb_spec *s, struct sb_child *c, rr_err *e) {
  const sb_process *p = &s->process;
  if (!p->nargs || !p->args[0] || !p->args[0][0])
    return rr_err_set(e, RR_INVALID_ARGUMENT, "sandbox: process.args is empty");
  if (s->nmounts > SB_MAX_MOUNTS)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "sandbox: more than %d mounts", SB_MAX_MOUNTS);
  if (s->root_path && !s->ns[SB_NS_MOUNT].enabled)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "sandbox: root.path needs a mount namespace");
  for (int t = 0; t < SB_NS_COUNT; t++) {
    if (!s->ns[t].enabled)
      continue;
    if (!s->ns[t].path) {
      c->new_ns[t] = true;
      continue;
    }
    c->ns_fds[t] = open(s->ns[t].path, O_RDONLY | O_CLOEXEC);
    if (c->ns_fds[t] < 0)
      return rr_err_sys(e, errno == ENOENT ? RR_NOT_FOUND : RR_FAILED_PRECONDITION, errno,
                        "sandbox: open namespace \"%s\"", s->ns[t].path);
  }
  /* new namespaces would belong to our user namespace, not the joined one */
  if (c->ns_fds[SB_NS_USER] >= 0)
    for (int t = 0; t < SB_NS_COUNT; t++)
      if (c->new_ns[t])
        return rr_err_set(e, RR_UNIMPLEMENTED,
                          "sandbox: a user namespace joined by path with new namespaces");
  c->wait_maps = c->new_ns[SB_NS_USER];
  if (c->wait_maps && s->nuid_maps && s->ngid_maps) {
    bool uid0 = false, gid0 = false;
    for (size_t i = 0; i < s->nuid_maps; i++)
      uid0 |= s->uid_maps[i].container_id == 0;
    for (size_t i = 0; i < s->ngid_maps; i++)
      gid0 |= s->gid_maps[i].container_id == 0;
    c->setup_unmapped_root = !uid0 || !gid0;
    c->setup_uid = uid0 ? 0 : s->uid_maps[0].container_id;
    c->setup_gid = gid0 ? 0 : s->gid_maps[0].container_id;
  }
  c->setgroups_allowed = !c->new_ns[SB_NS_USER] || sb_have_setgid();
  if (c->ns_sock >= 0)
    c->ns_peer_uid = sb_peer_uid(s, c);
  /* a joined pid namespace holds only the children of who joined it: an
   * init forks the command there too */
  c->with_init = s->ns[SB_NS_PID].enabled;
  char **argv = calloc(p->nargs + 1, sizeof *argv);
  char **envp = calloc(p->nenv + 1, sizeof *envp);
  c->argv = argv;
  c->envp = envp;
  if (!argv || !envp)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "sandbox: out of memory");
  memcpy(argv, p->args, p->nargs * sizeof *argv);
  if (p->nenv)
    memcpy(envp, p->env, p->nenv * sizeof *envp);
  c->search = sb_env_path(p);
  if (sb_trees_prepare(s, c, e) < 0)
    return -1;
  if (p->has_caps && sb_caps_prepare(&p->caps, &c->caps, e) < 0)
    return -1;
  return 0;
}

static void sb_child_release(struct sb_child *c) {
  for (int t = 0; t < SB_NS_COUNT; t++)
    if (c->ns_fds[t] >= 0)
      close(c->ns_fds[t]);
  for (size_t i = 0; c->trees && i < c->s->nmounts; i++)
    if (c->trees[i] >= 0)
      close(c->trees[i]);
  free(c->trees);
  if (c->root_tree >= 0)
    close(c->root_tree);
  free((void *)c->argv);
  free((void *)c->envp);
  if (c->caps)
    cap_free(c->caps);
}

int sb_spawn(const sb_spec *s, const sb_spawn_opts *o, sb_spawn_result *ret, rr_err *e) {
  struct sb_child c = {.s = s,
                       .o = o,
                       .sock = -1,
                       .status_fd = o->status_fd,
                       .relay_fds = {-1, -1, -1, -1},
                       .start_fd = o->wait_start ? o->start_fd : -1,
                       .console_fd = s->process.terminal ? o->console_fd : -1,
                       .tty_fd = -1,
                       .first_own_fd = 3 + o->preserve_fds,
                       .root_tree = -1,
                       .ns_sock =
                           o->ns_socket_fd > 2 && s->ns[SB_NS_PID].enabled ? o->ns_socket_fd : -1};
  sb_filter *own = NULL;
  int rc = -1, pidfd = -1, sv[2] = {-1, -1};
  for (int t = 0; t < SB_NS_COUNT; t++)
    c.ns_fds[t] = c.ns_own[t] = -1;
  if (o->wait_start && o->start_fd < 0) {
    rr_err_set(e, RR_INVALID_ARGUMENT, "sandbox: wait_start without a start_fd");
    goto out;
  }
  /* the command's setsid fails in the group made for it; an init's group is another */
  if (s->process.terminal &&
      (o->console_fd <= 2 || (o->new_process_group && !s->ns[SB_NS_PID].enabled))) {
    rr_err_set(e, RR_INVALID_ARGUMENT,
               o->console_fd <= 2 ? "sandbox: process.terminal needs a console socket"
                                  : "sandbox: process.terminal with a new process group");
    goto out;
  }
  if (o->relay_fds && !s->ns[SB_NS_PID].enabled) {
    rr_err_set(e, RR_INVALID_ARGUMENT, "sandbox: an output relay needs a pid namespace (its init)");
    goto out;
  }
  for (int i = 0; o->relay_fds && i < 4; i++)
    c.relay_fds[i] = o->relay_fds[i];
  if (o->preserve_fds < 0 || o->preserve_fds > SB_MAX_PRESERVE_FDS) {
    rr_err_set(e, RR_INVALID_ARGUMENT, "sandbox: preserve_fds %d out of range 0..%d",
               o->preserve_fds, SB_MAX_PRESERVE_FDS);
    goto out;
  }
  if (sb_prepare(s, &c, e) < 0)
    goto out;
  if (s->seccomp && !o->filter && sb_filter_compile(s->seccomp, &own, e) < 0)
    goto out;
  c.prog = o->filter ? &o->filter->prog : own ? &own->prog : NULL;
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
    rr_err_sys(e, RR_RESOURCE_EXHAUSTED, errno, "sandbox: socketpair");
    goto out;
  }
  c.sock = sv[1];
  /* joining a cgroup by cgroup.procs comes after the clone: the cgroup
   * namespace is made after it, so that its root is that cgroup */
  c.unshare_cgroup = c.new_ns[SB_NS_CGROUP] && o->ncgroup_procs && o->cgroup_fd <= 0;
  uint64_t flags = 0;
  for (int t = 0; t < SB_NS_COUNT; t++)
    if (c.new_ns[t] && !(t == SB_NS_CGROUP && c.unshare_cgroup))
      flags |= (uint64_t)sb_ns_clone_flag[t];
  pid_t pid = sb_clone(&c, flags, &pidfd);
  if (pid < 0) {
    rr_err_sys(e,
               errno == EINVAL || errno == EPERM || errno == ENOSPC ? RR_FAILED_PRECONDITION
                                                                    : RR_RESOURCE_EXHAUSTED,
               errno, "sandbox: clone3");
    goto out;
  }
  close(sv[1]);
  sv[1] = -1;
  /* now: the clone made it, and the child cannot have ended yet (it waits
   * for the maps or for our end of the socket) */
  int mntns = o->hold_mntns && c.new_ns[SB_NS_MOUNT] ? sb_open_mntns(pid) : -1;
  if (sb_parent_sync(&c, pid, pidfd, sv[0], e) < 0) {
    close(pidfd);
    if (mntns >= 0)
      close(mntns);
    goto out;
  }
  *ret = (sb_spawn_result){.pid = pid, .pidfd = pidfd, .mntns_fd = mntns};
  spawn_proc_start_ticks(pid, &ret->start_ticks);
  rc = 0;
out:
  if (sv[0] >= 0)
    close(sv[0]);
  if (sv[1] >= 0)
    close(sv[1]);
  sb_filter_free(own);
  sb_child_release(&c);
  return rc;
}
