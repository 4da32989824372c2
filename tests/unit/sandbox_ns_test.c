/* sb_spawn for real (needs root), namespaces and roots: user namespaces
 * (maps with and without 0), namespaces joined by path, a busybox root and
 * symlinked destinations, read-only rbinds, cgroups (v1 cgroup.procs, v2
 * CLONE_INTO_CGROUP) and the profiles' configs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/profile.h"
#include "sandbox_helpers.h"

/* A user namespace with maps: ids inside as mapped, all other steps still
 * work there (proc, sysfs, devices binds, read-only remounts). */
static void test_user_namespace(void **state) {
  (void)state;
  char *args[] = {"sh", "-c",
                  ("id -u; id -g; id -G; cat /proc/self/uid_map /proc/self/gid_map;"
                   "cat /mnt/f; (echo x > /mnt/g) 2>/dev/null || echo ro-bind")};
  char data[] = "/tmp/sbtest-data-XXXXXX", file[64];
  assert_non_null(mkdtemp(data));
  chmod(data, 0755); /* the ids of the user namespace look it up */
  snprintf(file, sizeof file, "%s/f", data);
  FILE *f = fopen(file, "we");
  fputs("host file\n", f);
  fclose(f);
  sb_spec s;
  spec_default(&s, args, 3);
  sb_mount m[8];
  memcpy(m, default_mounts, sizeof default_mounts);
  /* host dirs are nosuid,nodev here: the read-only remount must keep that */
  m[6] = (sb_mount){.destination = "/mnt",
                    .source = data,
                    .bind = true,
                    .readonly = true,
                    .flags = MS_BIND | MS_REC};
  s.mounts = m;
  s.nmounts = 7;
  s.ns[SB_NS_USER].enabled = true;
  sb_id_map map = {0, 100000, 65536};
  s.uid_maps = s.gid_maps = &map;
  s.nuid_maps = s.ngid_maps = 1;
  s.process.uid = 1000;
  s.process.gid = 1001;
  s.process.additional_gids[0] = 1002;
  s.process.ngids = 1;
  run_result rr;
  run_ok(&s, NULL, &rr);
  assert_int_equal(rr.status, 0);
  const char *want = "1000\n1001\n1001 1002\n"
                     "         0     100000      65536\n         0     100000      65536\n"
                     "host file\nro-bind\n";
  if (strcmp(rr.out, want) != 0)
    fail_msg("got:\n%s", rr.out);
  unlink(file);
  rmdir(data);
}

/* Only the command's ids mapped (strict's map for a non-root caller): the
 * set-up runs as them with the namespace's caps (what it creates must
 * belong to a mapped id), the command gets what its spec says. */
static void test_user_namespace_no_root(void **state) {
  (void)state;
  char *args[] = {"sh", "-c",
                  ("id -u; id -g; grep -E '^CapEff:' /proc/self/status; ls /dev | wc -w;"
                   "echo x > /tmp/f && stat -c %u:%g /tmp/f")};
  sb_spec s;
  spec_default(&s, args, 3);
  s.ns[SB_NS_USER].enabled = true;
  sb_id_map map = {1000, 100000, 1};
  s.uid_maps = s.gid_maps = &map;
  s.nuid_maps = s.ngid_maps = 1;
  s.process.uid = s.process.gid = 1000;
  run_result rr;
  run_ok(&s, NULL, &rr);
  assert_string_equal(rr.out, "1000\n1000\nCapEff:\t0000000000000000\n13\n1000:1000\n");
  /* no capabilities in the spec: none either (as after a setuid from root) */
  s.process.has_caps = false;
  run_ok(&s, NULL, &rr);
  assert_string_equal(rr.out, "1000\n1000\nCapEff:\t0000000000000000\n13\n1000:1000\n");
}

/* A busybox root in a temp dir: a destination through a symlink that
 * points out of the root resolves inside it (and fails while missing
 * there), never on the host. */
