/* Reflection core: one request in, one response out, no I/O. */
#include "reflection.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "descset.h"

static const char *str_or_empty(const char *s) { return s ? s : ""; }

__attribute__((format(printf, 3, 4))) static int answer_error(reflection_reply *out, int code,
                                                              const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(out->message, sizeof out->message, fmt, ap);
  va_end(ap);
  out->error.error_code = code;
  out->error.error_message = out->message;
  out->response.message_response_case =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
  out->response.error_response = &out->error;
  return 0;
}

static int corrupt(rr_err *e) {
  return rr_err_set(e, RR_INTERNAL, "reflection: embedded descriptor set is malformed");
}

static bool stream_sent(const reflection_stream *s, size_t i) {
  return s && i / 64 < s->words && (s->sent[i / 64] >> (i % 64)) & 1;
}

static int stream_mark(reflection_stream *s, size_t i, rr_err *e) {
  if (!s)
    return 0;
  if (i / 64 >= s->words) {
    size_t words = i / 64 + 1;
    uint64_t *n = realloc(s->sent, words * sizeof *n);
    if (!n)
      return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, ENOMEM, "reflection: cannot track sent files");
    memset(n + s->words, 0, (words - s->words) * sizeof *n);
    s->sent = n;
    s->words = words;
  }
  s->sent[i / 64] |= UINT64_C(1) << (i % 64);
  return 0;
}

/* Breadth-first walk over imports, started from queue[0]. */
typedef struct dep_walk {
  const descset *set;
  size_t *queue;
  size_t n_queued;
  bool *seen;
  int rc; /* DESCSET_MALFORMED when a dependency is not in the set */
} dep_walk;

static int dep_enqueue(descset_slice dep, void *data) {
  dep_walk *w = data;
  descset_file f;
  int rc = descset_find_file(w->set, (const char *)dep.ptr, dep.len, &f);
  if (rc < 0)
    return w->rc = DESCSET_MALFORMED; /* protoc --include_imports always has them */
  if (!w->seen[f.index]) {
    w->seen[f.index] = true;
    w->queue[w->n_queued++] = f.index;
  }
  return 0;
}

/* The file first, then its not-yet-sent transitive dependencies. */
static int answer_files(const descset *set, reflection_stream *stream, const descset_file *first,
                        reflection_reply *out, rr_err *e) {
  long n_files = descset_count(set);
  if (n_files <= 0)
    return corrupt(e);
  _cleanup_free_ size_t *queue = calloc((size_t)n_files, sizeof *queue);
  _cleanup_free_ bool *seen = calloc((size_t)n_files, sizeof *seen);
  out->file_data = calloc((size_t)n_files, sizeof *out->file_data);
  if (!queue || !seen || !out->file_data)
    return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, ENOMEM, "reflection: cannot build answer");
  dep_walk w = {set, queue, 1, seen, 0};
  queue[0] = first->index;
  seen[first->index] = true;
  size_t n_out = 0;
  for (size_t head = 0; head < w.n_queued; head++) {
    descset_file f;
    if (descset_file_at(set, queue[head], &f) < 0)
      return corrupt(e);
    if (head == 0 || !stream_sent(stream, f.index)) {
      out->file_data[n_out++] = (ProtobufCBinaryData){f.data.len, (uint8_t *)f.data.ptr};
      if (stream_mark(stream, f.index, e) < 0)
        return -1;
    }
    if (descset_file_deps(&f, dep_enqueue, &w) < 0 || w.rc < 0)
      return corrupt(e);
  }
  out->files.n_file_descriptor_proto = n_out;
  out->files.file_descriptor_proto = out->file_data;
  out->response.message_response_case =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
  out->response.file_descriptor_response = &out->files;
  return 0;
}

static int answer_list_services(const reflection_source *src, reflection_reply *out, rr_err *e) {
  size_t n = src->n_services;
  if (n > 0) {
    out->service_items = calloc(n, sizeof *out->service_items);
    out->service_ptrs = calloc(n, sizeof *out->service_ptrs);
    if (!out->service_items || !out->service_ptrs)
      return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, ENOMEM, "reflection: cannot list services");
  }
  for (size_t i = 0; i < n; i++) {
    out->service_items[i] =
        (Grpc__Reflection__V1__ServiceResponse)GRPC__REFLECTION__V1__SERVICE_RESPONSE__INIT;
    out->service_items[i].name = (char *)src->services[i];
    out->service_ptrs[i] = &out->service_items[i];
  }
  out->services.n_service = n;
  out->services.service = out->service_ptrs;
  out->response.message_response_case =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
  out->response.list_services_response = &out->services;
  return 0;
}

typedef struct extension_query {
  const char *type; /* without a leading '.' */
  size_t type_len;
  int32_t number;    /* file_containing_extension */
  descset_file file; /* its answer */
  int32_t *numbers;  /* all_extension_numbers_of_type; NULL: only count */
  size_t n_numbers, cap;
  bool collect;
} extension_query;

static int extension_visit(const descset_file *f, descset_slice extendee, int32_t number,
                           void *data) {
  extension_query *q = data;
  if (!descset_slice_eq(extendee, q->type, q->type_len))
    return 0;
  if (!q->collect) {
    if (number != q->number)
      return 0;
    q->file = *f;
    return 1;
  }
  if (q->numbers && q->n_numbers < q->cap)
    q->numbers[q->n_numbers] = number;
  q->n_numbers++;
  return 0;
}

