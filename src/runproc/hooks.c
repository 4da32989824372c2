/* OCI hooks (config.json's "hooks"): each one is path, args, env, timeout;
 * run with the container's state JSON on stdin, in runproc's namespaces
 * or (createContainer, startContainer) in the container's: every
 * namespace of its process that is not ours, through a /proc/PID dir fd,
 * the pid namespace by a second fork. A hook that exits non-zero, is
 * killed or outlives its timeout fails the step, with its output. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "runproc.h"

#define HOOK_OUTPUT_MAX 1024
#define HOOK_MAX 256 /* hooks of one kind; args and env of one hook */

static const char *const hook_kinds[RUNPROC_HOOK_KINDS] = {
    "prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"};

/* An array of at most HOOK_MAX strings (absent: fine). */
static int hook_strings(json_object *h, const char *path, const char *key, rr_err *e) {
  json_object *a;
  if (!json_object_object_get_ex(h, key, &a) || json_object_is_type(a, json_type_null))
    return 0;
  if (!json_object_is_type(a, json_type_array) || json_object_array_length(a) > HOOK_MAX)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s.%s: must be an array of at most %d strings", path,
                      key, HOOK_MAX);
  for (size_t i = 0; i < json_object_array_length(a); i++) {
    json_object *v = json_object_array_get_idx(a, i);
    if (!json_object_is_type(v, json_type_string))
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s.%s[%zu]: must be a string", path, key, i);
    if (strcmp(key, "env") == 0 &&
        (!strchr(json_object_get_string(v), '=') || json_object_get_string(v)[0] == '='))
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s.env[%zu]: \"%.64s\" is not KEY=VALUE", path, i,
                        json_object_get_string(v));
  }
  return 0;
}

static int hook_check(json_object *h, const char *path, rr_err *e) {
  json_object *v;
  if (!json_object_is_type(h, json_type_object))
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: must be an object", path);
  if (!json_object_object_get_ex(h, "path", &v) || !json_object_is_type(v, json_type_string))
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s.path: required (a string)", path);
  const char *p = json_object_get_string(v);
  if (p[0] != '/' || strlen(p) >= 4096)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s.path: must be absolute, not \"%.64s\"", path, p);
  if (hook_strings(h, path, "args", e) < 0 || hook_strings(h, path, "env", e) < 0)
    return -1;
  if (json_object_object_get_ex(h, "timeout", &v) && !json_object_is_type(v, json_type_null) &&
      (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) <= 0 ||
       json_object_get_int64(v) > 86400))
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s.timeout: must be seconds in 1..86400", path);
  return 0;
}

int runproc_hooks_check(json_object *hooks, rr_err *e) {
  if (!hooks || json_object_is_type(hooks, json_type_null))
    return 0;
  if (!json_object_is_type(hooks, json_type_object))
    return rr_err_set(e, RR_INVALID_ARGUMENT, "hooks: must be an object");
  for (int k = 0; k < RUNPROC_HOOK_KINDS; k++) {
    json_object *a;
    if (!json_object_object_get_ex(hooks, hook_kinds[k], &a) ||
        json_object_is_type(a, json_type_null))
      continue;
    if (!json_object_is_type(a, json_type_array) || json_object_array_length(a) > HOOK_MAX)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "hooks.%s: must be an array of at most %d hooks",
                        hook_kinds[k], HOOK_MAX);
    for (size_t i = 0; i < json_object_array_length(a); i++) {
      char path[64];
      snprintf(path, sizeof path, "hooks.%s[%zu]", hook_kinds[k], i);
      if (hook_check(json_object_array_get_idx(a, i), path, e) < 0)
        return -1;
    }
  }
  return 0;
}

bool runproc_hooks_any(json_object *hooks, runproc_hook_kind kind) {
  json_object *a;
  return hooks && json_object_object_get_ex(hooks, hook_kinds[kind], &a) &&
         json_object_is_type(a, json_type_array) && json_object_array_length(a) > 0;
}

/* A NULL-ended vector of the strings of h[key] (first: fallback when
 * absent or empty); malloc'd, the strings are h's. */
static char **hook_vector(json_object *h, const char *key, const char *first) {
  json_object *a = NULL;
  size_t n = json_object_object_get_ex(h, key, &a) && json_object_is_type(a, json_type_array)
                 ? json_object_array_length(a)
                 : 0;
  char **v = calloc(n + 2, sizeof *v);
  if (!v)
    return NULL;
  for (size_t i = 0; i < n; i++)
    v[i] = (char *)json_object_get_string(json_object_array_get_idx(a, i));
  if (!n && first)
    v[0] = (char *)first;
  return v;
}