static void test_busybox_root_symlink(void **state) {
  (void)state;
  if (access("/bin/busybox", X_OK) != 0)
    skip();
  char root[] = "/tmp/sbtest-root-XXXXXX", host[] = "/tmp/sbtest-host-XXXXXX";
  assert_non_null(mkdtemp(root));
  assert_non_null(mkdtemp(host));
  char path[4096], cmd[8192];
  snprintf(cmd, sizeof cmd, "mkdir -p %s/bin && cp /bin/busybox %s/bin/ && ln -s %s %s/escape",
           root, root, host, root);
  assert_int_equal(system(cmd), 0);
  char *args[] = {"busybox", "sh", "-c", "busybox ls /escape; busybox ls -d /proc/1"};
  sb_spec s;
  spec_default(&s, args, 4);
  char *env[] = {"PATH=/bin"};
  s.process.env = env;
  s.process.nenv = 1;
  s.root_path = root;
  s.root_readonly = false;
  sb_mount m[] = {{.destination = "/proc", .type = "proc", .source = "proc"},
                  {.destination = "/escape/m", .type = "tmpfs", .source = "tmpfs"}};
  s.mounts = m;
  s.nmounts = 2;
  s.nmasked_paths = s.nreadonly_paths = 0;
  run_result rr;
  rr_err e = {0};
  int rc;
  assert_int_equal(run(&s, NULL, &rr, &e), -1);
  assert_int_equal(e.code, RR_FAILED_PRECONDITION);
  assert_string_equal(e.msg, "sandbox: mount tmpfs on /escape/m: No such file or directory");
  snprintf(path, sizeof path, "%s/m", host);
  assert_int_equal(access(path, F_OK), -1); /* not created on the host */
  snprintf(cmd, sizeof cmd, "mkdir -p %s%s", root, host);
  assert_int_equal(system(cmd), 0);
  run_ok(&s, NULL, &rr);
  assert_string_equal(rr.out, "m\n/proc/1\n");
  snprintf(path, sizeof path, "%s/m", host);
  assert_int_equal(access(path, F_OK), -1);
  snprintf(path, sizeof path, "%s%s/m", root, host);
  assert_int_equal(access(path, F_OK), 0); /* inside the root */
  /* without openat2 the walk refuses any symlink on the way */
  sb_set_openat2_disabled(true);
  rc = run(&s, NULL, &rr, &e);
  sb_set_openat2_disabled(false);
  assert_int_equal(rc, -1);
  assert_string_equal(e.msg,
                      "sandbox: mount tmpfs on /escape/m: Too many levels of symbolic links");
  m[1].destination = "/newdir/m"; /* created by the walk too */
  sb_set_openat2_disabled(true);
  rc = run(&s, NULL, &rr, &e);
  sb_set_openat2_disabled(false);
  if (rc < 0)
    fail_msg("%s", e.msg);
  snprintf(path, sizeof path, "%s/newdir/m", root);
  assert_int_equal(access(path, F_OK), 0);
  snprintf(cmd, sizeof cmd, "rm -rf %s %s", root, host);
  assert_int_equal(system(cmd), 0);
}

/* Namespaces joined by path (setns): B runs in A's uts and pid namespaces
 * (its init is then a subreaper there, not PID 1). */
