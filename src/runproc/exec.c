/* runproc exec [OPTIONS] ID [COMMAND ARGS...]: a process more in a created
 * or running container, as runc's: its namespaces (those that are not
 * ours), its cgroup, its root (the mount namespace's), its seccomp; the
 * process from --process FILE or the container's own process changed by
 * the flags. In the foreground runproc waits, forwarding signals, and
 * exits with the process's status; --detach returns once it runs (it is
 * left to whoever reaps our orphans: containerd's shim, a subreaper). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/util.h"
#include "exec.h"
#include "runproc.h"
#include "sandbox/cgroup.h"
#include "sandbox/sandbox.h"

static int exec_parse(runproc_ctx *ctx, int argc, char **argv, runproc_exec_opts *o) {
  int i = 1;
  for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
    const char *v = NULL, *a = argv[i];
    int r;
    if (strcmp(a, "--") == 0)
      return runproc_fail(ctx, "a container id is needed before \"--\"");
    if ((r = runproc_opt(argc, argv, &i, "process", 'p', &v)))
      o->process_file = v;
    else if ((r = runproc_opt(argc, argv, &i, "pid-file", 0, &v)))
      o->pid_file = v;
    else if ((r = runproc_opt(argc, argv, &i, "console-socket", 0, &v)))
      o->console_socket = v;
    else if ((r = runproc_opt(argc, argv, &i, "cwd", 0, &v)))
      o->cwd = v;
    else if ((r = runproc_opt(argc, argv, &i, "user", 'u', &v)))
      o->user = v;
    else if ((r = runproc_opt(argc, argv, &i, "env", 'e', &v))) {
      if (v)
        o->env[o->nenv++] = (char *)v;
    } else if ((r = runproc_opt(argc, argv, &i, "cap", 'c', &v))) {
      if (v)
        o->caps[o->ncaps++] = (char *)v;
    } else if ((r = runproc_opt(argc, argv, &i, "additional-gids", 'g', &v))) {
      if (v)
        o->gids[o->ngids++] = (char *)v;
    } else if ((r = runproc_opt(argc, argv, &i, "preserve-fds", 0, &v))) {
      char *end;
      long n = v ? strtol(v, &end, 10) : 0;
      if (v && (!*v || *end || n < 0 || n > 1024))
        return runproc_fail(ctx, "invalid --preserve-fds \"%s\" (want 0..1024)", v);
      o->preserve_fds = (int)n;
    } else if ((r = runproc_opt(argc, argv, &i, "process-label", 0, &v)) ||
               (r = runproc_opt(argc, argv, &i, "apparmor", 0, &v)))
      ; /* labels: no selinux nor apparmor here */
    else if (runproc_flag(a, "tty", 't'))
      o->tty = true;
    else if (runproc_flag(a, "detach", 'd'))
      o->detach = true;
    else if (runproc_flag(a, "no-new-privs", 0))
      o->no_new_privs = true;
    else
      return runproc_fail(ctx, "unknown option \"%s\"", a);
    if (r < 0)
      return runproc_fail(ctx, "option \"%s\" needs a value", a);
  }
  if (i >= argc)
    return runproc_fail(ctx, "a container id is needed (runproc exec [OPTIONS] ID COMMAND "
                             "[ARGS...], or --process FILE)");
  o->id = argv[i++];
  if (i < argc && strcmp(argv[i], "--") == 0)
    i++;
  o->args = argv + i;
  o->nargs = (size_t)(argc - i);
  if (o->process_file && o->nargs)
    return runproc_fail(ctx, "--process FILE and a command: give one of them");
  if (!o->process_file && !o->nargs)
    return runproc_fail(ctx, "a command is needed (runproc exec [OPTIONS] ID COMMAND [ARGS...], "
                             "or --process FILE)");
  return -1;
}

/* The container's process as an O_PATH /proc/PID dir fd, checked to be
 * that process (pid and start time) after the open. */
