/* rund: the runrpc daemon. Flags, signals, wiring; the logic lives in
 * src/jobs and the service glue next to this file. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "auth/certs.h"
#include "common/log.h"
#include "common/util.h"
#include "rpc/services/health.h"
#include "rpc/services/reflection.h"
#include "images/images.h"
#include "jobs/exec_session.h"
#include "rund.h"
#include "rund/opts.h"
#include "sandbox/spawn.h"

/* The executable at start (not /proc/self/exe at the end: an upgrade puts a
 * new file at the same path, and that is the one to run). */
static char rund_exe[4096];
/* What the flags were read from, read again on SIGHUP (with the file). */
static struct {
  int argc;
  char **argv;
  rund_opts *opts;
} rund_cmdline;

static void rund_on_signal(loop *l, int fd, uint32_t events, void *data) {
  rund_ctx *ctx = data;
  struct signalfd_siginfo si;
  while (read(fd, &si, sizeof si) == (ssize_t)sizeof si) {
    char q[RR_ERR_MSG_MAX + 16];
    if (si.ssi_signo == SIGHUP) {
      rr_err e = {0};
      rund_sd_reloading();
      if (rund_config_reload(ctx, rund_cmdline.argc, rund_cmdline.argv, rund_cmdline.opts, &e) < 0)
        rr_error("config not reloaded: the old one stays", "error=%s",
                 rr_log_quote(q, sizeof q, e.msg));
      else
        rr_info(
            "config reloaded", "file=%s",
            rr_log_quote(q, sizeof q, rund_cmdline.opts->config ? rund_cmdline.opts->config : ""));
      /* reopened even when unchanged: logrotate renamed the old file */
      if (rund_audit_apply(ctx, rund_cmdline.opts->audit_log, &e) < 0)
        rr_warn("audit log not reopened: the old one stays", "error=%s",
                rr_log_quote(q, sizeof q, e.msg));
      if (rund_tokens_reload(ctx, &e) < 0)
        rr_warn("token file not reloaded", "error=%s", rr_log_quote(q, sizeof q, e.msg));
      else
        rr_info("token file reloaded", "tokens=%zu", ctx->tokens.n);
      rund_sd_notify("READY=1");
      continue;
    }
    if (si.ssi_signo == SIGUSR2) {
      if (!*rund_exe) {
        rr_warn("cannot restart in place: own executable unknown", NULL);
        continue;
      }
      ctx->reexec = true;
      rund_sd_reloading(); /* the new image says READY=1 once it listens */
      rr_info("restarting in place", "exe=%s", rr_log_quote(q, sizeof q, rund_exe));
      loop_stop(l);
      continue;
    }
    rund_sd_notify("STOPPING=1");
    rr_info("shutting down", "signal=%s",
            rr_log_quote(q, sizeof q, sigabbrev_np((int)si.ssi_signo)));
    loop_stop(l);
  }
}

/* The loop's watchdog: a turn over RUND_STALL_MS is logged with the source
 * that took longest, at most once per RUND_STALL_LOG_EVERY_MS (the rest
 * counted in the next line). */
