/* A container's state: ROOT/ID/state.json (written atomically) and
 * exec.fifo (there while the container waits for start), the directory
 * flock'ed by whoever reads or changes it. Its status is never stored: the
 * process is checked by pid and start time each time, so that a container
 * whose process died reads "stopped". */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/util.h"
#include "runproc.h"
#include "sandbox/cgroup.h"
#include "sandbox/sandbox.h"

void runproc_ns_socket_addr(const runproc_container *c, struct sockaddr_un *ret) {
  memset(ret, 0, sizeof *ret);
  ret->sun_family = AF_UNIX;
  snprintf(ret->sun_path, sizeof ret->sun_path, "/proc/self/fd/%d/%s", c->dirfd, RUNPROC_NS_SOCKET);
}

void runproc_fifo_path(runproc_ctx *ctx, const char *id, char *buf, size_t size) {
  snprintf(buf, size, "%s/%s/exec.fifo", ctx->root, id);
}

static int runproc_dir_lock(int fd, const char *id, rr_err *e) {
  while (flock(fd, LOCK_EX) < 0)
    if (errno != EINTR)
      return rr_err_sys(e, RR_INTERNAL, errno, "cannot lock container \"%s\"", id);
  return 0;
}

int runproc_container_new(runproc_ctx *ctx, const char *id, runproc_container *ret, rr_err *e) {
  if (runproc_id_check(id, e) < 0)
    return -1;
  if (rr_mkdirs(ctx->root, e) < 0)
    return rr_err_wrap(e, "state directory \"%s\"", ctx->root);
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/%s", ctx->root, id);
  if (mkdir(dir, 0700) < 0) {
    if (errno == EEXIST)
      return rr_err_set(e, RR_ALREADY_EXISTS, "container \"%s\" already exists", id);
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot create \"%s\"", dir);
  }
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || runproc_dir_lock(fd, id, e) < 0) {
    if (fd < 0)
      rr_err_sys(e, RR_INTERNAL, errno, "cannot open \"%s\"", dir);
    else
      close(fd);
    rmdir(dir);
    return -1;
  }
  memset(ret, 0, sizeof *ret);
  ret->dirfd = fd;
  ret->id = strdup(id);
  ret->annotations = json_object_new_object();
  return 0;
}

int runproc_container_relock(runproc_container *c, rr_err *e) {
  if (runproc_dir_lock(c->dirfd, c->id, e) < 0)
    return -1;
  if (faccessat(c->dirfd, "state.json", F_OK, 0) < 0)
    return rr_err_set(e, RR_NOT_FOUND, "container \"%s\" does not exist", c->id);
  return 0;
}

static char *json_str(json_object *o, const char *key) {
  json_object *v;
  const char *s = json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
  return strdup(s ? s : "");
}

int runproc_container_load(runproc_ctx *ctx, const char *id, runproc_container *ret, rr_err *e) {
  if (runproc_id_check(id, e) < 0)
    return -1;
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/%s", ctx->root, id);
  _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 && (errno == ENOENT || errno == ENOTDIR))
    return rr_err_set(e, RR_NOT_FOUND, "container \"%s\" does not exist", id);
  if (fd < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot open \"%s\"", dir);
  if (runproc_dir_lock(fd, id, e) < 0)
    return -1;
  _cleanup_close_ int sf = openat(fd, "state.json", O_RDONLY | O_CLOEXEC);
  if (sf < 0 && errno == ENOENT) /* removed, or a create that failed */
    return rr_err_set(e, RR_NOT_FOUND, "container \"%s\" does not exist", id);
  if (sf < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot read the state of \"%s\"", id);
  char buf[65536];
  ssize_t n = rr_read(sf, buf, sizeof buf - 1);
  if (n < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot read the state of \"%s\"", id);
  buf[n] = '\0';
  json_object *o = json_tokener_parse(buf);
  if (!o || !json_object_is_type(o, json_type_object)) {
    json_object_put(o);
    return rr_err_set(e, RR_DATA_LOSS, "the state of container \"%s\" is corrupt", id);
  }
  memset(ret, 0, sizeof *ret);
  ret->id = strdup(id);
  ret->bundle = json_str(o, "bundle");
  ret->rootfs = json_str(o, "rootfs");
  ret->created = json_str(o, "created");
  ret->owner = json_str(o, "owner");
  ret->cgroup = json_str(o, "cgroup");
  json_object *v;
  if (json_object_object_get_ex(o, "pid", &v))
    ret->pid = (pid_t)json_object_get_int(v);
  if (json_object_object_get_ex(o, "start_ticks", &v))
    ret->start_ticks = (uint64_t)json_object_get_int64(v);
  if (json_object_object_get_ex(o, "hooks", &v) && json_object_is_type(v, json_type_object))
    ret->hooks = json_object_get(v);
  if (json_object_object_get_ex(o, "annotations", &v) && json_object_is_type(v, json_type_object))
    ret->annotations = json_object_get(v);
  else
    ret->annotations = json_object_new_object();
  json_object_put(o);
  ret->dirfd = TAKE_FD(fd);
  return 0;
}

