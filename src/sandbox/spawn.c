#include "sandbox/spawn.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "sandbox/pty.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

static bool clone3_disabled;
static uint64_t child_nofile;

void spawn_set_child_nofile(uint64_t soft) { child_nofile = soft; }

void spawn_set_clone3_disabled(bool disabled) { clone3_disabled = disabled; }

void spawn_strv_free(char **v) {
  if (!v)
    return;
  for (char **p = v; *p; p++)
    free(*p);
  free(v);
}

static char *spawn_join(const char *dir, size_t dlen, const char *name) {
  size_t nlen = strlen(name);
  char *s = malloc(dlen + nlen + 2);
  if (!s)
    return NULL;
  memcpy(s, dir, dlen);
  size_t o = dlen;
  if (o == 0 || s[o - 1] != '/')
    s[o++] = '/';
  memcpy(s + o, name, nlen + 1);
  return s;
}

/* 0 runnable, else an errno saying why not. */
static int spawn_check_exec(const char *p) {
  struct stat st;
  if (stat(p, &st) < 0)
    return errno;
  if (S_ISDIR(st.st_mode))
    return EISDIR;
  if (!S_ISREG(st.st_mode))
    return EACCES;
  if (access(p, X_OK) < 0)
    return errno;
  return 0;
}

int spawn_resolve(const char *path, const char *search_path, const char *workdir, char **ret,
                  rr_err *e) {
  if (!path || !*path)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "command.path is empty");
  if (strchr(path, '/')) {
    _cleanup_free_ char *full = NULL;
    if (path[0] == '/')
      full = strdup(path);
    else {
      const char *wd = workdir && *workdir ? workdir : "/";
      full = spawn_join(wd, strlen(wd), path);
    }
    if (!full)
      return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
    int err = spawn_check_exec(full);
    if (err == ENOENT || err == ENOTDIR)
      return rr_err_set(e, RR_NOT_FOUND, "command \"%s\" not found", path);
    if (err == EISDIR)
      return rr_err_set(e, RR_PERMISSION_DENIED, "command \"%s\" is a directory", path);
    if (err)
      return rr_err_sys(e, RR_PERMISSION_DENIED, err, "command \"%s\" cannot be executed", path);
    *ret = TAKE_PTR(full);
    return 0;
  }
  const char *sp = search_path ? search_path : SPAWN_DEFAULT_PATH;
  int seen = 0; /* errno of the first candidate that exists but cannot run */
  for (const char *p = sp;;) {
    const char *colon = strchr(p, ':');
    size_t n = colon ? (size_t)(colon - p) : strlen(p);
    /* an empty PATH element means the working directory, as in execvp */
    const char *dir = n ? p : (workdir && *workdir ? workdir : "/");
    size_t dlen = n ? n : strlen(dir);
    if (dir[0] == '/' || n == 0) {
      char *cand = spawn_join(dir, dlen, path);
      if (!cand)
        return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
      int err = spawn_check_exec(cand);
      if (!err) {
        *ret = cand;
        return 0;
      }
      free(cand);
      if (err != ENOENT && err != ENOTDIR && !seen)
        seen = err;
    }
    if (!colon)
      break;
    p = colon + 1;
  }
  if (seen)
    return rr_err_sys(e, RR_PERMISSION_DENIED, seen == EISDIR ? EACCES : seen,
                      "command \"%s\" found in PATH but cannot be executed", path);
  return rr_err_set(e, RR_NOT_FOUND, "command \"%s\" not found in PATH \"%s\"", path, sp);
}

static char *spawn_kv(const char *k, const char *v) {
  size_t kl = strlen(k), vl = strlen(v);
  char *s = malloc(kl + vl + 2);
  if (!s)
    return NULL;
  memcpy(s, k, kl);
  s[kl] = '=';
  memcpy(s + kl + 1, v, vl + 1);
  return s;
}

