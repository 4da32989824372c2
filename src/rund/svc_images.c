/* runrpc.v1.Images: the image store over gRPC. An upload is written to
 * images/uploads as its chunks arrive (never held in memory); once the
 * client half-closes, `rund image import` runs on it as a child (unpacking
 * is slow: it never runs on the event loop), and its result is the answer.
 * Import and Remove need an admin; List and Inspect any caller. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "images/images.h"
#include "jobs/request.h"
#include "rund.h"
#include "runrpc/v1/images.pb-c.h"

#define IMAGES_PATH(m) "/runrpc.v1.Images/" m

static rund_ctx *call_ctx(rpc_call *c) { return rpc_call_method_data(c); }

static int images_need_caller(rpc_call *c, rr_err *e) {
  authz_identity id = {0};
  int r = rund_call_identity(c, &id, e);
  authz_identity_clear(&id);
  return r;
}

int images_need_admin(rpc_call *c, const char *what, rr_err *e) {
  authz_identity id = {0};
  if (rund_call_identity(c, &id, e) < 0)
    return -1;
  bool admin = id.admin;
  authz_identity_clear(&id);
  if (!admin)
    return rr_err_set(e, RR_PERMISSION_DENIED,
                      "%s images needs an admin (rund --admin; root or rund's own uid on the "
                      "unix socket)",
                      what);
  return 0;
}

void image_msg_clear(image_msg *m) {
  free(m->names);
  free(m->layers);
  free(m->layer_ptrs);
  json_object_put(m->rec);
  memset(m, 0, sizeof *m);
}

int image_msg_from(const img_record *r, image_msg *m, rr_err *e) {
  memset(m, 0, sizeof *m);
  runrpc__v1__image__init(&m->img);
  m->rec = json_tokener_parse(r->json);
  if (!m->rec)
    return rr_err_set(e, RR_DATA_LOSS, "image record %s is unreadable", r->id);
  json_object *names = json_object_object_get(m->rec, "names");
  json_object *layers = json_object_object_get(m->rec, "layers");
  size_t nn = names ? json_object_array_length(names) : 0;
  size_t nl = layers ? json_object_array_length(layers) : 0;
  m->names = calloc(nn + 1, sizeof *m->names);
  m->layers = calloc(nl + 1, sizeof *m->layers);
  m->layer_ptrs = calloc(nl + 1, sizeof *m->layer_ptrs);
  if (!m->names || !m->layers || !m->layer_ptrs) {
    image_msg_clear(m);
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  }
  for (size_t i = 0; i < nn; i++)
    m->names[i] = (char *)json_object_get_string(json_object_array_get_idx(names, i));
  for (size_t i = 0; i < nl; i++) {
    json_object *l = json_object_array_get_idx(layers, i), *sz;
    runrpc__v1__layer__init(&m->layers[i]);
    json_object *d = json_object_object_get(l, "digest");
    m->layers[i].digest = (char *)(d ? json_object_get_string(d) : "");
    if (json_object_object_get_ex(l, "size", &sz) && json_object_get_int64(sz) > 0) {
      m->layers[i].size = (uint64_t)json_object_get_int64(sz);
      m->img.size += m->layers[i].size;
    }
    m->layer_ptrs[i] = &m->layers[i];
  }
  json_object *v;
  /* from the record, not r: the message outlives r */
  m->img.id =
      (char *)(json_object_object_get_ex(m->rec, "id", &v) ? json_object_get_string(v) : "");
  m->img.names = m->names;
  m->img.n_names = nn;
  m->img.layers = m->layer_ptrs;
  m->img.n_layers = nl;
  m->img.created =
      (char *)(json_object_object_get_ex(m->rec, "created", &v) ? json_object_get_string(v) : "");
  m->img.format =
      (char *)(json_object_object_get_ex(m->rec, "format", &v) ? json_object_get_string(v) : "");
  m->img.config_json = (char *)(json_object_object_get_ex(m->rec, "config", &v)
                                    ? json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN)
                                    : "{}");
  return 0;
}

static void plain_on_close(rpc_call *c, rpc_close_reason reason) {}

static int ref_arg(const ProtobufCBinaryData *b, char **ret, rr_err *e) {
  if (request_string_dup(b->data, b->len, "ref", ret, e) < 0)
    return -1;
  if (!**ret) {
    free(*ret);
    *ret = NULL;
    return rr_err_set(e, RR_INVALID_ARGUMENT, "ref is empty: want NAME[:TAG] or sha256:HEX");
  }
  return 0;
}

static void on_inspect(rpc_call *c, ProtobufCMessage *msg) {
  Rundwire__ImageRefRequest *req = (Rundwire__ImageRefRequest *)msg;
  rr_err e = {0};
  _cleanup_free_ char *ref = NULL;
  img_record r = {0};
  image_msg m = {0};
  if (images_need_caller(c, &e) < 0 || ref_arg(&req->ref, &ref, &e) < 0 ||
      img_store_find(call_ctx(c)->images, ref, &r, &e) < 0 || image_msg_from(&r, &m, &e) < 0) {
    rund_call_fail(c, &e);
  } else {
    Runrpc__V1__ImageInspectResponse resp = RUNRPC__V1__IMAGE_INSPECT_RESPONSE__INIT;
    resp.image = &m.img;
    if (rpc_call_send(c, &resp.base, &e) < 0)
      rund_call_fail(c, &e);
    else
      rpc_call_finish(c, RR_OK, NULL);
  }
  image_msg_clear(&m);
  free(r.json);
  protobuf_c_message_free_unpacked(msg, NULL);
}

