/* A small program on the public librunrpc API, driven by
 * test_client_interop.py: one operation per run, results on stdout.
 *   client_probe ADDR status ID TIMEOUT_MS [MAX_RECV]
 *   client_probe ADDR wait ID TIMEOUT_MS
 *   client_probe ADDR repeat ID N          (N status calls on one connection)
 *   client_probe ADDR connect              (connect only)
 *   client_probe ADDR list-fd0             (started with fd 0 closed: a List call,
 *                                           then whether fd 0 is still closed)
 * Success prints "OK ..." and exits 0; failure prints "ERR CODE_NAME\n"
 * followed by the error message bytes exactly, and exits 1. */
#include <errno.h>
#include <fcntl.h>
#include <runrpc/client.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const runrpc_error *err) {
  printf("ERR %s\n", runrpc_code_name(err->code));
  fwrite(err->message, 1, strlen(err->message), stdout);
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: client_probe ADDR OP [ARGS]\n");
    return 2;
  }
  const char *op = argv[2];
  runrpc_options o;
  runrpc_options_init(&o);
  if (strcmp(op, "status") == 0 && argc > 5)
    o.max_recv_message_bytes = strtoull(argv[5], NULL, 10);
  if ((strcmp(op, "status") == 0 || strcmp(op, "wait") == 0) && argc > 4)
    o.call_timeout_ms = strtoull(argv[4], NULL, 10);
  runrpc_client *c;
  runrpc_error err;
  if (runrpc_connect(argv[1], &o, &c, &err) < 0)
    return fail(&err);
  int rc = 0;
  runrpc_job_status st;
  if (strcmp(op, "connect") == 0) {
    printf("OK connected\n");
  } else if (strcmp(op, "status") == 0 && argc > 3) {
    if (runrpc_status(c, argv[3], &st, &err) < 0) {
      rc = fail(&err);
    } else {
      printf("OK %s %s reason_len=%zu\n", st.job_id, runrpc_job_state_name(st.state),
             strlen(st.reason));
      runrpc_job_status_free(&st);
    }
  } else if (strcmp(op, "wait") == 0 && argc > 4) {
    if (runrpc_wait(c, argv[3], strtoull(argv[4], NULL, 10), &st, &err) < 0) {
      rc = fail(&err);
    } else {
      printf("OK %s %s %d\n", st.job_id, runrpc_job_state_name(st.state), st.exit_code);
      runrpc_job_status_free(&st);
    }
  } else if (strcmp(op, "repeat") == 0 && argc > 4) {
    long n = strtol(argv[4], NULL, 10);
    for (long i = 0; i < n && rc == 0; i++) {
      if (runrpc_status(c, argv[3], &st, &err) < 0)
        rc = fail(&err);
      else
        runrpc_job_status_free(&st);
    }
    if (rc == 0)
      printf("OK %ld\n", n);
  } else if (strcmp(op, "list-fd0") == 0) {
    runrpc_job_status *jobs;
    size_t n;
    if (runrpc_list(c, RUNRPC_JOB_UNSPECIFIED, NULL, &jobs, &n, &err) < 0) {
      rc = fail(&err);
    } else {
      runrpc_job_list_free(jobs, n);
      /* the library's socket must not have taken the closed stdin's number */
      bool closed = fcntl(0, F_GETFD) < 0 && errno == EBADF;
      printf("OK fd0 %s\n", closed ? "closed" : "taken");
    }
  } else {
    fprintf(stderr, "client_probe: bad operation\n");
    rc = 2;
  }
  runrpc_close(c);
  return rc;
}
