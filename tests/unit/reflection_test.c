/* Unit tests of the reflection core (src/rpc/services/reflection.c, descset.c)
 * against the embedded set and a fixture set (reflection_test/{a,b}.proto). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/util.h"
#include "grpc/reflection/v1alpha/reflection.pb-c.h"
#include "rpc/services/descset.h"
#include "rpc/services/reflection.h"

static const uint8_t test_set[] = {
#include "reflection_test_set.inc"
};

typedef Grpc__Reflection__V1__ServerReflectionRequest request;

static const char *const served[] = {"grpc.health.v1.Health", "runrpc.v1.Jobs"};

static reflection_source embedded(void) {
  return (reflection_source){reflection_descriptor_set, reflection_descriptor_set_len, served,
                             RR_ARRAY_SIZE(served)};
}
static reflection_source fixture(void) {
  return (reflection_source){test_set, sizeof test_set, NULL, 0};
}

/* Name (field 1) of a serialized FileDescriptorProto, decoded here by hand so
 * the check does not trust descset.c. Assumes the short keys protoc emits. */
static char *file_name(ProtobufCBinaryData d) {
  static char buf[256];
  size_t i = 0;
  while (i < d.len) {
    uint8_t key = d.data[i++];
    uint64_t len = 0;
    int shift = 0;
    while (d.data[i] & 0x80)
      len |= (uint64_t)(d.data[i++] & 0x7f) << shift, shift += 7;
    len |= (uint64_t)d.data[i++] << shift;
    assert_int_equal(key & 7, 2); /* name, package, dependency... all come first as LEN */
    if (key >> 3 == 1) {
      assert_true(len < sizeof buf);
      memcpy(buf, d.data + i, len);
      buf[len] = 0;
      return buf;
    }
    i += len;
  }
  fail_msg("no name in file descriptor");
  return NULL;
}

static request req_symbol(const char *sym) {
  request r = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
  r.message_request_case =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL;
  r.file_containing_symbol = (char *)sym;
  return r;
}
static request req_file(const char *name) {
  request r = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
  r.message_request_case =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME;
  r.file_by_filename = (char *)name;
  return r;
}

/* Answer req and check the response packs (every pointer in it is valid). */
static void answer(reflection_source src, reflection_stream *st, const request *req,
                   reflection_reply *out) {
  rr_err e = {0};
  assert_int_equal(reflection_answer(&src, st, req, out, &e), 0);
  size_t n = protobuf_c_message_get_packed_size(&out->response.base);
  uint8_t *buf = malloc(n + 1);
  assert_non_null(buf);
  assert_int_equal(protobuf_c_message_pack(&out->response.base, buf), n);
  free(buf);
}

/* Files answered for req, as names, comma-separated. */
static const char *files_of(reflection_source src, reflection_stream *st, const request *req) {
  static char names[1024];
  reflection_reply r;
  answer(src, st, req, &r);
  assert_int_equal(
      r.response.message_response_case,
      GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE);
  names[0] = 0;
  for (size_t i = 0; i < r.files.n_file_descriptor_proto; i++) {
    if (i)
      strcat(names, ",");
    strcat(names, file_name(r.files.file_descriptor_proto[i]));
  }
  reflection_reply_clear(&r);
  return names;
}

static const char *symbol_file(reflection_source src, const char *sym) {
  request req = req_symbol(sym);
  reflection_stream st = {0};
  const char *names = files_of(src, &st, &req);
  reflection_stream_clear(&st);
  static char first[256];
  size_t n = strcspn(names, ",");
  memcpy(first, names, n);
  first[n] = 0;
  return first;
}

static void assert_not_found(reflection_source src, const request *req, const char *needle) {
  reflection_reply r;
  answer(src, NULL, req, &r);
  assert_int_equal(
      r.response.message_response_case,
      GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE);
  assert_int_equal(r.error.error_code, 5);
  assert_non_null(strstr(r.error.error_message, needle));
  assert_ptr_equal(r.response.original_request, req);
  reflection_reply_clear(&r);
}