int spawn_env_build(const spawn_opts *o, char ***ret, rr_err *e) {
  /* as a login would set them, for the user the command runs as; the
   * request's env may replace any of them */
  const spawn_account *a = o->ids ? &o->ids->account : spawn_account_self();
  const char *dk[7] = {"PATH", "HOME", "LANG"}, *dv[7] = {SPAWN_DEFAULT_PATH, "/", "C.UTF-8"};
  size_t nd = 3;
  if (a->known) {
    dv[1] = a->home;
    dk[nd] = "USER", dv[nd++] = a->name;
    dk[nd] = "LOGNAME", dv[nd++] = a->name;
    dk[nd] = "SHELL", dv[nd++] = a->shell;
  }
  if (o->term)
    dk[nd] = "TERM", dv[nd++] = o->term;
  size_t cap = nd + o->nenv + 1, n = 0;
  char **v = calloc(cap, sizeof *v);
  if (!v)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory building env");
  for (size_t i = 0; i < nd + o->nenv; i++) {
    const char *k = i < nd ? dk[i] : o->env_keys[i - nd];
    const char *val = i < nd ? dv[i] : o->env_values[i - nd];
    size_t kl = strlen(k);
    char *kv = spawn_kv(k, val);
    if (!kv) {
      spawn_strv_free(v);
      return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory building env");
    }
    size_t j = 0;
    for (; j < n; j++)
      if (strncmp(v[j], k, kl) == 0 && v[j][kl] == '=')
        break;
    if (j < n) { /* a later value of the same name wins */
      free(v[j]);
      v[j] = kv;
    } else
      v[n++] = kv;
  }
  *ret = v;
  return 0;
}

int spawn_proc_start_ticks(pid_t pid, uint64_t *ret) {
  char p[64], buf[1024];
  snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
  _cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  ssize_t n = rr_read(fd, buf, sizeof buf - 1);
  if (n <= 0)
    return -1;
  buf[n] = '\0';
  /* comm may hold spaces and parentheses: fields restart after the last ')' */
  char *s = strrchr(buf, ')');
  if (!s)
    return -1;
  s++;
  for (int field = 3; field < 22; field++) {
    s = strchr(s + 1, ' ');
    if (!s)
      return -1;
  }
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s + 1, &end, 10);
  if (errno || end == s + 1)
    return -1;
  *ret = v;
  return 0;
}

#include "sandbox/spawn_internal.h"

/* In the child: every fd above 2 closes at exec. close_range's CLOEXEC
 * flag needs Linux 5.11; before, mark them one by one up to the limit. */
SPAWN_CHILD_ATTR static void spawn_fds_cloexec(void) {
  if (syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC) == 0)
    return;
  struct rlimit rl;
  rlim_t max = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_max : 1024;
  if (max > (1u << 20))
    max = 1u << 20;
  for (int fd = 3; (rlim_t)fd < max; fd++) {
    int fl = fcntl(fd, F_GETFD);
    if (fl >= 0 && !(fl & FD_CLOEXEC))
      fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
  }
}

/* In the child, as the caller (after setuid and chdir): execve name, or
 * each PATH entry/name in turn as execvp does; returns with errno set to
 * the first "exists but cannot run" error, else ENOENT. So that rund never
 * looks at a path as root on behalf of a local user. */