int runproc_container_save(const runproc_container *c, rr_err *e) {
  json_object *o = json_object_new_object();
  json_object_object_add(o, "id", json_object_new_string(c->id));
  json_object_object_add(o, "pid", json_object_new_int(c->pid));
  json_object_object_add(o, "start_ticks", json_object_new_int64((int64_t)c->start_ticks));
  json_object_object_add(o, "bundle", json_object_new_string(c->bundle ? c->bundle : ""));
  json_object_object_add(o, "rootfs", json_object_new_string(c->rootfs ? c->rootfs : ""));
  json_object_object_add(o, "created", json_object_new_string(c->created ? c->created : ""));
  json_object_object_add(o, "owner", json_object_new_string(c->owner ? c->owner : ""));
  json_object_object_add(o, "cgroup", json_object_new_string(c->cgroup ? c->cgroup : ""));
  json_object_object_add(o, "annotations", json_object_get(c->annotations));
  if (c->hooks)
    json_object_object_add(o, "hooks", json_object_get(c->hooks));
  const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d/state.json", c->dirfd);
  int rc = runproc_write_atomic(path, s, strlen(s), e);
  json_object_put(o);
  if (rc < 0)
    return rr_err_wrap(e, "cannot save the state of \"%s\"", c->id);
  return 0;
}

int runproc_container_remove(runproc_ctx *ctx, runproc_container *c, rr_err *e) {
  /* state.json first: from then on the container does not exist */
  const char *files[] = {"state.json", "exec.fifo", RUNPROC_NS_SOCKET};
  for (size_t i = 0; i < RR_ARRAY_SIZE(files); i++)
    if (unlinkat(c->dirfd, files[i], 0) < 0 && errno != ENOENT)
      return rr_err_sys(e, RR_INTERNAL, errno, "cannot remove %s of \"%s\"", files[i], c->id);
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/%s", ctx->root, c->id);
  if (rmdir(dir) < 0 && errno != ENOENT)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot remove \"%s\"", dir);
  return 0;
}

void runproc_container_free(runproc_container *c) {
  if (c->dirfd > 0)
    close(c->dirfd); /* the lock goes with it */
  free(c->id);
  free(c->bundle);
  free(c->rootfs);
  free(c->created);
  free(c->owner);
  free(c->cgroup);
  json_object_put(c->annotations);
  json_object_put(c->hooks);
  memset(c, 0, sizeof *c);
}

/* Whether pid is still the process started at ticks, and not a zombie. */
static bool runproc_pid_alive(pid_t pid, uint64_t ticks) {
  if (pid <= 0)
    return false;
  char p[64], buf[1024];
  snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
  _cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  ssize_t n = rr_read(fd, buf, sizeof buf - 1);
  if (n <= 0)
    return false;
  buf[n] = '\0';
  char *s = strrchr(buf, ')');
  if (!s || !s[1] || !s[2])
    return false;
  char state = s[2];
  if (state == 'Z' || state == 'X')
    return false;
  s++;
  for (int field = 3; field < 22; field++)
    if (!(s = strchr(s + 1, ' ')))
      return false;
  return strtoull(s + 1, NULL, 10) == ticks;
}

