/* The child of sb_spawn, in bubblewrap's and crun's order: cgroup,
 * oom_score_adj, joined namespaces (user first), the parent's uid/gid maps,
 * not dumpable, process group, signals, stdio, mounts and root
 * (sandbox_mount.c), hostname, lo, sysctls, masked and read-only paths, the
 * root read-only;
 * then (after the init's fork when there is one) the command's own steps:
 * rlimits, umask, ids, capabilities, cwd, no_new_privs, seccomp, exec.
 * A real fork: it may use libc, but allocates nothing (all was prepared). */
#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox/pty.h"
#include "sandbox/sandbox_internal.h"
#include "sandbox/spawn_internal.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

char *sb_fmt_u64(char *buf, unsigned long long v) {
  char tmp[24];
  size_t n = 0;
  do
    tmp[n++] = (char)('0' + v % 10);
  while ((v /= 10));
  for (size_t i = 0; i < n; i++)
    buf[i] = tmp[n - 1 - i];
  buf[n] = '\0';
  return buf;
}

_Noreturn void sb_child_fail(const struct sb_child *c, int err, const char *what, ...) {
  struct sb_report r;
  memset(&r, 0, sizeof r);
  r.err = err;
  size_t n = 0;
  va_list ap;
  va_start(ap, what);
  for (const char *p = what; p; p = va_arg(ap, const char *))
    for (; *p && n + 1 < sizeof r.what; p++)
      r.what[n++] = *p;
  va_end(ap);
  (void)!send(c->sock, &r, sizeof r, MSG_NOSIGNAL);
  _exit(127);
}

void sb_child_setup_pause(const struct sb_child *c) {
  if (!c->o->setup_hook)
    return;
  struct sb_report r;
  memset(&r, 0, sizeof r);
  r.paused = 1;
  if (send(c->sock, &r, sizeof r, MSG_NOSIGNAL) != (ssize_t)sizeof r)
    _exit(127);
  char go;
  ssize_t n;
  while ((n = recv(c->sock, &go, 1, 0)) < 0 && errno == EINTR)
    ;
  if (n != 1) /* the parent gave up (its hook failed) */
    _exit(127);
}

static void sb_child_cgroup(const struct sb_child *c) {
  /* first: limits apply to all that follows, and later we may lose the
   * right to write the cgroup files */
  for (size_t i = 0; i < c->o->ncgroup_procs; i++) {
    ssize_t w = write(c->o->cgroup_procs_fds[i], "0", 1);
    if (w != 1)
      sb_child_fail(c, w < 0 ? errno : EIO, "join cgroup", NULL);
  }
}

static const char *const sb_ns_names[SB_NS_COUNT] = {"pid",    "mount",   "ipc",  "uts",
                                                     "cgroup", "network", "user", "time"};

