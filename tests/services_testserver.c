/* Test-only server for tests/integration/test_reflection_health.py before rund
 * exists: reflection + health on a rpc_server, plus runrpc.v1.Jobs paths
 * that answer UNIMPLEMENTED (so list_services sees what rund will serve).
 * Takes rund's flags: --listen ADDR (repeatable), --state-dir DIR (unused).
 * Run: RUND=build-b/tests/services_testserver pytest tests/integration/... */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>

#include "common/err.h"
#include "common/loop.h"
#include "common/util.h"
#include "rpc/server.h"
#include "rpc/services/health.h"
#include "rpc/services/reflection.h"
#include "runrpc/v1/jobs.pb-c.h"

static void jobs_on_message(rpc_call *c, ProtobufCMessage *msg) {
  protobuf_c_message_free_unpacked(msg, NULL);
  rpc_call_finish(c, RR_UNIMPLEMENTED, "services_testserver does not run jobs");
}

static void jobs_on_close(rpc_call *c, rpc_close_reason reason) {}

static void on_signal(loop *l, int fd, uint32_t events, void *data) {
  struct signalfd_siginfo si;
  if (rr_read(fd, &si, sizeof si) == (ssize_t)sizeof si)
    loop_stop(l);
}

static int jobs_register(rpc_server *s, rr_err *e) {
  const ProtobufCServiceDescriptor *d = &runrpc__v1__jobs__descriptor;
  for (unsigned i = 0; i < d->n_methods; i++) {
    char path[128];
    const char *name = d->methods[i].name;
    snprintf(path, sizeof path, "/%s/%s", d->name, name);
    rpc_method m = {
        .path = path,
        .request = d->methods[i].input,
        .client_streaming = strcmp(name, "Exec") == 0,
        .server_streaming = strcmp(name, "Exec") == 0 || strcmp(name, "Logs") == 0,
        .on_message = jobs_on_message,
        .on_close = jobs_on_close,
    };
    if (rpc_server_add_method(s, &m, e) < 0)
      return -1;
  }
  return 0;
}

static int run(int argc, char **argv, rr_err *e) {
  loop *l = NULL;
  rpc_server *s = NULL;
  health *h = NULL;
  int rc = -1;
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  _cleanup_close_ int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) {
    rr_err_sys(e, RR_INTERNAL, errno, "signalfd");
    return -1;
  }
  if (loop_new(&l, e) < 0)
    return -1;
  if (loop_fd_add(l, sfd, EPOLLIN, "signals", on_signal, NULL, e) < 0 ||
      rpc_server_new(&s, l, NULL, e) < 0 || reflection_register(s, e) < 0 ||
      health_register(s, &h, e) < 0 || jobs_register(s, e) < 0)
    goto out;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
      if (rpc_server_listen(s, argv[++i], e) < 0)
        goto out;
    } else if (strcmp(argv[i], "--state-dir") == 0 && i + 1 < argc) {
      i++;
    } else {
      rr_err_set(e, RR_INVALID_ARGUMENT, "unknown argument \"%s\"", argv[i]);
      goto out;
    }
  }
  if (health_set(h, "runrpc.v1.Jobs", HEALTH_NOT_SERVING, e) < 0 || loop_run(l, e) < 0)
    goto out;
  rc = 0;
out:
  if (s) {
    rpc_server_shutdown(s);
    rpc_server_free(s);
  }
  health_free(h);
  if (l) {
    loop_fd_del(l, sfd);
    loop_free(l);
  }
  return rc;
}

int main(int argc, char **argv) {
  rr_err e = {0};
  if (run(argc, argv, &e) < 0) {
    fprintf(stderr, "services_testserver: %s\n", e.msg);
    return 1;
  }
  return 0;
}