SPAWN_CHILD_ATTR static void spawn_child_exec_search(const char *name, const char *search,
                                                     char *const *argv, char *const *envp) {
  /* plain loops, not libc's string functions: nothing intercepted here */
  size_t nlen = 0;
  bool slash = false;
  for (; name[nlen]; nlen++)
    slash |= name[nlen] == '/';
  if (slash) {
    execve(name, argv, envp);
    return;
  }
  char buf[4096];
  int seen = 0;
  for (const char *p = search;;) {
    size_t n = 0;
    while (p[n] && p[n] != ':')
      n++;
    /* an empty entry is the working directory, as in execvp; relative
     * entries are skipped, as when we resolve for ourselves */
    const char *dir = n ? p : ".";
    size_t dlen = n ? n : 1;
    if ((n == 0 || p[0] == '/') && dlen + 1 + nlen < sizeof buf) {
      for (size_t i = 0; i < dlen; i++)
        buf[i] = dir[i];
      buf[dlen] = '/';
      for (size_t i = 0; i <= nlen; i++)
        buf[dlen + 1 + i] = name[i];
      execve(buf, argv, envp);
      if (errno != ENOENT && errno != ENOTDIR && !seen)
        seen = errno;
    }
    if (!p[n])
      break;
    p += n + 1;
  }
  errno = seen ? seen : ENOENT;
}

/* Runs in the child: only async-signal-safe calls and raw syscalls (glibc's
 * setuid & co. would signal our threads when sharing our memory), report
 * failures, _exit. Touches nothing of the parent's heap. */
SPAWN_CHILD_ATTR _Noreturn void spawn_child(const struct spawn_child_args *a) {
  const spawn_opts *o = a->o;
  int report_fd = a->report_fd;
  struct spawn_report r = {0, STEP_CGROUP};
  /* first: limits apply to all that follows, and after setuid we may no
   * longer write the cgroup files */
  if (a->join_procs)
    for (size_t i = 0; i < o->ncgroup_procs; i++) {
      ssize_t w = write(o->cgroup_procs_fds[i], "0", 1);
      if (w != 1) {
        if (w >= 0)
          errno = EIO;
        goto fail;
      }
    }
  r.step = STEP_SIGNALS;
  sigset_t all;
  struct sigaction dfl = {.sa_handler = SIG_DFL};
  for (int s = 1; s < NSIG; s++)
    if (s != SIGKILL && s != SIGSTOP)
      sigaction(s, &dfl, NULL); /* errors on reserved signals are fine */
  sigemptyset(&all);
  if (sigprocmask(SIG_SETMASK, &all, NULL) < 0)
    goto fail;
  if (child_nofile) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur > child_nofile) {
      rl.rlim_cur = child_nofile;
      setrlimit(RLIMIT_NOFILE, &rl);
    }
  }
  r.step = STEP_SETPGID;
  if (!a->in_group && !o->controlling_tty && setpgid(0, 0) < 0)
    goto fail;
  r.step = STEP_STDIO;
  int src[3] = {o->stdin_fd, o->stdout_fd, o->stderr_fd};
  /* move sources and the report pipe above 2 first so dup2 never clobbers one */
  for (int i = 0; i < 3; i++)
    if ((src[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 3)) < 0)
      goto fail;
  if (report_fd >= 0 && report_fd < 3 && (report_fd = fcntl(report_fd, F_DUPFD_CLOEXEC, 3)) < 0)
    goto fail;
  for (int i = 0; i < 3; i++)
    if (dup2(src[i], i) < 0)
      goto fail;
  r.step = STEP_TTY; /* a session leader, hence also its group's */
  if (o->controlling_tty && (errno = -sb_pty_make_controlling(0)) != 0)
    goto fail;
  spawn_fds_cloexec();
  r.step = STEP_IDS;
  /* groups, then gid, then uid: after setuid we could no longer change them */
  if (o->ids && (syscall(SYS_setgroups, o->ids->ngroups, o->ids->groups) < 0 ||
                 syscall(SYS_setgid, o->ids->gid) < 0 || syscall(SYS_setuid, o->ids->uid) < 0))
    goto fail;
  r.step = STEP_CHDIR;
  if (chdir(o->workdir && *o->workdir ? o->workdir : "/") < 0)
    goto fail;
  r.step = STEP_EXEC;
  if (a->exe)
    execve(a->exe, a->argv, a->envp);
  else
    spawn_child_exec_search(o->path, a->search, a->argv, a->envp);