static void on_list(rpc_call *c, ProtobufCMessage *msg) {
  rr_err e = {0};
  img_record *recs = NULL;
  size_t n = 0, made = 0;
  image_msg *ms = NULL;
  Runrpc__V1__Image **ptrs = NULL;
  if (images_need_caller(c, &e) < 0 || img_store_list(call_ctx(c)->images, &recs, &n, &e) < 0)
    goto fail;
  ms = calloc(n + 1, sizeof *ms);
  ptrs = calloc(n + 1, sizeof *ptrs);
  if (!ms || !ptrs) {
    rr_err_set(&e, RR_RESOURCE_EXHAUSTED, "out of memory");
    goto fail;
  }
  for (; made < n; made++) {
    if (image_msg_from(&recs[made], &ms[made], &e) < 0)
      goto fail;
    ptrs[made] = &ms[made].img;
  }
  Runrpc__V1__ImageListResponse resp = RUNRPC__V1__IMAGE_LIST_RESPONSE__INIT;
  resp.images = ptrs;
  resp.n_images = n;
  if (rpc_call_send(c, &resp.base, &e) < 0)
    goto fail;
  rpc_call_finish(c, RR_OK, NULL);
  goto out;
fail:
  rund_call_fail(c, &e);
out:
  for (size_t i = 0; i < made; i++)
    image_msg_clear(&ms[i]);
  free(ms);
  free(ptrs);
  img_records_free(recs, n);
  protobuf_c_message_free_unpacked(msg, NULL);
}

/* Collect what no image uses, in a child (removing a big layer takes time);
 * the reaper reaps it. A fork running img_store_gc, not `rund image gc`:
 * exec'ing rund loads its 25 libraries again (5.2 ms of CPU, measured),
 * more than the whole collection of a command's released root. */
void images_gc_spawn(rund_ctx *ctx) {
  pid_t pid = fork();
  if (pid < 0) {
    rr_warn("cannot collect image layers", "error=\"%s\"", strerror(errno));
    return;
  }
  if (pid)
    return;
  /* the child: none of rund's fds (a peer must see its connection close
   * when rund closes it), a store of its own (its own lock fds) */
  syscall(SYS_close_range, 3u, ~0u, 0u);
  img_store *s;
  rr_err e = {0};
  unsigned removed;
  bool busy;
  if (img_store_open(ctx->state_dir, &s, &e) < 0 || img_store_gc(s, &removed, &busy, &e) < 0)
    _exit(1);
  _exit(0);
}

static void on_remove(rpc_call *c, ProtobufCMessage *msg) {
  Rundwire__ImageRefRequest *req = (Rundwire__ImageRefRequest *)msg;
  rr_err e = {0};
  _cleanup_free_ char *ref = NULL;
  char id[IMG_DIGEST_LEN + 1];
  bool removed;
  if (images_need_admin(c, "removing", &e) < 0 || ref_arg(&req->ref, &ref, &e) < 0 ||
      img_store_remove(call_ctx(c)->images, ref, id, &removed, &e) < 0) {
    rund_call_fail(c, &e);
  } else {
    char q[IMG_NAME_MAX + 8];
    rr_info("image removed", "ref=%s id=%s removed=%d", rr_log_quote(q, sizeof q, ref), id,
            removed);
    if (removed)
      images_gc_spawn(call_ctx(c));
    Runrpc__V1__ImageRemoveResponse resp = RUNRPC__V1__IMAGE_REMOVE_RESPONSE__INIT;
    resp.id = id;
    resp.removed = removed;
    if (rpc_call_send(c, &resp.base, &e) < 0)
      rund_call_fail(c, &e);
    else
      rpc_call_finish(c, RR_OK, NULL);
  }
  protobuf_c_message_free_unpacked(msg, NULL);
}

int svc_images_register(rpc_server *s, rund_ctx *ctx, rr_err *e) {
  const rpc_method methods[] = {
      {IMAGES_PATH("List"), &rundwire__image_list_request__descriptor, false, false, on_list, NULL,
       NULL, plain_on_close, ctx},
      {IMAGES_PATH("Inspect"), &rundwire__image_ref_request__descriptor, false, false, on_inspect,
       NULL, NULL, plain_on_close, ctx},
      {IMAGES_PATH("Remove"), &rundwire__image_ref_request__descriptor, false, false, on_remove,
       NULL, NULL, plain_on_close, ctx},
  };
  for (size_t i = 0; i < RR_ARRAY_SIZE(methods); i++)
    if (rpc_server_add_method(s, &methods[i], e) < 0)
      return -1;
  return svc_images_import_register(s, ctx, e);
}
