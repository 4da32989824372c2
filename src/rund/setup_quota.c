/* rund's quotas from its flags: per-identity limits and the fd reserve. */
#include <stdio.h>

#include "common/log.h"
#include "rund.h"
#include "rund/opts.h"

int rund_quota_open(rund_ctx *ctx, const rund_opts *o, rr_err *e) {
  quota_config cfg = {.running = o->quota_running,
                      .jobs = o->quota_jobs,
                      .followers = o->quota_followers,
                      .fd_reserve = o->fd_reserve};
  if (quota_new(&ctx->quota, &cfg, e) < 0)
    return rr_err_wrap(e, "--fd-reserve");
  if (quota_jobs_load(ctx->quota, ctx->jobs, e) < 0)
    return rr_err_wrap(e, "counting the jobs of each identity");
  const quota_config *c = quota_config_get(ctx->quota);
  rr_info("quotas", "running=%u jobs=%u followers=%u fd_limit=%llu fd_reserve=%llu", c->running,
          c->jobs, c->followers, (unsigned long long)c->fd_limit,
          (unsigned long long)c->fd_reserve);
  /* a running job holds one fd (its pidfd); Logs streams and connections
   * take theirs from the same room */
  uint64_t open_now = quota_fds_open(ctx->quota), usable = c->fd_limit - c->fd_reserve;
  uint64_t room = usable > open_now ? usable - open_now : 0;
  char msg[128];
  snprintf(msg, sizeof msg, "fd limit %llu: room for about %llu running jobs",
           (unsigned long long)c->fd_limit, (unsigned long long)room);
  rr_info(msg, "fd_limit=%llu fd_reserve=%llu open_fds=%llu fds_per_running_job=1",
          (unsigned long long)c->fd_limit, (unsigned long long)c->fd_reserve,
          (unsigned long long)open_now);
  if (c->fd_limit < 4096)
    rr_warn("file descriptor limit is low: few jobs can run at once", "fd_limit=%llu",
            (unsigned long long)c->fd_limit);
  return 0;
}