fail:
  r.err = errno;
  if (a->shared) {
    a->shared->err = r.err;
    a->shared->step = r.step;
  } else
    (void)!write(report_fd, &r, sizeof r);
  _exit(127);
}

SPAWN_CHILD_ATTR static int spawn_child_entry(void *arg) { spawn_child(arg); }

int spawn_ids_for_user(uid_t uid, gid_t gid, spawn_ids *ret, rr_err *e) {
  *ret = (spawn_ids){.uid = uid, .gid = gid, .groups = {gid}, .ngroups = 1};
  struct passwd pw, *found = NULL;
  char buf[4096];
  int r = getpwuid_r(uid, &pw, buf, sizeof buf, &found);
  if (r != 0 && r != ENOENT && r != ESRCH)
    return rr_err_sys(e, RR_INTERNAL, r, "cannot look up uid %u", (unsigned)uid);
  if (!found)
    return 0; /* no passwd entry: the peer's own gid only */
  spawn_account_from_passwd(&pw, &ret->account);
  ret->gid = pw.pw_gid;
  int n = SPAWN_MAX_GROUPS;
  if (getgrouplist(pw.pw_name, pw.pw_gid, ret->groups, &n) < 0)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "user %u is in more than %d groups", (unsigned)uid,
                      SPAWN_MAX_GROUPS);
  ret->ngroups = (size_t)n;
  return 0;
}

/* The child shares our memory and we sleep until it has exec'd or exited
 * (as posix_spawn does): no copy of our page tables, no copy-on-write faults
 * afterwards, and the exec report needs no pipe. 0 with *pid, or -1 with
 * errno (ENOSYS/EINVAL: use the fork path). */
static int spawn_clone_vm(struct spawn_child_args *a, pid_t *pid, int *pidfd) {
  /* plenty for the child's few libc calls; on our stack, as we sleep meanwhile */
  _Alignas(16) char stack[32768];
  /* no handler of ours may run in the child before it has reset them */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int fd = -1;
  int r = clone(spawn_child_entry, stack + sizeof stack,
                CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, a, &fd);
  int saved = errno;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (r < 0) {
    errno = saved;
    return -1;
  }
  *pid = (pid_t)r;
  *pidfd = fd;
  return 0;
}

/* fork-like clone3 straight into a v2 cgroup (the child returns 0 and
 * reports through the pipe). 0 in the parent with *pid, or -1 with errno
 * (EINVAL/ENOSYS/E2BIG/EPERM: the kernel or a filter refuses; join by
 * writing cgroup.procs instead). */
