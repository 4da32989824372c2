/* runrpc.v1.Jobs: every method, registered from its own file. */
#include "rund.h"

int jobs_service_register(grpc_server *s, rund_ctx *ctx, rr_err *e) {
  if (svc_jobs_register(s, ctx, e) < 0 || svc_logs_register(s, ctx, e) < 0 ||
      svc_exec_register(s, ctx, e) < 0)
    return rr_err_wrap(e, "cannot register runrpc.v1.Jobs");
  return 0;
}