#define RUND_STALL_MS 100
#define RUND_STALL_LOG_EVERY_MS 10000
static void rund_on_stall(void *data, const char *source, uint64_t source_ms, uint64_t turn_ms) {
  static uint64_t last_ms, suppressed;
  uint64_t now = loop_now_ms(data);
  if (last_ms && now - last_ms < RUND_STALL_LOG_EVERY_MS) {
    suppressed++;
    return;
  }
  last_ms = now;
  rr_warn("event loop stalled",
          "turn_ms=%llu source=\"%s\" source_ms=%llu longest_turn_ms=%llu "
          "stalls_not_logged=%llu",
          (unsigned long long)turn_ms, source, (unsigned long long)source_ms,
          (unsigned long long)(loop_longest_turn_us(data) / 1000u), (unsigned long long)suppressed);
  suppressed = 0;
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
  if (argc > 1 && !strcmp(argv[1], "certs"))
    return rund_cmd_certs(argc - 1, argv + 1);
  if (argc > 1 && !strcmp(argv[1], "tokens"))
    return rund_cmd_tokens(argc - 1, argv + 1);
  if (argc > 1 && !strcmp(argv[1], "secrets"))
    return rund_cmd_secrets(argc - 1, argv + 1);
  if (argc > 1 && !strcmp(argv[1], "image"))
    return rund_cmd_image(argc - 1, argv + 1);
  if (argc > 1 && !strcmp(argv[1], "execute"))
    return rund_seed_execute(argc - 1, argv + 1);
  int oargc = argc;
  char **oargv = argv;
  if (argc > 1 && !strcmp(argv[1], "serve")) {
    int src = rund_seed_serve_args(argc, argv, &oargc, &oargv);
    if (src)
      return src;
  }
  rund_opts o;
  int rc = rund_opts_parse(oargc, oargv, &o);
  if (rc) {
    rund_seed_args_free(oargv, argv);
    return rc < 0 ? 0 : rc;
  }
  rund_cmdline.argc = oargc;
  rund_cmdline.argv = oargv;
  rund_cmdline.opts = &o;
  rr_log_set_level(o.log_level);
  if (o.config) {
    char qc[4200];
    rr_info("config", "file=%s keys=%zu", rr_log_quote(qc, sizeof qc, o.config), o.nowned);
  }
  rund_sd_init();
  signal(SIGPIPE, SIG_IGN);
  ssize_t n = readlink("/proc/self/exe", rund_exe, sizeof rund_exe - 1);
  rund_exe[n > 0 ? n : 0] = '\0';
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
  /* before anything opens an fd of its own */
  if (rund_sd_listen_fds(&ctx.sd_fds, &e) < 0) {
    rund_fail("cannot use the sockets from systemd", &e);
    rund_opts_free(&o);
    rund_seed_args_free(oargv, argv);
    return 1;
  }
  if (loop_new(&ctx.l, &e) < 0) {
    rund_fail("cannot start", &e);
    rund_opts_free(&o);
    rund_seed_args_free(oargv, argv);
    return 1;
  }
  loop_stall_set(ctx.l, RUND_STALL_MS, rund_on_stall, ctx.l);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGUSR2);
  sigprocmask(SIG_BLOCK, &set, NULL);
  if ((sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK)) < 0 ||
      loop_fd_add(ctx.l, sigfd, EPOLLIN, "signals", rund_on_signal, &ctx, &e) < 0) {
    if (sigfd < 0)
      rr_err_sys(&e, RR_INTERNAL, errno, "signalfd");
    rund_fail("cannot watch signals", &e);
    goto out;
  }
  if (rund_security_load(&ctx, &o, &e) < 0) {
    rund_fail("cannot start", &e);
    goto out;
  }
  if (reaper_new(&ctx.reaper, ctx.l, true, &e) < 0) {
    rund_fail("cannot supervise children", &e);
    goto out;
  }
  if (rund_cgroups_open(&ctx, &o, &e) < 0) {
    rund_fail("cannot start", &e);
    goto out;
  }
  static char waiter[4096];
  if (rund_waiter_find(rund_exe, waiter, sizeof waiter) < 0)
    rr_warn("rund-waiter not found next to rund: jobs that end while rund is down will be "
            "\"lost\"",
            NULL);
  job_table_config cfg = {.state_dir = o.state_dir,
                          .waiter = *waiter ? waiter : NULL,
                          .max_log_bytes = o.max_log_bytes,
                          .warn = rund_on_warn,
                          .no_sync = !o.fsync,
                          .retention_ms = o.retention_ms,
                          .cgroups = ctx.cgroups};
  if (job_table_new(&ctx.jobs, ctx.l, ctx.reaper, &cfg, &e) < 0) {
    rund_fail("cannot open the state dir", &e);
    goto out;
  }
  rund_cgroups_sweep(&ctx); /* what a crashed rund left behind */
  if (img_store_open(o.state_dir, &ctx.images, &e) < 0) {
    rund_fail("cannot open the image store", &e);
    goto out;
  }
  img_uploads_sweep(ctx.images); /* no upload outlives the rund receiving it */
  ctx.exe = rund_exe;
  ctx.state_dir = o.state_dir;
  ctx.image_roots = o.image_roots;
  rund_image_roots_adopt(&ctx);
  images_gc_spawn(&ctx); /* roots released by a rund that stopped before collecting */
  char q[4200];
  rr_info("state loaded", "state_dir=%s jobs=%zu max_log_bytes=%llu",
          rr_log_quote(q, sizeof q, o.state_dir), job_table_count(ctx.jobs),
          (unsigned long long)o.max_log_bytes);
  if (rund_quota_open(&ctx, &o, &e) < 0) {
    rund_fail("cannot start", &e);
    goto out;
  }
  ctx.sandbox = (rund_sandbox_policy){.default_profile = o.default_profile,
                                      .min_profile = o.min_profile,
                                      .bind_allow = o.bind_allow,
                                      .nbind_allow = o.nbind_allow};
  rr_info("sandbox", "default_profile=%s min_profile=%s bind_allow=%zu",
          sb_profile_name(o.default_profile), sb_profile_name(o.min_profile), o.nbind_allow);
  if (rpc_server_new(&ctx.server, ctx.l, NULL, &e) < 0 ||
      jobs_service_register(ctx.server, &ctx, &e) < 0 || reflection_register(ctx.server, &e) < 0 ||
      health_register(ctx.server, &h, &e) < 0) {
    rund_fail("cannot set up the gRPC server", &e);
    goto out;
  }
  if (rund_listen_all(&ctx, &o, &e) < 0) {
    rund_fail("cannot listen", &e);
    goto out;
  }
  if (o.metrics && rund_metrics_open(&ctx, o.metrics, &e) < 0) {
    rund_fail("cannot serve metrics", &e);
    goto out;
  }
  if (o.audit_log && rund_audit_apply(&ctx, o.audit_log, &e) < 0) {
    rund_fail("cannot write the audit log", &e);
    goto out;
  }
  rpc_server_set_call_end(ctx.server, rund_call_end, &ctx);
  rund_sd_notify("READY=1\nSTATUS=serving");
  rund_sd_watchdog_start(ctx.l);
  if (loop_run(ctx.l, &e) < 0) {
    rund_fail("event loop failed", &e);
    goto out;
  }
  rc = 0;
