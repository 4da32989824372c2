/* sb_spawn for real (needs root): namespaces, the host root read-only or a
 * busybox root, mounts, devices, masked paths, capabilities, no_new_privs,
 * seccomp, the init (pid 1, signals, orphans, status line), uid/gid maps,
 * and the errors of failed steps with nothing left running. Specs are built
 * by hand here, independent of the spec parser. */
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
#include "sandbox/sandbox.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static char self_exe[4096];

/* --helper OP: run inside a sandbox by the tests, prints "OP ERRNO-NAME". */
static int helper(const char *op) {
  int r = -1;
  if (strcmp(op, "mount") == 0)
    r = mount("none", "/tmp", "tmpfs", 0, NULL);
  else if (strcmp(op, "write-root") == 0)
    r = open("/sandbox-test-file", O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  printf("%s %s\n", op, r >= 0 ? "ok" : strerrorname_np(errno));
  return 0;
}

static char *env_path[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "FOO=bar"};
static sb_mount default_mounts[] = {
    {.destination = "/proc",
     .type = "proc",
     .source = "proc",
     .flags = MS_NOSUID | MS_NODEV | MS_NOEXEC},
    {.destination = "/dev",
     .type = "tmpfs",
     .source = "tmpfs",
     .flags = MS_NOSUID,
     .data = "mode=755,size=65536k"},
    {.destination = "/dev/pts",
     .type = "devpts",
     .source = "devpts",
     .flags = MS_NOSUID | MS_NOEXEC,
     .data = "newinstance,ptmxmode=0666,mode=0620"},
    {.destination = "/dev/mqueue",
     .type = "mqueue",
     .source = "mqueue",
     .flags = MS_NOSUID | MS_NODEV | MS_NOEXEC},
    {.destination = "/sys",
     .type = "sysfs",
     .source = "sysfs",
     .flags = MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY},
    {.destination = "/tmp", .type = "tmpfs", .source = "tmpfs", .flags = MS_NOSUID | MS_NODEV},
};
static char *masked[] = {"/proc/kcore", "/proc/timer_list", "/proc/acpi", "/proc/no-such-file"};
static char *readonly[] = {"/proc/sys", "/proc/no-such-dir"};

/* A default-like spec: every namespace but user and time, the host root
 * read-only, proc, /dev tmpfs, sysfs, /tmp; no caps; no_new_privs. */
static void spec_default(sb_spec *s, char **args, size_t nargs) {
  memset(s, 0, sizeof *s);
  s->process.args = args;
  s->process.nargs = nargs;
  s->process.env = env_path;
  s->process.nenv = 2;
  s->process.has_caps = true;
  s->process.no_new_privileges = true;
  s->root_path = "/";
  s->root_readonly = true;
  s->hostname = "sbtest";
  s->mounts = default_mounts;
  s->nmounts = sizeof default_mounts / sizeof default_mounts[0];
  for (int t = SB_NS_PID; t <= SB_NS_NET; t++)
    s->ns[t].enabled = true;
  s->masked_paths = masked;
  s->nmasked_paths = 4;
  s->readonly_paths = readonly;
  s->nreadonly_paths = 2;
}

/* Processes whose parent is us: none may be left after a failed spawn. */
static int count_children(void) {
  DIR *d = opendir("/proc");
  int n = 0;
  struct dirent *de;
  char path[300], buf[512];
  while ((de = readdir(d))) {
    snprintf(path, sizeof path, "/proc/%s/stat", de->d_name);
    FILE *f = fopen(path, "re");
    if (!f)
      continue;
    int ppid = 0;
    if (fgets(buf, sizeof buf, f) && strrchr(buf, ')'))
      sscanf(strrchr(buf, ')') + 2, "%*c %d", &ppid);
    fclose(f);
    n += ppid == getpid();
  }
  closedir(d);
  return n;
}

typedef struct run_result {
  char out[8192];
  int status; /* exit code, or 128 + signal */
  pid_t pid;
  char status_line[128];
} run_result;

/* Spawn s with stdout and stderr to a pipe; the whole output and status.
 * -1 (e set) when the spawn failed; then nothing of it may be left. */
static int run(const sb_spec *s, const sb_filter *f, run_result *rr, rr_err *e) {
  int p[2], st[2];
  assert_int_equal(pipe2(p, O_CLOEXEC), 0);
  assert_int_equal(pipe2(st, O_CLOEXEC), 0);
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  sb_spawn_opts o = {
      .stdin_fd = devnull, .stdout_fd = p[1], .stderr_fd = p[1], .filter = f, .status_fd = st[1]};
  sb_spawn_result r;
  memset(rr, 0, sizeof *rr);
  int rc = sb_spawn(s, &o, &r, e);
  close(p[1]);
  close(st[1]);
  close(devnull);
  if (rc < 0) {
    close(p[0]);
    close(st[0]);
    assert_int_equal(count_children(), 0);
    return -1;
  }
  assert_true(r.pidfd >= 0);
  assert_true(r.start_ticks > 0);
  rr->pid = r.pid;
  size_t got = 0;
  ssize_t n;
  while ((n = read(p[0], rr->out + got, sizeof rr->out - 1 - got)) > 0)
    got += (size_t)n;
  close(p[0]);
  siginfo_t si;
  assert_int_equal(waitid((idtype_t)P_PIDFD, (id_t)r.pidfd, &si, WEXITED), 0);
  close(r.pidfd);
  rr->status = si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
  n = read(st[0], rr->status_line, sizeof rr->status_line - 1);
  close(st[0]);
  return 0;
}

static void run_ok(const sb_spec *s, const sb_filter *f, run_result *rr) {
  rr_err e = {0};
  if (run(s, f, rr, &e) < 0)
    fail_msg("sb_spawn: %s: %s", rr_code_name(e.code), e.msg);
}

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
  if (readlink("/proc/self/exe", self_exe, sizeof self_exe - 1) < 0)
    return 1;
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
      cmocka_unit_test(test_user_namespace),
      cmocka_unit_test(test_user_namespace_no_root),
      cmocka_unit_test(test_no_init_caps),
      cmocka_unit_test(test_busybox_root_symlink),
      cmocka_unit_test(test_join_namespaces),
      cmocka_unit_test(test_profiles),
      cmocka_unit_test(test_rbind_readonly),
      cmocka_unit_test(test_time_namespace),
      cmocka_unit_test(test_init_not_readable),
      cmocka_unit_test(test_cgroup_join),
      cmocka_unit_test(test_clone_into_cgroup),
      cmocka_unit_test(test_filter_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
