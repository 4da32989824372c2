/* runproc create: the bundle's config.json parsed (errors name the field),
 * ROOT/ID made and locked, exec.fifo, and the engine's sb_spawn with
 * wait_start: when create returns, everything is set up (namespaces,
 * mounts, pivot_root, ids, caps) and the process waits on the fifo until
 * `start` writes to it. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/util.h"
#include "runproc.h"
#include "runproc_systemd.h"
#include "sandbox/sandbox.h"
#include "sandbox/spec.h"

int runproc_create_parse(runproc_ctx *ctx, int argc, char **argv, runproc_create_opts *o,
                         bool *detach) {
  memset(o, 0, sizeof *o);
  o->bundle = ".";
  for (int i = 1; i < argc; i++) {
    const char *v = NULL, *a = argv[i];
    int r;
    if ((r = runproc_opt(argc, argv, &i, "bundle", 'b', &v)))
      o->bundle = v;
    else if ((r = runproc_opt(argc, argv, &i, "pid-file", 0, &v)))
      o->pid_file = v;
    else if ((r = runproc_opt(argc, argv, &i, "console-socket", 0, &v)))
      o->console_socket = v;
    else if ((r = runproc_opt(argc, argv, &i, "preserve-fds", 0, &v))) {
      char *end;
      long n = v ? strtol(v, &end, 10) : -1;
      if (!v || *end || n < 0 || n > 1024)
        return runproc_fail(ctx, "invalid --preserve-fds \"%s\"", v ? v : "");
      o->preserve_fds = (int)n;
    } else if (runproc_flag(a, "no-pivot", 0))
      o->no_pivot = true;
    else if (runproc_flag(a, "no-new-keyring", 0))
      o->no_new_keyring = true;
    else if (detach && runproc_flag(a, "detach", 'd'))
      *detach = true;
    else if (runproc_flag(a, "keep", 0) || runproc_flag(a, "no-subreaper", 0))
      ; /* run's flags of runc that change nothing here */
    else if (runproc_arg_id(ctx, a, &o->id))
      return 1;
    if (r < 0)
      return runproc_fail(ctx, "option \"%s\" needs a value", a);
  }
  if (!o->id)
    return runproc_fail(ctx, "a container id is needed (runproc %s [OPTIONS] ID)", ctx->verb);
  return -1;
}

/* An object member of config.json (json-c, raw: the engine's spec ignores
 * annotations and hooks); NULL when absent. */
static json_object *runproc_config_member(json_object *config, const char *key) {
  json_object *a = NULL;
  if (config && json_object_object_get_ex(config, key, &a) &&
      !json_object_is_type(a, json_type_null))
    return json_object_get(a);
  return NULL;
}

/* Host mode (RUNPROC_HOST=1, or the annotation runproc.host "1"): the
 * host's root, no mount namespace, no mounts. */
static bool runproc_host_mode(json_object *annotations) {
  const char *env = getenv("RUNPROC_HOST");
  json_object *v;
  if (env && strcmp(env, "1") == 0)
    return true;
  return annotations && json_object_object_get_ex(annotations, "runproc.host", &v) &&
         json_object_is_type(v, json_type_string) && strcmp(json_object_get_string(v), "1") == 0;
}

/* prestart and createRuntime (ours), createContainer (the container's
 * namespaces): while the container's process waits before pivot_root. */
static int runproc_create_hooks(void *arg, pid_t pid, rr_err *e) {
  runproc_container *c = arg;
  json_object *st = runproc_container_state_json(c);
  json_object_object_add(st, "pid", json_object_new_int(pid));
  int r = runproc_hooks_run(c->hooks, RUNPROC_HOOK_PRESTART, st, 0, e);
  if (r == 0)
    r = runproc_hooks_run(c->hooks, RUNPROC_HOOK_CREATE_RUNTIME, st, 0, e);
  if (r == 0)
    r = runproc_hooks_run(c->hooks, RUNPROC_HOOK_CREATE_CONTAINER, st, pid, e);
  json_object_put(st);
  return r;
}

/* A container with a user namespace may belong to a caller that is not
 * root, who cannot open /proc/PID/ns of its init (never dumpable: a copy
 * of our memory): `exec` asks the init for them on ROOT/ID/ns.sock
 * instead. Reachable only through ROOT/ID (0700, the caller's). */
static int runproc_ns_socket(const runproc_container *c, rr_err *e) {
  struct sockaddr_un a;
  runproc_ns_socket_addr(c, &a);
  _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 16) < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot make the namespace socket of \"%s\"", c->id);
  return TAKE_FD(fd);
}

