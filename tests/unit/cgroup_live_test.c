/* Unit tests of the cgroup module on real cgroups of this host, below our
 * own (rrtest-<pid>): v1 jobs with and without limits, OOM and pids limits,
 * v2 on the unified mount. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sched.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/cgroup.h"
#include "sandbox/cgroup_internal.h"

static char test_name[64];
static cg_manager *live; /* for the group teardown, so failures leave nothing */

static bool is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static void read_back(const char *dir, const char *file, const char *want) {
  char path[1024], buf[256];
  snprintf(path, sizeof path, "%s/%s", dir, file);
  assert_int_equal(cg_file_read(path, buf, sizeof buf, NULL), 0);
  buf[strcspn(buf, "\n")] = '\0';
  if (strcmp(buf, want) != 0)
    fail_msg("%s: \"%s\", want \"%s\"", path, buf, want);
}

static const char *dir_of(cg_job *j, unsigned bit) {
  for (size_t i = 0; i < j->m->nhier; i++)
    if (j->m->hier[i].controllers & bit)
      return j->dir[i];
  return NULL;
}

/* Fork a child that joins the job's cgroups, then runs sh -c script. */
static pid_t spawn_in(cg_job *j, const char *script) {
  const int *fds;
  size_t n = cg_job_procs_fds(j, &fds);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    for (size_t i = 0; i < n; i++)
      if (write(fds[i], "0", 1) != 1)
        _exit(126);
    execl("/bin/sh", "sh", "-c", script, (char *)NULL);
    _exit(127);
  }
  return pid;
}

/* Kill the job: pid (our child) dies of SIGKILL and the cgroup ends empty. */
static void kill_until_empty(cg_job *j, pid_t pid) {
  rr_err e = {0};
  assert_int_equal(cg_job_kill(j, &e), 0);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  bool empty = false;
  for (int i = 0; i < 200 && !(empty = cg_job_empty(j)); i++)
    usleep(5000);
  assert_true(empty);
}

static int count_fds(void) {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  assert_non_null(d);
  while (readdir(d))
    n++;
  closedir(d);
  return n;
}

static cg_manager *real_manager(void) {
  cg_manager *m = NULL;
  rr_err e = {0};
  if (cg_manager_new("/sys/fs/cgroup", test_name, &m, &e) < 0)
    fail_msg("cg_manager_new: %s", e.msg);
  live = m;
  return m;
}