static void sb_child_namespaces(struct sb_child *c) {
  if (c->ns_fds[SB_NS_USER] >= 0) {
    if (setns(c->ns_fds[SB_NS_USER], CLONE_NEWUSER) < 0)
      sb_child_fail(c, errno, "join user namespace", NULL);
    /* one whose maps an unprivileged user wrote denies setgroups (the
     * groups we came with stay, as in the sandbox's own processes) */
    char v[8] = "";
    int fd = open("/proc/self/setgroups", O_RDONLY | O_CLOEXEC);
    if (fd >= 0 && read(fd, v, sizeof v - 1) >= 4 && memcmp(v, "deny", 4) == 0)
      c->setgroups_allowed = false;
    if (fd >= 0)
      close(fd);
    if (!c->setgroups_allowed && c->s->process.ngids)
      sb_child_fail(c, EPERM, "set additional gids: the user namespace denies setgroups", NULL);
    /* its root when mapped (as runc's nsexec), capabilities kept: what we
     * make there (a terminal to chown) must belong to a mapped id */
    if (syscall(SYS_setresgid, 0, 0, 0) == 0)
      (void)syscall(SYS_setresuid, 0, 0, 0);
  }
  if (c->wait_maps) {
    char go;
    ssize_t n;
    while ((n = recv(c->sock, &go, 1, 0)) < 0 && errno == EINTR)
      ;
    if (n != 1) /* the parent gave up */
      _exit(127);
    /* a mapped id, so that what we create belongs to one (else EOVERFLOW):
     * root of the namespace, or when 0 is not mapped the first mapped ids,
     * keeping our capabilities across (undone before the command's ids) */
    if (c->setup_unmapped_root &&
        prctl(PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP | SECBIT_KEEP_CAPS, 0, 0, 0) < 0)
      sb_child_fail(c, errno, "keep capabilities", NULL);
    if (syscall(SYS_setresgid, c->setup_gid, c->setup_gid, c->setup_gid) < 0 ||
        syscall(SYS_setresuid, c->setup_uid, c->setup_uid, c->setup_uid) < 0) {
      if (c->setup_unmapped_root)
        sb_child_fail(c, errno, "switch to a mapped id", NULL);
    }
  }
  for (int t = 0; t < SB_NS_COUNT; t++)
    if (t != SB_NS_USER && c->ns_fds[t] >= 0 && setns(c->ns_fds[t], 0) < 0)
      sb_child_fail(c, errno, "join ", sb_ns_names[t], " namespace \"", c->s->ns[t].path, "\"",
                    NULL);
  if (c->unshare_cgroup && unshare(CLONE_NEWCGROUP) < 0)
    sb_child_fail(c, errno, "create the cgroup namespace", NULL);
}

/* Default dispositions; the mask stays full (the parent blocked all) until
 * the command's exec, the init keeps it. */
static void sb_child_signals(void) {
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  for (int s = 1; s < NSIG; s++)
    if (s != SIGKILL && s != SIGSTOP)
      sigaction(s, &dfl, NULL); /* errors on reserved signals are fine */
}

/* fd moved at or above min (the copy below closed unless it is 0..2, which
 * dup2 replaces); -1 on error. */
static int sb_fd_above(int fd, int min) {
  if (fd < 0 || fd >= min)
    return fd;
  int moved = fcntl(fd, F_DUPFD_CLOEXEC, min);
  if (moved >= 0 && fd > 2)
    close(fd);
  return moved;
}

static void sb_child_stdio(struct sb_child *c) {
  int src[3] = {c->o->stdin_fd, c->o->stdout_fd, c->o->stderr_fd};
  int min = c->first_own_fd;
  /* everything we still need moves above 2 (and the preserved fds) first
   * so that dup2 never clobbers it nor the command gets it */
  for (int i = 0; i < 3; i++)
    if (src[i] < 3 && (src[i] = sb_fd_above(src[i], min)) < 0)
      sb_child_fail(c, errno, "set up stdio", NULL);
  int *own[] = {&c->sock,         &c->status_fd,    &c->start_fd,     &c->console_fd,  &c->ns_sock,
                &c->relay_fds[0], &c->relay_fds[1], &c->relay_fds[2], &c->relay_fds[3]};
  for (size_t i = 0; i < sizeof own / sizeof *own; i++)
    if (*own[i] >= 0 && (*own[i] = sb_fd_above(*own[i], min)) < 0)
      sb_child_fail(c, errno, "set up stdio", NULL);
  for (int i = 0; i < 3; i++)
    if (src[i] != i && dup2(src[i], i) < 0)
      sb_child_fail(c, errno, "set up stdio", NULL);
  /* nothing of the caller's but 0, 1, 2 and the preserved fds reaches the
   * command */
  syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC);
  for (int fd = 0; fd < min; fd++)
    if (fcntl(fd, F_SETFD, 0) < 0 && errno != EBADF)
      sb_child_fail(c, errno, "pass the preserved fds", NULL);
}

/* process.terminal: a pty of the sandbox's devpts, its master sent to the
 * console socket, its slave kept for the command. */
