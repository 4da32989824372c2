/* runrpc_image_*: the Images service. An import streams the file in 1 MiB
 * chunks (a send blocks while the call's queue is full, so memory stays
 * bounded whatever the file's size) and waits for rund's answer, which
 * comes once the import is done (no deadline: a large image takes long). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "lib.h"
#include "runrpc/v1/images.pb-c.h"

#define LIB_IMAGES_PATH(m) "/runrpc.v1.Images/" m
#define LIB_IMPORT_CHUNK (1u << 20)

static int image_copy(const Runrpc__V1__Image *in, runrpc_image *out, rr_err *e) {
  memset(out, 0, sizeof *out);
  snprintf(out->id, sizeof out->id, "%s", in->id ? in->id : "");
  out->names = calloc(in->n_names + 1, sizeof *out->names);
  out->layers = calloc(in->n_layers + 1, sizeof *out->layers);
  out->created = strdup(in->created ? in->created : "");
  out->format = strdup(in->format ? in->format : "");
  out->config_json = strdup(in->config_json ? in->config_json : "{}");
  if (!out->names || !out->layers || !out->created || !out->format || !out->config_json)
    goto oom;
  for (; out->nnames < in->n_names; out->nnames++)
    if (!(out->names[out->nnames] = strdup(in->names[out->nnames])))
      goto oom;
  out->nlayers = in->n_layers;
  for (size_t i = 0; i < in->n_layers; i++) {
    snprintf(out->layers[i].digest, sizeof out->layers[i].digest, "%s",
             in->layers[i]->digest ? in->layers[i]->digest : "");
    out->layers[i].size = in->layers[i]->size;
  }
  out->size = in->size;
  return 0;
oom:
  runrpc_image_free(out);
  return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
}

static int images_copy(Runrpc__V1__Image **in, size_t n, runrpc_image **ret, size_t *ret_n,
                       rr_err *e) {
  runrpc_image *v = calloc(n + 1, sizeof *v);
  if (!v)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  for (size_t i = 0; i < n; i++)
    if (image_copy(in[i], &v[i], e) < 0) {
      runrpc_image_list_free(v, i);
      return -1;
    }
  *ret = v;
  *ret_n = n;
  return 0;
}

RR_EXPORT void runrpc_image_free(runrpc_image *img) {
  if (!img)
    return;
  for (size_t i = 0; img->names && i < img->nnames; i++)
    free(img->names[i]);
  free(img->names);
  free(img->layers);
  free(img->created);
  free(img->format);
  free(img->config_json);
  memset(img, 0, sizeof *img);
}

RR_EXPORT void runrpc_image_list_free(runrpc_image *images, size_t count) {
  for (size_t i = 0; images && i < count; i++)
    runrpc_image_free(&images[i]);
  free(images);
}

static int import_send(rpc_client_call *call, const Runrpc__V1__ImportRequest *m, rr_err *e) {
  _cleanup_free_ uint8_t *buf = NULL;
  size_t len;
  if (lib_pack(&m->base, &buf, &len, e) < 0)
    return -1;
  return rpc_client_call_send(call, buf, len, e);
}

static int import_stream(rpc_client_call *call, const runrpc_image_import_request *req, rr_err *e) {
  Runrpc__V1__ImportStart st = RUNRPC__V1__IMPORT_START__INIT;
  st.name = (char *)(req->name ? req->name : "");
  st.format = (char *)(req->format ? req->format : "");
  Runrpc__V1__ImportRequest m = RUNRPC__V1__IMPORT_REQUEST__INIT;
  m.msg_case = RUNRPC__V1__IMPORT_REQUEST__MSG_START;
  m.start = &st;
  if (import_send(call, &m, e) < 0)
    return -1;
  _cleanup_free_ uint8_t *chunk = malloc(LIB_IMPORT_CHUNK);
  if (!chunk)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  for (;;) {
    ssize_t n = rr_read(req->fd, chunk, LIB_IMPORT_CHUNK);
    if (n < 0)
      return rr_err_sys(e, RR_INVALID_ARGUMENT, errno, "cannot read the image file");
    if (n == 0)
      break;
    m.msg_case = RUNRPC__V1__IMPORT_REQUEST__MSG_CHUNK;
    m.chunk.data = chunk;
    m.chunk.len = (size_t)n;
    if (import_send(call, &m, e) < 0)
      return -1;
  }
  return rpc_client_call_close_send(call, e);
}

RR_EXPORT int runrpc_image_import(runrpc_client *c, const runrpc_image_import_request *req,
                                  runrpc_image **ret_images, size_t *ret_count, runrpc_error *err) {
  rr_err e = {0};
  if (!c || !req || req->fd < 0 || !ret_images || !ret_count)
    return lib_err_out(
        &(rr_err){RR_INVALID_ARGUMENT, 0, "runrpc_image_import: NULL argument or no fd"}, err);
  rpc_client_call *call = NULL;
  if (rpc_client_call_start(c->grpc, LIB_IMAGES_PATH("Import"), req->deadline_ms, &call, &e) < 0)
    return lib_err_out(&e, err);
  uint8_t *resp = NULL;
  size_t len = 0;
  int r = import_stream(call, req, &e);
  /* on a failed send the server's status says more than ours */
  int got = rpc_client_call_recv(call, &resp, &len, r < 0 ? &(rr_err){0} : &e);
  if (r < 0 && got < 0 && rpc_client_call_done(call))
    rpc_client_call_recv(call, &resp, &len, &e);
  rpc_client_call_free(call);
  if (got != RPC_CLIENT_CALL_MESSAGE) {
    free(resp);
    if (!e.code)
      rr_err_set(&e, RR_INTERNAL, "Import: no response");
    return lib_err_out(&e, err);
  }
  Runrpc__V1__ImportResponse *m = (Runrpc__V1__ImportResponse *)protobuf_c_message_unpack(
      &runrpc__v1__import_response__descriptor, NULL, len, resp);
  free(resp);
  if (!m)
    return lib_err_out(&(rr_err){RR_INTERNAL, 0, "Import: cannot decode the response"}, err);
  r = images_copy(m->images, m->n_images, ret_images, ret_count, &e);
  protobuf_c_message_free_unpacked(&m->base, NULL);
  return r < 0 ? lib_err_out(&e, err) : 0;
}