out:
  if (h)
    health_shutdown(h);
  if (ctx.server)
    rpc_server_shutdown(ctx.server);
  size_t running = 0;
  if (ctx.jobs) {
    job **v = NULL;
    if (job_table_list(ctx.jobs, JOB_RUNNING, NULL, &v, &running, NULL) == 0 && running)
      rr_info("leaving running jobs; the next rund adopts them", "running=%zu", running);
    free(v);
  }
  /* calls the shutdown cancelled end in here: still counted and audited */
  rpc_server_free(ctx.server);
  ctx.server = NULL;
  exec_sessions_lingering_free(); /* their cgroups: before the table flushes the releases */
  rund_audit_free(&ctx);
  rund_metrics_free(&ctx);
  health_free(h);
  /* unwatches the jobs: before the table goes */
  quota_free(ctx.quota);
  rund_root_copies_free();
  rund_image_roots_free();  /* unwatches the jobs: before the table goes */
  job_table_free(ctx.jobs); /* running jobs keep theirs; ended ones' are removed */
  cg_manager_free(ctx.cgroups);
  img_store_free(ctx.images);
  reaper_free(ctx.reaper);
  if (sigfd >= 0) {
    loop_fd_del(ctx.l, sigfd);
    close(sigfd);
  }
  loop_free(ctx.l);
  rund_security_free(&ctx);
  rund_opts_free(&o);
  rund_seed_args_free(oargv, argv);
  if (rc == 0 && ctx.reexec) {
    /* Same pid: the jobs left running stay our children, so the new image
     * adopts them with their exit status (after a crash it cannot). Every
     * fd is CLOEXEC; the signal mask carries over, as the new image wants. */
    rr_info("re-executing", "running_jobs=%zu", running);
    if (rund_sd_pass_on(&ctx.sd_fds) < 0)
      rr_error("cannot keep the sockets from systemd over the re-exec", "error=%s",
               strerror(errno));
    execv(rund_exe, argv);
    char qe[4200];
    rr_error("cannot re-execute", "exe=%s error=%s", rr_log_quote(qe, sizeof qe, rund_exe),
             strerror(errno));
    return 1;
  }
  if (rc == 0)
    rr_info("stopped", "running_jobs_left=%zu", running);
  return rc;
}
