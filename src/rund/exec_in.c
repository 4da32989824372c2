/* exec --in (exec_in.h). */
#include "exec_in.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "jobs/job_sandbox.h"
#include "sandbox/spawn.h"

/* The job's first process as an O_PATH /proc/PID directory, checked to be
 * that process still (not a reuse of its pid). */
static int exec_in_procfd(const job *j, int *ret, rr_err *e) {
  char path[32];
  snprintf(path, sizeof path, "/proc/%d", (int)j->pid);
  _cleanup_close_ int fd = j->pid > 0 ? open(path, O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
  uint64_t ticks = 0;
  if (fd < 0 || spawn_proc_start_ticks(j->pid, &ticks) < 0 || ticks != j->start_ticks)
    return rr_err_set(e, RR_FAILED_PRECONDITION, "job %s has ended: nothing to run in", j->id);
  *ret = TAKE_FD(fd);
  return 0;
}

/* The job's env first, the request's after (a later key wins). */
static int exec_in_command(exec_in *in, const Rundwire__Command *cmd, rr_err *e) {
  const job_request *r = &in->job->req;
  size_t n = r->nenv + cmd->n_env;
  in->command = *cmd;
  in->entries = calloc(n ? n : 1, sizeof *in->entries);
  in->env = calloc(n ? n : 1, sizeof *in->env);
  if (!in->entries || !in->env)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  for (size_t i = 0; i < n; i++) {
    in->env[i] = &in->entries[i];
    if (i >= r->nenv) {
      in->entries[i] = *cmd->env[i - r->nenv];
      continue;
    }
    rundwire__env_entry__init(&in->entries[i]);
    in->entries[i].key = (ProtobufCBinaryData){strlen(r->env_keys[i]), (uint8_t *)r->env_keys[i]};
    in->entries[i].value =
        (ProtobufCBinaryData){strlen(r->env_values[i]), (uint8_t *)r->env_values[i]};
  }
  in->command.env = in->env;
  in->command.n_env = n;
  if (!cmd->workdir.len) { /* the job's; "/" for one that had none (not the home) */
    const char *wd = r->workdir && *r->workdir ? r->workdir : "/";
    in->command.workdir = (ProtobufCBinaryData){strlen(wd), (uint8_t *)wd};
  }
  return 0;
}

int exec_in_open(rpc_call *c, const Rundwire__ExecStart *st, exec_in *ret, rr_err *e) {
  memset(ret, 0, sizeof *ret);
  ret->procfd = -1;
  if (!st->job_id.len)
    return 0;
  rund_ctx *ctx = rpc_call_method_data(c);
  authz_identity id = {0};
  if (rund_call_identity(c, &id, e) < 0)
    return -1;
  job *j;
  int rc = rund_job_lookup_visible(ctx, &id, &st->job_id, &j, e);
  authz_identity_clear(&id);
  if (rc < 0)
    return -1;
  if (st->limits)
    return rr_err_set(e, RR_INVALID_ARGUMENT,
                      "limits with job_id: the command runs under the job's limits");
  if (st->sandbox)
    return rr_err_set(e, RR_INVALID_ARGUMENT,
                      "sandbox with job_id: the command runs in the job's sandbox");
  if (j->state != JOB_RUNNING)
    return rr_err_set(e, RR_FAILED_PRECONDITION, "job %s has ended (%s): nothing to run in", j->id,
                      j->reason[0] ? j->reason : job_state_name(j->state));
  ret->job = j;
  if (exec_in_procfd(j, &ret->procfd, e) < 0 ||
      (st->command && exec_in_command(ret, st->command, e) < 0)) {
    exec_in_free(ret);
    return -1;
  }
  return 0;
}

/* A small /proc file of dir (an fd) into buf; its length, -1 when gone. */
static ssize_t exec_in_proc_read(int dir, const char *name, char *buf, size_t len) {
  _cleanup_close_ int fd = openat(dir, name, O_RDONLY | O_CLOEXEC);
  ssize_t n = fd < 0 ? -1 : rr_read(fd, buf, len - 1);
  if (n >= 0)
    buf[n] = '\0';
  return n;
}

/* id (ours) as the user namespace whose map text this is sees it; itself
 * when unmapped (no user namespace: "0 0 4294967295"). */
static unsigned long exec_in_id_inside(const char *map, unsigned long id) {
  unsigned long in, out, count;
  for (const char *l = map; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
    if (sscanf(l, "%lu %lu %lu", &in, &out, &count) == 3 && id >= out && id - out < count)
      return id - out + in;
  return id;
}

/* The ids of the job's command as its sandbox sees them: the first child of
 * its first process (rund-waiter, the sandbox's init, which keep their own
 * ids), else that process itself. */
static int exec_in_ids(int procfd, pid_t pid, unsigned long *uid, unsigned long *gid, rr_err *e) {
  char buf[4096], path[64];
  snprintf(path, sizeof path, "task/%d/children", (int)pid);
  long child = exec_in_proc_read(procfd, path, buf, sizeof buf) > 0 ? strtol(buf, NULL, 10) : 0;
  snprintf(path, sizeof path, "/proc/%ld", child);
  _cleanup_close_ int cfd = child > 0 ? open(path, O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
  int dir = cfd >= 0 ? cfd : procfd;
  char umap[1024] = "", gmap[1024] = "";
  if (exec_in_proc_read(dir, "status", buf, sizeof buf) <= 0 ||
      exec_in_proc_read(dir, "uid_map", umap, sizeof umap) < 0 ||
      exec_in_proc_read(dir, "gid_map", gmap, sizeof gmap) < 0)
    return rr_err_set(e, RR_FAILED_PRECONDITION, "the job has ended: nothing to run in");
  const char *u = strstr(buf, "\nUid:"), *g = strstr(buf, "\nGid:");
  if (!u || !g || sscanf(u + 5, "%lu", uid) != 1 || sscanf(g + 5, "%lu", gid) != 1)
    return rr_err_set(e, RR_INTERNAL, "cannot read the ids of the job's command");
  *uid = exec_in_id_inside(umap, *uid);
  *gid = exec_in_id_inside(gmap, *gid);
  return 0;
}

int exec_in_apply(exec_in *in, prepared *p, exec_session *x, rr_err *e) {
  const job_sandbox *js = &in->job->req.sandbox;
  job_sandbox *s = &p->req.sandbox;
  job_sandbox_free(s);
  memset(s, 0, sizeof *s);
  s->profile = js->profile;
  s->net = js->net;
  s->has_user = js->has_user;
  s->uid = js->uid;
  s->gid = js->gid;
  unsigned long uid, gid;
  if (exec_in_ids(in->procfd, in->job->pid, &uid, &gid, e) < 0)
    return -1;
  if (s->profile != SB_PROFILE_HOST) { /* the ids inside, as its command has them */
    s->join_procfd = in->procfd;
    s->has_user = true;
    s->uid = (uint32_t)uid;
    s->gid = (uint32_t)gid;
    p->run_as = false; /* rund joins: the ids are the sandbox's */
  } else if ((p->run_as = uid != geteuid()) &&
             spawn_ids_for_user((uid_t)uid, (gid_t)gid, &p->ids, e) < 0)
    return -1;
  return exec_session_set_job_cgroup(x, in->job->cg, e);
}

void exec_in_free(exec_in *in) {
  if (in->procfd >= 0)
    close(in->procfd);
  in->procfd = -1;
  free(in->entries);
  free(in->env);
  in->entries = NULL;
  in->env = NULL;
  in->job = NULL;
}
