/* The server's HTTP/2 + gRPC input: the bytes are what a client sends on one
 * connection (preface, frames, HPACK, gRPC messages) to a real rpc_server
 * over a socketpair, with gRPC health and reflection registered as in rund,
 * rund's identity check (authz_identify) as the authorize hook, and the
 * runrpc.v1.Jobs methods decoded and checked as rund does (nothing is run:
 * fuzz_jobs_check). The loop runs until the server has nothing left to do,
 * then the client half closes and the server must let go of everything. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth/authz.h"
#include "common/loop.h"
#include "fuzz_jobs_check.h"
#include "rpc/server.h"
#include "rpc/services/health.h"
#include "rpc/services/reflection.h"
#include "runrpc/v1/jobs.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* at most this many loop passes per phase: a stuck connection is a finding
 * only if it holds memory after the close (LeakSanitizer) */
#define FUZZ_PASSES 64

static authz_config fuzz_authz;

static int fuzz_authorize(void *data, rpc_call *c, rr_err *e) {
  authz_identity id = {0};
  int r = authz_identify(&fuzz_authz, rpc_call_peer(c), rpc_call_metadata(c, "authorization", NULL),
                         &id, e);
  authz_identity_clear(&id);
  const char *path = rpc_call_path(c);
  if (r < 0 && (strncmp(path, "/grpc.health.v1.Health/", 23) == 0 ||
                strncmp(path, "/grpc.reflection.", 17) == 0))
    return 1;
  return r < 0 ? -1 : 0;
}

static void jobs_on_message(rpc_call *c, ProtobufCMessage *msg) {
  unsigned i = (unsigned)(uintptr_t)rpc_call_method_data(c);
  rr_err e = {0};
  if (rpc_call_finished(c)) {
    protobuf_c_message_free_unpacked(msg, NULL);
    return;
  }
  int rc = fuzz_jobs_check(i, msg, &e);
  protobuf_c_message_free_unpacked(msg, NULL);
  if (rc < 0) {
    rpc_call_finish_err(c, &e);
    return;
  }
  const char *path = rpc_call_path(c);
  if (strcmp(path, "/runrpc.v1.Jobs/Exec") == 0)
    return; /* more messages may follow; the half close ends it */
  if (strcmp(path, "/runrpc.v1.Jobs/Logs") == 0) {
    Runrpc__V1__LogsResponse resp = RUNRPC__V1__LOGS_RESPONSE__INIT;
    resp.data.data = (uint8_t *)"fuzz\n";
    resp.data.len = 5;
    if (rpc_call_send(c, &resp.base, &e) < 0) {
      rpc_call_finish_err(c, &e);
      return;
    }
  }
  rpc_call_finish(c, RR_UNIMPLEMENTED, "the fuzz server runs nothing");
}

static void jobs_on_half_close(rpc_call *c) {
  rpc_call_finish(c, RR_UNIMPLEMENTED, "the fuzz server runs nothing");
}

static void jobs_on_close(rpc_call *c, rpc_close_reason reason) {}

static int fuzz_jobs_register(rpc_server *s, rr_err *e) {
  const char *path;
  const ProtobufCMessageDescriptor *d;
  for (unsigned i = 0; (d = fuzz_jobs_method(i, &path)); i++) {
    bool exec = strcmp(path, "/runrpc.v1.Jobs/Exec") == 0;
    rpc_method m = {
        .path = path,
        .request = d,
        .client_streaming = exec,
        .server_streaming = exec || strcmp(path, "/runrpc.v1.Jobs/Logs") == 0,
        .on_message = jobs_on_message,
        .on_half_close = exec ? jobs_on_half_close : NULL,
        .on_close = jobs_on_close,
        .data = (void *)(uintptr_t)i,
    };
    if (rpc_server_add_method(s, &m, e) < 0)
      return -1;
  }
  return 0;
}

/* Read what the server wrote; true at EOF (the server closed). */
static bool fuzz_drain(int fd) {
  uint8_t buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0)
      continue;
    return n == 0 || (errno != EAGAIN && errno != EINTR);
  }
}

static void fuzz_session(loop *l, int client, const uint8_t *data, size_t size) {
  size_t off = 0;
  bool eof = false;
  rr_err e = {0};
  for (int i = 0; i < FUZZ_PASSES && !eof; i++) {
    while (off < size) {
      ssize_t n = write(client, data + off, size - off);
      if (n <= 0)
        break;
      off += (size_t)n;
    }
    loop_run_once(l, 0, &e);
    eof = fuzz_drain(client);
    if (off == size && i >= 8)
      break;
  }
  shutdown(client, SHUT_WR);
  for (int i = 0; i < FUZZ_PASSES && !eof; i++) {
    loop_run_once(l, 0, &e);
    eof = fuzz_drain(client);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  loop *l = NULL;
  rpc_server *s = NULL;
  health *h = NULL;
  rr_err e = {0};
  int sv[2];
  if (size > 256 * 1024)
    return 0;
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
    abort();
  if (loop_new(&l, &e) < 0 || rpc_server_new(&s, l, NULL, &e) < 0 ||
      reflection_register(s, &e) < 0 || health_register(s, &h, &e) < 0 ||
      fuzz_jobs_register(s, &e) < 0 || health_set(h, "runrpc.v1.Jobs", HEALTH_SERVING, &e) < 0)
    abort();
  rpc_server_set_auth(s, &(rpc_server_auth){.authorize = fuzz_authorize});
  if (rpc_server_add_fds(s, sv[0], sv[0], &e) < 0)
    abort();
  fuzz_session(l, sv[1], data, size);
  rpc_server_shutdown(s);
  rpc_server_free(s);
  health_free(h);
  loop_free(l);
  close(sv[1]);
  return 0;
}