static void test_v1_job(void **state) {
  int fds_before = count_fds();
  cg_manager *m = real_manager();
  rr_err e = {0};
  if (cg_manager_version(m) != CG_V1)
    skip(); /* this test is for the v1 host; v2 runs in the VM */
  assert_true(m->controllers & CG_CTRL_MEMORY);
  for (size_t i = 0; i < m->nhier; i++)
    assert_true(is_dir(m->hier[i].parent));
  unsigned maj, min;
  cg_limits l = {.has_cpu = true,
                 .cpu_quota_us = 50000,
                 .cpu_period_us = 100000,
                 .has_memory = true,
                 .memory_max = 256u << 20,
                 .has_pids = true,
                 .pids_max = 64};
  bool io = (m->controllers & CG_CTRL_IO) && cg_device_resolve("/", "f", &maj, &min, &e) == 0;
  if (io) {
    l.nio = 1;
    l.io[0] = (cg_io_limit){.major = maj, .minor = min, .rbps = 10u << 20, .wiops = 500};
  }
  cg_job *j = NULL;
  if (cg_job_create(m, "job1", &l, &j, &e) < 0)
    fail_msg("cg_job_create: %s", e.msg);
  assert_int_equal(cg_job_version(j), CG_V1);
  assert_int_equal(cg_job_clone_fd(j), -1);
  const int *fds;
  assert_int_equal(cg_job_procs_fds(j, &fds), m->nhier);
  cg_job *dup = NULL;
  assert_int_equal(cg_job_create(m, "job1", &l, &dup, &e), -1);
  assert_int_equal(e.code, RR_ALREADY_EXISTS);
  assert_true(is_dir(j->dir[0])); /* the failed create left the first one alone */
  read_back(dir_of(j, CG_CTRL_CPU), "cpu.cfs_quota_us", "50000");
  read_back(dir_of(j, CG_CTRL_CPU), "cpu.cfs_period_us", "100000");
  read_back(dir_of(j, CG_CTRL_MEMORY), "memory.limit_in_bytes", "268435456");
  if (cg_file_exists(dir_of(j, CG_CTRL_MEMORY), "memory.memsw.limit_in_bytes"))
    read_back(dir_of(j, CG_CTRL_MEMORY), "memory.memsw.limit_in_bytes", "268435456");
  read_back(dir_of(j, CG_CTRL_PIDS), "pids.max", "64");
  if (io) {
    char want[64];
    snprintf(want, sizeof want, "%u:%u 10485760", maj, min);
    read_back(dir_of(j, CG_CTRL_IO), "blkio.throttle.read_bps_device", want);
    snprintf(want, sizeof want, "%u:%u 500", maj, min);
    read_back(dir_of(j, CG_CTRL_IO), "blkio.throttle.write_iops_device", want);
  }
  /* Reopen as a restarted rund would; unknown ids are NOT_FOUND. */
  cg_job *again = NULL;
  assert_int_equal(cg_job_open(m, "job1", &again, &e), 0);
  cg_job_free(again);
  assert_int_equal(cg_job_open(m, "nosuch", &again, &e), -1);
  assert_int_equal(e.code, RR_NOT_FOUND);

  assert_true(cg_job_empty(j));
  /* ~100 ms of CPU: user/sys are counted in ticks, and 50 MiB (2 ms here)
   * often ended between two, leaving both 0 on an idle machine */
  pid_t pid = spawn_in(j, "dd if=/dev/zero of=/dev/null bs=1M count=3000 2>/dev/null; "
                          "(sleep 30 &); sleep 30");
  cg_usage u = {0};
  /* until dd ran and the grandchild exists; up to 10 s on a loaded machine */
  for (int i = 0; i < 1000; i++) {
    assert_int_equal(cg_job_usage(j, &u, &e), 0);
    if (u.pids_current >= 3 && u.cpu_usec > 0 && u.cpu_user_usec + u.cpu_system_usec > 0)
      break;
    usleep(10000);
  }
  assert_false(cg_job_empty(j));
  assert_true(u.cpu_usec > 0);
  assert_true(u.cpu_user_usec + u.cpu_system_usec > 0);
  assert_true(u.memory_current > 0);
  assert_true(u.memory_peak >= u.memory_current);
  assert_true(u.pids_current >= 3); /* sh, sleep, double-forked sleep */
  assert_int_equal(u.oom_kills, 0);
  /* A pid of the double-forked grandchild, outside our process tree. */
  kill_until_empty(j, pid); /* the grandchild is gone too */
  char *dirs[CG_MAX_HIER] = {0};
  for (size_t i = 0; i < m->nhier; i++)
    dirs[i] = strdup(j->dir[i]);
  if (cg_job_destroy(j, &e) < 0)
    fail_msg("cg_job_destroy: %s", e.msg);
  for (size_t i = 0; i < m->nhier; i++) {
    assert_false(is_dir(dirs[i]));
    free(dirs[i]);
  }
  char *parents[CG_MAX_HIER] = {0};
  size_t nh = m->nhier;
  for (size_t i = 0; i < nh; i++)
    parents[i] = strdup(m->hier[i].parent);
  live = NULL;
  cg_manager_free(m);
  for (size_t i = 0; i < nh; i++) {
    assert_false(is_dir(parents[i]));
    free(parents[i]);
  }
  assert_int_equal(count_fds(), fds_before); /* no fd leaked */
}

/* A job without limits: no limit file, and cgroups only where it is killed
 * whole (freezer, whose tasks count its pids) and counted (cpuacct), found
 * again by a restart. */
