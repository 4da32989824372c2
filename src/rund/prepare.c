/* One preparation of a command request for Start and Exec: every field a
 * request carries is decoded and checked here, in one order (so both RPCs
 * refuse the same request with the same error), then the caller's identity,
 * quota, secrets and credentials. A new request field is added here once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "jobs/request.h"
#include "rund.h"

/* Tags of a Start (none for Exec) into r->tags. */
static int prepare_tags(const prepare_in *in, job_request *r, rr_err *e) {
  if (in->ntags > REQUEST_MAX_TAGS)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "tags has %zu entries (max %d)", in->ntags,
                      REQUEST_MAX_TAGS);
  r->tags = calloc(in->ntags + 1, sizeof *r->tags);
  if (!r->tags)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  for (size_t i = 0; i < in->ntags; i++, r->ntags++) {
    char field[32];
    snprintf(field, sizeof field, "tags[%zu]", i);
    if (request_string_dup(in->tags[i].data, in->tags[i].len, field, &r->tags[i], e) < 0)
      return -1;
  }
  return 0;
}

int prepare_decode(const prepare_in *in, job_request *ret, rr_err *e) {
  if (convert_command(in->command, ret, e) < 0)
    return -1;
  if (prepare_tags(in, ret, e) < 0)
    goto fail;
  ret->has_timeout = in->has_timeout;
  ret->timeout_ms = in->has_timeout ? in->timeout_ms : 0;
  ret->has_timeout_grace = in->has_timeout_grace;
  ret->timeout_grace_ms = in->has_timeout_grace ? in->timeout_grace_ms : 0;
  if (prepare_sandbox_decode(in->sandbox, in->policy, &ret->sandbox, e) < 0)
    goto fail;
  /* limits after the rest: an empty io device means the workdir's, once checked */
  if (job_request_validate(ret, e) < 0 || convert_limits(in->limits, ret, e) < 0)
    goto fail;
  return 0;
fail:
  job_request_free(ret);
  return -1;
}

/* No workdir: the home of the user the command runs as, as ssh starts in
 * it; host profile only (a sandbox's user namespace may not enter it). */
static int prepare_workdir_default(prepared *p, rr_err *e) {
  job_request *r = &p->req;
  const spawn_account *a = p->run_as ? &p->ids.account : spawn_account_self();
  struct stat st;
  if ((r->workdir && *r->workdir) || r->sandbox.profile != SB_PROFILE_HOST || r->sandbox.rootfs ||
      !a->known || a->home[0] != '/' || stat(a->home, &st) < 0 || !S_ISDIR(st.st_mode))
    return 0;
  free(r->workdir);
  if (!(r->workdir = strdup(a->home)))
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  return 0;
}

int prepare_request(rpc_call *c, const prepare_in *in, prepared *ret, rr_err *e) {
  rund_ctx *ctx = rpc_call_method_data(c);
  memset(ret, 0, sizeof *ret);
  ret->ctx = ctx;
  /* a command is a process and 4 fds: the caller's running-jobs quota and
   * the fd reserve hold for Start and Exec alike */
  if (rund_call_identity(c, &ret->id, e) < 0 || quota_start_check(ctx->quota, &ret->id, e) < 0)
    goto fail_id;
  image_command ic;
  if (rund_image_command(ctx, in, &ic, e) < 0) {
    rund_image_command_free(&ic);
    goto fail_id;
  }
  prepare_in with_command = *in;
  if (ic.used)
    with_command.command = &ic.command;
  int rc = prepare_decode(&with_command, &ret->req, e);
  rund_image_command_free(&ic); /* decoding copied the words */
  if (rc < 0)
    goto fail_id;
  /* secrets are read last, once everything else is known to be fine */
  ret->nenv = ret->req.nenv;
  if (rund_call_run_as(c, &ret->ids, &ret->run_as, e) < 0 ||
      prepare_sandbox_check(in->policy, ctx->cgroups != NULL, &ret->id,
                            ret->run_as ? &ret->ids : NULL, &ret->req, e) < 0 ||
      rund_image_root_prepare(ctx, ret, e) < 0)
    goto fail;
  ret->nenv = ret->req.nenv; /* the image's Env added */
  if (prepare_workdir_default(ret, e) < 0 ||
      rund_env_resolve(ctx, &ret->id, &ret->req, &ret->child_env, e) < 0)
    goto fail;
  return 0;
fail:
  prepare_free(ret);
  return -1;
fail_id:
  authz_identity_clear(&ret->id);
  return -1;
}

job_start_opts prepare_start_opts(const prepared *p, bool owned) {
  return (job_start_opts){.owner = owned ? (const char *const *)p->id.principals : NULL,
                          .nowner = owned ? p->id.n : 0,
                          .env_values = (const char *const *)p->child_env,
                          .ids = p->run_as ? &p->ids : NULL};
}

void prepare_free(prepared *p) {
  if (p->image_root) { /* not taken by a started command */
    rund_image_root_release(p->ctx, p->image_root);
    free(p->image_root);
    p->image_root = NULL;
  }
  secrets_values_free(p->child_env, p->nenv);
  p->child_env = NULL;
  job_request_free(&p->req);
  authz_identity_clear(&p->id);
}
