#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "sandbox/spawn.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/* Spawn o with stdout to a pipe (stdin/stderr /dev/null); return the output
 * and the status, or NULL when spawning failed (e set). */
static char *run_opts(spawn_opts *o, int *status, rr_err *e) {
  int p[2];
  assert_int_equal(pipe2(p, O_CLOEXEC), 0);
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  o->stdin_fd = o->stderr_fd = devnull;
  o->stdout_fd = p[1];
  spawn_result r;
  int rc = spawn_process(o, &r, e);
  close(p[1]);
  close(devnull);
  if (rc < 0) {
    close(p[0]);
    return NULL;
  }
  assert_true(r.pidfd >= 0);
  assert_true(r.start_ticks > 0);
  char *out = calloc(1, 65536);
  size_t got = 0;
  ssize_t n;
  while ((n = read(p[0], out + got, 65535 - got)) > 0)
    got += (size_t)n;
  close(p[0]);
  siginfo_t si;
  assert_int_equal(waitid((idtype_t)P_PIDFD, (id_t)r.pidfd, &si, WEXITED), 0);
  close(r.pidfd);
  *status = si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
  return out;
}

/* Run path args with stdout to a pipe; return the output and the status. */
static char *run(const char *path, const char *const *args, size_t nargs, const char *const *ek,
                 const char *const *ev, size_t nenv, const char *wd, int *status, rr_err *e) {
  spawn_opts o = {.path = path,
                  .args = args,
                  .nargs = nargs,
                  .env_keys = ek,
                  .env_values = ev,
                  .nenv = nenv,
                  .workdir = wd};
  return run_opts(&o, status, e);
}