static void test_v1_plain_job(void **state) {
  cg_manager *m = real_manager();
  rr_err e = {0};
  if (cg_manager_version(m) != CG_V1)
    skip();
  const unsigned plain = CG_CTRL_FREEZER | CG_CTRL_CPUACCT;
  size_t want = 0;
  for (size_t i = 0; i < m->nhier; i++)
    want += (m->hier[i].controllers & plain) != 0;
  assert_true(want > 0 && want < m->nhier);
  cg_limits none = {0};
  cg_job *j = NULL;
  if (cg_job_create(m, "plain", &none, &j, &e) < 0)
    fail_msg("cg_job_create: %s", e.msg);
  const int *fds;
  assert_int_equal(cg_job_procs_fds(j, &fds), want);
  for (size_t i = 0; i < m->nhier; i++) {
    char *d = cg_path_join(m->hier[i].parent, "plain");
    assert_int_equal(is_dir(d), (m->hier[i].controllers & plain) != 0);
    free(d);
  }
  assert_null(dir_of(j, CG_CTRL_PIDS));
  cg_job *again = NULL;
  assert_int_equal(cg_job_open(m, "plain", &again, &e), 0);
  assert_int_equal(cg_job_procs_fds(again, &fds), want);
  cg_job_free(again);
  pid_t pid = spawn_in(j, "dd if=/dev/zero of=/dev/null bs=1M count=3000 2>/dev/null; "
                          "(setsid sleep 30 &); sleep 30");
  cg_usage u = {0};
  for (int i = 0; i < 1000; i++) {
    assert_int_equal(cg_job_usage(j, &u, &e), 0);
    if (u.pids_current >= 3 && u.cpu_usec > 0)
      break;
    usleep(10000);
  }
  if (m->controllers & CG_CTRL_CPUACCT)
    assert_true(u.cpu_usec > 0);
  assert_true(u.pids_current >= 3);      /* from the freezer's tasks */
  assert_int_equal(u.memory_current, 0); /* no memory cgroup */
  /* the joins are done: the fds go, the counters stay readable */
  cg_job_close_fds(j);
  assert_int_equal(cg_job_procs_fds(j, &fds), 0);
  assert_int_equal(cg_job_usage(j, &u, &e), 0);
  assert_true(u.pids_current >= 3);
  /* at the end nothing is current: not read, 0 */
  assert_int_equal(cg_job_usage_final(j, &u, &e), 0);
  assert_int_equal(u.pids_current, 0);
  if (m->controllers & CG_CTRL_CPUACCT)
    assert_true(u.cpu_usec > 0);
  /* the setsid grandchild goes too */
  kill_until_empty(j, pid);
  if (cg_job_destroy(j, &e) < 0)
    fail_msg("cg_job_destroy: %s", e.msg);
  for (size_t i = 0; i < m->nhier; i++) {
    char *d = cg_path_join(m->hier[i].parent, "plain");
    assert_false(is_dir(d));
    free(d);
  }
}

/* A job with one limit joins that limit's hierarchy beside the plain ones
 * (its kill and its CPU), not the others. */
