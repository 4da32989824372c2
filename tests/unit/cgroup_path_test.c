/* cg_path_create/open (runproc's linux.cgroupsPath) on this host's cgroup
 * v1 hierarchies, below our own cgroup: relative paths with parents made,
 * limits written, a process joining, kill and removal; absolute paths;
 * bad paths refused with the field named. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/cgroup.h"
#include "sandbox/cgroup_internal.h"

static char top[64]; /* rrpath-<pid>, below our own cgroup */

static bool is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static const char *dir_of(cg_job *j, unsigned bit) {
  for (size_t i = 0; i < j->m->nhier; i++)
    if (j->m->hier[i].controllers & bit)
      return j->dir[i];
  return NULL;
}

static bool v1_here(void) {
  cg_job *j;
  rr_err e = {0};
  char p[128];
  snprintf(p, sizeof p, "%s/probe", top);
  cg_limits none = {0};
  if (cg_path_create("/sys/fs/cgroup", p, &none, &j, &e) < 0)
    return false;
  cg_job_destroy(j, NULL);
  return true;
}

static void test_relative_with_limits(void **state) {
  (void)state;
  if (!v1_here())
    skip();
  char path[128];
  snprintf(path, sizeof path, "%s/sub/ctr", top);
  cg_limits l = {.has_memory = true, .memory_max = 64 << 20, .has_pids = true, .pids_max = 42};
  cg_job *j;
  rr_err e = {0};
  if (cg_path_create("/sys/fs/cgroup", path, &l, &j, &e) < 0)
    fail_msg("%s", e.msg);
  const char *mem = dir_of(j, CG_CTRL_MEMORY);
  assert_non_null(mem);
  assert_non_null(strstr(mem, path));
  char buf[64], f[1024];
  snprintf(f, sizeof f, "%s/memory.limit_in_bytes", mem);
  assert_int_equal(cg_file_read(f, buf, sizeof buf, NULL), 0);
  assert_int_equal(strtoull(buf, NULL, 10), 64 << 20);
  /* it exists now */
  cg_job *again;
  assert_int_equal(cg_path_create("/sys/fs/cgroup", path, &l, &again, &e), -1);
  assert_int_equal(e.code, RR_ALREADY_EXISTS);
  /* a process joins, is killed through it; the cgroup goes */
  const int *fds;
  size_t n = cg_job_procs_fds(j, &fds);
  pid_t pid = fork();
  if (pid == 0) {
    for (size_t i = 0; i < n; i++)
      if (write(fds[i], "0", 1) != 1)
        _exit(126);
    pause();
    _exit(0);
  }
  cg_job *opened;
  if (cg_path_open("/sys/fs/cgroup", path, &opened, &e) < 0)
    fail_msg("%s", e.msg);
  for (int i = 0; i < 200 && cg_job_empty(opened); i++)
    usleep(5000);
  assert_false(cg_job_empty(opened));
  /* a kill waits ~20 ms for the freeze: a task not frozen yet is left for
   * the next call */
  int st = 0;
  pid_t got = 0;
  for (int i = 0; i < 100 && got == 0; i++) {
    assert_int_equal(cg_job_kill(opened, &e), 0);
    usleep(10000);
    got = waitpid(pid, &st, WNOHANG);
  }
  assert_int_equal(got, pid);
  assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  assert_int_equal(cg_job_destroy(opened, &e), 0);
  assert_false(is_dir(mem));
  cg_job_free(j); /* its fds; the cgroup is gone already */
  assert_int_equal(cg_path_open("/sys/fs/cgroup", path, &opened, &e), -1);
  assert_int_equal(e.code, RR_NOT_FOUND);
}

static void test_absolute(void **state) {
  (void)state;
  if (!v1_here())
    skip();
  /* our own cgroup's path, absolute: the same place as the relative one;
   * only when it is the same in every hierarchy (else an absolute path is
   * below our own cgroup in some of them only) */
  char own[512] = "", line[1024];
  bool same = true;
  FILE *f = fopen("/proc/self/cgroup", "re");
  while (f && fgets(line, sizeof line, f)) {
    char *c = strchr(line, ':'), *p = c ? strchr(c + 1, ':') : NULL;
    if (!p || c[1] == ':' || strncmp(c + 1, "name=", 5) == 0)
      continue;
    p[strcspn(p, "\n")] = '\0';
    if (*own && strcmp(own, p + 1) != 0)
      same = false;
    snprintf(own, sizeof own, "%s", p + 1);
  }
  if (f)
    fclose(f);
  if (!*own || !same)
    skip();
  char path[700];
  snprintf(path, sizeof path, "%s/%s/abs", strcmp(own, "/") == 0 ? "" : own, top);
  cg_limits none = {0};
  cg_job *j;
  rr_err e = {0};
  if (cg_path_create("/sys/fs/cgroup", path, &none, &j, &e) < 0)
    fail_msg("%s", e.msg);
  char want[800];
  snprintf(want, sizeof want, "/sys/fs/cgroup/memory%s", path);
  assert_string_equal(dir_of(j, CG_CTRL_MEMORY), want);
  assert_int_equal(cg_job_destroy(j, &e), 0);
}