static void test_list_services(void **state) {
  request req = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
  req.message_request_case =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES;
  req.list_services = "*";
  req.host = "localhost:1";
  reflection_reply r;
  answer(embedded(), NULL, &req, &r);
  assert_int_equal(
      r.response.message_response_case,
      GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE);
  assert_int_equal(r.services.n_service, 2);
  assert_string_equal(r.services.service[0]->name, "grpc.health.v1.Health");
  assert_string_equal(r.services.service[1]->name, "runrpc.v1.Jobs");
  assert_string_equal(r.response.valid_host, "localhost:1");
  assert_ptr_equal(r.response.original_request, &req);
  reflection_reply_clear(&r);

  reflection_source none = fixture(); /* no services: an empty list, not an error */
  answer(none, NULL, &req, &r);
  assert_int_equal(r.services.n_service, 0);
  reflection_reply_clear(&r);
}

static void test_file_by_filename(void **state) {
  request req = req_file("runrpc/v1/jobs.proto");
  reflection_stream st = {0};
  const char *names = files_of(embedded(), &st, &req);
  assert_true(strncmp(names, "runrpc/v1/jobs.proto", 20) == 0);
  assert_true(names[20] == 0 || names[20] == ','); /* first, then its deps if any */
  reflection_stream_clear(&st);

  /* dependencies: the file first, then breadth-first imports, each once */
  req = req_file("reflection_test/a.proto");
  assert_string_equal(files_of(fixture(), &st, &req),
                      "reflection_test/a.proto,reflection_test/b.proto,"
                      "google/protobuf/empty.proto,google/protobuf/timestamp.proto");
  /* same stream: deps already sent are not sent again; the asked file always is */
  req = req_symbol("rtest.b.Base");
  assert_string_equal(files_of(fixture(), &st, &req), "reflection_test/b.proto");
  assert_string_equal(files_of(fixture(), &st, &req), "reflection_test/b.proto");
  reflection_stream_clear(&st);
  /* new stream: everything again */
  assert_string_equal(files_of(fixture(), &st, &req),
                      "reflection_test/b.proto,google/protobuf/timestamp.proto");
  reflection_stream_clear(&st);
  /* no stream memory at all: always complete */
  req = req_file("reflection_test/b.proto");
  assert_string_equal(files_of(fixture(), NULL, &req),
                      "reflection_test/b.proto,google/protobuf/timestamp.proto");
}

