/* Unit tests of the cgroup module that need no real cgroup: parsers on sample
 * kernel text, validation, device resolution, detection, a fake root.
 * Tests on real cgroups of this host are in cgroup_live_test.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sandbox/cgroup.h"
#include "sandbox/cgroup_internal.h"

/* ---- validation ---- */

static void expect_invalid(const cg_limits *l, const char *needle) {
  rr_err e = {0};
  assert_int_equal(cg_limits_validate(l, &e), -1);
  assert_int_equal(e.code, RR_INVALID_ARGUMENT);
  if (!strstr(e.msg, needle))
    fail_msg("message \"%s\" lacks \"%s\"", e.msg, needle);
}

static void test_validate(void **state) {
  cg_limits l = {0};
  rr_err e = {0};
  assert_false(cg_limits_any(&l));
  assert_int_equal(cg_limits_validate(&l, &e), 0);
  l = (cg_limits){.has_cpu = true, .cpu_quota_us = 20000};
  assert_true(cg_limits_any(&l));
  assert_int_equal(cg_limits_validate(&l, &e), 0);
  l.cpu_quota_us = 999;
  expect_invalid(&l, "limits.cpu.quota_us: 999 is too small");
  l.cpu_quota_us = 20000;
  l.cpu_period_us = 5000000;
  expect_invalid(&l, "limits.cpu.period_us: 5000000 out of range 1000..1000000");
  l.cpu_period_us = 999;
  expect_invalid(&l, "limits.cpu.period_us: 999");
  l.cpu_period_us = 1000;
  l.cpu_quota_us = 1000ull * CG_MAX_CPUS + 1;
  expect_invalid(&l, "too large");
  l = (cg_limits){.has_memory = true, .memory_max = 0};
  expect_invalid(&l, "limits.memory_max: 0 is too small (at least 1048576 bytes)");
  l.memory_max = (1ull << 60) + 1;
  expect_invalid(&l, "limits.memory_max");
  l.memory_max = 1 << 20;
  assert_int_equal(cg_limits_validate(&l, &e), 0);
  l = (cg_limits){.has_pids = true, .pids_max = 0};
  expect_invalid(&l, "limits.pids_max: 0 out of range 1..4194304");
  l.pids_max = 4194305;
  expect_invalid(&l, "limits.pids_max: 4194305");
  l = (cg_limits){.nio = 1, .io = {{.major = 8, .minor = 0}}};
  expect_invalid(&l, "limits.io[0]: no limit set for 8:0");
  l.io[0].wbps = 1;
  assert_int_equal(cg_limits_validate(&l, &e), 0);
  l.nio = 2;
  l.io[1] = l.io[0];
  expect_invalid(&l, "limits.io[1].device: 8:0 is already limited by limits.io[0]");
  l.io[1].major = 0;
  expect_invalid(&l, "limits.io[1].device: 0:0");
  l.nio = CG_MAX_IO + 1;
  expect_invalid(&l, "limits.io: 17 devices");
}

/* ---- device resolution ---- */

static void expect_device_error(const char *spec, const char *needle) {
  rr_err e = {0};
  unsigned maj = 77, min = 77;
  assert_int_equal(cg_device_resolve(spec, "limits.io[0].device", &maj, &min, &e), -1);
  assert_int_equal(e.code, RR_INVALID_ARGUMENT);
  if (!strstr(e.msg, needle) || !strstr(e.msg, "limits.io[0].device"))
    fail_msg("message \"%s\" lacks \"%s\"", e.msg, needle);
  assert_int_equal(maj, 77); /* untouched on failure */
}