static int spawn_clone_into_cgroup(struct spawn_child_args *a, int pipefd[2], pid_t *pid,
                                   int *pidfd) {
  if (pipe2(pipefd, O_CLOEXEC) < 0)
    return -1;
  volatile struct spawn_report *shared = a->shared;
  a->shared = NULL;
  a->report_fd = pipefd[1];
  a->join_procs = false; /* set before the clone: the child sees our memory as of then */
  int fd = -1;
  struct clone_args ca;
  memset(&ca, 0, sizeof ca);
  ca.flags = CLONE_PIDFD | CLONE_INTO_CGROUP;
  ca.pidfd = (uint64_t)(uintptr_t)&fd;
  ca.exit_signal = SIGCHLD;
  ca.cgroup = (uint64_t)a->o->cgroup_fd;
  /* no handler of ours may run in the child before it has reset them */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  long r = syscall(SYS_clone3, &ca, sizeof ca);
  int saved = errno;
  if (r == 0) {
    close(pipefd[0]);
    spawn_child(a);
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (r < 0) {
    close(pipefd[0]);
    close(pipefd[1]);
    pipefd[0] = pipefd[1] = -1;
    a->shared = shared;
    a->report_fd = -1;
    a->join_procs = true;
    errno = saved;
    return -1;
  }
  close(pipefd[1]);
  pipefd[1] = -1;
  *pid = (pid_t)r;
  *pidfd = fd;
  return 0;
}

/* A clone flavour the kernel (or a seccomp filter) refuses: use the next one. */
static bool spawn_clone_refused(int err) {
  return err == EINVAL || err == ENOSYS || err == E2BIG || err == EPERM;
}

static pid_t spawn_clone(int *pidfd) {
  *pidfd = -1;
  /* no handler of ours may run in the child before it has reset them */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t pid = fork();
  if (pid == 0)
    return 0; /* the child resets its mask itself */
  int saved = errno;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (pid > 0) {
    *pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (*pidfd < 0) {
      saved = errno;
      kill(pid, SIGKILL);
      while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    }
  }
  if (pid < 0 || *pidfd < 0) {
    errno = saved;
    return -1;
  }
  return pid;
}

static const char *spawn_step_name(int step) {
  switch (step) {
  case STEP_CGROUP:
    return "joining its cgroup";
  case STEP_SIGNALS:
    return "resetting signals";
  case STEP_SETPGID:
    return "creating the process group";
  case STEP_STDIO:
    return "setting up stdio";
  case STEP_IDS:
    return "switching to the caller's uid/gid";
  case STEP_CHDIR:
    return "changing to the working directory";
  case STEP_TTY:
    return "making the terminal its controlling one";
  case STEP_WAITER_GROUP:
    return "creating the process group of rund-waiter";
  case STEP_WAITER_EXEC:
    return "executing rund-waiter";
  default:
    return "executing";
  }
}

int spawn_launch(struct spawn_child_args *a, pid_t *pid, int *pidfd, struct spawn_report *r) {
  int pipefd[2] = {-1, -1};
  ssize_t n = 0;
  bool placed = false;
  *r = (struct spawn_report){0, 0};
  if (a->o->cgroup_fd > 0 && !clone3_disabled) {
    if (spawn_clone_into_cgroup(a, pipefd, pid, pidfd) == 0) {
      placed = true;
      n = rr_read(pipefd[0], r, sizeof *r);
    } else if (!spawn_clone_refused(errno)) {
      *r = (struct spawn_report){errno, STEP_CREATE};
      return 1;
    }
  }
  if (!placed && (clone3_disabled || spawn_clone_vm(a, pid, pidfd) < 0)) {
    if (!clone3_disabled && !spawn_clone_refused(errno)) {
      *r = (struct spawn_report){errno, STEP_CREATE};
      return 1;
    }
    /* fork fallback: the exec report comes through a CLOEXEC pipe */
    if (pipe2(pipefd, O_CLOEXEC) < 0) {
      *r = (struct spawn_report){errno, STEP_REPORT_PIPE};
      return 1;
    }
    a->shared = NULL;
    a->report_fd = pipefd[1];
    *pid = spawn_clone(pidfd);
    if (*pid < 0) {
      *r = (struct spawn_report){errno, STEP_CREATE};
      close(pipefd[0]);
      close(pipefd[1]);
      return 1;
    }
    if (*pid == 0) {
      close(pipefd[0]);
      spawn_child(a);
    }
    close(pipefd[1]);
    n = rr_read(pipefd[0], r, sizeof *r);
  } else if (!placed && a->shared->step) { /* the child reported before exiting */
    r->err = a->shared->err;
    r->step = a->shared->step;
    n = (ssize_t)sizeof *r;
  }
  if (pipefd[0] >= 0)
    close(pipefd[0]);
  if (n == 0) /* exec'd: it runs */
    return 0;
  siginfo_t si;
  while (waitid(P_PID, (id_t)*pid, &si, WEXITED) < 0 && errno == EINTR)
    ;
  close(*pidfd);
  *pidfd = -1;
  if (n != (ssize_t)sizeof *r)
    *r = (struct spawn_report){0, STEP_REPORT_LOST};
  return 1;
}

/* The error for a failed start, by the step that failed. */
static int spawn_report_error(const spawn_opts *o, const struct spawn_report *r, rr_err *e) {
  if (r->step == STEP_CREATE)
    return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, r->err, "cannot create a process for \"%s\"",
                      o->path);
  if (r->step == STEP_REPORT_PIPE)
    return rr_err_sys(e, RR_INTERNAL, r->err, "cannot create the exec report pipe");
  if (r->step == STEP_REPORT_LOST)
    return rr_err_set(e, RR_INTERNAL, "command \"%s\": lost the child's exec report", o->path);
  int code = RR_INTERNAL;
  if (r->step == STEP_EXEC)
    code = (r->err == ENOENT || r->err == ENOTDIR)                     ? RR_NOT_FOUND
           : (r->err == EACCES || r->err == EPERM || r->err == EISDIR) ? RR_PERMISSION_DENIED
           : (r->err == E2BIG)                                         ? RR_INVALID_ARGUMENT
                                                                       : RR_FAILED_PRECONDITION;
  else if (r->step == STEP_CHDIR)
    code = RR_INVALID_ARGUMENT;
  else if (r->step == STEP_IDS)
    code = RR_PERMISSION_DENIED;
  else if (r->step == STEP_CGROUP && (r->err == EAGAIN || r->err == ENOSPC || r->err == ENOMEM))
    code = RR_RESOURCE_EXHAUSTED;
  else if (r->err == EMFILE || r->err == ENFILE || r->err == ENOMEM)
    code = RR_RESOURCE_EXHAUSTED;
  if (r->step == STEP_CHDIR)
    return rr_err_sys(e, code, r->err, "command.workdir \"%s\" cannot be entered",
                      o->workdir ? o->workdir : "/");
  if (r->step == STEP_WAITER_EXEC)
    return rr_err_sys(e, code, r->err, "command \"%s\": executing rund-waiter \"%s\" failed",
                      o->path, o->waiter);
  return rr_err_sys(e, code, r->err, "command \"%s\": %s failed", o->path,
                    spawn_step_name(r->step));
}

