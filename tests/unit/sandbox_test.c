/* sb_spawn for real (needs root): the host root read-only, mounts,
 * devices, masked and read-only paths, capabilities, no_new_privs, seccomp,
 * the init (pid 1, signals, orphans, status line, what it keeps), and the
 * errors of failed steps with nothing left running. Specs are built by
 * hand (sandbox_helpers.c), independent of the spec parser. */
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

#include "sandbox_helpers.h"

static void test_inside(void **state) {
  (void)state;
  char *args[] = {"sh", "-c",
                  "hostname; echo pid=$$; cat /proc/1/comm; grep -c : /proc/net/dev;"
                  "grep -o lo: /proc/net/dev; cat /sys/class/net/lo/flags;"
                  "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status;"
                  "wc -c < /proc/timer_list; ls /dev | tr '\\n' ' '; echo; readlink /dev/ptmx;"
                  "echo x > /proc/sys/kernel/hostname || echo ro-sys;"
                  "echo $FOO; pwd; echo hi > /tmp/f && cat /tmp/f;"
                  "cat /proc/sys/kernel/msgmax /proc/sys/kernel/domainname;"
                  "grep -E '^(CapEff|NoNewPrivs):' /proc/1/status"};
  sb_spec s;
  spec_default(&s, args, 3);
  char *keys[] = {"kernel.msgmax"}, *values[] = {"4242"};
  s.sysctl_keys = keys;
  s.sysctl_values = values;
  s.nsysctls = 1;
  s.domainname = "sbdomain";
  run_result rr;
  run_ok(&s, NULL, &rr);
  assert_int_equal(rr.status, 0);
  const char *want_head = "sbtest\npid=2\nsandbox-init\n1\nlo:\n0x9\nCapEff:\t0000000000000000\n"
                          "CapBnd:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t0\n0\n";
  if (strncmp(rr.out, want_head, strlen(want_head)) != 0)
    fail_msg("got:\n%s", rr.out);
  assert_non_null(strstr(rr.out, "fd full mqueue null ptmx pts random stderr stdin stdout tty "
                                 "urandom zero \npts/ptmx\n"));
  /* the init keeps CAP_KILL only, with no_new_privs */
  assert_non_null(strstr(rr.out, "ro-sys\nbar\n/\nhi\n4242\nsbdomain\n"
                                 "CapEff:\t0000000000000020\nNoNewPrivs:\t1\n"));
  /* the init reported the command's end on status_fd */
  assert_int_equal(strncmp(rr.status_line, "exit 0 ", 7), 0);
  assert_int_equal(rr.status_line[strlen(rr.status_line) - 1], '\n');
}

/* mount without caps: EPERM; the read-only root: EROFS. */
static void test_no_privileges(void **state) {
  (void)state;
  char *args[] = {self_exe, "--helper", "mount"};
  char *args2[] = {self_exe, "--helper", "write-root"};
  sb_spec s;
  spec_default(&s, args, 3);
  run_result rr;
  run_ok(&s, NULL, &rr);
  assert_string_equal(rr.out, "mount EPERM\n");
  /* root in the sandbox with every cap but a read-only root */
  spec_default(&s, args2, 3);
  s.process.has_caps = false;
  run_ok(&s, NULL, &rr);
  assert_string_equal(rr.out, "write-root EROFS\n");
}

static char *clone3_name[] = {"clone3"};
static sb_seccomp_rule clone3_enosys = {
    .names = clone3_name, .nnames = 1, .action = SB_SECCOMP_ERRNO, .errno_ret = ENOSYS};
static sb_seccomp clone3_filter = {
    .default_action = SB_SECCOMP_ALLOW, .rules = &clone3_enosys, .nrules = 1};

/* A filter making clone3 ENOSYS: Seccomp 2, and sh still forks (glibc
 * falls back to clone); with and without no_new_privs (loaded before the
 * caps are dropped then). */
static void test_seccomp(void **state) {
  (void)state;
  char *args[] = {"sh", "-c",
                  "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; /bin/echo forked"};
  sb_filter *f = NULL;
  rr_err e = {0};
  assert_int_equal(sb_filter_compile(&clone3_filter, &f, &e), 0);
  sb_spec s;
  spec_default(&s, args, 3);
  run_result rr;
  run_ok(&s, f, &rr);
  assert_string_equal(rr.out, "NoNewPrivs:\t1\nSeccomp:\t2\nforked\n");
  s.process.no_new_privileges = false;
  s.seccomp = &clone3_filter; /* compiled by sb_spawn itself */
  run_ok(&s, NULL, &rr);
  assert_string_equal(rr.out, "NoNewPrivs:\t0\nSeccomp:\t2\nforked\n");
  sb_filter_free(f);
}