static void test_join_namespaces(void **state) {
  (void)state;
  char *args_a[] = {"sh", "-c", "echo up; read x"};
  sb_spec a;
  spec_default(&a, args_a, 3);
  int p[2], in[2];
  assert_int_equal(pipe2(p, O_CLOEXEC), 0);
  assert_int_equal(pipe2(in, O_CLOEXEC), 0);
  sb_spawn_opts o = {.stdin_fd = in[0], .stdout_fd = p[1], .stderr_fd = p[1], .status_fd = -1};
  sb_spawn_result ra;
  rr_err e = {0};
  assert_int_equal(sb_spawn(&a, &o, &ra, &e), 0);
  close(p[1]);
  close(in[0]);
  char buf[8] = {0};
  assert_int_equal(read(p[0], buf, 3), 3);
  char uts[64], pid[64];
  snprintf(uts, sizeof uts, "/proc/%d/ns/uts", (int)ra.pid);
  snprintf(pid, sizeof pid, "/proc/%d/ns/pid", (int)ra.pid);
  char *args_b[] = {"sh", "-c", "hostname; readlink /proc/self/ns/pid"};
  sb_spec b;
  memset(&b, 0, sizeof b);
  b.process.args = args_b;
  b.process.nargs = 3;
  b.process.env = env_path;
  b.process.nenv = 1;
  b.ns[SB_NS_UTS] = (sb_namespace){true, uts};
  b.ns[SB_NS_PID] = (sb_namespace){true, pid};
  run_result rr;
  run_ok(&b, NULL, &rr);
  /* B's command is in A's pid namespace (B's init stays outside: setns
   * moves only children) */
  char want[128], link[64] = {0};
  assert_true(readlink(pid, link, sizeof link - 1) > 0);
  snprintf(want, sizeof want, "sbtest\n%s\n", link);
  assert_string_equal(rr.out, want);
  assert_int_equal(strncmp(rr.status_line, "exit 0 ", 7), 0);
  close(in[1]);
  siginfo_t si;
  assert_int_equal(waitid((idtype_t)P_PIDFD, (id_t)ra.pidfd, &si, WEXITED), 0);
  close(ra.pidfd);
  close(p[0]);
  b.ns[SB_NS_UTS].path = "/no/such/ns";
  assert_int_equal(run(&b, NULL, &rr, &e), -1);
  assert_int_equal(e.code, RR_NOT_FOUND);
}

/* The configs rund will run: default and strict profiles (profile.c) as
 * they come, through the engine. */
static void test_profiles(void **state) {
  (void)state;
  const char *argv[] = {"sh", "-c",
                        ("hostname; echo $$; grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status;"
                         "grep -c : /proc/net/dev; (echo x > /x) 2>/dev/null || echo ro")};
  const char *env[] = {"PATH=/usr/bin:/bin"};
  sb_params prm = {.argv = argv, .nargs = 3, .env = env, .nenv = 1};
  /* the third run: strict for a non-root caller (only its ids mapped) */
  for (int i = 0; i < 3; i++) {
    sb_profile p = i == 0 ? SB_PROFILE_DEFAULT : SB_PROFILE_STRICT;
    if (i == 2)
      prm.host_uid = prm.host_gid = 1000;
    sb_spec *s = NULL;
    rr_err e = {0};
    if (sb_spec_for_profile(p, &prm, &s, &e) < 0)
      fail_msg("%s: %s", sb_profile_name(p), e.msg);
    run_result rr;
    if (run(s, NULL, &rr, &e) < 0)
      fail_msg("%s: %s: %s", sb_profile_name(p), rr_code_name(e.code), e.msg);
    char want[256];
    /* default keeps the host's network (more than lo), strict has lo only */
    snprintf(want, sizeof want, "runrpc\n2\nNoNewPrivs:\t1\nSeccomp:\t2\n%s\nro\n",
             p == SB_PROFILE_STRICT ? "1" : "");
    bool same = p == SB_PROFILE_STRICT ? strcmp(rr.out, want) == 0
                                       : strncmp(rr.out, want, strlen(want) - 4) == 0 &&
                                             strstr(rr.out, "\nro\n") && !strstr(rr.out, "\n1\nro");
    sb_spec_free(s);
    if (!same || rr.status != 0)
      fail_msg("%s: status %d, got:\n%s", sb_profile_name(p), rr.status, rr.out);
  }
}

/* A read-only rbind is read-only all the way down (mount_setattr
 * AT_RECURSIVE): a host mount below its source is not writable inside. */