int spawn_process(const spawn_opts *o, spawn_result *ret, rr_err *e) {
  const char *search = NULL;
  for (size_t i = 0; i < o->nenv; i++)
    if (strcmp(o->env_keys[i], "PATH") == 0)
      search = o->env_values[i];
  _cleanup_free_ char *exe = NULL;
  /* for another uid the child looks the command up itself, as that uid */
  if (o->ids && (!o->path || !*o->path))
    return rr_err_set(e, RR_INVALID_ARGUMENT, "command.path is empty");
  if (!o->ids && spawn_resolve(o->path, search, o->workdir, &exe, e) < 0)
    return -1;
  char **envp = NULL;
  if (spawn_env_build(o, &envp, e) < 0)
    return -1;
  char **argv = calloc(o->nargs + 2, sizeof *argv);
  if (!argv) {
    spawn_strv_free(envp);
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory building argv");
  }
  argv[0] = (char *)o->path;
  for (size_t i = 0; i < o->nargs; i++)
    argv[i + 1] = (char *)o->args[i];
  int rc = -1, pidfd = -1;
  pid_t pid = -1;
  volatile struct spawn_report shared = {0, 0};
  struct spawn_child_args a = {.o = o,
                               .exe = exe,
                               .search = search ? search : SPAWN_DEFAULT_PATH,
                               .argv = argv,
                               .envp = envp,
                               .report_fd = -1,
                               .shared = &shared,
                               .join_procs = true};
  struct spawn_report r;
  int lr =
      o->waiter ? spawn_waiter_launch(&a, &pid, &pidfd, &r) : spawn_launch(&a, &pid, &pidfd, &r);
  if (lr == 0) {
    *ret = (spawn_result){.pid = pid, .pidfd = pidfd, .start_ticks = 0};
    spawn_proc_start_ticks(pid, &ret->start_ticks);
    rc = 0;
  } else
    spawn_report_error(o, &r, e);
  free(argv);
  spawn_strv_free(envp);
  return rc;
}
