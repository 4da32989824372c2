/* runproc ps [--format table|json] ID: the container's processes (its
 * cgroup's, else its pid namespace's); json is the array of pids that
 * containerd's shim reads. runc's extra ps(1) arguments are not taken. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "runproc.h"

static int int_cmp(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  return (x > y) - (x < y);
}

/* argv of pid, spaces between, into buf. */
static void proc_cmdline(int pid, char *buf, size_t size) {
  char p[64];
  snprintf(p, sizeof p, "/proc/%d/cmdline", pid);
  _cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC);
  ssize_t n = fd >= 0 ? rr_read(fd, buf, size - 1) : -1;
  if (n <= 0) {
    snprintf(buf, size, "?");
    return;
  }
  for (ssize_t i = 0; i < n - 1; i++)
    if (!buf[i])
      buf[i] = ' ';
  buf[n] = '\0';
}

static int cmd_ps(runproc_ctx *ctx, int argc, char **argv) {
  const char *format = "table", *id = NULL;
  for (int i = 1; i < argc; i++) {
    const char *v = NULL;
    int r = runproc_opt(argc, argv, &i, "format", 'f', &v);
    if (r < 0)
      return runproc_fail(ctx, "option \"%s\" needs a value", argv[i]);
    if (r > 0)
      format = v;
    else if (argv[i][0] == '-' || id)
      return runproc_fail(ctx, "ps options (\"%s\"): not implemented yet", argv[i]);
    else
      id = argv[i];
  }
  if (!id)
    return runproc_fail(ctx, "usage: runproc ps [--format table|json] ID");
  bool json = strcmp(format, "json") == 0;
  if (!json && strcmp(format, "table") != 0)
    return runproc_fail(ctx, "invalid --format \"%s\" (want table or json)", format);
  rr_err e = {0};
  runproc_container c;
  if (runproc_container_load(ctx, id, &c, &e) < 0)
    return runproc_fail_err(ctx, &e);
  int *pids = NULL;
  size_t n = 0;
  int rc = 0;
  if (runproc_container_status(&c) == RUNPROC_STOPPED)
    ; /* nothing runs: an empty list */
  else if (runproc_container_pids(&c, &pids, &n, &e) < 0)
    rc = runproc_fail_err(ctx, &e);
  if (rc == 0) {
    if (n)
      qsort(pids, n, sizeof *pids, int_cmp);
    if (json) {
      json_object *a = json_object_new_array();
      for (size_t i = 0; i < n; i++)
        json_object_array_add(a, json_object_new_int(pids[i]));
      printf("%s\n", json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN));
      json_object_put(a);
    } else {
      printf("%-8s %s\n", "PID", "CMD");
      for (size_t i = 0; i < n; i++) {
        char cmd[512];
        proc_cmdline(pids[i], cmd, sizeof cmd);
        printf("%-8d %s\n", pids[i], cmd);
      }
    }
  }
  free(pids);
  runproc_container_free(&c);
  return rc;
}

const runproc_command runproc_cmd_ps = {"ps", "ps [--format table|json] ID", cmd_ps};