static void test_rbind_readonly(void **state) {
  (void)state;
  char data[] = "/tmp/sbtest-rbind-XXXXXX", sub[64];
  assert_non_null(mkdtemp(data));
  snprintf(sub, sizeof sub, "%s/sub", data);
  assert_int_equal(mkdir(sub, 0755), 0);
  assert_int_equal(mount("tmpfs", sub, "tmpfs", 0, NULL), 0);
  char *args[] = {"sh", "-c",
                  ("(echo x > /mnt/sub/f) 2>/dev/null || echo ro-sub;"
                   "(echo x > /mnt/f) 2>/dev/null || echo ro-top")};
  sb_spec s;
  spec_default(&s, args, 3);
  sb_mount m[8];
  memcpy(m, default_mounts, sizeof default_mounts);
  m[6] = (sb_mount){.destination = "/mnt",
                    .source = data,
                    .bind = true,
                    .readonly = true,
                    .flags = MS_BIND | MS_REC | MS_RDONLY};
  s.mounts = m;
  s.nmounts = 7;
  run_result rr;
  rr_err e = {0};
  int rc = run(&s, NULL, &rr, &e);
  umount2(sub, MNT_DETACH);
  rmdir(sub);
  rmdir(data);
  if (rc < 0)
    fail_msg("%s", e.msg);
  assert_string_equal(rr.out, "ro-sub\nro-top\n");
}

/* Our memory cgroup's directory (v1), or "" when there is none. */
static void own_memory_cgroup(char *buf, size_t len) {
  FILE *f = fopen("/proc/self/cgroup", "re");
  char line[4096];
  buf[0] = '\0';
  while (f && fgets(line, sizeof line, f))
    if (strstr(line, ":memory:/")) {
      line[strcspn(line, "\n")] = '\0';
      snprintf(buf, len, "/sys/fs/cgroup/memory%s", strstr(line, ":memory:/") + 8);
    }
  if (f)
    fclose(f);
}

/* The child joins the cgroup first (cgroup.procs), and its new cgroup
 * namespace is rooted there. */
static void test_cgroup_join(void **state) {
  (void)state;
  char dir[4096], procs[4200];
  own_memory_cgroup(dir, sizeof dir);
  if (!dir[0] || access(dir, W_OK) != 0)
    skip();
  snprintf(dir + strlen(dir), sizeof dir - strlen(dir), "/sbtest-%d", (int)getpid());
  assert_int_equal(mkdir(dir, 0755), 0);
  snprintf(procs, sizeof procs, "%s/cgroup.procs", dir);
  int fd = open(procs, O_WRONLY | O_CLOEXEC);
  assert_true(fd >= 0);
  char *args[] = {"sh", "-c", "grep :memory: /proc/self/cgroup; read x"};
  sb_spec s;
  spec_default(&s, args, 3);
  int p[2], in[2];
  assert_int_equal(pipe2(p, O_CLOEXEC), 0);
  assert_int_equal(pipe2(in, O_CLOEXEC), 0);
  sb_spawn_opts o = {.stdin_fd = in[0],
                     .stdout_fd = p[1],
                     .stderr_fd = p[1],
                     .status_fd = -1,
                     .cgroup_procs_fds = &fd,
                     .ncgroup_procs = 1};
  sb_spawn_result r;
  rr_err e = {0};
  assert_int_equal(sb_spawn(&s, &o, &r, &e), 0);
  close(p[1]);
  close(in[0]);
  char buf[256] = {0}, members[256] = {0};
  assert_true(read(p[0], buf, sizeof buf - 1) > 0);
  /* seen from here: the init (and its command) are in the cgroup */
  int pfd = open(procs, O_RDONLY | O_CLOEXEC);
  assert_true(read(pfd, members, sizeof members - 1) > 0);
  close(pfd);
  close(in[1]);
  siginfo_t si;
  assert_int_equal(waitid((idtype_t)P_PIDFD, (id_t)r.pidfd, &si, WEXITED), 0);
  close(r.pidfd);
  close(p[0]);
  close(fd);
  assert_int_equal(rmdir(dir), 0);
  assert_string_equal(strchr(buf, ':'), ":memory:/\n");
  char want[32];
  snprintf(want, sizeof want, "%d\n", (int)r.pid);
  assert_int_equal(strncmp(members, want, strlen(want)), 0);
  assert_non_null(strchr(members + strlen(want), '\n')); /* and the command */
}