static void sb_child_terminal(struct sb_child *c) {
  const sb_process *p = &c->s->process;
  if (c->console_fd < 0)
    return;
  int master, slave, r;
  char name[SB_PTY_NAME_MAX];
  if ((r = sb_pty_open("/dev/ptmx", p->console_height, p->console_width, &master, &slave, name)) <
      0)
    sb_child_fail(c, -r, "open a terminal on /dev/ptmx", NULL);
  if (fchown(slave, p->uid, p->gid) < 0)
    sb_child_fail(c, errno, "chown the terminal ", name, NULL);
  if ((r = sb_pty_send_fd(c->console_fd, master, name)) < 0)
    sb_child_fail(c, -r, "send the terminal to the console socket", NULL);
  close(master);
  close(c->console_fd);
  c->console_fd = -1;
  c->tty_fd = slave;
}

/* A new network namespace has only lo, down: bring it up. */
static void sb_child_loopback(const struct sb_child *c) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, "lo", 3);
  if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
    sb_child_fail(c, errno, "bring lo up", NULL);
  ifr.ifr_flags |= IFF_UP;
  if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
    sb_child_fail(c, errno, "bring lo up", NULL);
  close(fd);
}

static void sb_write_file(const struct sb_child *c, const char *path, const char *v,
                          const char *what) {
  int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
  size_t len = strlen(v);
  if (fd < 0 || write(fd, v, len) != (ssize_t)len)
    sb_child_fail(c, errno, what, " \"", v, "\" to ", path, NULL);
  close(fd);
}

static void sb_child_sysctls(const struct sb_child *c) {
  for (size_t i = 0; i < c->s->nsysctls; i++) {
    char path[4096] = "/proc/sys/";
    const char *k = c->s->sysctl_keys[i];
    size_t n = strlen(path), kl = strlen(k);
    if (n + kl >= sizeof path)
      sb_child_fail(c, ENAMETOOLONG, "sysctl ", k, NULL);
    for (size_t j = 0; j <= kl; j++)
      path[n + j] = k[j] == '.' ? '/' : k[j];
    sb_write_file(c, path, c->s->sysctl_values[i], "write");
  }
}

/* Shared by the init and the command: everything before the fork. */
static void sb_child_shared(struct sb_child *c) {
  const sb_spec *s = c->s;
  sb_child_cgroup(c);
  if (s->process.has_oom_score_adj) { /* while /proc/self is still ours */
    char v[24];
    long adj = s->process.oom_score_adj;
    char *p = sb_fmt_u64(v + 1, (unsigned long long)(adj < 0 ? -adj : adj));
    if (adj < 0)
      *--p = '-';
    sb_write_file(c, "/proc/self/oom_score_adj", p, "write");
  }
  sb_child_namespaces(c);
  /* we (and the init after us) are a copy of the caller's memory: nobody
   * in the sandbox may read it (/proc/PID/mem, environ); after the maps,
   * which the parent writes to our /proc files; the command's exec makes
   * it dumpable again */
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
    sb_child_fail(c, errno, "make the set-up not dumpable", NULL);
  if (c->o->new_process_group && setpgid(0, 0) < 0)
    sb_child_fail(c, errno, "create the process group", NULL);
  sb_child_signals();
  sb_child_stdio(c);
  if (c->ns_sock >= 0) { /* through the host's /proc, before any code of the sandbox runs */
    sb_nsfd_open_own(c);
    if (fcntl(c->ns_sock, F_SETFL, O_NONBLOCK) < 0)
      sb_child_fail(c, errno, "set up the namespace socket", NULL);
  }
  sb_mount_setup(c);
  if (s->hostname && sethostname(s->hostname, strlen(s->hostname)) < 0)
    sb_child_fail(c, errno, "set hostname \"", s->hostname, "\"", NULL);
  if (s->domainname && setdomainname(s->domainname, strlen(s->domainname)) < 0)
    sb_child_fail(c, errno, "set domainname \"", s->domainname, "\"", NULL);
  if (c->new_ns[SB_NS_NET])
    sb_child_loopback(c);
  sb_child_sysctls(c);
  sb_mount_finish(c);
  sb_child_terminal(c);
}