static void test_resolve(void **state) {
  char *p = NULL;
  rr_err e = {0};
  assert_int_equal(spawn_resolve("sh", NULL, NULL, &p, &e), 0);
  assert_true(strcmp(p, "/usr/bin/sh") == 0 || strcmp(p, "/bin/sh") == 0);
  free(p);
  assert_int_equal(spawn_resolve("no-such-cmd-xyz", NULL, NULL, &p, &e), -1);
  assert_int_equal(e.code, RR_NOT_FOUND);
  assert_non_null(strstr(e.msg, "\"no-such-cmd-xyz\""));
  assert_int_equal(spawn_resolve("/no/such/file", NULL, NULL, &p, &e), -1);
  assert_int_equal(e.code, RR_NOT_FOUND);
  assert_int_equal(spawn_resolve("/etc/passwd", NULL, NULL, &p, &e), -1);
  assert_int_equal(e.code, RR_PERMISSION_DENIED);
  assert_int_equal(spawn_resolve("/tmp", NULL, NULL, &p, &e), -1);
  assert_int_equal(e.code, RR_PERMISSION_DENIED);
  assert_int_equal(spawn_resolve("", NULL, NULL, &p, &e), -1);
  assert_int_equal(e.code, RR_INVALID_ARGUMENT);
  /* relative with a slash: against the workdir */
  assert_int_equal(spawn_resolve("./sh", NULL, "/bin", &p, &e), 0);
  assert_string_equal(p, "/bin/./sh");
  free(p);
  /* PATH search skips a non-executable candidate and finds a later one */
  char dir[] = "/tmp/spawn_test_XXXXXX";
  assert_non_null(mkdtemp(dir));
  char f[256], sp[512];
  snprintf(f, sizeof f, "%s/true", dir);
  int fd = open(f, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  close(fd);
  snprintf(sp, sizeof sp, "%s:/usr/bin:/bin", dir);
  assert_int_equal(spawn_resolve("true", sp, NULL, &p, &e), 0);
  assert_true(strstr(p, "/bin/true") != NULL && strncmp(p, dir, strlen(dir)) != 0);
  free(p);
  snprintf(sp, sizeof sp, "%s", dir);
  assert_int_equal(spawn_resolve("true", sp, NULL, &p, &e), -1);
  assert_int_equal(e.code, RR_PERMISSION_DENIED);
  unlink(f);
  rmdir(dir);
}

static void test_output_and_args(void **state) {
  int st;
  const char *args[] = {"-c", "printf '%s|%s' \"$0\" \"$1\"", "a b", "c"};
  char *out = run("sh", args, 4, NULL, NULL, 0, NULL, &st, NULL);
  assert_non_null(out);
  assert_int_equal(st, 0);
  assert_string_equal(out, "a b|c");
  free(out);
}

static void test_env_is_minimal(void **state) {
  setenv("RUND_SECRET_TEST", "leak", 1);
  int st;
  const char *ek[] = {"FOO", "HOME", "FOO"};
  const char *ev[] = {"1", "/root", "2"};
  char *out = run("env", NULL, 0, ek, ev, 3, NULL, &st, NULL);
  assert_non_null(out);
  assert_null(strstr(out, "RUND_SECRET_TEST"));
  assert_non_null(
      strstr(out, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"));
  assert_non_null(strstr(out, "HOME=/root\n"));
  assert_non_null(strstr(out, "LANG=C.UTF-8\n"));
  assert_non_null(strstr(out, "FOO=2\n"));
  assert_null(strstr(out, "FOO=1\n"));
  free(out);
}

static void test_job_path_used_for_lookup(void **state) {
  int st;
  rr_err e = {0};
  const char *ek[] = {"PATH"};
  const char *ev[] = {"/nonexistent"};
  assert_null(run("true", NULL, 0, ek, ev, 1, NULL, &st, &e));
  assert_int_equal(e.code, RR_NOT_FOUND);
}

static void test_signals_pgid_workdir_fds(void **state) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  sigprocmask(SIG_BLOCK, &set, NULL);
  signal(SIGUSR2, SIG_IGN);
  int st;
  /* blocked and ignored masks are empty; own process group; cwd; only fds 0-2 */
  const char *args[] = {
      "-c", "grep -E '^Sig(Blk|Ign)' /proc/self/status | tr -d '\\t'; "
            "ps -o pid=,pgid= -p $$ | awk '{print ($1==$2)}'; pwd; ls /proc/self/fd | wc -l"};
  char *out = run("sh", args, 2, NULL, NULL, 0, "/tmp", &st, NULL);
  assert_non_null(out);
  assert_int_equal(st, 0);
  assert_non_null(strstr(out, "SigBlk:0000000000000000\n"));
  assert_non_null(strstr(out, "SigIgn:0000000000000000\n"));
  assert_non_null(strstr(out, "\n1\n/tmp\n"));
  /* ls itself opens one directory fd: 0,1,2 + that one */
  assert_non_null(strstr(out, "/tmp\n4\n"));
  free(out);
  sigprocmask(SIG_UNBLOCK, &set, NULL);
  signal(SIGUSR2, SIG_DFL);
}

static void test_exec_failure_is_synchronous(void **state) {
  char dir[] = "/tmp/spawn_test_XXXXXX";
  assert_non_null(mkdtemp(dir));
  char f[256];
  snprintf(f, sizeof f, "%s/bad", dir);
  int fd = open(f, O_CREAT | O_WRONLY | O_CLOEXEC, 0755);
  assert_int_equal(write(fd,
                         "\x7f"
                         "ELFgarbage",
                         11),
                   11);
  close(fd);
  int st;
  rr_err e = {0};
  assert_null(run(f, NULL, 0, NULL, NULL, 0, NULL, &st, &e));
  assert_int_equal(e.code, RR_FAILED_PRECONDITION);
  assert_non_null(strstr(e.msg, "executing"));
  /* nothing left to reap */
  assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
  assert_int_equal(errno, ECHILD);
  /* a workdir that vanished after validation fails in the child's chdir */
  char wd[300];
  snprintf(wd, sizeof wd, "%s/gone", dir);
  assert_null(run("/bin/true", NULL, 0, NULL, NULL, 0, wd, &st, &e));
  assert_int_equal(e.code, RR_INVALID_ARGUMENT);
  assert_non_null(strstr(e.msg, "command.workdir"));
  unlink(f);
  rmdir(dir);
}

static void test_fork_fallback(void **state) {
  spawn_set_clone3_disabled(true);
  int st;
  const char *args[] = {"-c", "exit 7"};
  char *out = run("sh", args, 2, NULL, NULL, 0, NULL, &st, NULL);
  assert_non_null(out);
  assert_int_equal(st, 7);
  free(out);
  rr_err e = {0};
  assert_null(run("/no/such", NULL, 0, NULL, NULL, 0, NULL, &st, &e));
  assert_int_equal(e.code, RR_NOT_FOUND);
  spawn_set_clone3_disabled(false);
}

static void test_child_nofile_limit(void **state) {
  struct rlimit rl;
  assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
  if (rl.rlim_cur < 64)
    skip();
  spawn_set_child_nofile(64);
  int st;
  const char *args[] = {"-c", "ulimit -Sn"};
  char *out = run("sh", args, 2, NULL, NULL, 0, NULL, &st, NULL);
  spawn_set_child_nofile(0);
  assert_non_null(out);
  assert_string_equal(out, "64\n");
  free(out);
}

/* cat /proc/self/cgroup placed by fd (v2) and/or cgroup.procs fds. */
static char *run_cg(int cgroup_fd, const int *procs, size_t nprocs, int *status, rr_err *e) {
  const char *args[] = {"/proc/self/cgroup"};
  spawn_opts o = {.path = "cat",
                  .args = args,
                  .nargs = 1,
                  .cgroup_fd = cgroup_fd,
                  .cgroup_procs_fds = procs,
                  .ncgroup_procs = nprocs};
  return run_opts(&o, status, e);
}

/* Our own cgroup in the v1 hierarchy ctrl ("" if none), from /proc/self/cgroup. */
static void own_cgroup(const char *ctrl, char *buf, size_t size) {
  buf[0] = '\0';
  FILE *f = fopen("/proc/self/cgroup", "re");
  if (!f)
    return;
  char line[1024];
  size_t cl = strlen(ctrl);
  while (fgets(line, sizeof line, f)) {
    char *a = strchr(line, ':'), *b = a ? strchr(a + 1, ':') : NULL;
    if (!b || (size_t)(b - a - 1) != cl || strncmp(a + 1, ctrl, cl))
      continue;
    line[strcspn(line, "\n")] = '\0';
    snprintf(buf, size, "%s", b + 1);
  }
  fclose(f);
}

/* A fresh cgroup below our own one in mount (a v1 controller's or the v2
 * one), named uniquely; its path relative to the hierarchy in rel. */
static bool make_test_cgroup(const char *mount, const char *ctrl, char *dir, size_t size, char *rel,
                             size_t relsize) {
  char own[512];
  own_cgroup(ctrl, own, sizeof own);
  if (!own[0])
    return false;
  snprintf(rel, relsize, "%s%sspawn_test_%d", own, own[strlen(own) - 1] == '/' ? "" : "/",
           (int)getpid());
  snprintf(dir, size, "%s%s", mount, rel);
  return mkdir(dir, 0755) == 0;
}

static void test_cgroup_v1_procs_join(void **state) {
  char dir[1024], rel[600];
  if (!make_test_cgroup("/sys/fs/cgroup/pids", "pids", dir, sizeof dir, rel, sizeof rel))
    skip();
  char p[1100], want[700];
  snprintf(p, sizeof p, "%s/cgroup.procs", dir);
  snprintf(want, sizeof want, ":pids:%s\n", rel);
  int fd = open(p, O_WRONLY | O_CLOEXEC);
  assert_true(fd >= 0);
  for (int fallback = 0; fallback < 2; fallback++) {
    spawn_set_clone3_disabled(fallback); /* vfork-style path, then fork */
    int st;
    rr_err e = {0};
    char *out = run_cg(0, &fd, 1, &st, &e);
    assert_non_null(out);
    assert_int_equal(st, 0);
    assert_non_null(strstr(out, want));
    free(out);
    /* a procs fd the child cannot write: a clear spawn failure, nothing left */
    int bad = open(p, O_RDONLY | O_CLOEXEC);
    int fds[2] = {fd, bad};
    assert_null(run_cg(0, fds, 2, &st, &e));
    assert_int_equal(e.code, RR_INTERNAL);
    assert_non_null(strstr(e.msg, "joining its cgroup failed"));
    close(bad);
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
  }
  spawn_set_clone3_disabled(false);
  close(fd);
  assert_int_equal(rmdir(dir), 0);
}

static void test_cgroup_v2_clone_into(void **state) {
  char dir[1024], rel[600];
  struct stat st0;
  if (stat("/sys/fs/cgroup/unified/cgroup.controllers", &st0) < 0 ||
      !make_test_cgroup("/sys/fs/cgroup/unified", "", dir, sizeof dir, rel, sizeof rel))
    skip();
  char want[700];
  snprintf(want, sizeof want, "0::%s\n", rel);
  int cfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_true(cfd > 0);
  int st;
  rr_err e = {0};
  /* placed by clone3 alone (no procs fd to write) */
  char *out = run_cg(cfd, NULL, 0, &st, &e);
  assert_non_null(out);
  assert_int_equal(st, 0);
  assert_non_null(strstr(out, want));
  free(out);
  /* forced fallback: joins through the procs file instead */
  char p[1100];
  snprintf(p, sizeof p, "%s/cgroup.procs", dir);
  int pfd = open(p, O_WRONLY | O_CLOEXEC);
  spawn_set_clone3_disabled(true);
  out = run_cg(cfd, &pfd, 1, &st, &e);
  spawn_set_clone3_disabled(false);
  assert_non_null(out);
  assert_non_null(strstr(out, want));
  free(out);
  close(pfd);
  close(cfd);
  assert_int_equal(rmdir(dir), 0);
}

static void test_start_ticks(void **state) {
  uint64_t a = 0, b = 0;
  assert_int_equal(spawn_proc_start_ticks(getpid(), &a), 0);
  assert_int_equal(spawn_proc_start_ticks(getpid(), &b), 0);
  assert_true(a > 0 && a == b);
  assert_int_equal(spawn_proc_start_ticks(0x3fffffff, &a), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_resolve),
      cmocka_unit_test(test_output_and_args),
      cmocka_unit_test(test_env_is_minimal),
      cmocka_unit_test(test_job_path_used_for_lookup),
      cmocka_unit_test(test_signals_pgid_workdir_fds),
      cmocka_unit_test(test_exec_failure_is_synchronous),
      cmocka_unit_test(test_fork_fallback),
      cmocka_unit_test(test_child_nofile_limit),
      cmocka_unit_test(test_start_ticks),
      cmocka_unit_test(test_cgroup_v1_procs_join),
      cmocka_unit_test(test_cgroup_v2_clone_into),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