/* /proc/PID/ns files of the namespaces hooks join, user first, pid second. */
static const char *const ns_files[RUNPROC_NS_FILES] = {
    "user", "pid_for_children", "mnt", "ipc", "uts", "net", "cgroup"};

/* The child: namespaces (user first), a second fork into a joined pid
 * namespace, stdio, exec. Never returns. */
static _Noreturn void hook_child(const char *path, char **argv, char **envp, const int *nsfds,
                                 int in, int out) {
  if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
    _exit(126);
  for (int t = 0; t < RUNPROC_NS_FILES; t++)
    if (nsfds[t] >= 0 && setns(nsfds[t], t ? 0 : CLONE_NEWUSER) < 0) {
      dprintf(2, "join the container's %s namespace: %s", ns_files[t], strerror(errno));
      _exit(126);
    }
  /* closed, not CLOEXEC: a middle process that never execs must not keep
   * the stdin pipe's write end (the hook would wait for its EOF) */
  syscall(SYS_close_range, 3u, ~0u, 0u);
  if (nsfds[1] >= 0) { /* the pid namespace: only children enter it */
    pid_t pid = fork();
    if (pid < 0)
      _exit(126);
    if (pid > 0) {
      int st;
      while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
          _exit(126);
      _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    }
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() == 1)
      _exit(126);
  }
  execve(path, argv, envp);
  dprintf(2, "exec \"%s\": %s", path, strerror(errno));
  _exit(127);
}

/* Feed in, read out, wait for pidfd up to timeout_s (0: none); the
 * status (waitpid's), -1 on timeout (killed). */
static int hook_wait(pid_t pid, int pidfd, int *in, const char *state, int out, char *buf,
                     size_t *len, long timeout_s) {
  size_t fed = 0, slen = strlen(state);
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  bool timed_out = false;
  for (;;) {
    struct pollfd pf[3] = {{.fd = pidfd, .events = POLLIN},
                           {.fd = out, .events = POLLIN},
                           {.fd = *in, .events = POLLOUT}};
    int wait_ms = -1;
    if (timeout_s > 0) {
      struct timespec now;
      clock_gettime(CLOCK_MONOTONIC, &now);
      long spent = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
      wait_ms = spent >= timeout_s * 1000 ? 0 : (int)(timeout_s * 1000 - spent);
    }
    int n = poll(pf, 3, wait_ms);
    if (n < 0 && errno != EINTR)
      break;
    if (n == 0) {
      timed_out = true;
      kill(pid, SIGKILL);
      break;
    }
    if (pf[2].revents) {
      ssize_t w = write(*in, state + fed, slen - fed);
      if (w > 0)
        fed += (size_t)w;
      else if (w < 0 && errno != EINTR && errno != EAGAIN)
        fed = slen;      /* the hook does not read its stdin */
      if (fed == slen) { /* EOF: the whole state was given */
        close(*in);
        *in = -1;
      }
    }
    if (pf[1].revents) {
      char chunk[512];
      ssize_t r = read(out, chunk, sizeof chunk);
      if (r > 0) {
        size_t take = (size_t)r < HOOK_OUTPUT_MAX - *len ? (size_t)r : HOOK_OUTPUT_MAX - *len;
        memcpy(buf + *len, chunk, take);
        *len += take;
      } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
        out = -1;
      }
    }
    if (pf[0].revents)
      break;
  }
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
    ;
  for (ssize_t r; out >= 0 && *len < HOOK_OUTPUT_MAX &&
                  (r = read(out, buf + *len, HOOK_OUTPUT_MAX - *len)) > 0;)
    *len += (size_t)r; /* what is left in the pipe */
  return timed_out ? -1 : st;
}