static void sb_child_seccomp(const struct sb_child *c) {
  if (c->prog && syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, c->prog) < 0)
    sb_child_fail(c, errno, "load the seccomp filter", NULL);
}

/* process.user then capabilities, keeping the permitted set across the uid
 * change (PR_SET_KEEPCAPS) as runc and crun do. */
static void sb_child_ids_caps(const struct sb_child *c) {
  const sb_process *p = &c->s->process;
  char num[24];
  if (c->setup_unmapped_root && prctl(PR_SET_SECUREBITS, 0, 0, 0, 0) < 0)
    sb_child_fail(c, errno, "restore the securebits", NULL);
  if (c->caps) {
    int max = (int)cap_max_bits();
    for (int b = 0; b < max; b++)
      if (!(b < 64 && (p->caps.bounding >> b & 1)) && prctl(PR_CAPBSET_DROP, b, 0, 0, 0) < 0 &&
          errno != EINVAL)
        sb_child_fail(c, errno, "drop capability ", sb_fmt_u64(num, (unsigned)b),
                      " from the bounding set", NULL);
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
      sb_child_fail(c, errno, "keep capabilities", NULL);
  }
  if (c->setgroups_allowed &&
      syscall(SYS_setgroups, p->ngids, p->ngids ? p->additional_gids : NULL) < 0)
    sb_child_fail(c, errno, "set additional gids", NULL);
  if (syscall(SYS_setresgid, p->gid, p->gid, p->gid) < 0)
    sb_child_fail(c, errno, "set gid ", sb_fmt_u64(num, p->gid), NULL);
  if (syscall(SYS_setresuid, p->uid, p->uid, p->uid) < 0)
    sb_child_fail(c, errno, "set uid ", sb_fmt_u64(num, p->uid), NULL);
  if (!c->caps && c->setup_unmapped_root && p->uid != 0) {
    /* as a setuid away from root would have: no capabilities left */
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    memset(d, 0, sizeof d);
    if (syscall(SYS_capset, &h, d) < 0)
      sb_child_fail(c, errno, "drop capabilities", NULL);
  }
  if (!c->caps)
    return;
  if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0 || cap_set_proc(c->caps) < 0)
    sb_child_fail(c, errno, "set capabilities", NULL);
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
    sb_child_fail(c, errno, "clear ambient capabilities", NULL);
  for (int b = 0; b < 64; b++)
    if ((p->caps.ambient >> b & 1) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, b, 0, 0) < 0)
      sb_child_fail(c, errno, "raise ambient capability ", sb_fmt_u64(num, (unsigned)b), NULL);
}

/* execve args[0], or each PATH entry/args[0] as execvp does; returns with
 * errno: the first "exists but cannot run" error, else ENOENT. */
static void sb_child_exec(const struct sb_child *c) {
  const char *name = c->argv[0];
  size_t nlen = strlen(name);
  if (strchr(name, '/')) {
    execve(name, c->argv, c->envp);
    return;
  }
  char buf[4096];
  int seen = 0;
  for (const char *p = c->search;;) {
    size_t n = strcspn(p, ":");
    /* relative entries (and empty ones: the cwd) are skipped */
    if (p[0] == '/' && n + 1 + nlen < sizeof buf) {
      memcpy(buf, p, n);
      buf[n] = '/';
      memcpy(buf + n + 1, name, nlen + 1);
      execve(buf, c->argv, c->envp);
      if (errno != ENOENT && errno != ENOTDIR && !seen)
        seen = errno;
    }
    if (!p[n])
      break;
    p += n + 1;
  }
  errno = seen ? seen : ENOENT;
}

/* wait_start: the executable must be there before we say ready (as runc
 * looks it up before create returns); errno when it is not. */