static void test_not_found(void **state) {
  (void)state;
  char *args[] = {"no-such-command-xyz"};
  sb_spec s;
  spec_default(&s, args, 1);
  run_result rr;
  rr_err e = {0};
  assert_int_equal(run(&s, NULL, &rr, &e), -1);
  assert_int_equal(e.code, RR_NOT_FOUND);
  assert_string_equal(e.msg, "sandbox: exec \"no-such-command-xyz\": No such file or directory");
  /* without a pid namespace (no init) too */
  s.ns[SB_NS_PID].enabled = false;
  assert_int_equal(run(&s, NULL, &rr, &e), -1);
  assert_int_equal(e.code, RR_NOT_FOUND);
}

/* proc cannot be mounted by a user namespace that does not own the pid
 * namespace: the step and its path are named; nothing is left. */
static void test_failed_mount(void **state) {
  (void)state;
  char *args[] = {"true"};
  sb_spec s;
  spec_default(&s, args, 1);
  s.ns[SB_NS_PID].enabled = false;
  s.ns[SB_NS_USER].enabled = true;
  sb_id_map map = {0, 100000, 65536};
  s.uid_maps = s.gid_maps = &map;
  s.nuid_maps = s.ngid_maps = 1;
  run_result rr;
  rr_err e = {0};
  assert_int_equal(run(&s, NULL, &rr, &e), -1);
  assert_int_equal(e.code, RR_FAILED_PRECONDITION);
  assert_string_equal(e.msg, "sandbox: mount proc on /proc: Operation not permitted");
  s.process.args = (char *[]){"/"};
  s.ns[SB_NS_PID].enabled = true;
  assert_int_equal(run(&s, NULL, &rr, &e), -1);
  assert_int_equal(e.code, RR_PERMISSION_DENIED);
}

/* SIGTERM to the init reaches the command (its group), which dies of it;
 * the init exits 128+15 and records "signal 15". */
static void test_signal_forwarded(void **state) {
  (void)state;
  char *args[] = {"sh", "-c", "echo ready; sleep 100; echo not-killed"};
  sb_spec s;
  spec_default(&s, args, 3);
  int p[2], st[2];
  assert_int_equal(pipe2(p, O_CLOEXEC), 0);
  assert_int_equal(pipe2(st, O_CLOEXEC), 0);
  sb_spawn_opts o = {.stdin_fd = p[1],
                     .stdout_fd = p[1],
                     .stderr_fd = p[1],
                     .status_fd = st[1],
                     .new_process_group = true};
  sb_spawn_result r;
  rr_err e = {0};
  assert_int_equal(sb_spawn(&s, &o, &r, &e), 0);
  close(p[1]);
  close(st[1]);
  char buf[64] = {0};
  assert_int_equal(read(p[0], buf, sizeof buf - 1), 6);
  assert_string_equal(buf, "ready\n");
  assert_int_equal(getpgid(r.pid), r.pid);
  assert_int_equal(kill(r.pid, SIGTERM), 0);
  siginfo_t si;
  assert_int_equal(waitid((idtype_t)P_PIDFD, (id_t)r.pidfd, &si, WEXITED), 0);
  assert_int_equal(si.si_code, CLD_EXITED);
  assert_int_equal(si.si_status, 128 + SIGTERM);
  assert_int_equal(read(p[0], buf, sizeof buf), 0);
  memset(buf, 0, sizeof buf);
  assert_true(read(st[0], buf, sizeof buf - 1) > 10);
  assert_int_equal(strncmp(buf, "signal 15 ", 10), 0);
  close(p[0]);
  close(st[0]);
  close(r.pidfd);
}

/* An orphan is reaped by the init (no zombie), the command's code passes
 * through, and a grandchild left behind dies with the namespace. */
static void test_orphans_exit_code(void **state) {
  (void)state;
  char *args[] = {"sh", "-c",
                  "sh -c 'sleep 0.1 &'; sleep 0.5;"
                  "for f in /proc/[0-9]*/stat; do read l < $f;"
                  " case \"$l\" in *') Z '*) echo zombie: $l;; esac; done;"
                  "sleep 100 & exit 42"};
  sb_spec s;
  spec_default(&s, args, 3);
  run_result rr;
  run_ok(&s, NULL, &rr);
  assert_string_equal(rr.out, "");
  assert_int_equal(rr.status, 42);
  assert_int_equal(strncmp(rr.status_line, "exit 42 ", 8), 0);
}

/* No pid namespace: no init, the command is the process; caps kept across
 * the uid change (KEEPCAPS), so the ambient one is raised and survives the
 * exec of a non-root (the others do not, as the kernel wants); bounding;
 * cwd, umask, rlimits. */
