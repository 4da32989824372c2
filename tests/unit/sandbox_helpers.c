/* Shared by the sandbox engine's tests (sandbox_test.c, sandbox_ns_test.c):
 * a default-like spec built by hand, running one with its output and
 * status, and checking that a failed start left nothing behind. */
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

char self_exe[4096];

static char self_copy_dir[64];

static void self_copy_remove(void) {
  char p[128];
  snprintf(p, sizeof p, "%s/exe", self_copy_dir);
  unlink(p);
  rmdir(self_copy_dir);
}

/* The sandboxes mount a fresh /tmp: a test binary below it (a checkout in
 * /tmp) is run from a copy in /var/tmp, which they leave visible. */
int self_exe_visible(void) {
  if (readlink("/proc/self/exe", self_exe, sizeof self_exe - 1) < 0)
    return -1;
  if (strncmp(self_exe, "/tmp/", 5) != 0)
    return 0;
  snprintf(self_copy_dir, sizeof self_copy_dir, "/var/tmp/sandbox_test.XXXXXX");
  if (!mkdtemp(self_copy_dir))
    return -1;
  chmod(self_copy_dir, 0755);
  atexit(self_copy_remove);
  char dst[128];
  snprintf(dst, sizeof dst, "%s/exe", self_copy_dir);
  int in = open(self_exe, O_RDONLY | O_CLOEXEC),
      out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
  char buf[65536];
  ssize_t n = 0;
  while (in >= 0 && out >= 0 && (n = read(in, buf, sizeof buf)) > 0)
    if (write(out, buf, (size_t)n) != n)
      n = -1;
  if (in >= 0)
    close(in);
  if (out >= 0 && close(out) < 0)
    n = -1;
  if (in < 0 || out < 0 || n < 0)
    return -1;
  snprintf(self_exe, sizeof self_exe, "%s", dst);
  return 0;
}

/* --helper OP: run inside a sandbox by the tests, prints "OP ERRNO-NAME". */
int helper(const char *op) {
  int r = -1;
  if (strcmp(op, "mount") == 0)
    r = mount("none", "/tmp", "tmpfs", 0, NULL);
  else if (strcmp(op, "write-root") == 0)
    r = open("/sandbox-test-file", O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  printf("%s %s\n", op, r >= 0 ? "ok" : strerrorname_np(errno));
  return 0;
}

char *env_path[2] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "FOO=bar"};
sb_mount default_mounts[SB_TEST_NMOUNTS] = {
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
void spec_default(sb_spec *s, char **args, size_t nargs) {
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
int count_children(void) {
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

/* Spawn s with stdout and stderr to a pipe; the whole output and status.
 * -1 (e set) when the spawn failed; then nothing of it may be left. */
int run(const sb_spec *s, const sb_filter *f, run_result *rr, rr_err *e) {
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

void run_ok(const sb_spec *s, const sb_filter *f, run_result *rr) {
  rr_err e = {0};
  if (run(s, f, rr, &e) < 0)
    fail_msg("sb_spawn: %s: %s", rr_code_name(e.code), e.msg);
}