static const char *strip_dot(const char *s) { return s[0] == '.' ? s + 1 : s; }

static int answer_extension(const descset *set, reflection_stream *stream,
                            const Grpc__Reflection__V1__ExtensionRequest *x, reflection_reply *out,
                            rr_err *e) {
  const char *type = x ? strip_dot(str_or_empty(x->containing_type)) : "";
  extension_query q = {
      .type = type, .type_len = strlen(type), .number = x ? x->extension_number : 0};
  int rc = descset_extensions(set, extension_visit, &q);
  if (rc < 0)
    return corrupt(e);
  if (rc == 0)
    return answer_error(out, RR_NOT_FOUND, "extension %d of \"%.200s\" not found", (int)q.number,
                        type);
  return answer_files(set, stream, &q.file, out, e);
}

static int answer_extension_numbers(const descset *set, const char *type_arg, reflection_reply *out,
                                    rr_err *e) {
  const char *type = strip_dot(type_arg);
  descset_file f;
  descset_kind kind = 0;
  int rc = descset_find_symbol(set, type, strlen(type), &f, &kind);
  if (rc == DESCSET_MALFORMED)
    return corrupt(e);
  if (rc < 0 || kind != DESCSET_MESSAGE)
    return answer_error(out, RR_NOT_FOUND, "message type \"%.200s\" not found", type);
  extension_query q = {.type = type, .type_len = strlen(type), .collect = true};
  if (descset_extensions(set, extension_visit, &q) < 0) /* first count them */
    return corrupt(e);
  if (q.n_numbers > 0) {
    out->numbers = calloc(q.n_numbers, sizeof *out->numbers);
    if (!out->numbers)
      return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, ENOMEM, "reflection: cannot list extensions");
    q = (extension_query){.type = type,
                          .type_len = strlen(type),
                          .numbers = out->numbers,
                          .cap = q.n_numbers,
                          .collect = true};
    if (descset_extensions(set, extension_visit, &q) < 0)
      return corrupt(e);
  }
  out->extensions.base_type_name = (char *)type;
  out->extensions.n_extension_number = q.n_numbers < q.cap ? q.n_numbers : q.cap;
  out->extensions.extension_number = out->numbers;
  out->response.message_response_case =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
  out->response.all_extension_numbers_response = &out->extensions;
  return 0;
}

static void reply_init(reflection_reply *out) {
  *out = (reflection_reply){
      .response = GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__INIT,
      .files = GRPC__REFLECTION__V1__FILE_DESCRIPTOR_RESPONSE__INIT,
      .extensions = GRPC__REFLECTION__V1__EXTENSION_NUMBER_RESPONSE__INIT,
      .services = GRPC__REFLECTION__V1__LIST_SERVICE_RESPONSE__INIT,
      .error = GRPC__REFLECTION__V1__ERROR_RESPONSE__INIT,
  };
}

int reflection_answer(const reflection_source *src, reflection_stream *stream,
                      const Grpc__Reflection__V1__ServerReflectionRequest *req,
                      reflection_reply *out, rr_err *e) {
  reply_init(out);
  out->response.valid_host = (char *)str_or_empty(req->host);
  out->response.original_request = (Grpc__Reflection__V1__ServerReflectionRequest *)req;
  descset set = {src->set, src->set_len};
  descset_file f;
  int rc = 0;
  switch (req->message_request_case) {
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
    rc = answer_list_services(src, out, e);
    break;
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME: {
    const char *name = str_or_empty(req->file_by_filename);
    int found = descset_find_file(&set, name, strlen(name), &f);
    if (found == DESCSET_MALFORMED)
      rc = corrupt(e);
    else if (found < 0)
      rc = answer_error(out, RR_NOT_FOUND, "file \"%.200s\" not found", name);
    else
      rc = answer_files(&set, stream, &f, out, e);
    break;
  }
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL: {
    const char *sym = str_or_empty(req->file_containing_symbol);
    int found = descset_find_symbol(&set, sym, strlen(sym), &f, NULL);
    if (found == DESCSET_MALFORMED)
      rc = corrupt(e);
    else if (found < 0)
      rc = answer_error(out, RR_NOT_FOUND, "symbol \"%.200s\" not found", sym);
    else
      rc = answer_files(&set, stream, &f, out, e);
    break;
  }
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION:
    rc = answer_extension(&set, stream, req->file_containing_extension, out, e);
    break;
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE:
    rc = answer_extension_numbers(&set, str_or_empty(req->all_extension_numbers_of_type), out, e);
    break;
  default:
    /* a request kind newer than this server: answer, keep the stream */
    rc = answer_error(out, RR_INVALID_ARGUMENT, "%s", "unsupported reflection request");
    break;
  }
  if (rc < 0)
    reflection_reply_clear(out);
  return rc;
}

void reflection_reply_clear(reflection_reply *r) {
  free(r->file_data);
  free(r->service_items);
  free(r->service_ptrs);
  free(r->numbers);
  reply_init(r);
}

void reflection_stream_clear(reflection_stream *s) {
  free(s->sent);
  *s = (reflection_stream){0};
}
