/* Freezing a job's cgroup (v1 freezer.state, v2 cgroup.freeze) and the
 * list of its processes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "sandbox/cgroup_internal.h"

/* The freezer's directory and file of j: v1 freezer.state, v2 cgroup.freeze. */
static const char *job_freezer(const cg_job *j, const char **file) {
  if (j->m->version == CG_V2) {
    *file = "cgroup.freeze";
    return j->dir[0];
  }
  *file = "freezer.state";
  for (size_t i = 0; i < j->m->nhier; i++)
    if (j->m->hier[i].controllers & CG_CTRL_FREEZER)
      return j->dir[i];
  return NULL;
}

bool cg_job_frozen(cg_job *j) {
  const char *file, *dir = job_freezer(j, &file);
  char buf[32];
  _cleanup_free_ char *path = dir ? cg_path_join(dir, file) : NULL;
  if (!path || cg_file_read(path, buf, sizeof buf, NULL) < 0)
    return false;
  return j->m->version == CG_V2 ? buf[0] == '1' : strncmp(buf, "THAWED", 6) != 0;
}

int cg_job_freeze(cg_job *j, bool frozen, rr_err *e) {
  const char *file, *dir = job_freezer(j, &file);
  if (!dir)
    return rr_err_set(e, RR_FAILED_PRECONDITION, "no freezer cgroup for job %s", j->id);
  bool v2 = j->m->version == CG_V2;
  const char *value = v2 ? (frozen ? "1" : "0") : (frozen ? "FROZEN" : "THAWED");
  if (cg_file_write(dir, file, value, file, e) < 0)
    return rr_err_wrap(e, "job %s", j->id);
  if (!frozen)
    return 0;
  /* v1: FREEZING until every task stopped; v2: cgroup.events says frozen 1 */
  _cleanup_free_ char *path = cg_path_join(dir, v2 ? "cgroup.events" : file);
  char buf[512];
  for (int i = 0; i < 200 && path; i++) {
    uint64_t v = 0;
    if (cg_file_read(path, buf, sizeof buf, NULL) == 0 &&
        (v2 ? cg_parse_keyed(buf, "frozen", &v) && v == 1 : strncmp(buf, "FROZEN", 6) == 0))
      return 0;
    cg_sleep_ms(5);
  }
  cg_file_write(dir, file, v2 ? "0" : "THAWED", file, NULL);
  return rr_err_set(e, RR_DEADLINE_EXCEEDED, "job %s: not frozen after 1 s", j->id);
}

int cg_job_pids(cg_job *j, int **ret, size_t *ret_n, rr_err *e) {
  _cleanup_free_ char *path = cg_path_join(j->dir[cg_job_hier_first(j)], "cgroup.procs");
  FILE *f = path ? fopen(path, "re") : NULL;
  if (!f)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot read the processes of job %s", j->id);
  int *pids = NULL, pid;
  size_t n = 0;
  while (fscanf(f, "%d", &pid) == 1) {
    int *grown = realloc(pids, (n + 1) * sizeof *pids);
    if (!grown) {
      free(pids);
      fclose(f);
      return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, ENOMEM, "processes of job %s", j->id);
    }
    pids = grown;
    pids[n++] = pid;
  }
  fclose(f);
  *ret = pids;
  *ret_n = n;
  return 0;
}