static int exec_procfd(const runproc_container *c, rr_err *e) {
  char p[64];
  snprintf(p, sizeof p, "/proc/%d", (int)c->pid);
  int fd = c->pid > 0 ? open(p, O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
  int pidfd = fd >= 0 ? runproc_container_pidfd(c) : -1;
  if (pidfd < 0) {
    if (fd >= 0)
      close(fd);
    return rr_err_set(e, RR_FAILED_PRECONDITION, "container \"%s\" is not running", c->id);
  }
  close(pidfd);
  return fd;
}

/* Whether we may open the namespaces of the process at procfd: not when
 * it is not dumpable and we are not root (a rootless container's init). */
static bool exec_ns_readable(int procfd) {
  char p[64];
  snprintf(p, sizeof p, "/proc/self/fd/%d/ns/user", procfd);
  struct stat st;
  return stat(p, &st) == 0 || (errno != EACCES && errno != EPERM);
}

/* Everything up to the process running; *ret_pidfd its pidfd. */
static int exec_start(runproc_ctx *ctx, const runproc_exec_opts *o, int *ret_pidfd, rr_err *e) {
  runproc_container c;
  if (runproc_container_load(ctx, o->id, &c, e) < 0)
    return -1;
  int rc = -1;
  sb_spec *s = NULL;
  cg_job *cg = NULL;
  _cleanup_close_ int procfd = -1, console = -1;
  int nsfds[SB_NS_COUNT];
  bool have_nsfds = false;
  runproc_status st = runproc_container_status(&c);
  if (st == RUNPROC_PAUSED) {
    rr_err_set(e, RR_FAILED_PRECONDITION, "container \"%s\" is paused: resume it first", c.id);
    goto out;
  }
  if (st == RUNPROC_STOPPED) {
    rr_err_set(e, RR_FAILED_PRECONDITION, "container \"%s\" is stopped: cannot exec in it", c.id);
    goto out;
  }
  if ((procfd = exec_procfd(&c, e)) < 0 || runproc_exec_spec(o, c.bundle, &s, e) < 0)
    goto out;
  if (!exec_ns_readable(procfd)) {
    if (runproc_container_nsfds(&c, nsfds, e) < 0)
      goto out;
    have_nsfds = true;
  }
  if (sb_spec_join_namespaces(s, procfd, have_nsfds ? nsfds : NULL, "the container", e) < 0) {
    if (runproc_container_status(&c) == RUNPROC_STOPPED) /* it ended meanwhile */
      rr_err_set(e, RR_FAILED_PRECONDITION, "container \"%s\" is stopped: cannot exec in it", c.id);
    goto out;
  }
  if ((console = runproc_console_connect(s->process.terminal, o->console_socket, e)) == -1)
    goto out;
  sb_spawn_opts so = {.stdin_fd = 0,
                      .stdout_fd = 1,
                      .stderr_fd = 2,
                      .status_fd = -1,
                      .console_fd = console,
                      .preserve_fds = o->preserve_fds};
  if (c.cgroup && *c.cgroup) {
    if (runproc_container_cgroup(&c, &cg, e) < 0)
      goto out;
    so.ncgroup_procs = cg_job_procs_fds(cg, &so.cgroup_procs_fds);
    so.cgroup_fd = cg_job_clone_fd(cg);
  }
  sb_spawn_result r = {.pidfd = -1};
  if (sb_spawn(s, &so, &r, e) < 0)
    goto out;
  if (o->pid_file && runproc_write_pid_file(o->pid_file, r.pid, e) < 0) {
    rr_err_wrap(e, "--pid-file");
    runproc_kill_reap(r.pidfd);
    close(r.pidfd);
    goto out;
  }
  runproc_debug(ctx, "exec in container %s: pid %d", c.id, (int)r.pid);
  *ret_pidfd = r.pidfd;
  rc = 0;
out:
  for (int t = 0; have_nsfds && t < SB_NS_COUNT; t++)
    if (nsfds[t] >= 0)
      close(nsfds[t]);
  if (cg)
    cg_job_free(cg);
  sb_spec_free(s);
  runproc_container_free(&c); /* unlocked: the container is not ours while it runs */
  return rc;
}

static int cmd_exec(runproc_ctx *ctx, int argc, char **argv) {
  runproc_exec_opts o = {0};
  _cleanup_free_ char **env = calloc((size_t)argc, sizeof *env);
  _cleanup_free_ char **caps = calloc((size_t)argc, sizeof *caps);
  _cleanup_free_ char **gids = calloc((size_t)argc, sizeof *gids);
  if (!env || !caps || !gids)
    return runproc_fail(ctx, "out of memory");
  o.env = env;
  o.caps = caps;
  o.gids = gids;
  int rc = exec_parse(ctx, argc, argv, &o);
  if (rc >= 0)
    return rc;
  rr_err e = {0};
  _cleanup_close_ int pidfd = -1;
  if (exec_start(ctx, &o, &pidfd, &e) < 0)
    return runproc_fail_err(ctx, &e);
  if (o.detach)
    return 0; /* our orphan now: reaped by the subreaper above us */
  return runproc_wait_forwarding(pidfd);
}

const runproc_command runproc_cmd_exec = {
    "exec",
    "exec [--process F | ID CMD ARGS...] [-t] [-d] [--pid-file F] [--console-socket S] "
    "[--cwd D] [-e K=V] [-u UID[:GID]] [-g GID] [--cap C] [--no-new-privs] [--preserve-fds N] ID",
    cmd_exec};