runproc_status runproc_container_status(const runproc_container *c) {
  if (!runproc_pid_alive(c->pid, c->start_ticks))
    return RUNPROC_STOPPED;
  if (faccessat(c->dirfd, "exec.fifo", F_OK, 0) == 0)
    return RUNPROC_CREATED;
  cg_job *cg;
  if (c->cgroup && *c->cgroup && cg_path_open(RUNPROC_CGROUP_ROOT, c->cgroup, &cg, NULL) == 0) {
    bool frozen = cg_job_frozen(cg);
    cg_job_free(cg);
    if (frozen)
      return RUNPROC_PAUSED;
  }
  return RUNPROC_RUNNING;
}

const char *runproc_status_name(runproc_status s) {
  switch (s) {
  case RUNPROC_CREATED:
    return "created";
  case RUNPROC_RUNNING:
    return "running";
  case RUNPROC_PAUSED:
    return "paused";
  default:
    return "stopped";
  }
}

json_object *runproc_container_state_json(const runproc_container *c) {
  runproc_status st = runproc_container_status(c);
  json_object *o = json_object_new_object();
  json_object_object_add(o, "ociVersion", json_object_new_string(RUNPROC_OCI_VERSION));
  json_object_object_add(o, "id", json_object_new_string(c->id));
  json_object_object_add(o, "pid", json_object_new_int(st == RUNPROC_STOPPED ? 0 : c->pid));
  json_object_object_add(o, "status", json_object_new_string(runproc_status_name(st)));
  json_object_object_add(o, "bundle", json_object_new_string(c->bundle ? c->bundle : ""));
  json_object_object_add(o, "rootfs", json_object_new_string(c->rootfs ? c->rootfs : ""));
  json_object_object_add(o, "created", json_object_new_string(c->created ? c->created : ""));
  json_object_object_add(o, "owner", json_object_new_string(c->owner ? c->owner : ""));
  if (c->annotations && json_object_object_length(c->annotations) > 0)
    json_object_object_add(o, "annotations", json_object_get(c->annotations));
  return o;
}

int runproc_container_pidfd(const runproc_container *c) {
  if (c->pid <= 0)
    return -1;
  int fd = (int)syscall(SYS_pidfd_open, c->pid, 0);
  if (fd < 0)
    return -1;
  /* checked after the open: the fd cannot point at a reused pid */
  if (!runproc_pid_alive(c->pid, c->start_ticks)) {
    close(fd);
    return -1;
  }
  return fd;
}

int runproc_container_nsfds(const runproc_container *c, int fds[], rr_err *e) {
  struct sockaddr_un a;
  runproc_ns_socket_addr(c, &a);
  _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct timeval tv = {.tv_sec = 10}; /* a stuck init: fail, not hang */
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
      connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
    return rr_err_sys(e, RR_PERMISSION_DENIED, errno,
                      "cannot look at the namespaces of container \"%s\" (its init is not "
                      "dumpable) nor ask it on %s",
                      c->id, RUNPROC_NS_SOCKET);
  if (sb_nsfd_receive(fd, fds, e) < 0)
    return rr_err_wrap(e, "container \"%s\"", c->id);
  return 0;
}

/* Parent of pid from /proc/PID/stat (readable by anyone); -1 if gone. */
static pid_t runproc_ppid(pid_t pid) {
  char p[64], buf[1024];
  snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
  _cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC);
  ssize_t n = fd >= 0 ? rr_read(fd, buf, sizeof buf - 1) : -1;
  if (n <= 0)
    return -1;
  buf[n] = '\0';
  char *s = strrchr(buf, ')'), state;
  int ppid;
  return s && sscanf(s + 1, " %c %d", &state, &ppid) == 2 ? (pid_t)ppid : -1;
}

/* The pid namespace of a child of init we may look at (its children are
 * in its namespace: it is PID 1 there); false when there is none (a
 * created container: only the init's fork, not dumpable, waits). */
