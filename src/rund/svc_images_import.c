/* Images.Import: a client stream of chunks written to images/uploads as
 * they arrive (HTTP/2 flow control holds a fast sender back; rund's memory
 * holds one message at most), then `rund image import --json` run on the
 * file as a child, watched on the loop: its stdout (the ids) and stderr
 * (the error, "rund: image: CODE: message") become the answer. A client
 * that goes away kills the child; the upload is removed in every case. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "images/images.h"
#include "jobs/request.h"
#include "rund.h"

#define IMPORTS_MAX 4                 /* uploads and imports at once */
#define IMPORT_OUTPUT_MAX (64u << 10) /* kept of the child's stdout and stderr each */

typedef struct import_output {
  int fd; /* our end, -1 at EOF */
  char buf[IMPORT_OUTPUT_MAX + 1];
  size_t len;
} import_output;

typedef struct import_call {
  rpc_call *c;
  rund_ctx *ctx;
  int fd; /* the upload being written; -1 once closed */
  char path[4096];
  char name[IMG_NAME_MAX]; /* "" = the archive's */
  img_format format;
  uint64_t bytes;
  reaper_watch *child; /* NULL: none or ended */
  bool child_ended;
  bool counted;     /* in ctx->imports */
  int child_status; /* its exit code, -1 killed */
  import_output out, err;
} import_call;

static void import_remove_upload(import_call *ic) {
  rr_closep(&ic->fd);
  ic->fd = -1;
  if (*ic->path && unlink(ic->path) < 0 && errno != ENOENT)
    rr_warn("cannot remove an upload", "path=\"%s\" error=\"%s\"", ic->path, strerror(errno));
  *ic->path = 0;
}

static void import_output_close(import_call *ic, import_output *o) {
  if (o->fd < 0)
    return;
  loop_fd_del(rpc_call_loop(ic->c), o->fd);
  close(o->fd);
  o->fd = -1;
}

/* "rund: image: CODE: message" into e (the last such line). */
static void import_error_parse(import_call *ic, rr_err *e) {
  ic->err.buf[ic->err.len] = 0;
  const char *p = NULL, *q = ic->err.buf;
  while ((q = strstr(q, "rund: image: ")))
    p = q++;
  if (!p) {
    rr_err_set(e, RR_INTERNAL, "image import failed (exit %d)", ic->child_status);
    return;
  }
  p += strlen("rund: image: ");
  const char *colon = strstr(p, ": ");
  int code = RR_INTERNAL;
  for (int i = 1; colon && i <= RR_UNAUTHENTICATED; i++)
    if ((size_t)(colon - p) == strlen(rr_code_name(i)) && !strncmp(p, rr_code_name(i), colon - p))
      code = i;
  const char *msg = colon ? colon + 2 : p;
  size_t len = strcspn(msg, "\n");
  rr_err_set(e, code, "%.*s", (int)len, msg);
}

static int import_reply_ok(import_call *ic, rr_err *e) {
  ic->out.buf[ic->out.len] = 0;
  json_object *o = json_tokener_parse(ic->out.buf);
  json_object *ids = o ? json_object_object_get(o, "ids") : NULL, *v;
  size_t n = ids ? json_object_array_length(ids) : 0;
  int r = 0;
  image_msg *ms = calloc(n + 1, sizeof *ms);
  Runrpc__V1__Image **ptrs = calloc(n + 1, sizeof *ptrs);
  size_t made = 0;
  if (!o || !ids || !ms || !ptrs)
    r = rr_err_set(e, RR_INTERNAL, "image import: unexpected output");
  for (; r == 0 && made < n; made++) {
    img_record rec = {0};
    r = img_store_find(ic->ctx->images,
                       json_object_get_string(json_object_array_get_idx(ids, made)), &rec, e);
    if (r == 0)
      r = image_msg_from(&rec, &ms[made], e);
    free(rec.json);
    ptrs[made] = &ms[made].img;
  }
  if (r == 0) {
    Runrpc__V1__ImportResponse resp = RUNRPC__V1__IMPORT_RESPONSE__INIT;
    resp.images = ptrs;
    resp.n_images = n;
    if (json_object_object_get_ex(o, "layers_unpacked", &v))
      resp.layers_unpacked = (uint64_t)json_object_get_int64(v);
    if (json_object_object_get_ex(o, "devices_skipped", &v))
      resp.devices_skipped = (uint32_t)json_object_get_int(v);
    r = rpc_call_send(ic->c, &resp.base, e);
  }
  for (size_t i = 0; i < made; i++)
    image_msg_clear(&ms[i]);
  free(ms);
  free(ptrs);
  json_object_put(o);
  return r;
}