/* cgroup v2 (the unified mount of this hybrid host): clone3 places the
 * child with CLONE_INTO_CGROUP, and the new cgroup namespace made by the
 * same clone is rooted there. */
static void test_clone_into_cgroup(void **state) {
  (void)state;
  char self[512] = "", dir[1024];
  FILE *f = fopen("/proc/self/cgroup", "re");
  char line[512];
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, "0::", 3) == 0) {
      line[strcspn(line, "\n")] = '\0';
      snprintf(self, sizeof self, "%s", line + 3);
    }
  if (f)
    fclose(f);
  if (!self[0] || access("/sys/fs/cgroup/unified/cgroup.procs", W_OK) != 0)
    skip();
  snprintf(dir, sizeof dir, "/sys/fs/cgroup/unified%s/sbtest-%d", strcmp(self, "/") ? self : "",
           (int)getpid());
  assert_int_equal(mkdir(dir, 0755), 0);
  int cg = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_true(cg >= 0);
  char *args[] = {"sh", "-c", "grep ^0:: /proc/self/cgroup; read x"};
  sb_spec s;
  spec_default(&s, args, 3);
  int p[2], in[2];
  assert_int_equal(pipe2(p, O_CLOEXEC), 0);
  assert_int_equal(pipe2(in, O_CLOEXEC), 0);
  sb_spawn_opts o = {
      .stdin_fd = in[0], .stdout_fd = p[1], .stderr_fd = p[1], .status_fd = -1, .cgroup_fd = cg};
  sb_spawn_result r;
  rr_err e = {0};
  assert_int_equal(sb_spawn(&s, &o, &r, &e), 0);
  close(p[1]);
  close(in[0]);
  char buf[128] = {0}, procs[1100], members[128] = {0};
  assert_true(read(p[0], buf, sizeof buf - 1) > 0);
  snprintf(procs, sizeof procs, "%s/cgroup.procs", dir);
  int pfd = open(procs, O_RDONLY | O_CLOEXEC);
  assert_true(read(pfd, members, sizeof members - 1) > 0);
  close(pfd);
  close(in[1]);
  siginfo_t si;
  assert_int_equal(waitid((idtype_t)P_PIDFD, (id_t)r.pidfd, &si, WEXITED), 0);
  close(r.pidfd);
  close(p[0]);
  close(cg);
  assert_int_equal(rmdir(dir), 0);
  assert_string_equal(buf, "0::/\n");
  char want[32];
  snprintf(want, sizeof want, "%d\n", (int)r.pid);
  assert_int_equal(strncmp(members, want, strlen(want)), 0);
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--helper") == 0)
    return helper(argv[2]);
  if (readlink("/proc/self/exe", self_exe, sizeof self_exe - 1) < 0)
    return 1;
  if (geteuid() != 0) {
    fprintf(stderr, "sandbox_ns_test: needs root; skipped\n");
    return 77;
  }
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_user_namespace),
      cmocka_unit_test(test_user_namespace_no_root),
      cmocka_unit_test(test_busybox_root_symlink),
      cmocka_unit_test(test_join_namespaces),
      cmocka_unit_test(test_profiles),
      cmocka_unit_test(test_rbind_readonly),
      cmocka_unit_test(test_cgroup_join),
      cmocka_unit_test(test_clone_into_cgroup),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