static bool runproc_child_pidns(pid_t init, struct stat *ret) {
  DIR *d = opendir("/proc");
  struct dirent *de;
  bool found = false;
  while (d && !found && (de = readdir(d))) {
    pid_t q = (pid_t)strtol(de->d_name, NULL, 10);
    char p[64];
    snprintf(p, sizeof p, "/proc/%d/ns/pid", (int)q);
    found = q > 0 && runproc_ppid(q) == init && stat(p, ret) == 0;
  }
  if (d)
    closedir(d);
  return found;
}

/* The container's own pid namespace into *ret (its nsfs inode): from the
 * init's /proc; for a caller that may not look there (the init of a
 * rootless container is not dumpable), from a child of the init, else the
 * init's answer on ns.sock (which a stopped init does not give). 0 when it
 * has none (ours), or it cannot be known. */
static int runproc_container_pidns(const runproc_container *c, struct stat *ret) {
  char p[64];
  struct stat self;
  snprintf(p, sizeof p, "/proc/%d/ns/pid", (int)c->pid);
  if (stat(p, ret) < 0) {
    int fds[SB_NS_COUNT];
    if (errno != EACCES && errno != EPERM)
      return 0;
    if (!runproc_child_pidns(c->pid, ret)) {
      if (runproc_container_nsfds(c, fds, NULL) < 0)
        return 0;
      int r = fds[SB_NS_PID] >= 0 ? fstat(fds[SB_NS_PID], ret) : -1;
      for (int t = 0; t < SB_NS_COUNT; t++)
        if (fds[t] >= 0)
          close(fds[t]);
      if (r < 0)
        return 0;
    }
  }
  if (stat("/proc/self/ns/pid", &self) < 0)
    return 0;
  return ret->st_ino != self.st_ino || ret->st_dev != self.st_dev;
}

/* Whether pid is in the pid namespace ns: its /proc/PID/ns/pid, or, when we
 * may not look at it (not dumpable: a fork of a rootless container's init
 * before its exec), being a child of the namespace's init. */
static bool runproc_in_pidns(pid_t pid, const struct stat *ns, pid_t init) {
  char p[64];
  struct stat st;
  snprintf(p, sizeof p, "/proc/%d/ns/pid", (int)pid);
  if (stat(p, &st) == 0)
    return st.st_dev == ns->st_dev && st.st_ino == ns->st_ino;
  return (errno == EACCES || errno == EPERM) && runproc_ppid(pid) == init;
}

/* Each process of the container's own pid namespace but its init (none
 * without one) to fn; the root's /proc, as far as the caller may see
 * (everything for root, every process of a rootless container for its
 * maker: after their exec they are dumpable and in its user namespace). */
static void runproc_pidns_each(const runproc_container *c, void (*fn)(pid_t, void *), void *arg) {
  struct stat ns;
  if (!runproc_container_pidns(c, &ns))
    return;
  DIR *d = opendir("/proc");
  struct dirent *de;
  while (d && (de = readdir(d))) {
    pid_t q = (pid_t)strtol(de->d_name, NULL, 10);
    if (q > 0 && q != c->pid && runproc_in_pidns(q, &ns, c->pid))
      fn(q, arg);
  }
  if (d)
    closedir(d);
}

static void runproc_pid_signal(pid_t pid, void *arg) { kill(pid, *(int *)arg); }

int runproc_container_signal(const runproc_container *c, int sig, bool all, rr_err *e) {
  _cleanup_close_ int pidfd = runproc_container_pidfd(c);
  if (pidfd < 0)
    return rr_err_set(e, RR_FAILED_PRECONDITION, "container \"%s\" is not running", c->id);
  if (all) /* every process of its own pid namespace (the init's when it has one) */
    runproc_pidns_each(c, runproc_pid_signal, &sig);
  cg_job *cg;
  if (all && sig == SIGKILL && c->cgroup && *c->cgroup &&
      cg_path_open(RUNPROC_CGROUP_ROOT, c->cgroup, &cg, NULL) == 0) {
    cg_job_kill(cg, NULL); /* also what left the pid namespace's view */
    cg_job_free(cg);
  }
  /* --all KILL through the cgroup may have killed the init already */
  if (syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0 && !(all && errno == ESRCH))
    return rr_err_sys(e, RR_FAILED_PRECONDITION, errno, "cannot signal container \"%s\"", c->id);
  return 0;
}