static void test_device(void **state) {
  rr_err e = {0};
  unsigned maj, min;
  struct stat st;
  assert_int_equal(stat("/", &st), 0);
  if (access("/sys/dev/block/254:0", F_OK) == 0) {
    assert_int_equal(cg_device_resolve("254:0", "f", &maj, &min, &e), 0);
    assert_int_equal(maj, 254);
    assert_int_equal(min, 0);
  }
  if (stat("/dev/vda", &st) == 0 && S_ISBLK(st.st_mode)) {
    assert_int_equal(cg_device_resolve("/dev/vda", "f", &maj, &min, &e), 0);
    assert_int_equal(maj, 254);
    assert_int_equal(min, 0);
  }
  /* "/" is on a block device here (ext4 on /dev/vda); else it must say so. */
  if (cg_device_resolve("/", "f", &maj, &min, &e) == 0) {
    char path[64];
    snprintf(path, sizeof path, "/sys/dev/block/%u:%u", maj, min);
    assert_int_equal(access(path, F_OK), 0);
    snprintf(path, sizeof path, "/sys/dev/block/%u:%u/partition", maj, min);
    assert_int_not_equal(access(path, F_OK), 0); /* a disk, not a partition */
  } else {
    assert_non_null(strstr(e.msg, "not on a block device"));
  }
  expect_device_error("/proc", "\"/proc\" is not on a block device (tmpfs?): name a device");
  expect_device_error("/dev/null", "character device");
  expect_device_error("/nonexistent/x", "cannot stat \"/nonexistent/x\"");
  expect_device_error("abc", "\"abc\" is neither MAJ:MIN nor an absolute path");
  expect_device_error("1:2:3", "\"1:2:3\" is neither");
  expect_device_error("8:", "neither");
  expect_device_error("-8:0", "neither");
  expect_device_error("99999:0", "\"99999:0\" out of range");
  expect_device_error("", "empty device");
  if (access("/sys/dev/block/9:9", F_OK) != 0)
    expect_device_error("9:9", "unknown device 9:9");
}

/* ---- pure parsers on sample text ---- */

static const char hybrid_mountinfo[] =
    "23 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct\n"
    "35 31 0:32 /a /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
    "37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer\n"
    "39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
    "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd\n"
    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate\n"
    "42 31 0:39 / /other/cg\\040x rw,relatime - cgroup cgroup rw,blkio\n";

static const char hybrid_proc[] = "12:pids:/user.slice\n"
                                  "5:freezer:/\n"
                                  "4:memory:/a/b\n"
                                  "3:blkio:/\n"
                                  "2:cpu,cpuacct:/user.slice/x\n"
                                  "1:name=systemd:/user.slice/x\n"
                                  "0::/user.slice/x\n";

static void test_parse_mountinfo(void **state) {
  cg_mount m[8];
  size_t n = cg_parse_mountinfo(hybrid_mountinfo, m, 8);
  assert_int_equal(n, 7);
  assert_string_equal(m[0].path, "/sys/fs/cgroup/cpu,cpuacct");
  assert_int_equal(m[0].controllers, CG_CTRL_CPU | CG_CTRL_CPUACCT);
  assert_false(m[0].v2);
  assert_string_equal(m[1].root, "/a");
  assert_int_equal(m[1].controllers, CG_CTRL_MEMORY);
  assert_int_equal(m[4].controllers, 0); /* name=systemd */
  assert_true(m[5].v2);
  assert_string_equal(m[5].path, "/sys/fs/cgroup/unified");
  assert_string_equal(m[6].path, "/other/cg x");
  assert_int_equal(m[6].controllers, CG_CTRL_IO);
  assert_int_equal(cg_parse_mountinfo(hybrid_mountinfo, m, 2), 2);
  assert_int_equal(cg_parse_mountinfo("", m, 8), 0);
  assert_int_equal(cg_parse_mountinfo("garbage\n1 2 3\n", m, 8), 0);
}