static void test_v1_one_limit_joins_only_its_hierarchy(void **state) {
  cg_manager *m = real_manager();
  rr_err e = {0};
  if (cg_manager_version(m) != CG_V1)
    skip();
  const unsigned want = CG_CTRL_FREEZER | CG_CTRL_CPUACCT | CG_CTRL_MEMORY;
  cg_limits l = {.has_memory = true, .memory_max = 64u << 20};
  cg_job *j = NULL;
  if (cg_job_create(m, "onelimit", &l, &j, &e) < 0)
    fail_msg("cg_job_create: %s", e.msg);
  size_t n = 0;
  for (size_t i = 0; i < m->nhier; i++) {
    char *d = cg_path_join(m->hier[i].parent, "onelimit");
    bool in = (m->hier[i].controllers & want) != 0;
    assert_int_equal(is_dir(d), in);
    n += in;
    free(d);
  }
  const int *fds;
  assert_int_equal(cg_job_procs_fds(j, &fds), n);
  assert_true(n < m->nhier); /* not in cpu, blkio or pids */
  read_back(dir_of(j, CG_CTRL_MEMORY), "memory.limit_in_bytes", "67108864");
  pid_t pid = spawn_in(j, "(sleep 30 &); sleep 30");
  cg_usage u = {0};
  for (int i = 0; i < 1000; i++) {
    assert_int_equal(cg_job_usage(j, &u, &e), 0);
    if (u.pids_current >= 2 && u.memory_current > 0)
      break;
    usleep(10000);
  }
  assert_true(u.pids_current >= 2);
  assert_true(u.memory_current > 0 && u.memory_peak >= u.memory_current);
  kill_until_empty(j, pid);
  assert_int_equal(cg_job_destroy(j, &e), 0);
  for (size_t i = 0; i < m->nhier; i++) {
    char *d = cg_path_join(m->hier[i].parent, "onelimit");
    assert_false(is_dir(d));
    free(d);
  }
}

/* Pooled directories in dir (made ahead by the worker); the first two
 * names in names (if not NULL). */
static int pool_count(const char *dir, char names[2][1024]) {
  int n = 0;
  DIR *d = opendir(dir);
  if (!d)
    return -1;
  struct dirent *de;
  while ((de = readdir(d)))
    if (strncmp(de->d_name, "pool-", 5) == 0) {
      if (names && n < 2)
        snprintf(names[n], 1024, "%.700s/%.200s", dir, de->d_name);
      n++;
    }
  closedir(d);
  return n;
}

/* v1 cgroups made ahead: after a job, its hierarchies get pooled empty
 * directories (not the others); the next job's cgroup is one of them
 * renamed (names are never made twice, so a pooled name that went is the
 * one taken), as fresh as a mkdir's; a taken job name still fails; the
 * manager's end removes the pool with the subtree. */
static void test_v1_pool(void **state) {
  cg_manager *m = real_manager();
  rr_err e = {0};
  if (cg_manager_version(m) != CG_V1)
    skip();
  cg_limits none = {0};
  cg_job *a = NULL, *b = NULL, *dup = NULL;
  if (cg_job_create(m, "first", &none, &a, &e) < 0)
    fail_msg("cg_job_create: %s", e.msg);
  int fh = cg_job_hier_of(a, CG_CTRL_FREEZER);
  assert_true(fh >= 0);
  char *parent = strdup(m->hier[fh].parent);
  char pooled[2][1024];
  int n = 0;
  for (int i = 0; i < 1000 && (n = pool_count(parent, pooled)) < 2; i++) /* up to 10 s */
    usleep(10000);
  assert_int_equal(n, 2);
  for (size_t i = 0; i < m->nhier; i++)
    if (m->hier[i].controllers & CG_CTRL_MEMORY) /* no job joined memory */
      assert_int_equal(pool_count(m->hier[i].parent, NULL), 0);
  /* the pool is full (the worker adds only below two): one of those two
   * becomes the next job's cgroup (names are never made twice) */
  if (cg_job_create(m, "second", &none, &b, &e) < 0)
    fail_msg("cg_job_create: %s", e.msg);
  assert_false(is_dir(pooled[0]) && is_dir(pooled[1]));
  read_back(b->dir[fh], "freezer.state", "THAWED");
  assert_int_equal(cg_job_create(m, "second", &none, &dup, &e), -1);
  assert_int_equal(e.code, RR_ALREADY_EXISTS);
  assert_true(is_dir(b->dir[fh]));
  assert_int_equal(cg_job_destroy(a, &e), 0);
  assert_int_equal(cg_job_destroy(b, &e), 0);
  live = NULL;
  cg_manager_free(m);
  assert_false(is_dir(parent)); /* pooled directories gone with it */
  free(parent);
}