static void test_symbols(void **state) {
  reflection_source s = embedded();
  assert_string_equal(symbol_file(s, "runrpc.v1.Jobs"), "runrpc/v1/jobs.proto");
  assert_string_equal(symbol_file(s, "runrpc.v1.Jobs.Start"), "runrpc/v1/jobs.proto");
  assert_string_equal(symbol_file(s, "runrpc.v1.Jobs.Exec"), "runrpc/v1/jobs.proto");
  assert_string_equal(symbol_file(s, "runrpc.v1.StartRequest"), "runrpc/v1/jobs.proto");
  assert_string_equal(symbol_file(s, ".runrpc.v1.StartRequest"), "runrpc/v1/jobs.proto");
  assert_string_equal(symbol_file(s, "runrpc.v1.StartRequest.command"), "runrpc/v1/jobs.proto");
  assert_string_equal(symbol_file(s, "runrpc.v1.JobState"), "runrpc/v1/jobs.proto");
  assert_string_equal(symbol_file(s, "runrpc.v1.JOB_STATE_RUNNING"), "runrpc/v1/jobs.proto");
  assert_string_equal(symbol_file(s, "runrpc.v1.Command.EnvEntry"), "runrpc/v1/jobs.proto");
  assert_string_equal(symbol_file(s, "grpc.health.v1.Health"), "grpc/health/v1/health.proto");
  assert_string_equal(symbol_file(s, "grpc.health.v1.Health.Watch"), "grpc/health/v1/health.proto");
  assert_string_equal(symbol_file(s, "grpc.health.v1.HealthCheckResponse.ServingStatus"),
                      "grpc/health/v1/health.proto");
  assert_string_equal(symbol_file(s, "grpc.health.v1.HealthCheckResponse.SERVING"),
                      "grpc/health/v1/health.proto");
  assert_string_equal(symbol_file(s, "grpc.reflection.v1.ServerReflection"),
                      "grpc/reflection/v1/reflection.proto");
  assert_string_equal(
      symbol_file(s, "grpc.reflection.v1alpha.ServerReflection.ServerReflectionInfo"),
      "grpc/reflection/v1alpha/reflection.proto");
  assert_string_equal(symbol_file(s, "grpc.reflection.v1alpha.ServerReflectionRequest"),
                      "grpc/reflection/v1alpha/reflection.proto");

  reflection_source f = fixture();
  assert_string_equal(symbol_file(f, "rtest.a.Outer.Inner"), "reflection_test/a.proto");
  assert_string_equal(symbol_file(f, "rtest.a.Outer.Inner.Color"), "reflection_test/a.proto");
  assert_string_equal(symbol_file(f, "rtest.a.Outer.Inner.COLOR_RED"), "reflection_test/a.proto");
  assert_string_equal(symbol_file(f, "rtest.a.Outer.Inner.color"), "reflection_test/a.proto");
  assert_string_equal(symbol_file(f, "rtest.a.Outer.pick"), "reflection_test/a.proto");
  assert_string_equal(symbol_file(f, "rtest.a.Things.Get"), "reflection_test/a.proto");
  assert_string_equal(symbol_file(f, "rtest.b.level"), "reflection_test/b.proto");
  assert_string_equal(symbol_file(f, "rtest.b.Holder.note"), "reflection_test/b.proto");
  assert_string_equal(symbol_file(f, "rtest.b.MODE_ON"), "reflection_test/b.proto");
  assert_string_equal(symbol_file(f, "google.protobuf.Timestamp"),
                      "google/protobuf/timestamp.proto");
}

static void test_not_found(void **state) {
  static const char *const missing[] = {
      "runrpc.v1.Nope",
      "runrpc.v1.Jobs.Nope",
      "runrpc.v1",
      "runrpc",
      "",
      "runrpc.v1.Jobs.",
      "runrpc.v1.JobsX",
      "runrpc.v1.Job",
      ".",
      "..",
      "runrpc.v1.JobState.JOB_STATE_RUNNING", /* values live beside their enum */
      "runrpc.v1.Jobs.Start.x",
      "Jobs",
      "v1.Jobs",
      "runrpc..v1.Jobs",
  };
  for (size_t i = 0; i < RR_ARRAY_SIZE(missing); i++) {
    request req = req_symbol(missing[i]);
    assert_not_found(embedded(), &req, "not found");
  }
  request req = req_symbol("runrpc.v1.Nope");
  assert_not_found(embedded(), &req, "\"runrpc.v1.Nope\"");
  req = req_file("nope.proto");
  assert_not_found(embedded(), &req, "\"nope.proto\"");
  req = req_file("");
  assert_not_found(embedded(), &req, "not found");
  req = req_file("runrpc/v1/jobs.prot");
  assert_not_found(embedded(), &req, "not found");
}