static void test_parse_proc_cgroup(void **state) {
  char out[64];
  assert_int_equal(cg_parse_proc_cgroup(hybrid_proc, NULL, out, sizeof out), 0);
  assert_string_equal(out, "/user.slice/x");
  assert_int_equal(cg_parse_proc_cgroup(hybrid_proc, "cpuacct", out, sizeof out), 0);
  assert_string_equal(out, "/user.slice/x");
  assert_int_equal(cg_parse_proc_cgroup(hybrid_proc, "memory", out, sizeof out), 0);
  assert_string_equal(out, "/a/b");
  assert_int_equal(cg_parse_proc_cgroup(hybrid_proc, "cpuset", out, sizeof out), -1);
  assert_int_equal(cg_parse_proc_cgroup(hybrid_proc, "cpu,", out, sizeof out), -1);
  assert_int_equal(cg_parse_proc_cgroup("0::/\n", NULL, out, sizeof out), 0);
  assert_string_equal(out, "/");
  assert_int_equal(cg_parse_proc_cgroup("1:name=systemd:/\n", NULL, out, sizeof out), -1);
  assert_int_equal(cg_parse_proc_cgroup("0::/long/path\n", NULL, out, 5), -1);
}

static void test_detect(void **state) {
  cg_mount m[8];
  cg_detection d;
  rr_err e = {0};
  size_t n = cg_parse_mountinfo(hybrid_mountinfo, m, 8);
  assert_int_equal(cg_detect("/sys/fs/cgroup", false, m, n, hybrid_proc, &d, &e), 0);
  assert_int_equal(d.version, CG_V1);
  assert_int_equal(d.nhier, 4); /* blkio is mounted outside root */
  assert_string_equal(d.hier[0].own_dir, "/sys/fs/cgroup/cpu,cpuacct/user.slice/x");
  assert_string_equal(d.hier[1].own_dir, "/sys/fs/cgroup/memory/b"); /* mount root /a */
  assert_int_equal(d.hier[1].controllers, CG_CTRL_MEMORY);
  assert_string_equal(d.hier[2].own_dir, "/sys/fs/cgroup/freezer");
  assert_string_equal(d.hier[3].own_dir, "/sys/fs/cgroup/pids/user.slice");
  assert_int_equal(d.hier[3].controllers, CG_CTRL_PIDS);
  /* Only the unified mount: a v2 candidate (kept if it has controllers). */
  const char v2only[] = "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
  n = cg_parse_mountinfo(v2only, m, 8);
  assert_int_equal(cg_detect("/sys/fs/cgroup", false, m, n, hybrid_proc, &d, &e), 0);
  assert_int_equal(d.version, CG_V2);
  assert_string_equal(d.hier[0].own_dir, "/sys/fs/cgroup/unified/user.slice/x");
  assert_false(d.own_is_root);
  /* Pure v2: root itself is cgroup2. */
  assert_int_equal(cg_detect("/sys/fs/cgroup", true, m, 0, "0::/\n", &d, &e), 0);
  assert_int_equal(d.version, CG_V2);
  assert_true(d.own_is_root);
  assert_string_equal(d.hier[0].own_dir, "/sys/fs/cgroup");
  assert_int_equal(cg_detect("/sys/fs/cgroup", true, m, 0, "1:cpu:/\n", &d, &e), -1);
  /* Nothing under root. */
  n = cg_parse_mountinfo(hybrid_mountinfo, m, 8);
  assert_int_equal(cg_detect("/elsewhere", false, m, n, hybrid_proc, &d, &e), 0);
  assert_int_equal(d.version, CG_NONE);
}