RR_EXPORT int runrpc_image_list(runrpc_client *c, runrpc_image **ret_images, size_t *ret_count,
                                runrpc_error *err) {
  rr_err e = {0};
  if (!c || !ret_images || !ret_count)
    return lib_err_out(&(rr_err){RR_INVALID_ARGUMENT, 0, "runrpc_image_list: NULL argument"}, err);
  Runrpc__V1__ImageListRequest req = RUNRPC__V1__IMAGE_LIST_REQUEST__INIT;
  ProtobufCMessage *resp;
  if (lib_unary(c, LIB_IMAGES_PATH("List"), &req.base, &runrpc__v1__image_list_response__descriptor,
                c->call_timeout_ms, &resp, &e) < 0)
    return lib_err_out(&e, err);
  Runrpc__V1__ImageListResponse *m = (Runrpc__V1__ImageListResponse *)resp;
  int r = images_copy(m->images, m->n_images, ret_images, ret_count, &e);
  protobuf_c_message_free_unpacked(resp, NULL);
  return r < 0 ? lib_err_out(&e, err) : 0;
}

RR_EXPORT int runrpc_image_inspect(runrpc_client *c, const char *ref, runrpc_image *ret_image,
                                   runrpc_error *err) {
  rr_err e = {0};
  if (!c || !ref || !ret_image)
    return lib_err_out(&(rr_err){RR_INVALID_ARGUMENT, 0, "runrpc_image_inspect: NULL argument"},
                       err);
  Runrpc__V1__ImageInspectRequest req = RUNRPC__V1__IMAGE_INSPECT_REQUEST__INIT;
  req.ref = (char *)ref;
  ProtobufCMessage *resp;
  if (lib_unary(c, LIB_IMAGES_PATH("Inspect"), &req.base,
                &runrpc__v1__image_inspect_response__descriptor, c->call_timeout_ms, &resp, &e) < 0)
    return lib_err_out(&e, err);
  Runrpc__V1__ImageInspectResponse *m = (Runrpc__V1__ImageInspectResponse *)resp;
  int r = m->image ? image_copy(m->image, ret_image, &e)
                   : rr_err_set(&e, RR_INTERNAL, "Inspect: no image in the response");
  protobuf_c_message_free_unpacked(resp, NULL);
  return r < 0 ? lib_err_out(&e, err) : 0;
}

RR_EXPORT int runrpc_image_remove(runrpc_client *c, const char *ref, bool *ret_removed,
                                  runrpc_error *err) {
  rr_err e = {0};
  if (!c || !ref)
    return lib_err_out(&(rr_err){RR_INVALID_ARGUMENT, 0, "runrpc_image_remove: NULL argument"},
                       err);
  Runrpc__V1__ImageRemoveRequest req = RUNRPC__V1__IMAGE_REMOVE_REQUEST__INIT;
  req.ref = (char *)ref;
  ProtobufCMessage *resp;
  if (lib_unary(c, LIB_IMAGES_PATH("Remove"), &req.base,
                &runrpc__v1__image_remove_response__descriptor, c->call_timeout_ms, &resp, &e) < 0)
    return lib_err_out(&e, err);
  if (ret_removed)
    *ret_removed = ((Runrpc__V1__ImageRemoveResponse *)resp)->removed;
  protobuf_c_message_free_unpacked(resp, NULL);
  return 0;
}