int runproc_container_kill_wait(const runproc_container *c, rr_err *e) {
  _cleanup_close_ int pidfd = runproc_container_pidfd(c);
  if (pidfd < 0)
    return 0;
  if (runproc_container_signal(c, SIGKILL, true, e) < 0)
    return runproc_pid_alive(c->pid, c->start_ticks) ? -1 : 0;
  struct pollfd pf = {.fd = pidfd, .events = POLLIN};
  for (int i = 0; i < 50; i++) {
    int n = poll(&pf, 1, 100);
    if (n > 0 || !runproc_pid_alive(c->pid, c->start_ticks))
      return 0;
  }
  return rr_err_set(e, RR_DEADLINE_EXCEEDED, "container \"%s\" did not die after SIGKILL", c->id);
}

int runproc_container_cgroup_remove(const runproc_container *c, rr_err *e) {
  if (!c->cgroup || !*c->cgroup)
    return 0;
  cg_job *cg;
  rr_err oe = {0};
  if (cg_path_open(RUNPROC_CGROUP_ROOT, c->cgroup, &cg, &oe) < 0) {
    if (oe.code == RR_NOT_FOUND)
      return 0;
    *e = oe;
    return -1;
  }
  if (cg_job_destroy(cg, e) < 0)
    return rr_err_wrap(e, "container \"%s\"", c->id);
  return 0;
}

int runproc_container_cgroup(const runproc_container *c, cg_job **ret, rr_err *e) {
  if (!c->cgroup || !*c->cgroup)
    return rr_err_set(e, RR_FAILED_PRECONDITION,
                      "container \"%s\" has no cgroup (its config sets no linux.cgroupsPath)",
                      c->id);
  if (cg_path_open(RUNPROC_CGROUP_ROOT, c->cgroup, ret, e) < 0)
    return rr_err_wrap(e, "container \"%s\"", c->id);
  return 0;
}

typedef struct runproc_pid_list {
  int *pids;
  size_t n;
} runproc_pid_list;

static void runproc_pid_add(pid_t pid, void *arg) {
  runproc_pid_list *l = arg;
  int *grown = realloc(l->pids, (l->n + 1) * sizeof *l->pids);
  if (!grown)
    return;
  l->pids = grown;
  l->pids[l->n++] = pid;
}

int runproc_container_pids(const runproc_container *c, int **ret, size_t *ret_n, rr_err *e) {
  cg_job *cg;
  if (c->cgroup && *c->cgroup && cg_path_open(RUNPROC_CGROUP_ROOT, c->cgroup, &cg, NULL) == 0) {
    int r = cg_job_pids(cg, ret, ret_n, e);
    cg_job_free(cg);
    return r;
  }
  runproc_pid_list l = {.pids = malloc(sizeof(int))};
  if (!l.pids)
    return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, ENOMEM, "pids of \"%s\"", c->id);
  l.pids[l.n++] = c->pid;
  runproc_pidns_each(c, runproc_pid_add, &l);
  *ret = l.pids;
  *ret_n = l.n;
  return 0;
}

void runproc_container_remove_leftover(runproc_ctx *ctx, const char *id) {
  if (runproc_id_check(id, NULL) < 0)
    return;
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/%s", ctx->root, id);
  _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  /* a create in progress holds the lock until state.json is there */
  if (fd < 0 || runproc_dir_lock(fd, id, NULL) < 0 || faccessat(fd, "state.json", F_OK, 0) == 0)
    return;
  int dfd = dup(fd);
  DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
  struct dirent *de;
  while (d && (de = readdir(d)))
    if (de->d_type != DT_DIR)
      unlinkat(fd, de->d_name, 0);
  if (d)
    closedir(d);
  else if (dfd >= 0)
    close(dfd);
  rmdir(dir);
}
