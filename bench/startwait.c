/* Start+wait latency of /bin/true: through librunrpc on one kept connection
 * (remote) or with posix_spawn+waitpid in this process (local), so that
 * bench/bench.py can print the ratio of the two measured in the same run.
 *   startwait local N
 *   startwait remote ADDR N
 *   startwait limits ADDR N    (remote, every limit set: the cgroup's cost)
 *   startwait sandbox ADDR N PROFILE [ROOTFS]   (remote, in that sandbox
 *                              profile, the root ROOTFS or the host's)
 * STARTWAIT_GAP_MS=G: a pause of G ms after each op, left out of the times
 * (a start after a quiet spell, not one of a burst: per-start costs that a
 * burst amortises show).
 * Prints one line: "mode=... n=N total_s=... per_op_us=...". */
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "runrpc/client.h"

extern char **environ;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int local_once(void) {
  char *argv[] = {"/bin/true", NULL};
  pid_t pid;
  int rc = posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ);
  if (rc != 0) {
    fprintf(stderr, "startwait: posix_spawn /bin/true: %s\n", strerror(rc));
    return -1;
  }
  int st;
  while (waitpid(pid, &st, 0) < 0) {
    if (errno != EINTR) {
      perror("startwait: waitpid");
      return -1;
    }
  }
  return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* generous limits that /bin/true never reaches: the cost measured is the
 * cgroup's creation, limit writes, placement, usage read and removal */
static const runrpc_io_limit bench_io = {
    .rbps = 1u << 30, .wbps = 1u << 30, .riops = 100000, .wiops = 100000};
static const runrpc_limits bench_limits = {.has_cpu = true,
                                           .quota_us = 200000,
                                           .period_us = 100000,
                                           .has_memory_max = true,
                                           .memory_max = 1u << 30,
                                           .has_pids_max = true,
                                           .pids_max = 100,
                                           .io = &bench_io,
                                           .nio = 1};
static bool with_limits;
static runrpc_sandbox bench_sandbox;

static int remote_once(runrpc_client *c) {
  runrpc_start_request req = {.command = {.path = "/bin/true"}, .sandbox = bench_sandbox};
  if (with_limits)
    req.limits = bench_limits;
  /* STARTWAIT_ONLY=cpu|memory|pids|io: just that limit (to see what costs) */
  const char *only = getenv("STARTWAIT_ONLY");
  if (with_limits && only) {
    req.limits = (runrpc_limits){0};
    if (strcmp(only, "cpu") == 0)
      req.limits.has_cpu = true, req.limits.quota_us = bench_limits.quota_us;
    else if (strcmp(only, "memory") == 0)
      req.limits.has_memory_max = true, req.limits.memory_max = bench_limits.memory_max;
    else if (strcmp(only, "pids") == 0)
      req.limits.has_pids_max = true, req.limits.pids_max = bench_limits.pids_max;
    else
      req.limits.io = &bench_io, req.limits.nio = 1;
  }
  char id[RUNRPC_JOB_ID_SIZE];
  runrpc_error err = {0};
  if (runrpc_start(c, &req, id, NULL, &err) < 0) {
    fprintf(stderr, "startwait: start: %s: %s\n", runrpc_code_name(err.code), err.message);
    return -1;
  }
  runrpc_job_status st = {0};
  if (runrpc_wait(c, id, 0, &st, &err) < 0) {
    fprintf(stderr, "startwait: wait %s: %s: %s\n", id, runrpc_code_name(err.code), err.message);
    return -1;
  }
  int ok = st.state == RUNRPC_JOB_EXITED && st.exit_code == 0;
  runrpc_job_status_free(&st);
  if (!ok)
    fprintf(stderr, "startwait: job %s did not exit 0\n", id);
  return ok ? 0 : -1;
}

static int run(const char *mode, runrpc_client *c, long n) {
  long warm = n / 10 < 20 ? n / 10 : 20;
  for (long i = 0; i < warm; i++)
    if ((c ? remote_once(c) : local_once()) < 0)
      return 1;
  const char *g = getenv("STARTWAIT_GAP_MS");
  long gap_ms = g ? atol(g) : 0;
  double dt = 0;
  for (long i = 0; i < n; i++) {
    double t0 = now_s();
    if ((c ? remote_once(c) : local_once()) < 0)
      return 1;
    dt += now_s() - t0;
    if (gap_ms > 0)
      nanosleep(&(struct timespec){gap_ms / 1000, (gap_ms % 1000) * 1000000}, NULL);
  }
  printf("mode=%s n=%ld total_s=%.6f per_op_us=%.2f\n", mode, n, dt, dt / (double)n * 1e6);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "local") == 0)
    return run("local", NULL, atol(argv[2]) > 0 ? atol(argv[2]) : 1);
  bool sandbox = (argc == 5 || argc == 6) && strcmp(argv[1], "sandbox") == 0;
  if (sandbox) {
    bench_sandbox.profile = argv[4];
    bench_sandbox.rootfs = argc == 6 ? argv[5] : NULL;
  }
  if (sandbox ||
      (argc == 4 && (strcmp(argv[1], "remote") == 0 || strcmp(argv[1], "limits") == 0))) {
    with_limits = strcmp(argv[1], "limits") == 0;
    runrpc_client *c = NULL;
    runrpc_error err = {0};
    if (runrpc_connect(argv[2], NULL, &c, &err) < 0) {
      fprintf(stderr, "startwait: connect %s: %s: %s\n", argv[2], runrpc_code_name(err.code),
              err.message);
      return 1;
    }
    int rc = run(argv[1], c, atol(argv[3]) > 0 ? atol(argv[3]) : 1);
    runrpc_close(c);
    return rc;
  }
  fprintf(stderr, "usage: startwait local N | startwait {remote|limits} ADDR N | startwait "
                  "sandbox ADDR N PROFILE [ROOTFS]\n");
  return 2;
}