static void test_extensions(void **state) {
  Grpc__Reflection__V1__ExtensionRequest x = GRPC__REFLECTION__V1__EXTENSION_REQUEST__INIT;
  request req = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
  req.message_request_case =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION;
  req.file_containing_extension = &x;

  x.containing_type = "runrpc.v1.StartRequest";
  x.extension_number = 1;
  assert_not_found(embedded(), &req, "not found");
  x.containing_type = "rtest.b.Base";
  x.extension_number = 101;
  assert_not_found(fixture(), &req, "101");
  x.extension_number = 150;
  reflection_stream st = {0};
  assert_string_equal(files_of(fixture(), &st, &req),
                      "reflection_test/b.proto,google/protobuf/timestamp.proto");
  reflection_stream_clear(&st);
  x.containing_type = ".rtest.b.Base";
  x.extension_number = 100;
  assert_string_equal(files_of(fixture(), NULL, &req),
                      "reflection_test/b.proto,google/protobuf/timestamp.proto");
  req.file_containing_extension = NULL; /* hand-built request without the submessage */
  assert_not_found(fixture(), &req, "not found");

  req.message_request_case =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE;
  req.all_extension_numbers_of_type = "rtest.b.Base";
  reflection_reply r;
  answer(fixture(), NULL, &req, &r);
  assert_int_equal(
      r.response.message_response_case,
      GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE);
  assert_string_equal(r.extensions.base_type_name, "rtest.b.Base");
  assert_int_equal(r.extensions.n_extension_number, 2);
  int32_t a = r.extensions.extension_number[0], b = r.extensions.extension_number[1];
  assert_true((a == 100 && b == 150) || (a == 150 && b == 100));
  reflection_reply_clear(&r);

  req.all_extension_numbers_of_type = "runrpc.v1.StartRequest"; /* a message without any */
  answer(embedded(), NULL, &req, &r);
  assert_int_equal(
      r.response.message_response_case,
      GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE);
  assert_string_equal(r.extensions.base_type_name, "runrpc.v1.StartRequest");
  assert_int_equal(r.extensions.n_extension_number, 0);
  reflection_reply_clear(&r);

  req.all_extension_numbers_of_type = "runrpc.v1.Jobs"; /* not a message */
  assert_not_found(embedded(), &req, "not found");
  req.all_extension_numbers_of_type = "runrpc.v1.Nope";
  assert_not_found(embedded(), &req, "\"runrpc.v1.Nope\"");
}

static void test_unset_request(void **state) {
  request req = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
  req.host = NULL; /* hand-built messages may carry NULL strings */
  reflection_reply r;
  answer(embedded(), NULL, &req, &r);
  assert_int_equal(
      r.response.message_response_case,
      GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE);
  assert_int_equal(r.error.error_code, 3);
  assert_string_equal(r.response.valid_host, "");
  reflection_reply_clear(&r);
}

/* v1alpha requests decode with the v1 descriptor and v1 answers decode as
 * v1alpha: the glue relies on that to serve both with one core. */
static void test_v1alpha_wire_compatible(void **state) {
  Grpc__Reflection__V1alpha__ServerReflectionRequest a =
      GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__INIT;
  a.host = "h";
  a.message_request_case =
      GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL;
  a.file_containing_symbol = "runrpc.v1.Jobs";
  uint8_t buf[256];
  size_t n = grpc__reflection__v1alpha__server_reflection_request__pack(&a, buf);
  request *req = grpc__reflection__v1__server_reflection_request__unpack(NULL, n, buf);
  assert_non_null(req);
  assert_string_equal(req->file_containing_symbol, "runrpc.v1.Jobs");

  reflection_reply r;
  answer(embedded(), NULL, req, &r);
  size_t len = protobuf_c_message_get_packed_size(&r.response.base);
  uint8_t *out = malloc(len);
  assert_non_null(out);
  protobuf_c_message_pack(&r.response.base, out);
  Grpc__Reflection__V1alpha__ServerReflectionResponse *resp =
      grpc__reflection__v1alpha__server_reflection_response__unpack(NULL, len, out);
  assert_non_null(resp);
  assert_string_equal(resp->valid_host, "h");
  assert_string_equal(resp->original_request->file_containing_symbol, "runrpc.v1.Jobs");
  assert_int_equal(
      resp->message_response_case,
      GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE);
  assert_string_equal(file_name(resp->file_descriptor_response->file_descriptor_proto[0]),
                      "runrpc/v1/jobs.proto");
  grpc__reflection__v1alpha__server_reflection_response__free_unpacked(resp, NULL);
  free(out);
  reflection_reply_clear(&r);
  grpc__reflection__v1__server_reflection_request__free_unpacked(req, NULL);
}

static int check_dep(descset_slice dep, void *data) {
  descset_file f;
  int rc = descset_find_file(data, (const char *)dep.ptr, dep.len, &f);
  assert_int_equal(rc, 0);
  return 0;
}

