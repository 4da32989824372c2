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

struct prepare_wait {
  prepared p;
  prepare_done_fn *done;
  void *data;
  rund_root_copy *copy;
};

/* What needs the image's root: its workdir, then the secrets. */
static int prepare_finish(prepared *p, rr_err *e) {
  p->nenv = p->req.nenv; /* the image's Env added */
  if (prepare_workdir_default(p, e) < 0 ||
      rund_env_resolve(p->ctx, &p->id, &p->req, &p->child_env, e) < 0)
    return -1;
  return 0;
}

static void prepare_copied(void *data, const rr_err *copy_err) {
  prepare_wait *w = data;
  rr_err e = *copy_err;
  if (!e.code)
    (void)(rund_image_root_finish(w->p.ctx, &w->p, &e) < 0 || prepare_finish(&w->p, &e) < 0);
  prepared p = w->p;
  prepare_done_fn *done = w->done;
  void *d = w->data;
  free(w);
  if (e.code) {
    prepare_free(&p);
    done(d, NULL, &e);
  } else
    done(d, &p, &e);
}

void prepare_wait_cancel(prepare_wait *w) {
  if (!w)
    return;
  rund_root_copy_cancel(w->copy); /* it releases the root once its child is gone */
  free(w->p.image_root);
  w->p.image_root = NULL;
  prepare_free(&w->p);
  free(w);
}

int prepare_request(rpc_call *c, const prepare_in *in, prepared *ret, prepare_done_fn *done,
                    void *data, prepare_wait **ret_wait, rr_err *e) {
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
      (rc = rund_image_root_prepare(ctx, ret, e)) < 0)
    goto fail;
  if (rc == 1) { /* a copy: made by a child while rund serves others */
    prepare_wait *w = malloc(sizeof *w);
    if (!w) {
      rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
      goto fail;
    }
    *w = (prepare_wait){.p = *ret, .done = done, .data = data};
    memset(ret, 0, sizeof *ret);
    if (rund_root_copy_start(ctx, w->p.image_root, prepare_copied, w, &w->copy, e) < 0) {
      prepare_free(&w->p);
      free(w);
      return -1;
    }
    *ret_wait = w;
    return 1;
  }
  if (prepare_finish(ret, e) < 0)
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
  json_object_put(p->image_rec);
  p->image_rec = NULL;
  secrets_values_free(p->child_env, p->nenv);
  p->child_env = NULL;
  job_request_free(&p->req);
  authz_identity_clear(&p->id);
}