/* The child ended and both its pipes are at EOF: answer. */
static void import_maybe_done(import_call *ic) {
  if (!ic->child_ended || ic->out.fd >= 0 || ic->err.fd >= 0)
    return;
  import_remove_upload(ic);
  rr_err e = {0};
  char q[IMG_NAME_MAX + 8];
  if (ic->child_status != 0) {
    import_error_parse(ic, &e);
    char qe[RR_ERR_MSG_MAX + 16];
    rr_warn("image import failed", "name=%s bytes=%llu error=%s",
            rr_log_quote(q, sizeof q, ic->name), (unsigned long long)ic->bytes,
            rr_log_quote(qe, sizeof qe, e.msg));
    rund_call_fail(ic->c, &e);
    return;
  }
  rr_info("image imported", "name=%s bytes=%llu", rr_log_quote(q, sizeof q, ic->name),
          (unsigned long long)ic->bytes);
  if (import_reply_ok(ic, &e) < 0)
    rund_call_fail(ic->c, &e);
  else
    rpc_call_finish(ic->c, RR_OK, NULL);
}

static void import_on_output(loop *l, int fd, uint32_t events, void *data) {
  import_call *ic = data;
  import_output *o = fd == ic->out.fd ? &ic->out : &ic->err;
  char buf[8192];
  ssize_t n = read(fd, buf, sizeof buf);
  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return;
  if (n <= 0) {
    import_output_close(ic, o);
    import_maybe_done(ic);
    return;
  }
  size_t keep = IMPORT_OUTPUT_MAX - o->len < (size_t)n ? IMPORT_OUTPUT_MAX - o->len : (size_t)n;
  memcpy(o->buf + o->len, buf, keep);
  o->len += keep;
}

static void import_on_exit(void *data, pid_t pid, const siginfo_t *si, const struct rusage *ru) {
  import_call *ic = data;
  ic->child = NULL;
  ic->child_ended = true;
  ic->child_status = si && si->si_code == CLD_EXITED ? si->si_status : -1;
  import_maybe_done(ic);
}

static int import_pipe(import_call *ic, import_output *o, int *child_end, rr_err *e) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0)
    return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, errno, "image import: pipe");
  if (fcntl(p[0], F_SETFL, O_NONBLOCK) < 0 ||
      loop_fd_add(rpc_call_loop(ic->c), p[0], EPOLLIN, "image import output", import_on_output, ic,
                  e) < 0) {
    close(p[0]);
    close(p[1]);
    return e->code ? -1 : rr_err_sys(e, RR_INTERNAL, errno, "image import: pipe");
  }
  o->fd = p[0];
  *child_end = p[1];
  return 0;
}

static int import_spawn(import_call *ic, rr_err *e) {
  int wout = -1, werr = -1;
  if (import_pipe(ic, &ic->out, &wout, e) < 0 || import_pipe(ic, &ic->err, &werr, e) < 0) {
    rr_closep(&wout);
    return -1;
  }
  const char *argv[12];
  size_t n = 0;
  argv[n++] = ic->ctx->exe;
  argv[n++] = "image";
  argv[n++] = "import";
  argv[n++] = ic->path;
  argv[n++] = "--json";
  argv[n++] = "--state-dir";
  argv[n++] = ic->ctx->state_dir;
  argv[n++] = "--format";
  argv[n++] = img_format_name(ic->format);
  if (*ic->name) {
    argv[n++] = "--name";
    argv[n++] = ic->name;
  }
  argv[n] = NULL;
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  sigset_t none;
  sigemptyset(&none);
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, wout, 1);
  posix_spawn_file_actions_adddup2(&fa, werr, 2);
  posix_spawnattr_init(&at);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
  pid_t pid;
  int r = posix_spawn(&pid, ic->ctx->exe, &fa, &at, (char *const *)argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  close(wout);
  close(werr);
  if (r != 0)
    return rr_err_sys(e, RR_INTERNAL, r, "cannot run \"%s image import\"", ic->ctx->exe);
  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (pidfd < 0 ||
      reaper_watch_add(ic->ctx->reaper, pid, pidfd, import_on_exit, ic, &ic->child, e) < 0) {
    kill(pid, SIGKILL);
    return e->code ? -1 : rr_err_sys(e, RR_INTERNAL, errno, "pidfd_open");
  }
  return 0;
}