/* --systemd-cgroup: "slice:prefix:name" made the cgroupfs path systemd
 * gives its scope (systemd.c asks systemd for the scope itself where it
 * answers; elsewhere runproc makes that path). */
static int runproc_systemd_path(sb_spec *s, rr_err *e) {
  char path[512];
  if (cg_path_from_systemd(s->cgroups_path, path, sizeof path, e) < 0)
    return -1;
  char *dup = strdup(path);
  if (!dup)
    return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, ENOMEM, "linux.cgroupsPath");
  free(s->cgroups_path);
  s->cgroups_path = dup;
  return 0;
}

int runproc_create(runproc_ctx *ctx, const runproc_create_opts *o, int *ret_pidfd,
                   bool *ret_started, runproc_container *ret, int *ret_mntns, rr_err *e) {
  if (runproc_id_check(o->id, e) < 0)
    return -1;
  char bundle[PATH_MAX], config[PATH_MAX + 16];
  if (!realpath(o->bundle, bundle))
    return rr_err_sys(e, RR_NOT_FOUND, errno, "bundle \"%s\"", o->bundle);
  snprintf(config, sizeof config, "%s/config.json", bundle);
  sb_spec *s = NULL;
  json_object *raw = NULL;
  if (sb_spec_load_json(config, bundle, &s, &raw, e) < 0)
    return -1;
  int rc = -1;
  runproc_container c = {0};
  _cleanup_close_ int fifo = -1, console = -1, nssock = -1;
  sb_spawn_result r = {.pidfd = -1, .mntns_fd = -1};
  cg_job *cg = NULL;
  json_object *annotations = NULL;
  _cleanup_free_ char *systemd_spec = NULL, *own_cgroups = NULL;
  c.hooks = runproc_config_member(raw, "hooks");
  annotations = runproc_config_member(raw, "annotations");
  if (runproc_hooks_check(c.hooks, e) < 0) {
    rr_err_wrap(e, "%s", config);
    goto out;
  }
  bool host = runproc_host_mode(annotations);
  if (host)
    sb_spec_host_root(s);
  if (sb_spec_validate(s, e) < 0) {
    rr_err_wrap(e, "%s", config);
    goto out;
  }
  if ((console = runproc_console_connect(s->process.terminal, o->console_socket, e)) == -1)
    goto out;
  if (!s->cgroups_path && s->resources && cg_limits_any(s->resources)) {
    rr_err_set(e, RR_INVALID_ARGUMENT, "linux.resources: limits need a linux.cgroupsPath");
    goto out;
  }
  if (ctx->systemd_cgroup && s->cgroups_path &&
      (!(systemd_spec = strdup(s->cgroups_path)) || runproc_systemd_path(s, e) < 0)) {
    if (!systemd_spec)
      rr_err_sys(e, RR_RESOURCE_EXHAUSTED, ENOMEM, "linux.cgroupsPath");
    goto out;
  }
  json_object *hooks = TAKE_PTR(c.hooks);
  if (runproc_container_new(ctx, o->id, &c, e) < 0) {
    json_object_put(hooks);
    goto out;
  }
  c.hooks = hooks;
  c.bundle = strdup(bundle);
  c.rootfs = strdup(s->root_path ? s->root_path : "/");
  char now[48], fifo_path[4200];
  c.created = strdup(runproc_rfc3339(now, sizeof now));
  c.owner = strdup(""); /* as runc's state says */
  c.cgroup = strdup("");
  json_object_put(c.annotations);
  c.annotations = annotations && json_object_is_type(annotations, json_type_object)
                      ? TAKE_PTR(annotations)
                      : json_object_new_object();
  /* run with no startContainer hook: nothing happens between create and
   * start, so the process execs at once (no fifo, no second wake-up) */
  bool start_now = ret_started && !runproc_hooks_any(c.hooks, RUNPROC_HOOK_START_CONTAINER);
  if (!start_now) {
    runproc_fifo_path(ctx, o->id, fifo_path, sizeof fifo_path);
    if (mkfifo(fifo_path, 0600) < 0) {
      rr_err_sys(e, RR_INTERNAL, errno, "cannot create \"%s\"", fifo_path);
      goto remove;
    }
    /* O_RDWR: the open does not wait for a writer, and the container's read
     * waits for start's byte */
    fifo = open(fifo_path, O_RDWR | O_CLOEXEC);
    if (fifo < 0) {
      rr_err_sys(e, RR_INTERNAL, errno, "cannot open \"%s\"", fifo_path);
      goto remove;
    }
  }
  sb_spawn_opts so = {.stdin_fd = 0,
                      .stdout_fd = 1,
                      .stderr_fd = 2,
                      .status_fd = -1,
                      .wait_start = !start_now,
                      .start_fd = fifo,
                      .console_fd = console,
                      .preserve_fds = o->preserve_fds,
                      .hold_mntns = ret_mntns != NULL};
  if (runproc_hooks_any(c.hooks, RUNPROC_HOOK_PRESTART) ||
      runproc_hooks_any(c.hooks, RUNPROC_HOOK_CREATE_RUNTIME) ||
      runproc_hooks_any(c.hooks, RUNPROC_HOOK_CREATE_CONTAINER)) {
    so.setup_hook = runproc_create_hooks;
    so.setup_hook_arg = &c;
  }
  if (s->ns[SB_NS_USER].enabled && !s->ns[SB_NS_USER].path && s->ns[SB_NS_PID].enabled) {
    if ((nssock = runproc_ns_socket(&c, e)) < 0)
      goto remove;
    so.ns_socket_fd = nssock;
  }
  if (s->cgroups_path) {
    cg_limits none = {0};
    const cg_limits *l = s->resources ? s->resources : &none;
    int scoped =
        systemd_spec ? runproc_systemd_scope(ctx, o->id, systemd_spec, l, &own_cgroups, e) : 1;
    if (scoped < 0)
      goto remove;
    if (scoped == 0 && (cg_path_open(RUNPROC_CGROUP_ROOT, s->cgroups_path, &cg, e) < 0 ||
                        (cg_limits_any(l) && cg_job_update(cg, l, e) < 0))) {
      runproc_systemd_leave(own_cgroups);
      goto remove;
    }
    if (scoped == 1 && cg_path_create(RUNPROC_CGROUP_ROOT, s->cgroups_path, l, &cg, e) < 0)
      goto remove;
    free(c.cgroup);
    c.cgroup = strdup(s->cgroups_path);
    so.ncgroup_procs = cg_job_procs_fds(cg, &so.cgroup_procs_fds);
    so.cgroup_fd = cg_job_clone_fd(cg);
  }
  int spawned = sb_spawn(s, &so, &r, e);
  runproc_systemd_leave(own_cgroups); /* the container stays in its scope, we do not */
  if (spawned < 0)
    goto remove;
  c.pid = r.pid;
  c.start_ticks = r.start_ticks;
  if (runproc_container_save(&c, e) < 0)
    goto kill;
  if (o->pid_file && runproc_write_pid_file(o->pid_file, r.pid, e) < 0) {
    rr_err_wrap(e, "--pid-file");
    goto kill;
  }
  runproc_debug(ctx, "created container %s: pid %d", o->id, (int)r.pid);
  if (ret_pidfd)
    *ret_pidfd = TAKE_FD(r.pidfd);
  if (ret_started)
    *ret_started = start_now;
  if (ret_mntns)
    *ret_mntns = TAKE_FD(r.mntns_fd);
  if (ret) { /* still locked */
    *ret = c;
    memset(&c, 0, sizeof c);
  }
  rc = 0;
  goto out;
kill:
  runproc_container_kill_wait(&c, NULL);
remove:
  if (cg)
    cg_job_destroy(TAKE_PTR(cg), NULL);
  runproc_container_remove(ctx, &c, NULL);
out:
  if (cg)
    cg_job_free(cg); /* the cgroup stays, with the container in it */
  if (r.pidfd >= 0)
    close(r.pidfd);
  if (r.mntns_fd >= 0)
    close(r.mntns_fd);
  runproc_container_free(&c);
  json_object_put(annotations);
  json_object_put(raw);
  sb_spec_free(s);
  return rc;
}

static int cmd_create(runproc_ctx *ctx, int argc, char **argv) {
  runproc_create_opts o;
  int rc = runproc_create_parse(ctx, argc, argv, &o, NULL);
  if (rc >= 0)
    return rc;
  rr_err e = {0};
  if (runproc_create(ctx, &o, NULL, NULL, NULL, NULL, &e) < 0)
    return runproc_fail_err(ctx, &e);
  return 0;
}

const runproc_command runproc_cmd_create = {
    "create", "create [--bundle DIR] [--pid-file F] [--console-socket S] [--preserve-fds N] ID",
    cmd_create};