static void test_v1_oom(void **state) {
  cg_manager *m = real_manager();
  rr_err e = {0};
  if (cg_manager_version(m) != CG_V1)
    skip();
  cg_limits l = {.has_memory = true, .memory_max = 32u << 20};
  cg_job *j = NULL;
  if (cg_job_create(m, "oom", &l, &j, &e) < 0)
    fail_msg("cg_job_create: %s", e.msg);
  pid_t pid = spawn_in(j, "exec dd if=/dev/zero of=/dev/null bs=200M count=1 2>/dev/null");
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  cg_usage u = {0};
  assert_int_equal(cg_job_usage(j, &u, &e), 0);
  assert_true(u.memory_limit_hits > 0);
  if (u.oom_kills_unknown)
    assert_int_equal(u.oom_kills, 0); /* old kernel: SIGKILL + limit hits is the signal */
  else
    assert_true(u.oom_kills >= 1);
  assert_true(u.memory_peak <= (32u << 20) + (1u << 20));
  /* A pids limit refuses forks and counts them. */
  cg_job *p = NULL;
  cg_limits lp = {.has_pids = true, .pids_max = 2};
  if (m->controllers & CG_CTRL_PIDS) {
    if (cg_job_create(m, "pids", &lp, &p, &e) < 0)
      fail_msg("cg_job_create: %s", e.msg);
    pid = spawn_in(p, "for i in 1 2 3 4; do sleep 1 & done; wait");
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(cg_job_usage(p, &u, &e), 0);
    assert_true(u.pids_refused >= 1);
    assert_int_equal(cg_job_destroy(p, &e), 0);
  }
  assert_int_equal(cg_job_destroy(j, &e), 0);
  live = NULL;
  cg_manager_free(m);
}

/* v2 for real on the hybrid host's controller-less cgroup2 mount: layout,
 * the supervisor move, clone3(CLONE_INTO_CGROUP), cgroup.kill, teardown. */
#define UNIFIED "/sys/fs/cgroup/unified"
static char v2_own[128];

static void self_v2_path(char *out, size_t len) {
  char buf[4096];
  assert_int_equal(cg_file_read("/proc/self/cgroup", buf, sizeof buf, NULL), 0);
  assert_int_equal(cg_parse_proc_cgroup(buf, NULL, out, len), 0);
}

