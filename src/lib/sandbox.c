/* librunrpc: the sandbox part of Start and Exec requests. */
#include <string.h>

#include "lib.h"

int lib_sandbox_build(const runrpc_sandbox *in, const char *default_profile, lib_sandbox *out,
                      rr_err *e) {
  runrpc__v1__sandbox__init(&out->msg);
  const char *profile = in->profile && *in->profile ? in->profile : default_profile;
  if (in->nbinds > RUNRPC_MAX_BINDS)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "sandbox: %zu binds (at most %d)", in->nbinds,
                      RUNRPC_MAX_BINDS);
  if (in->nbinds && !in->binds)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "sandbox: nbinds is %zu but binds is NULL",
                      in->nbinds);
  if ((unsigned)in->net > RUNRPC_NET_HOST)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "sandbox: net %d is not a runrpc_net", (int)in->net);
  bool any = (profile && *profile) || (in->rootfs && *in->rootfs) || in->nbinds ||
             in->net != RUNRPC_NET_DEFAULT || (in->hostname && *in->hostname) || in->has_user ||
             (in->image && *in->image);
  if (!any)
    return 0;
  out->msg.profile = (char *)(profile ? profile : "");
  out->msg.rootfs = (char *)(in->rootfs ? in->rootfs : "");
  out->msg.image = (char *)(in->image ? in->image : "");
  out->msg.hostname = (char *)(in->hostname ? in->hostname : "");
  out->msg.net = (Runrpc__V1__Net)in->net;
  for (size_t i = 0; i < in->nbinds; i++) {
    const runrpc_bind *b = &in->binds[i];
    if (!b->source || !b->destination)
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "sandbox: binds[%zu]: source and destination are required", i);
    runrpc__v1__bind__init(&out->binds[i]);
    out->binds[i].source = (char *)b->source;
    out->binds[i].destination = (char *)b->destination;
    out->binds[i].readonly = b->readonly;
    out->bind_ptrs[i] = &out->binds[i];
  }
  out->msg.n_binds = in->nbinds;
  out->msg.binds = in->nbinds ? out->bind_ptrs : NULL;
  if (in->has_user) {
    runrpc__v1__user__init(&out->user);
    out->user.uid = in->uid;
    out->user.gid = in->gid;
    out->msg.user = &out->user;
  }
  return 1;
}
