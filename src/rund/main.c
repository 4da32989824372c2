/* rund: the runrpc daemon. Flags, signals, wiring; the logic lives in
 * src/jobs and the service glue next to this file. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "jobs/spawn.h"
#include "rpc/services/health.h"
#include "rpc/services/reflection.h"
#include "rund.h"

#define RUND_DEFAULT_ADDR "unix:/run/runrpc/rund.sock"
#define RUND_DEFAULT_STATE "/var/lib/runrpc"
#define RUND_MAX_LISTEN 16

typedef struct rund_opts {
  const char *listen[RUND_MAX_LISTEN];
  size_t nlisten;
  const char *state_dir;
  uint64_t max_log_bytes;
  int log_level;
  bool fsync;
} rund_opts;

static void rund_usage(FILE *f) {
  fprintf(f, "Usage: rund [--listen ADDR]... [--state-dir DIR] [--max-log-bytes N]\n"
             "            [--log-level debug|info|warn|error] [--fsync] [--help] [--version]\n"
             "\n"
             "Run commands for remote clients over gRPC (service runrpc.v1.Jobs).\n"
             "\n"
             "  --listen ADDR        unix:PATH or HOST:PORT ([::1]:PORT for IPv6); repeatable;\n"
             "                       default " RUND_DEFAULT_ADDR "\n"
             "                       (plain TCP only on loopback addresses)\n"
             "  --state-dir DIR      jobs and their logs; default " RUND_DEFAULT_STATE "\n"
             "  --max-log-bytes N    per job and stream, oldest bytes dropped past it;\n"
             "                       suffixes K, M, G; default 1G\n"
             "  --log-level L        debug, info, warn or error; default info\n"
             "  --fsync              fsync job state on every change (survives power\n"
             "                       loss; slower); without it state survives rund\n"
             "                       crashes and restarts (atomic renames)\n"
             "  --help, --version\n");
}

static int rund_parse_size(const char *s, uint64_t *ret) {
  char *end;
  errno = 0;
  if (!*s || *s == '-')
    return -1;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s)
    return -1;
  unsigned shift = 0;
  if (*end) {
    switch (*end) {
    case 'k':
    case 'K':
      shift = 10;
      break;
    case 'm':
    case 'M':
      shift = 20;
      break;
    case 'g':
    case 'G':
      shift = 30;
      break;
    default:
      return -1;
    }
    if (end[1] && !((end[1] == 'i' || end[1] == 'B') &&
                    (!end[2] || (end[1] == 'i' && end[2] == 'B' && !end[3]))))
      return -1;
  }
  if (v > (UINT64_MAX >> shift))
    return -1;
  *ret = (uint64_t)v << shift;
  return 0;
}

static int rund_bad_flag(const char *fmt, const char *arg) {
  fprintf(stderr, "rund: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, " (see rund --help)\n");
  return 2;
}

/* 0 to run, else the exit code. */
static int rund_parse_args(int argc, char **argv, rund_opts *o) {
  static const struct option longs[] = {{"listen", required_argument, NULL, 'l'},
                                        {"state-dir", required_argument, NULL, 's'},
                                        {"max-log-bytes", required_argument, NULL, 'm'},
                                        {"log-level", required_argument, NULL, 'v'},
                                        {"fsync", no_argument, NULL, 'f'},
                                        {"help", no_argument, NULL, 'h'},
                                        {"version", no_argument, NULL, 'V'},
                                        {NULL, 0, NULL, 0}};
  *o = (rund_opts){
      .state_dir = RUND_DEFAULT_STATE, .max_log_bytes = 1ull << 30, .log_level = RR_LOG_INFO};
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, ":h", longs, NULL)) != -1) {
    switch (c) {
    case 'l':
      if (o->nlisten == RUND_MAX_LISTEN)
        return rund_bad_flag("too many --listen (max 16)%s", "");
      if (!*optarg)
        return rund_bad_flag("--listen needs an address%s", "");
      o->listen[o->nlisten++] = optarg;
      break;
    case 's':
      if (!*optarg)
        return rund_bad_flag("--state-dir needs a directory%s", "");
      o->state_dir = optarg;
      break;
    case 'm':
      if (rund_parse_size(optarg, &o->max_log_bytes) < 0 || o->max_log_bytes == 0)
        return rund_bad_flag("--max-log-bytes \"%s\" is not a size (e.g. 65536, 64K, 1G)", optarg);
      break;
    case 'v':
      if (!strcmp(optarg, "debug"))
        o->log_level = RR_LOG_DEBUG;
      else if (!strcmp(optarg, "info"))
        o->log_level = RR_LOG_INFO;
      else if (!strcmp(optarg, "warn"))
        o->log_level = RR_LOG_WARN;
      else if (!strcmp(optarg, "error"))
        o->log_level = RR_LOG_ERROR;
      else
        return rund_bad_flag("--log-level \"%s\" is not debug, info, warn or error", optarg);
      break;
    case 'f':
      o->fsync = true;
      break;
    case 'h':
      rund_usage(stdout);
      return -1;
    case 'V':
      printf("rund %s\n", RUND_VERSION);
      return -1;
    case ':':
      return rund_bad_flag("%s needs a value", argv[optind - 1]);
    default:
      return rund_bad_flag("unknown flag \"%s\"", argv[optind - 1]);
    }
  }
  if (optind < argc)
    return rund_bad_flag("unexpected argument \"%s\"", argv[optind]);
  if (!o->nlisten)
    o->listen[o->nlisten++] = RUND_DEFAULT_ADDR;
  return 0;
}