static int import_begin(import_call *ic, const Rundwire__ImportStart *st, rr_err *e) {
  _cleanup_free_ char *name = NULL, *format = NULL;
  bool is_id;
  if (images_need_admin(ic->c, "importing", e) < 0)
    return -1;
  if (!st || request_string_dup(st->name.data, st->name.len, "start.name", &name, e) < 0 ||
      request_string_dup(st->format.data, st->format.len, "start.format", &format, e) < 0)
    return st ? -1 : rr_err_set(e, RR_INVALID_ARGUMENT, "start is empty");
  if (*name && img_ref_parse(name, ic->name, &is_id, e) < 0)
    return -1;
  if (*name && is_id)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "image name \"%s\" is a digest: want NAME[:TAG]",
                      name);
  if (*format && (img_format_parse(format, &ic->format) < 0 || ic->format == IMG_FORMAT_OCI))
    return rr_err_set(e, RR_INVALID_ARGUMENT,
                      "unknown format \"%s\" (want auto, oci-archive, docker-archive or rootfs)",
                      format);
  if (ic->ctx->imports >= IMPORTS_MAX)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "%d image imports are running: try again later",
                      IMPORTS_MAX);
  if (img_upload_create(ic->ctx->images, ic->path, sizeof ic->path, &ic->fd, e) < 0)
    return -1;
  ic->ctx->imports++;
  ic->counted = true;
  return 0;
}

static int import_chunk(import_call *ic, const ProtobufCBinaryData *b, rr_err *e) {
  if (ic->fd < 0)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "a chunk after the end of the upload");
  if (rr_write_all(ic->fd, b->data, b->len) < 0) {
    int err = errno;
    import_remove_upload(ic);
    return rr_err_sys(e, err == ENOSPC || err == EDQUOT ? RR_RESOURCE_EXHAUSTED : RR_INTERNAL, err,
                      "cannot store the upload (%llu bytes received)",
                      (unsigned long long)ic->bytes);
  }
  ic->bytes += b->len;
  return 0;
}

static void import_on_message(rpc_call *c, ProtobufCMessage *msg) {
  Rundwire__ImportRequest *req = (Rundwire__ImportRequest *)msg;
  import_call *ic = rpc_call_data(c);
  rr_err e = {0};
  if (!ic) {
    ic = calloc(1, sizeof *ic);
    if (!ic) {
      rpc_call_finish(c, RR_RESOURCE_EXHAUSTED, "out of memory");
      goto out;
    }
    *ic = (import_call){.c = c, .ctx = rpc_call_method_data(c), .fd = -1};
    ic->out.fd = ic->err.fd = -1;
    rpc_call_set_data(c, ic);
    if (req->msg_case != RUNDWIRE__IMPORT_REQUEST__MSG_START)
      rr_err_set(&e, RR_INVALID_ARGUMENT, "the first ImportRequest must be start");
    else
      import_begin(ic, req->start, &e);
  } else if (req->msg_case == RUNDWIRE__IMPORT_REQUEST__MSG_CHUNK)
    import_chunk(ic, &req->chunk, &e);
  else if (req->msg_case == RUNDWIRE__IMPORT_REQUEST__MSG_START)
    rr_err_set(&e, RR_INVALID_ARGUMENT, "start sent twice on one Import stream");
  else
    rr_err_set(&e, RR_INVALID_ARGUMENT, "empty ImportRequest (set start or chunk)");
  if (e.code)
    rund_call_fail(c, &e);
out:
  protobuf_c_message_free_unpacked(msg, NULL);
}

static void import_on_half_close(rpc_call *c) {
  import_call *ic = rpc_call_data(c);
  rr_err e = {0};
  if (!ic || ic->fd < 0) {
    if (!ic)
      rpc_call_finish(c, RR_INVALID_ARGUMENT, "Import stream closed before a start message");
    return;
  }
  if (close(ic->fd) < 0) {
    ic->fd = -1;
    rr_err_sys(&e, RR_INTERNAL, errno, "cannot store the upload");
  }
  ic->fd = -1;
  if (e.code || import_spawn(ic, &e) < 0)
    rund_call_fail(c, &e);
}

static void import_on_close(rpc_call *c, rpc_close_reason reason) {
  import_call *ic = rpc_call_data(c);
  if (!ic)
    return;
  if (ic->child) { /* the client went away: the import stops, gc takes its leftovers */
    syscall(SYS_pidfd_send_signal, reaper_watch_pidfd(ic->child), SIGKILL, NULL, 0);
    reaper_watch_forget(ic->child);
  }
  import_output_close(ic, &ic->out);
  import_output_close(ic, &ic->err);
  import_remove_upload(ic);
  if (ic->counted)
    ic->ctx->imports--;
  free(ic);
}

int svc_images_import_register(rpc_server *s, rund_ctx *ctx, rr_err *e) {
  const rpc_method m = {"/runrpc.v1.Images/Import",
                        &rundwire__import_request__descriptor,
                        true,
                        false,
                        import_on_message,
                        import_on_half_close,
                        NULL,
                        import_on_close,
                        ctx};
  return rpc_server_add_method(s, &m, e);
}