static int sb_child_lookup(const struct sb_child *c) {
  const char *name = c->argv[0];
  size_t nlen = strlen(name);
  struct stat st;
  if (strchr(name, '/')) {
    if (stat(name, &st) < 0)
      return errno;
    return S_ISREG(st.st_mode) && access(name, X_OK) == 0 ? 0 : EACCES;
  }
  char buf[4096];
  int seen = 0;
  for (const char *p = c->search;;) {
    size_t n = strcspn(p, ":");
    if (p[0] == '/' && n + 1 + nlen < sizeof buf) {
      memcpy(buf, p, n);
      buf[n] = '/';
      memcpy(buf + n + 1, name, nlen + 1);
      if (stat(buf, &st) == 0) {
        if (S_ISREG(st.st_mode) && access(buf, X_OK) == 0)
          return 0;
        seen = seen ? seen : EACCES;
      }
    }
    if (!p[n])
      break;
    p += n + 1;
  }
  return seen ? seen : ENOENT;
}

static void sb_child_exec_report(const struct sb_child *c, int err) {
  struct sb_report r;
  memset(&r, 0, sizeof r);
  r.err = err;
  r.exec = 1;
  size_t n = 0;
  const char *parts[] = {"exec \"", c->argv[0], "\""};
  for (size_t i = 0; i < 3; i++)
    for (const char *q = parts[i]; *q && n + 1 < sizeof r.what; q++)
      r.what[n++] = *q;
  (void)!send(c->sock, &r, sizeof r, MSG_NOSIGNAL);
}

/* wait_start: say ready (sb_spawn returns), then block until a byte comes
 * on start_fd; the sync socket is closed, so a later exec failure goes to
 * stderr. */
static void sb_child_wait_start(struct sb_child *c) {
  int err = sb_child_lookup(c);
  if (err) {
    sb_child_exec_report(c, err);
    _exit(127);
  }
  struct sb_report r;
  memset(&r, 0, sizeof r);
  r.ready = 1;
  if (send(c->sock, &r, sizeof r, MSG_NOSIGNAL) != (ssize_t)sizeof r)
    _exit(127);
  close(c->sock);
  c->sock = -1;
  char go;
  ssize_t n;
  for (;;) { /* the namespace socket is ours to answer until start */
    struct pollfd pf[2] = {{.fd = c->start_fd, .events = POLLIN},
                           {.fd = c->ns_sock, .events = POLLIN}};
    if (c->ns_sock >= 0 && poll(pf, 2, -1) < 0 && errno != EINTR)
      _exit(127);
    if (c->ns_sock >= 0 && !pf[0].revents) {
      if (pf[1].revents)
        sb_nsfd_serve(c);
      continue;
    }
    if ((n = read(c->start_fd, &go, 1)) >= 0 || errno != EINTR)
      break;
  }
  if (n != 1)
    _exit(127);
  close(c->start_fd);
  c->start_fd = -1;
}

/* The command's own steps, last to first before exec: seccomp is the last
 * unless it needs CAP_SYS_ADMIN (no no_new_privs), then it comes before the
 * ids and capabilities are dropped, as in runc; the filter must then allow
 * what follows (setresuid, capset, prctl, chdir, execve). */