static void test_v2_unified(void **state) {
  struct statfs sfs;
  char path[256], want[300];
  if (statfs(UNIFIED, &sfs) < 0 || sfs.f_type != 0x63677270)
    skip();
  self_v2_path(path, sizeof path);
  if (strcmp(path, "/") != 0)
    skip(); /* only where our v2 cgroup is the root of that mount */
  /* Our "own" cgroup: a fresh child of ours, which this process enters. */
  snprintf(v2_own, sizeof v2_own, UNIFIED "/%s", test_name);
  assert_int_equal(mkdir(v2_own, 0755), 0);
  assert_int_equal(cg_file_write(v2_own, "cgroup.procs", "0", "test", NULL), 0);
  cg_manager *m = NULL;
  rr_err e = {0};
  if (cg_manager_new(UNIFIED, "rund", &m, &e) < 0)
    fail_msg("cg_manager_new: %s", e.msg);
  live = m;
  assert_int_equal(cg_manager_version(m), CG_V2);
  self_v2_path(path, sizeof path);
  snprintf(want, sizeof want, "/%s/rund/supervisor", test_name);
  assert_string_equal(path, want); /* moved out of OWN into our leaf */
  snprintf(want, sizeof want, "%s/rund/jobs", v2_own);
  assert_string_equal(m->hier[0].parent, want);
  assert_non_null(strstr(cg_manager_describe(m), "cgroup v2"));
  cg_limits l = {.has_memory = true, .memory_max = 64u << 20};
  cg_job *j = NULL;
  assert_int_equal(cg_job_create(m, "j1", &l, &j, &e), -1);
  assert_int_equal(e.code, RR_FAILED_PRECONDITION); /* no memory controller here */
  assert_non_null(strstr(e.msg, "memory"));
  cg_limits none = {0};
  if (cg_job_create(m, "j1", &none, &j, &e) < 0)
    fail_msg("cg_job_create: %s", e.msg);
  assert_true(cg_job_clone_fd(j) >= 0);
  const int *fds;
  assert_int_equal(cg_job_procs_fds(j, &fds), 1);
  assert_true(cg_job_empty(j));
  struct clone_args ca = {
      .flags = CLONE_INTO_CGROUP, .exit_signal = SIGCHLD, .cgroup = (uint64_t)cg_job_clone_fd(j)};
  pid_t pid = (pid_t)syscall(SYS_clone3, &ca, sizeof ca);
  assert_true(pid >= 0);
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c",
          "(sleep 30 &); dd if=/dev/zero of=/dev/null count=20000 "
          "2>/dev/null; sleep 30",
          (char *)NULL);
    _exit(127);
  }
  cg_usage u = {0};
  for (int i = 0; i < 200 && u.cpu_usec == 0; i++) {
    usleep(10000);
    assert_int_equal(cg_job_usage(j, &u, &e), 0);
  }
  assert_true(u.cpu_usec > 0); /* cpu.stat is there without the cpu controller */
  assert_false(cg_job_empty(j));
  kill_until_empty(j, pid);
  snprintf(want, sizeof want, "%s/rund/jobs/j1", v2_own);
  if (cg_job_destroy(j, &e) < 0)
    fail_msg("cg_job_destroy: %s", e.msg);
  assert_false(is_dir(want));
  live = NULL;
  cg_manager_free(m);
  self_v2_path(path, sizeof path);
  snprintf(want, sizeof want, "/%s", test_name);
  assert_string_equal(path, want); /* back in OWN */
  snprintf(want, sizeof want, "%s/rund", v2_own);
  assert_false(is_dir(want));
}

static int teardown_v2(void **state) {
  if (live) {
    cg_job *j = NULL;
    if (cg_job_open(live, "j1", &j, NULL) == 0)
      cg_job_destroy(j, NULL);
    cg_manager_free(live);
    live = NULL;
  }
  if (v2_own[0]) {
    cg_file_write(UNIFIED, "cgroup.procs", "0", "test", NULL);
    char p[300];
    snprintf(p, sizeof p, "%s/rund/supervisor", v2_own);
    rmdir(p);
    snprintf(p, sizeof p, "%s/rund/jobs", v2_own);
    rmdir(p);
    snprintf(p, sizeof p, "%s/rund", v2_own);
    rmdir(p);
    if (rmdir(v2_own) < 0)
      fprintf(stderr, "cannot remove %s: %s\n", v2_own, strerror(errno));
  }
  return 0;
}

/* Whatever a failed test left: kill, remove job dirs, then the subtrees. */
static int teardown(void **state) {
  if (!live)
    return 0;
  for (size_t i = 0; i < live->nhier; i++) {
    DIR *d = opendir(live->hier[i].parent);
    struct dirent *de;
    while (d && (de = readdir(d))) {
      if (de->d_type != DT_DIR || de->d_name[0] == '.')
        continue;
      cg_job *j = NULL;
      if (cg_job_open(live, de->d_name, &j, NULL) == 0)
        cg_job_destroy(j, NULL);
    }
    if (d)
      closedir(d);
  }
  cg_manager_free(live);
  live = NULL;
  return 0;
}

int main(void) {
  snprintf(test_name, sizeof test_name, "rrtest-%d", (int)getpid());
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_v1_job, teardown),
      cmocka_unit_test_teardown(test_v1_plain_job, teardown),
      cmocka_unit_test_teardown(test_v1_one_limit_joins_only_its_hierarchy, teardown),
      cmocka_unit_test_teardown(test_v1_pool, teardown),
      cmocka_unit_test_teardown(test_v1_oom, teardown),
      cmocka_unit_test_teardown(test_v2_unified, teardown_v2),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
