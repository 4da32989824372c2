/* runproc's edge: errors as one line on stderr and in the log (text, or the
 * json lines containerd reads), times, signals, atomic files, ids. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "runproc.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

char *runproc_rfc3339(char *buf, size_t size) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char day[32];
  strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf, size, "%s.%09ldZ", day, ts.tv_nsec);
  return buf;
}

static void runproc_log(runproc_ctx *ctx, const char *level, const char *msg) {
  if (!ctx->log_path)
    return;
  _cleanup_close_ int fd =
      open(ctx->log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0644);
  if (fd < 0)
    return;
  char now[48];
  runproc_rfc3339(now, sizeof now);
  if (ctx->log_json) {
    json_object *o = json_object_new_object();
    json_object_object_add(o, "level", json_object_new_string(level));
    json_object_object_add(o, "msg", json_object_new_string(msg));
    json_object_object_add(o, "time", json_object_new_string(now));
    const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
    dprintf(fd, "%s\n", s);
    json_object_put(o);
  } else {
    dprintf(fd, "time=\"%s\" level=%s msg=\"%s\"\n", now, level, msg);
  }
}

static int runproc_vfail(runproc_ctx *ctx, const char *fmt, va_list ap) {
  char msg[1024];
  vsnprintf(msg, sizeof msg, fmt, ap);
  char line[1200];
  if (ctx->verb)
    snprintf(line, sizeof line, "%s: %s", ctx->verb, msg);
  else
    snprintf(line, sizeof line, "%s", msg);
  fprintf(stderr, "runproc: %s\n", line);
  runproc_log(ctx, "error", line);
  return 1;
}

int runproc_fail(runproc_ctx *ctx, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  runproc_vfail(ctx, fmt, ap);
  va_end(ap);
  return 1;
}

int runproc_fail_err(runproc_ctx *ctx, const rr_err *e) { return runproc_fail(ctx, "%s", e->msg); }

void runproc_warn(runproc_ctx *ctx, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  runproc_log(ctx, "warning", msg);
}

void runproc_debug(runproc_ctx *ctx, const char *fmt, ...) {
  if (!ctx->debug)
    return;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (ctx->log_path)
    runproc_log(ctx, "debug", msg);
  else
    fprintf(stderr, "runproc: debug: %s\n", msg);
}

int runproc_signal_parse(const char *s) {
  if (!s || !*s)
    return -1;
  char *end;
  errno = 0;
  long n = strtol(s, &end, 10);
  if (!*end && !errno)
    return n > 0 && n < NSIG ? (int)n : -1;
  const char *name = strncasecmp(s, "SIG", 3) == 0 ? s + 3 : s;
  for (int sig = 1; sig < SIGRTMIN; sig++) {
    const char *abbrev = sigabbrev_np(sig);
    if (abbrev && strcasecmp(abbrev, name) == 0)
      return sig;
  }
  return -1;
}

int runproc_write_atomic(const char *path, const char *data, size_t len, rr_err *e) {
  char tmp[4200];
  if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof tmp)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "path too long: \"%s\"", path);
  _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot write \"%s\"", tmp);
  /* no fsync: the state describes processes, which a power loss ends too
   * (runc's is not synced either); the rename keeps it whole if we crash */
  if (rr_write_all(fd, data, len) < 0) {
    int err = errno;
    unlink(tmp);
    return rr_err_sys(e, RR_INTERNAL, err, "cannot write \"%s\"", tmp);
  }
  if (rename(tmp, path) < 0) {
    int err = errno;
    unlink(tmp);
    return rr_err_sys(e, RR_INTERNAL, err, "cannot rename \"%s\" to \"%s\"", tmp, path);
  }
  return 0;
}

int runproc_id_check(const char *id, rr_err *e) {
  size_t n = strlen(id);
  bool ok = n > 0 && n <= 1024 && strcmp(id, ".") != 0 && strcmp(id, "..") != 0;
  for (size_t i = 0; ok && i < n; i++)
    ok = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.+-", id[i]);
  if (!ok)
    return rr_err_set(e, RR_INVALID_ARGUMENT,
                      "invalid container id \"%.64s\" (want letters, digits, _ . + -)", id);
  return 0;
}

/* "--name", "-name" (urfave/cli takes both), or "-s". */
static const char *runproc_opt_rest(const char *arg, const char *name, char s) {
  if (s && arg[0] == '-' && arg[1] == s && (!arg[2] || arg[2] == '='))
    return arg + 2;
  if (arg[0] != '-')
    return NULL;
  arg += arg[1] == '-' ? 2 : 1;
  size_t n = strlen(name);
  if (strncmp(arg, name, n) != 0 || (arg[n] && arg[n] != '='))
    return NULL;
  return arg + n;
}

bool runproc_flag(const char *arg, const char *name, char s) {
  const char *rest = runproc_opt_rest(arg, name, s);
  return rest && (!*rest || strcmp(rest, "=true") == 0);
}

int runproc_arg_id(runproc_ctx *ctx, const char *arg, const char **id) {
  if (arg[0] == '-' && arg[1])
    return runproc_fail(ctx, "unknown option \"%s\"", arg);
  if (*id)
    return runproc_fail(ctx, "unexpected argument \"%s\"", arg);
  *id = arg;
  return 0;
}

int runproc_opt(int argc, char **argv, int *i, const char *name, char s, const char **ret) {
  const char *rest = runproc_opt_rest(argv[*i], name, s);
  if (!rest)
    return 0;
  if (*rest == '=') {
    *ret = rest + 1;
    return 1;
  }
  if (*i + 1 >= argc)
    return -1;
  *ret = argv[++*i];
  return 1;
}

int runproc_write_pid_file(const char *path, pid_t pid, rr_err *e) {
  char buf[24];
  int n = snprintf(buf, sizeof buf, "%d", (int)pid);
  return runproc_write_atomic(path, buf, (size_t)n, e);
}

void runproc_kill_reap(int pidfd) {
  syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
  siginfo_t si;
  while (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED) < 0 && errno == EINTR)
    ;
}

int runproc_console_connect(bool terminal, const char *path, rr_err *e) {
  if (terminal && !path)
    return rr_err_set(e, RR_INVALID_ARGUMENT,
                      "process.terminal needs --console-socket (runproc does not lend its own "
                      "terminal)");
  if (!terminal && path)
    return rr_err_set(e, RR_INVALID_ARGUMENT,
                      "--console-socket \"%s\" without a terminal (process.terminal, --tty)", path);
  if (!terminal)
    return -2;
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof a.sun_path)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "--console-socket \"%s\": longer than %zu bytes",
                      path, sizeof a.sun_path - 1);
  memcpy(a.sun_path, path, strlen(path) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, errno, "--console-socket: socket");
  while (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    if (errno == EINTR)
      continue;
    int err = errno;
    close(fd);
    return rr_err_sys(e, RR_FAILED_PRECONDITION, err, "--console-socket \"%s\"", path);
  }
  return fd;
}