static void rund_on_signal(loop *l, int fd, uint32_t events, void *data) {
  struct signalfd_siginfo si;
  while (read(fd, &si, sizeof si) == (ssize_t)sizeof si) {
    char q[64];
    rr_info("shutting down", "signal=%s",
            rr_log_quote(q, sizeof q, sigabbrev_np((int)si.ssi_signo)));
    loop_stop(l);
  }
}

static void rund_on_warn(void *data, const char *msg) {
  char q[RR_ERR_MSG_MAX + 160];
  rr_warn("job store", "detail=%s", rr_log_quote(q, sizeof q, msg));
}

static int rund_fail(const char *what, const rr_err *e) {
  char q[RR_ERR_MSG_MAX + 16];
  rr_error(what, "error=%s code=%s", rr_log_quote(q, sizeof q, e->msg), rr_code_name(e->code));
  return 1;
}

int main(int argc, char **argv) {
  rund_opts o;
  int rc = rund_parse_args(argc, argv, &o);
  if (rc)
    return rc < 0 ? 0 : rc;
  rr_log_set_level(o.log_level);
  signal(SIGPIPE, SIG_IGN);
  /* many connections and jobs need many fds; jobs get the usual limit back */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rlim_t soft = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
      spawn_set_child_nofile(soft);
  }
  rr_err e = {0};
  rund_ctx ctx = {0};
  health *h = NULL;
  int sigfd = -1;
  rc = 1;
  if (loop_new(&ctx.l, &e) < 0) {
    rund_fail("cannot start", &e);
    return 1;
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigprocmask(SIG_BLOCK, &set, NULL);
  if ((sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK)) < 0 ||
      loop_fd_add(ctx.l, sigfd, EPOLLIN, rund_on_signal, NULL, &e) < 0) {
    if (sigfd < 0)
      rr_err_sys(&e, RR_INTERNAL, errno, "signalfd");
    rund_fail("cannot watch signals", &e);
    goto out;
  }
  if (reaper_new(&ctx.reaper, ctx.l, true, &e) < 0) {
    rund_fail("cannot supervise children", &e);
    goto out;
  }
  job_table_config cfg = {.state_dir = o.state_dir,
                          .max_log_bytes = o.max_log_bytes,
                          .warn = rund_on_warn,
                          .no_sync = !o.fsync};
  if (job_table_new(&ctx.jobs, ctx.l, ctx.reaper, &cfg, &e) < 0) {
    rund_fail("cannot open the state dir", &e);
    goto out;
  }
  char q[4200];
  rr_info("state loaded", "state_dir=%s jobs=%zu max_log_bytes=%llu",
          rr_log_quote(q, sizeof q, o.state_dir), job_table_count(ctx.jobs),
          (unsigned long long)o.max_log_bytes);
  if (grpc_server_new(&ctx.server, ctx.l, NULL, &e) < 0 ||
      jobs_service_register(ctx.server, &ctx, &e) < 0 || reflection_register(ctx.server, &e) < 0 ||
      health_register(ctx.server, &h, &e) < 0) {
    rund_fail("cannot set up the gRPC server", &e);
    goto out;
  }
  for (size_t i = 0; i < o.nlisten; i++) {
    if (grpc_server_listen(ctx.server, o.listen[i], &e) < 0) {
      rund_fail("cannot listen", &e);
      goto out;
    }
    rr_info("listening", "addr=%s", rr_log_quote(q, sizeof q, o.listen[i]));
  }
  if (loop_run(ctx.l, &e) < 0) {
    rund_fail("event loop failed", &e);
    goto out;
  }
  rc = 0;
out:
  if (h)
    health_shutdown(h);
  if (ctx.server)
    grpc_server_shutdown(ctx.server);
  size_t running = 0;
  if (ctx.jobs) {
    job **v = NULL;
    if (job_table_list(ctx.jobs, JOB_RUNNING, NULL, &v, &running, NULL) == 0 && running)
      rr_info("leaving running jobs; the next rund adopts them", "running=%zu", running);
    free(v);
  }
  grpc_server_free(ctx.server);
  health_free(h);
  job_table_free(ctx.jobs);
  reaper_free(ctx.reaper);
  if (sigfd >= 0) {
    loop_fd_del(ctx.l, sigfd);
    close(sigfd);
  }
  loop_free(ctx.l);
  if (rc == 0)
    rr_info("stopped", "running_jobs_left=%zu", running);
  return rc;
}
