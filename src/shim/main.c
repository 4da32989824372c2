/* runrpc: `runrpc CMD ARGS...` execs CMD; no arguments lists the services
 * (stdin a terminal or at EOF) or serves gRPC on stdin/stdout (stdin
 * starts with the HTTP/2 client preface); as PID 1 (or --init) it reaps,
 * forwards signals and serves on listeners until the machine stops. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "shim/init.h"
#include "shim/shim.h"

#define SHIM_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define SHIM_PREFACE_LEN 24

static void shim_usage(FILE *f) {
  fprintf(f, "usage: " SHIM_NAME " CMD [ARGS...]    run CMD in place of runrpc (execve)\n"
             "       " SHIM_NAME "                  list services (stdin a terminal or empty),\n"
             "                                 or serve gRPC on stdin/stdout (stdin carries h2)\n"
             "       " SHIM_NAME " [--init] --listen ADDR... [TLS/token options]\n"
             "                                 serve on listeners (PID 1 serves forever)\n"
             "options: --listen unix:PATH | HOST:PORT (TLS) | h2c:HOST:PORT (loopback, token)\n"
             "         --tls-cert F --tls-key F --client-ca F   TLS with client certificates\n"
             "         --token-file F            bearer tokens (rund tokens' file format)\n"
             "         --init                    act as init without being PID 1\n"
             "env:     RUNRPC_LISTEN (comma-separated), RUNRPC_TLS_CERT, RUNRPC_TLS_KEY,\n"
             "         RUNRPC_CLIENT_CA, RUNRPC_TOKEN_FILE\n");
}

static int shim_list(void) {
  for (size_t i = 0; i < shim_service_count; i++)
    if (printf("%s\n", shim_service_names[i]) < 0)
      return 1;
  return fflush(stdout) == 0 ? 0 : 1;
}

/* execvp as a shell would report it: 127 not found, 126 not runnable. */
static int shim_exec(char **argv) {
  execvp(argv[0], argv);
  int err = errno;
  fprintf(stderr, SHIM_NAME ": %s: %s\n", argv[0],
          err == ENOENT ? "command not found" : strerror(err));
  return err == ENOENT ? 127 : 126;
}

/* Read stdin until the preface is in or proved absent. Returns the bytes
 * read (0: EOF at once), -1 on a read error. */
static ssize_t shim_read_head(uint8_t *buf) {
  size_t n = 0;
  while (n < SHIM_PREFACE_LEN) {
    ssize_t r = rr_read(STDIN_FILENO, buf + n, SHIM_PREFACE_LEN - n);
    if (r < 0)
      return -1;
    if (r == 0)
      break;
    if (memcmp(buf + n, SHIM_PREFACE + n, (size_t)r) != 0)
      return (ssize_t)(n + (size_t)r);
    n += (size_t)r;
  }
  return (ssize_t)n;
}

static int shim_fail(const char *what, const rr_err *e) {
  fprintf(stderr, SHIM_NAME ": %s: %s\n", what, e->msg);
  return 1;
}

/* Serve: stdio (head: the preface already read, or NULL) and/or listeners. */
static int shim_serve(shim_ctx *ctx, const shim_init_opts *o, const uint8_t *head, size_t hlen) {
  rr_err e = {0};
  int rc = 1;
  signal(SIGPIPE, SIG_IGN);
  if (shim_server_new(ctx, &e) < 0 || shim_signals_setup(ctx, &e) < 0) {
    shim_fail("cannot start", &e);
    goto out;
  }
  if ((ctx->init || o->nlisten) && shim_init_setup(ctx, o, &e) < 0) {
    shim_fail("cannot serve", &e);
    goto out;
  }
  if (head &&
      rpc_server_add_fds_head(ctx->server, STDIN_FILENO, STDOUT_FILENO, head, hlen, &e) < 0) {
    shim_fail("cannot serve stdin/stdout", &e);
    goto out;
  }
  if (shim_run(ctx, &e) < 0) {
    shim_fail("event loop failed", &e);
    goto out;
  }
  rc = 0;
  if (ctx->exec_ready) { /* the server's fds 0 and 1 become the command's */
    shim_exec_in_place(ctx, &e);
    return shim_fail("exec in place failed after its answer", &e);
  }
out:
  shim_server_free(ctx);
  shim_init_free(ctx);
  return rc;
}

static int shim_stdin_mode(shim_ctx *ctx, const shim_init_opts *o) {
  struct stat st;
  if (isatty(STDIN_FILENO) || (fstat(STDIN_FILENO, &st) < 0 && errno == EBADF))
    return o->nlisten || ctx->init ? shim_serve(ctx, o, NULL, 0) : shim_list();
  uint8_t head[SHIM_PREFACE_LEN];
  ssize_t n = shim_read_head(head);
  if (n == 0)
    return o->nlisten || ctx->init ? shim_serve(ctx, o, NULL, 0) : shim_list();
  if (n < 0) {
    fprintf(stderr, SHIM_NAME ": cannot read stdin: %s\n", strerror(errno));
    return 2;
  }
  if (n != SHIM_PREFACE_LEN || memcmp(head, SHIM_PREFACE, SHIM_PREFACE_LEN) != 0) {
    fprintf(stderr,
            SHIM_NAME ": stdin is not a gRPC stream (no HTTP/2 client preface in its first %zd "
                      "bytes); runrpc serves gRPC on stdin, runs `runrpc CMD ARGS...`, or lists "
                      "its services when stdin is a terminal or empty\n",
            n);
    return 2;
  }
  if (S_ISREG(st.st_mode)) {
    fprintf(stderr, SHIM_NAME ": stdin is a regular file: gRPC needs a pipe or a socket\n");
    return 2;
  }
  return shim_serve(ctx, o, head, (size_t)n);
}

int main(int argc, char **argv) {
  shim_ctx ctx = {.sigfd = -1};
  shim_init_opts o = {0};
  ctx.init = getpid() == 1;
  int consumed = shim_init_opts_parse(argc, argv, &o);
  if (consumed < 0)
    return 2;
  if (o.help) {
    shim_usage(stdout);
    return 0;
  }
  ctx.init = ctx.init || o.init;
  if (consumed < argc)
    return shim_exec(argv + consumed);
  const char *depth = getenv(SHIM_DEPTH_ENV);
  ctx.depth = depth ? (unsigned)strtoul(depth, NULL, 10) : 0;
  ssize_t n = readlink("/proc/self/exe", ctx.exe, sizeof ctx.exe - 1);
  ctx.exe[n > 0 ? n : 0] = '\0';
  int rc = shim_stdin_mode(&ctx, &o);
  shim_init_opts_free(&o);
  return rc;
}