/* The hook's output as one line for a message. */
static const char *hook_output(char *buf, size_t len) {
  buf[len] = '\0';
  while (len && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
    buf[--len] = '\0';
  for (char *p = buf; *p; p++)
    if (*p == '\n' || *p == '\r' || *p == '\t')
      *p = ' ';
  return buf;
}

static int hook_run(json_object *h, const char *what, const char *state, const int *nsfds,
                    rr_err *e) {
  json_object *v;
  json_object_object_get_ex(h, "path", &v);
  const char *path = json_object_get_string(v);
  long timeout = json_object_object_get_ex(h, "timeout", &v) ? (long)json_object_get_int64(v) : 0;
  _cleanup_free_ char **argv = hook_vector(h, "args", path);
  _cleanup_free_ char **envp = hook_vector(h, "env", NULL);
  int in[2] = {-1, -1}, out[2] = {-1, -1};
  if (!argv || !envp)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "%s: out of memory", what);
  if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
    int err = errno;
    for (int i = 0; i < 2; i++)
      if (in[i] >= 0)
        close(in[i]);
    return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, err, "%s: pipe", what);
  }
  fcntl(in[1], F_SETFL, O_NONBLOCK);
  fcntl(out[0], F_SETFL, O_NONBLOCK); /* a daemon of the hook may keep it open */
  pid_t pid = fork();
  if (pid == 0)
    hook_child(path, argv, envp, nsfds, in[0], out[1]);
  int err = errno;
  close(in[0]);
  close(out[1]);
  _cleanup_close_ int in_w = in[1], out_r = out[0];
  if (pid < 0)
    return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, err, "%s: fork", what);
  _cleanup_close_ int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  char buf[HOOK_OUTPUT_MAX + 1];
  size_t len = 0;
  int st = hook_wait(pid, pidfd, &in_w, state, out_r, buf, &len, timeout);
  if (st == -1)
    return rr_err_set(e, RR_DEADLINE_EXCEEDED, "%s: timed out after %ld s: %s", what, timeout,
                      hook_output(buf, len));
  if (WIFSIGNALED(st))
    return rr_err_set(e, RR_ABORTED, "%s: killed by signal %d: %s", what, WTERMSIG(st),
                      hook_output(buf, len));
  if (WEXITSTATUS(st) != 0)
    return rr_err_set(e, RR_ABORTED, "%s: exit status %d: %s", what, WEXITSTATUS(st),
                      hook_output(buf, len));
  return 0;
}

int runproc_hooks_run(json_object *hooks, runproc_hook_kind kind, json_object *state, pid_t ns_pid,
                      rr_err *e) {
  if (!runproc_hooks_any(hooks, kind))
    return 0;
  int nsfds[RUNPROC_NS_FILES];
  for (int t = 0; t < RUNPROC_NS_FILES; t++)
    nsfds[t] = -1;
  int rc = -1;
  for (int t = 0; ns_pid > 0 && t < RUNPROC_NS_FILES; t++) {
    char theirs[64], ours[64];
    struct stat a, b;
    snprintf(theirs, sizeof theirs, "/proc/%d/ns/%s", (int)ns_pid, ns_files[t]);
    snprintf(ours, sizeof ours, "/proc/self/ns/%s", ns_files[t]);
    if (stat(ours, &b) < 0 ||
        (stat(theirs, &a) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev))
      continue;
    if ((nsfds[t] = open(theirs, O_RDONLY | O_CLOEXEC)) < 0) {
      rr_err_sys(e, RR_FAILED_PRECONDITION, errno, "%s hooks: the container's %s namespace",
                 hook_kinds[kind], ns_files[t]);
      goto out;
    }
  }
  json_object_object_add(state, "status",
                         json_object_new_string(kind <= RUNPROC_HOOK_CREATE_CONTAINER  ? "creating"
                                                : kind == RUNPROC_HOOK_START_CONTAINER ? "created"
                                                : kind == RUNPROC_HOOK_POSTSTART       ? "running"
                                                                                 : "stopped"));
  const char *text = json_object_to_json_string_ext(state, JSON_C_TO_STRING_PLAIN |
                                                               JSON_C_TO_STRING_NOSLASHESCAPE);
  json_object *a;
  json_object_object_get_ex(hooks, hook_kinds[kind], &a);
  for (size_t i = 0; i < json_object_array_length(a); i++) {
    char what[4200];
    json_object *h = json_object_array_get_idx(a, i), *p;
    json_object_object_get_ex(h, "path", &p);
    snprintf(what, sizeof what, "%s hook \"%s\" (hooks.%s[%zu])", hook_kinds[kind],
             json_object_get_string(p), hook_kinds[kind], i);
    if (hook_run(h, what, text, nsfds, e) < 0)
      goto out;
  }
  rc = 0;
out:
  for (int t = 0; t < RUNPROC_NS_FILES; t++)
    if (nsfds[t] >= 0)
      close(nsfds[t]);
  return rc;
}