static void test_parse_stats(void **state) {
  /* Samples in the formats of Documentation/admin-guide/cgroup-v2.rst. */
  cg_usage u = {0};
  cg_parse_cpu_stat("usage_usec 1234567\nuser_usec 1000000\nsystem_usec 234567\n"
                    "nr_periods 10\nnr_throttled 3\nthrottled_usec 4500\n",
                    &u);
  assert_int_equal(u.cpu_usec, 1234567);
  assert_int_equal(u.cpu_user_usec, 1000000);
  assert_int_equal(u.cpu_system_usec, 234567);
  assert_int_equal(u.cpu_throttled_usec, 4500);
  cg_parse_io_stat("8:16 rbytes=1459200 wbytes=314773504 rios=192 wios=353 dbytes=0 dios=0\n"
                   "8:0 rbytes=90430464 wbytes=299008000 rios=8950 wios=1252 dbytes=50331648 "
                   "dios=3021\n",
                   &u);
  assert_int_equal(u.io_read_bytes, 1459200 + 90430464);
  assert_int_equal(u.io_write_bytes, 314773504 + 299008000);
  assert_int_equal(u.io_read_ops, 192 + 8950);
  assert_int_equal(u.io_write_ops, 353 + 1252);
  uint64_t v = 0;
  const char events[] = "low 0\nhigh 0\nmax 17\noom 2\noom_kill 1\noom_group_kill 0\n";
  assert_true(cg_parse_keyed(events, "oom_kill", &v));
  assert_int_equal(v, 1);
  assert_true(cg_parse_keyed(events, "max", &v));
  assert_int_equal(v, 17);
  assert_true(cg_parse_keyed(events, "oom", &v));
  assert_int_equal(v, 2);
  assert_false(cg_parse_keyed(events, "oom_k", &v));
  assert_false(cg_parse_keyed("populated\n", "populated", &v));
  uint64_t un, sn;
  assert_true(cg_parse_usage_all("cpu user system\n0 1000 20\n1 3000 400\n", &un, &sn));
  assert_int_equal(un, 4000);
  assert_int_equal(sn, 420);
  assert_false(cg_parse_usage_all("cpu user system\n0 1000 20\n1 3000", &un, &sn)); /* cut */
  assert_false(cg_parse_usage_all("cpu user system\n", &un, &sn));
  assert_false(cg_parse_usage_all("0 1 2\n", &un, &sn));
  assert_false(cg_parse_usage_all("cpu user system\n0 x 2\n", &un, &sn));
  uint64_t r, w;
  cg_parse_blkio("8:0 Read 100\n8:0 Write 200\n8:0 Sync 300\n8:0 Async 0\n8:0 Discard 0\n"
                 "8:0 Total 300\n8:16 Read 1\n8:16 Write 2\n8:16 Total 3\nTotal 303\n",
                 &r, &w);
  assert_int_equal(r, 101);
  assert_int_equal(w, 202);
  assert_int_equal(cg_parse_v2_controllers("cpuset cpu io memory hugetlb pids rdma misc\n"),
                   CG_CTRL_CPU | CG_CTRL_IO | CG_CTRL_MEMORY | CG_CTRL_PIDS);
  assert_int_equal(cg_parse_v2_controllers("\n"), 0);
}

/* ---- managers ---- */

static void test_fake_root(void **state) {
  char dir[] = "/tmp/rrcg-XXXXXX";
  assert_non_null(mkdtemp(dir));
  cg_manager *m = NULL;
  rr_err e = {0};
  assert_int_equal(cg_manager_new(dir, "rund", &m, &e), 0);
  assert_int_equal(cg_manager_version(m), CG_NONE);
  assert_non_null(strstr(cg_manager_describe(m), "none"));
  cg_limits l = {.has_pids = true, .pids_max = 10};
  assert_int_equal(cg_manager_check(m, &l, &e), -1);
  assert_int_equal(e.code, RR_FAILED_PRECONDITION);
  cg_job *j = NULL;
  assert_int_equal(cg_job_create(m, "j1", &l, &j, &e), -1);
  assert_int_equal(e.code, RR_FAILED_PRECONDITION);
  cg_manager_free(m);
  assert_int_equal(rmdir(dir), 0); /* nothing was written into it */
  assert_int_equal(cg_manager_new("/sys/fs/cgroup", "../x", &m, &e), -1);
  assert_int_equal(e.code, RR_INVALID_ARGUMENT);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_validate),        cmocka_unit_test(test_device),
      cmocka_unit_test(test_parse_mountinfo), cmocka_unit_test(test_parse_proc_cgroup),
      cmocka_unit_test(test_detect),          cmocka_unit_test(test_parse_stats),
      cmocka_unit_test(test_fake_root),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