static _Noreturn void sb_child_command(struct sb_child *c) {
  const sb_process *p = &c->s->process;
  char num[24];
  if (c->status_fd >= 0)
    close(c->status_fd); /* the init's, not the command's */
  int r;
  if (c->tty_fd >= 0 && (r = sb_pty_make_controlling(c->tty_fd)) < 0)
    sb_child_fail(c, -r, "make the terminal the controlling one", NULL);
  if (c->tty_fd < 0 && c->with_init && setpgid(0, 0) < 0)
    sb_child_fail(c, errno, "create the command's process group", NULL);
  for (size_t i = 0; i < p->nrlimits; i++) {
    struct rlimit rl = {p->rlimits[i].soft, p->rlimits[i].hard};
    if (setrlimit(p->rlimits[i].resource, &rl) < 0)
      sb_child_fail(c, errno, "set rlimit ", sb_fmt_u64(num, (unsigned)p->rlimits[i].resource),
                    NULL);
  }
  if (p->has_umask)
    umask(p->umask);
  if (!p->no_new_privileges)
    sb_child_seccomp(c);
  sb_child_ids_caps(c);
  const char *cwd = p->cwd && *p->cwd ? p->cwd : "/";
  if (chdir(cwd) < 0)
    sb_child_fail(c, errno, "chdir \"", cwd, "\"", NULL);
  if (p->no_new_privileges && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    sb_child_fail(c, errno, "set no_new_privs", NULL);
  if (c->start_fd >= 0)
    sb_child_wait_start(c);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  if (p->no_new_privileges)
    sb_child_seccomp(c);
  sb_child_exec(c);
  int err = errno;
  if (c->sock >= 0) {
    sb_child_exec_report(c, err);
  } else { /* started: nobody reads the socket any more */
    const char *parts[] = {"exec \"", c->argv[0], "\": ", strerror(err), "\n"};
    for (size_t i = 0; i < 5; i++)
      (void)!write(2, parts[i], strlen(parts[i]));
  }
  _exit(127);
}

SPAWN_CHILD_ATTR static int sb_child_command_entry(void *c) { sb_child_command(c); }

void sb_close_fds_except(unsigned from, int *keep, size_t n) {
  for (size_t i = 1; i < n; i++) /* insertion sort: a dozen at most */
    for (size_t j = i; j > 0 && keep[j] < keep[j - 1]; j--) {
      int t = keep[j];
      keep[j] = keep[j - 1];
      keep[j - 1] = t;
    }
  for (size_t i = 0; i < n; i++) {
    if (keep[i] < (int)from)
      continue;
    if ((unsigned)keep[i] > from)
      syscall(SYS_close_range, from, (unsigned)keep[i] - 1, 0u);
    from = (unsigned)keep[i] + 1;
  }
  syscall(SYS_close_range, from, ~0u, 0u);
}

/* wait_start: a created container may wait for long; it holds nothing of
 * the caller's but what it needs (not a lock the caller took, say): 0..2,
 * the preserved fds, ours. */
static void sb_child_close_others(const struct sb_child *c) {
  int keep[9 + SB_NS_COUNT] = {c->sock,         c->status_fd,    c->start_fd,
                               c->tty_fd,       c->ns_sock,      c->relay_fds[0],
                               c->relay_fds[1], c->relay_fds[2], c->relay_fds[3]};
  for (int t = 0; t < SB_NS_COUNT; t++)
    keep[9 + t] = c->ns_own[t];
  sb_close_fds_except((unsigned)c->first_own_fd, keep, sizeof keep / sizeof *keep);
}

_Noreturn void sb_child_run(struct sb_child *c) {
  sb_child_shared(c);
  if (c->start_fd >= 0)
    sb_child_close_others(c);
  if (!c->with_init)
    sb_child_command(c);
  /* the command runs in our memory until its exec, and we wait (vfork
   * style): no second copy of the page tables of the caller we come from */
  _Alignas(16) char stack[65536];
  /* named before the command can look at /proc/1/comm (it runs first) */
  prctl(PR_SET_NAME, "sandbox-init", 0, 0, 0);
  /* with a terminal the command's stdio is the pty: the init lets go of
   * the caller's too (as runc's does), else a caller that reads them to
   * EOF (containerd's shim around create) waits for as long as it runs */
  for (int i = 0; c->tty_fd >= 0 && i < 3; i++)
    if (c->tty_fd != i && dup2(c->tty_fd, i) < 0)
      sb_child_fail(c, errno, "set up stdio", NULL);
  pid_t cmd =
      clone(sb_child_command_entry, stack + sizeof stack, CLONE_VM | CLONE_VFORK | SIGCHLD, c);
  if (cmd < 0)
    sb_child_fail(c, errno, "fork the command", NULL);
  sb_init_run(c, cmd);
}