static void test_freeze_and_pids(void **state) {
  (void)state;
  if (!v1_here())
    skip();
  char path[128];
  snprintf(path, sizeof path, "%s/frozen", top);
  cg_limits none = {0};
  cg_job *j;
  rr_err e = {0};
  if (cg_path_create("/sys/fs/cgroup", path, &none, &j, &e) < 0)
    fail_msg("%s", e.msg);
  const int *fds;
  size_t n = cg_job_procs_fds(j, &fds);
  int ready[2];
  assert_int_equal(pipe(ready), 0);
  pid_t pid = fork();
  if (pid == 0) {
    for (size_t i = 0; i < n; i++)
      if (write(fds[i], "0", 1) != 1)
        _exit(126);
    (void)!write(ready[1], "x", 1);
    for (;;)
      pause();
  }
  char b;
  assert_int_equal(read(ready[0], &b, 1), 1);
  int *pids;
  size_t np;
  assert_int_equal(cg_job_pids(j, &pids, &np, &e), 0);
  assert_int_equal(np, 1);
  assert_int_equal(pids[0], pid);
  free(pids);
  assert_false(cg_job_frozen(j));
  if (cg_job_freeze(j, true, &e) < 0)
    fail_msg("%s", e.msg);
  assert_true(cg_job_frozen(j));
  assert_int_equal(cg_job_freeze(j, false, &e), 0);
  assert_false(cg_job_frozen(j));
  int st = 0;
  pid_t got = 0;
  for (int i = 0; i < 100 && got == 0; i++) {
    assert_int_equal(cg_job_kill(j, &e), 0);
    usleep(10000);
    got = waitpid(pid, &st, WNOHANG);
  }
  assert_int_equal(got, pid);
  close(ready[0]);
  close(ready[1]);
  assert_int_equal(cg_job_destroy(j, &e), 0);
}

static void test_bad_paths(void **state) {
  (void)state;
  const char *bad[] = {"", "a/../b", "/a/./b", "a//b", "a/b/", "a b", "..", "a/$x"};
  cg_limits none = {0};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    cg_job *j;
    rr_err e = {0};
    assert_int_equal(cg_path_create("/sys/fs/cgroup", bad[i], &none, &j, &e), -1);
    assert_int_equal(e.code, RR_INVALID_ARGUMENT);
    assert_non_null(strstr(e.msg, "linux.cgroupsPath"));
  }
}

static int teardown(void **state) {
  (void)state;
  /* the parents the tests made (children first) */
  char own[512] = "", line[1024];
  FILE *f = fopen("/proc/self/cgroup", "re");
  while (f && fgets(line, sizeof line, f)) {
    char *c = strchr(line, ':'), *p = c ? strchr(c + 1, ':') : NULL;
    if (!p || c[1] == ':')
      continue;
    *p = '\0';
    char ctrl[256];
    snprintf(ctrl, sizeof ctrl, "%s", c + 1);
    snprintf(own, sizeof own, "%s", p + 1);
    own[strcspn(own, "\n")] = '\0';
    char *name = strchr(ctrl, '=') ? strchr(ctrl, '=') + 1 : ctrl;
    char d[1400];
    snprintf(d, sizeof d, "/sys/fs/cgroup/%s%s/%s/sub", name, own, top);
    rmdir(d);
    snprintf(d, sizeof d, "/sys/fs/cgroup/%s%s/%s", name, own, top);
    rmdir(d);
  }
  if (f)
    fclose(f);
  return 0;
}

static void test_systemd_form(void **state) {
  (void)state;
  const struct {
    const char *in, *out;
  } ok[] = {
      {"system.slice:docker:abc", "/system.slice/docker-abc.scope"},
      {"kubepods-besteffort-pod1.slice:cri-containerd:c1",
       "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/"
       "cri-containerd-c1.scope"},
      {":runc:x", "/system.slice/runc-x.scope"},
      {"user.slice::app.scope", "/user.slice/app.scope"},
      {"-.slice:p:n", "/p-n.scope"},
  };
  char out[512];
  for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
    rr_err e = {0};
    if (cg_path_from_systemd(ok[i].in, out, sizeof out, &e) < 0)
      fail_msg("%s: %s", ok[i].in, e.msg);
    assert_string_equal(out, ok[i].out);
  }
  const struct {
    const char *in, *msg;
  } bad[] = {
      {"a/b", "is not systemd's \"slice:prefix:name\""},
      {"a.slice:b", "is not systemd's"},
      {"a.slice:b:c:d", "is not systemd's"},
      {"a.slice:b:", "is not systemd's"},
      {"nope:p:n", "\"nope\" is not a systemd slice"},
      {"a--b.slice:p:n", "is not a systemd slice"},
      {"-a.slice:p:n", "is not a systemd slice"},
      {"a.slice::..", "is not a cgroup path"},
      {"a.slice:p/q:n", "is not systemd's"},
      {"a.slice:p:../../n", "is not systemd's"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    rr_err e = {0};
    assert_int_equal(cg_path_from_systemd(bad[i].in, out, sizeof out, &e), -1);
    if (!strstr(e.msg, bad[i].msg) || !strstr(e.msg, "linux.cgroupsPath"))
      fail_msg("%s: %s", bad[i].in, e.msg);
  }
}

int main(void) {
  if (geteuid() != 0) {
    fprintf(stderr, "cgroup_path_test: needs root; skipped\n");
    return 77;
  }
  snprintf(top, sizeof top, "rrpath-%d", (int)getpid());
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_relative_with_limits), cmocka_unit_test(test_absolute),
      cmocka_unit_test(test_freeze_and_pids),      cmocka_unit_test(test_bad_paths),
      cmocka_unit_test(test_systemd_form),
  };
  return cmocka_run_group_tests(tests, NULL, teardown);
}