/* The embedded set holds what rund serves and every file they import. */
static void test_embedded_set_complete(void **state) {
  descset d = {reflection_descriptor_set, reflection_descriptor_set_len};
  long n = descset_count(&d);
  assert_true(n >= 4);
  for (long i = 0; i < n; i++) {
    descset_file f;
    assert_int_equal(descset_file_at(&d, (size_t)i, &f), 0);
    assert_int_equal(f.index, (size_t)i);
    assert_int_equal(descset_file_deps(&f, check_dep, &d), 0);
  }
  descset_file f;
  assert_int_equal(descset_file_at(&d, (size_t)n, &f), DESCSET_NOT_FOUND);
  static const char *const want[] = {"runrpc/v1/jobs.proto", "grpc/health/v1/health.proto",
                                     "grpc/reflection/v1/reflection.proto",
                                     "grpc/reflection/v1alpha/reflection.proto"};
  for (size_t i = 0; i < RR_ARRAY_SIZE(want); i++)
    assert_int_equal(descset_find_file(&d, want[i], strlen(want[i]), &f), 0);
}

static uint64_t rng = 0x9e3779b97f4a7c15u;
static uint64_t next_random(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* Random request bytes, and truncated or corrupted sets: never a crash, and
 * answers are either complete responses or -1 with an error. */
static void test_garbage(void **state) {
  uint8_t buf[64];
  for (int i = 0; i < 20000; i++) {
    size_t n = next_random() % sizeof buf;
    for (size_t j = 0; j < n; j++)
      buf[j] = (uint8_t)next_random();
    if (i % 2) { /* bias towards valid tags so unpack succeeds more often */
      buf[0] = (uint8_t)((3 + next_random() % 5) << 3 | 2);
      if (n > 1)
        buf[1] = (uint8_t)(n - 2);
    }
    request *req = grpc__reflection__v1__server_reflection_request__unpack(NULL, n, buf);
    if (!req)
      continue;
    reflection_reply r;
    answer(i % 4 < 2 ? embedded() : fixture(), NULL, req, &r);
    reflection_reply_clear(&r);
    grpc__reflection__v1__server_reflection_request__free_unpacked(req, NULL);
  }

  static const char *const probes[] = {"runrpc.v1.Jobs.Start", "grpc.health.v1.Health",
                                       "google.protobuf.Empty"};
  size_t len = reflection_descriptor_set_len;
  uint8_t *copy = malloc(len);
  assert_non_null(copy);
  for (int i = 0; i < 3000; i++) {
    memcpy(copy, reflection_descriptor_set, len);
    size_t cut = len;
    if (i % 3 == 0)
      cut = next_random() % len;
    else
      for (int k = 0; k < 1 + i % 8; k++)
        copy[next_random() % len] = (uint8_t)next_random();
    uint8_t *exact = malloc(cut ? cut : 1); /* exact size, so ASan sees any overread */
    assert_non_null(exact);
    memcpy(exact, copy, cut);
    reflection_source src = {exact, cut, served, 2};
    request req = i % 2 ? req_symbol(probes[i % 3]) : req_file("runrpc/v1/jobs.proto");
    reflection_reply r;
    rr_err e = {0};
    if (reflection_answer(&src, NULL, &req, &r, &e) == 0) {
      size_t n = protobuf_c_message_get_packed_size(&r.response.base);
      uint8_t *out = malloc(n + 1);
      protobuf_c_message_pack(&r.response.base, out);
      free(out);
      reflection_reply_clear(&r);
    } else {
      assert_int_equal(e.code, RR_INTERNAL);
    }
    free(exact);
  }
  free(copy);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_list_services),
      cmocka_unit_test(test_file_by_filename),
      cmocka_unit_test(test_symbols),
      cmocka_unit_test(test_not_found),
      cmocka_unit_test(test_extensions),
      cmocka_unit_test(test_unset_request),
      cmocka_unit_test(test_v1alpha_wire_compatible),
      cmocka_unit_test(test_embedded_set_complete),
      cmocka_unit_test(test_garbage),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