static void test_no_init_caps(void **state) {
  (void)state;
  char *args[] = {"sh", "-c",
                  "echo $$; id -u; grep -E '^Cap(Eff|Bnd|Amb):' /proc/self/status; pwd; umask;"
                  "ulimit -n; cat /proc/self/oom_score_adj; grep -c ' /sys sysfs ro,' "
                  "/proc/mounts; grep ' /sys' /proc/mounts | grep -c ' rw,'"};
  sb_spec s;
  spec_default(&s, args, 3);
  s.ns[SB_NS_PID].enabled = false;
  /* the host's net namespace: sysfs is the host's /sys again (EBUSY on
   * itself), bound read-only instead, on the host's own (read-only with
   * all its submounts, the cgroup ones too: nothing under /sys is rw) */
  s.ns[SB_NS_NET].enabled = false;
  s.process.uid = 1000;
  s.process.gid = 1000;
  uint64_t k = 1ull << CAP_CHOWN | 1ull << CAP_NET_BIND_SERVICE;
  s.process.caps = (sb_caps){.bounding = k | 1ull << CAP_KILL,
                             .effective = k,
                             .permitted = k,
                             .inheritable = k,
                             .ambient = 1ull << CAP_NET_BIND_SERVICE};
  s.process.cwd = "/proc";
  s.process.has_umask = true;
  s.process.umask = 027;
  s.process.rlimits[0] = (sb_rlimit){RLIMIT_NOFILE, 123, 456};
  s.process.nrlimits = 1;
  s.process.has_oom_score_adj = true;
  s.process.oom_score_adj = 345;
  run_result rr;
  run_ok(&s, NULL, &rr);
  char want[512];
  snprintf(want, sizeof want,
           "%d\n1000\nCapEff:\t0000000000000400\nCapBnd:\t0000000000000421\n"
           "CapAmb:\t0000000000000400\n/proc\n0027\n123\n345\n2\n0\n",
           (int)rr.pid);
  assert_string_equal(rr.out, want);
  assert_string_equal(rr.status_line, ""); /* nobody writes it without an init */
}

/* The init is a copy of the caller's memory (rund's secrets): even a
 * command with the init's uid and CAP_KILL cannot read it. */
static void test_init_not_readable(void **state) {
  (void)state;
  char *args[] = {
      "sh", "-c",
      ("grep -E '^CapEff:' /proc/self/status; (cat /proc/1/environ >/dev/null) 2>/dev/null"
       " && echo readable || echo denied")};
  sb_spec s;
  spec_default(&s, args, 3);
  uint64_t k = 1ull << CAP_KILL;
  s.process.caps = (sb_caps){.bounding = k, .effective = k, .permitted = k};
  run_result rr;
  run_ok(&s, NULL, &rr);
  assert_string_equal(rr.out, "CapEff:\t0000000000000020\ndenied\n");
}

/* A new time namespace: the command is in it (not ours). */
static void test_time_namespace(void **state) {
  (void)state;
  char *args[] = {"readlink", "/proc/self/ns/time"};
  sb_spec s;
  spec_default(&s, args, 2);
  s.ns[SB_NS_TIME].enabled = true;
  run_result rr;
  run_ok(&s, NULL, &rr);
  char ours[64] = {0};
  assert_true(readlink("/proc/self/ns/time", ours, sizeof ours - 1) > 0);
  assert_int_equal(strncmp(rr.out, "time:[", 6), 0);
  assert_true(strncmp(rr.out, ours, strlen(ours)) != 0);
}

static void test_filter_errors(void **state) {
  (void)state;
  char *names[] = {"no_such_syscall_xyz", "getpid"};
  sb_seccomp_arg args[] = {{.index = 7, .op = SB_OP_EQ}};
  sb_seccomp_rule rule = {
      .names = names, .nnames = 2, .action = SB_SECCOMP_ERRNO, .args = args, .nargs = 1};
  sb_seccomp sc = {.default_action = SB_SECCOMP_ALLOW, .rules = &rule, .nrules = 1};
  sb_filter *f = NULL;
  rr_err e = {0};
  assert_int_equal(sb_filter_compile(&sc, &f, &e), -1);
  assert_int_equal(e.code, RR_INVALID_ARGUMENT);
  assert_non_null(strstr(e.msg, "getpid"));
  rule.nargs = 0; /* the unknown name is skipped */
  assert_int_equal(sb_filter_compile(&sc, &f, &e), 0);
  sb_filter_free(f);
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--helper") == 0)
    return helper(argv[2]);
  if (geteuid() == 0 && self_exe_visible() < 0) {
    perror("sandbox_test: cannot find or copy its own binary");
    return 1;
  }
  if (geteuid() != 0) {
    fprintf(stderr, "sandbox_test: needs root; skipped\n");
    return 77;
  }
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_inside),
      cmocka_unit_test(test_no_privileges),
      cmocka_unit_test(test_seccomp),
      cmocka_unit_test(test_not_found),
      cmocka_unit_test(test_failed_mount),
      cmocka_unit_test(test_signal_forwarded),
      cmocka_unit_test(test_orphans_exit_code),
      cmocka_unit_test(test_no_init_caps),
      cmocka_unit_test(test_init_not_readable),
      cmocka_unit_test(test_time_namespace),
      cmocka_unit_test(test_filter_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
