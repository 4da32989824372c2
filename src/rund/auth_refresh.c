/* The token file and the secret store follow their files: each call that
 * uses them first compares one stat with what was loaded, and reloads only
 * what changed (a token created or revoked, a secrets directory made or
 * replaced after start), so no signal or restart is needed. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "rund.h"

static rund_file_id file_id_of(const struct stat *st) {
  return (rund_file_id){.present = true,
                        .dev = st->st_dev,
                        .ino = st->st_ino,
                        .size = st->st_size,
                        .mtime = st->st_mtim,
                        .ctime = st->st_ctim};
}

static bool file_id_equal(const rund_file_id *a, const rund_file_id *b) {
  return a->present == b->present && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
         a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
         a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/* What path is now (present false when missing); -1 on another error. */
static int file_id_now(const char *path, rund_file_id *ret) {
  struct stat st;
  if (stat(path, &st) == 0) {
    *ret = file_id_of(&st);
    return 0;
  }
  *ret = (rund_file_id){.present = false};
  return errno == ENOENT ? 0 : -1;
}

int rund_tokens_reload(rund_ctx *ctx, rr_err *e) {
  token_file t = {0};
  rr_err le = {0};
  rund_file_id now;
  if (file_id_now(ctx->token_path, &now) == 0)
    ctx->token_seen = now;
  if (tokens_load(ctx->token_path, &t, &le) < 0) {
    if (!(ctx->token_optional && le.code == RR_NOT_FOUND)) {
      *e = le;
      return -1;
    }
  }
  tokens_free(&ctx->tokens);
  ctx->tokens = t;
  return 0;
}

void rund_tokens_refresh(rund_ctx *ctx) {
  rund_file_id now;
  if (file_id_now(ctx->token_path, &now) < 0 || file_id_equal(&now, &ctx->token_seen))
    return;
  rr_err e = {0};
  char q[RR_ERR_MSG_MAX + 16];
  size_t before = ctx->tokens.n;
  if (rund_tokens_reload(ctx, &e) < 0) {
    /* logged once per change of the file; the tokens loaded before stay */
    ctx->token_seen = now;
    rr_warn("token file not reloaded: the tokens loaded before stay", "error=%s",
            rr_log_quote(q, sizeof q, e.msg));
    return;
  }
  rr_info("token file reloaded", "tokens=%zu before=%zu", ctx->tokens.n, before);
}

int rund_secrets_refresh(rund_ctx *ctx, rr_err *e) {
  if (!ctx->secrets_path)
    return 0;
  rund_file_id now;
  if (file_id_now(ctx->secrets_path, &now) < 0)
    return rr_err_sys(e, RR_FAILED_PRECONDITION, errno, "cannot stat the secret store \"%s\"",
                      ctx->secrets_path);
  /* a directory's content changes are seen at each use: only a new
   * directory (made, replaced or removed) reopens the store */
  if (now.present == ctx->secrets_seen.present && now.dev == ctx->secrets_seen.dev &&
      now.ino == ctx->secrets_seen.ino && (ctx->secrets || !now.present))
    return 0;
  secrets_free(ctx->secrets);
  ctx->secrets = NULL;
  ctx->secrets_seen = (rund_file_id){.present = false};
  if (!now.present)
    return 0;
  char q[4200];
  if (secrets_open(ctx->secrets_path, &ctx->secrets, e) < 0)
    return -1;
  ctx->secrets_seen = now;
  rr_info("secret store opened", "secrets_dir=%s", rr_log_quote(q, sizeof q, ctx->secrets_path));
  return 0;
}
