/* Jobs in a sandbox: the config of a request, each profile's filter kept. */
#include "jobs/job_sandbox.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "sandbox/sandbox.h"

/* Compiled on first use, kept for the life of the process: a profile's
 * rules do not depend on the request. */
static sb_filter *profile_filters[SB_PROFILE_COUNT];

static int job_sandbox_filter(sb_profile p, const sb_spec *s, const sb_filter **ret, rr_err *e) {
  *ret = NULL;
  if (!s->seccomp)
    return 0;
  if (!profile_filters[p] && sb_filter_compile(s->seccomp, &profile_filters[p], e) < 0)
    return rr_err_wrap(e, "sandbox: seccomp filter of profile %s", sb_profile_name(p));
  *ret = profile_filters[p];
  return 0;
}

/* The process (and seccomp) of *spec in the namespaces of the sandbox at
 * procfd, in place of everything *spec would make. */
static int job_sandbox_join(int procfd, sb_spec **spec, rr_err *e) {
  sb_spec *joined = sb_spec_new();
  if (!joined) {
    sb_spec_free(TAKE_PTR(*spec));
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  }
  joined->process = (*spec)->process;
  memset(&(*spec)->process, 0, sizeof(*spec)->process);
  joined->seccomp = TAKE_PTR((*spec)->seccomp);
  sb_spec_free(*spec);
  *spec = joined;
  if (sb_spec_join_namespaces(joined, procfd, NULL, "the job", e) < 0) {
    sb_spec_free(TAKE_PTR(*spec));
    return -1;
  }
  return 0;
}

int job_sandbox_spawn(const job_sandbox *sb, const cg_limits *limits, const spawn_opts *o,
                      int status_fd, spawn_result *ret, rr_err *e) {
  return job_sandbox_spawn_tty(sb, limits, o, status_fd, NULL, ret, e);
}

int job_sandbox_spawn_tty(const job_sandbox *sb, const cg_limits *limits, const spawn_opts *o,
                          int status_fd, const job_sandbox_tty *tty, spawn_result *ret, rr_err *e) {
  if (o->nargs >= SIZE_MAX / sizeof(char *) - 1)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "too many args");
  _cleanup_free_ const char **argv = calloc(o->nargs + 1, sizeof *argv);
  _cleanup_free_ sb_bind *binds = sb->nbinds ? calloc(sb->nbinds, sizeof *binds) : NULL;
  if (!argv || (sb->nbinds && !binds))
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  argv[0] = o->path;
  for (size_t i = 0; i < o->nargs; i++)
    argv[i + 1] = o->args[i];
  for (size_t i = 0; i < sb->nbinds; i++)
    binds[i] = (sb_bind){.source = sb->binds[i].source,
                         .destination = sb->binds[i].destination,
                         .readonly = sb->binds[i].readonly};
  /* each is mounted once: a second spawn would find them closed */
  for (size_t i = 0; sb->fds && i <= sb->nbinds; i++)
    if (sb->fds[i] < 0 && (i || sb->rootfs))
      return rr_err_set(e, RR_FAILED_PRECONDITION, "sandbox: the checked binds were used already");
  char **env = NULL;
  if (spawn_env_build(o, &env, e) < 0)
    return -1;
  size_t nenv = 0;
  while (env[nenv])
    nenv++;
  sb_params pa = {
      .argv = argv,
      .nargs = o->nargs + 1,
      .env = (const char *const *)env,
      .nenv = nenv,
      .cwd = o->workdir && *o->workdir ? o->workdir : NULL,
      .rootfs = sb->rootfs,
      .binds = binds,
      .nbinds = sb->nbinds,
      .net = sb->net,
      .hostname = sb->hostname,
      .has_user = sb->has_user,
      .uid = sb->uid,
      .gid = sb->gid,
      .groups = sb->groups,
      .ngroups = sb->ngroups,
      .host_uid = o->ids ? o->ids->uid : geteuid(),
      .host_gid = o->ids ? o->ids->gid : getegid(),
      .host_groups = o->ids ? o->ids->groups : NULL,
      .nhost_groups = o->ids ? o->ids->ngroups : 0,
      .limits = limits,
      .rootless = geteuid() != 0,
      .fds = sb->fds,
      .root_is_tree = sb->root_is_tree,
  };
  if (sb->join_procfd > 0) /* made already: only the process's part counts */
    pa.rootfs = NULL, pa.binds = NULL, pa.nbinds = 0, pa.fds = NULL, pa.limits = NULL;
  sb_spec *spec = NULL;
  int rc = sb_spec_for_profile(sb->profile, &pa, &spec, e);
  spawn_strv_free(env);
  if (rc < 0)
    return rr_err_wrap(e, "sandbox");
  if (sb->join_procfd > 0 && job_sandbox_join(sb->join_procfd, &spec, e) < 0)
    return -1;
  const sb_filter *filter = NULL;
  if (job_sandbox_filter(sb->profile, spec, &filter, e) < 0) {
    sb_spec_free(spec);
    return -1;
  }
  if (tty) {
    spec->process.terminal = true;
    spec->process.has_console_size = true;
    spec->process.console_height = tty->rows;
    spec->process.console_width = tty->cols;
  }
  sb_spawn_opts so = {
      .stdin_fd = o->stdin_fd,
      .stdout_fd = o->stdout_fd,
      .stderr_fd = o->stderr_fd,
      .cgroup_fd = o->cgroup_fd,
      .cgroup_procs_fds = o->cgroup_procs_fds,
      .ncgroup_procs = o->ncgroup_procs,
      .filter = filter,
      .status_fd = status_fd,
      .relay_fds = o->waiter_relay_fds,
      .new_process_group = true,
      .console_fd = tty ? tty->console_fd : -1,
  };
  sb_spawn_result r;
  rc = sb_spawn(spec, &so, &r, e);
  sb_spec_free(spec);
  job_sandbox_close_fds(sb); /* the sandbox has its mounts (or failed) */
  if (rc < 0)
    return -1;
  *ret = (spawn_result){.pid = r.pid, .pidfd = r.pidfd, .start_ticks = r.start_ticks};
  return 0;
}

int job_sandbox_default_limits(job_request *r, rr_err *e) {
  if (r->sandbox.profile != SB_PROFILE_STRICT)
    return 0;
  cg_limits l = r->limits ? *r->limits : (cg_limits){0};
  if (l.has_pids && l.has_memory)
    return 0;
  if (!l.has_pids)
    l.has_pids = true, l.pids_max = SB_STRICT_PIDS_MAX;
  if (!l.has_memory)
    l.has_memory = true, l.memory_max = SB_STRICT_MEMORY_MAX;
  return job_request_set_limits(r, &l, e);
}

int job_status_line_parse(const char *line, siginfo_t *si, int64_t *end_ns) {
  char kind[8];
  int v;
  long long ns;
  if (sscanf(line, "%7s %d %lld", kind, &v, &ns) != 3 || ns <= 0)
    return -1;
  memset(si, 0, sizeof *si);
  if (strcmp(kind, "exit") == 0 && v >= 0 && v <= 255)
    si->si_code = CLD_EXITED;
  else if (strcmp(kind, "signal") == 0 && v > 0 && v < NSIG)
    si->si_code = CLD_KILLED;
  else
    return -1;
  si->si_status = v;
  *end_ns = ns;
  return 0;
}
