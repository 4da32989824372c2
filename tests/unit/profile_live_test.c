/* The configs of the default and strict profiles run for real (needs
 * root): sb_spec_for_profile, sb_filter_compile, sb_spawn, and a shell
 * script inside that checks what each profile promises (ids, capabilities,
 * no_new_privs, seccomp, read-only root, writable workdir or not, /tmp,
 * network, rlimits, masked paths) and that real work runs there: make and
 * gcc building a program, python3 with threads, sockets and subprocess. */
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/profile.h"
#include "sandbox/sandbox.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static char proj[64]; /* a project directory outside /tmp (a fresh tmpfs inside) */

/* Each check prints "NAME ok" or "NAME FAIL"; the script's status is 0. */
static const char script_common[] =
    "set -u; fails=0\n"
    "check() { if eval \"$2\" >/dev/null 2>&1; then echo \"$1 ok\"; "
    "else echo \"$1 FAIL\"; fails=$((fails+1)); fi; }\n"
    "check hostname '[ \"$(cat /proc/sys/kernel/hostname)\" = runrpc ]'\n"
    "check nnp 'grep -q \"^NoNewPrivs:[[:space:]]*1\" /proc/self/status'\n"
    "check seccomp 'grep -q \"^Seccomp:[[:space:]]*2\" /proc/self/status'\n"
    "check pid1 '[ \"$(cut -d\" \" -f1 /proc/1/stat)\" = 1 ] && [ $$ -gt 1 ]'\n"
    "check capeff 'grep -q \"^CapEff:[[:space:]]*0000000000000000\" /proc/self/status'\n"
    "check root_ro '! touch /etc/profile_live_test'\n"
    "check tmp_rw 'touch /tmp/x && rm /tmp/x'\n"
    "check kcore_masked '[ ! -s /proc/kcore ]'\n"
    "check proc_sys_ro '! sh -c \"echo 1 > /proc/sys/vm/drop_caches\"'\n"
    "check sys_ro '! touch /sys/x'\n"
    "check dev_null 'echo x > /dev/null && [ -c /dev/urandom ]'\n"
    "check no_unshare '! unshare -U true'\n"
    "check no_mount '! mount -t tmpfs none /mnt'\n"
    "check build 'rm -rf /tmp/b && cp -r \"$PWD\" /tmp/b && make -s -C /tmp/b && "
    "/tmp/b/hello | grep -q hello'\n"
    "check python 'python3 -c \"import socket, subprocess, threading; "
    "t = threading.Thread(target=print); t.start(); t.join(); socket.socket().close(); "
    "assert subprocess.run([\\\"true\\\"]).returncode == 0\"'\n";

static const char script_default[] =
    "check uid '[ \"$(id -u)\" = 65534 ]'\n"
    "check groups 'id -G | grep -qw 4'\n"
    "check workdir_rw 'touch w && rm w && make -s && ./hello | grep -q hello'\n"
    "check capbnd 'grep -q \"^CapBnd:[[:space:]]*00000000a80425fb\" /proc/self/status'\n"
    "check netlink 'python3 -c \"import socket; socket.socket(socket.AF_NETLINK, "
    "socket.SOCK_RAW).close()\"'\n"
    "exit $fails\n";

static const char script_strict[] =
    "check uid '[ \"$(id -u)\" = 0 ]'\n"
    "check uid_map 'grep -Eq \"^ *0 +65534 +1$\" /proc/self/uid_map'\n"
    "check workdir_ro '! touch w'\n"
    "check capbnd 'grep -q \"^CapBnd:[[:space:]]*0000000000000000\" /proc/self/status'\n"
    "check only_lo '[ \"$(ls /sys/class/net)\" = lo ]'\n"
    "check nofile '[ \"$(ulimit -n)\" = 1024 ]'\n"
    "check core '[ \"$(ulimit -c)\" = 0 ]'\n"
    "check tmp_small 'df -k /tmp | tail -1 | awk \"{exit !(\\$2 <= 65536)}\"'\n"
    "check no_packet '! python3 -c \"import socket; socket.socket(socket.AF_PACKET, "
    "socket.SOCK_RAW)\"'\n"
    "check inet 'python3 -c \"import socket; s = socket.socket(); "
    "s.bind((\\\"127.0.0.1\\\", 0)); s.listen()\"'\n"
    "exit $fails\n";

static void write_file(const char *name, const char *text) {
  char p[128];
  snprintf(p, sizeof p, "%s/%s", proj, name);
  FILE *f = fopen(p, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
  assert_int_equal(chown(p, 65534, 65534), 0);
}

static int setup(void **state) {
  strcpy(proj, "/var/tmp/profile_live.XXXXXX");
  assert_non_null(mkdtemp(proj));
  assert_int_equal(chown(proj, 65534, 65534), 0);
  write_file("hello.c", "#include <stdio.h>\nint main(void) { puts(\"hello\"); return 0; }\n");
  write_file("Makefile", "hello: hello.c\n\tgcc -O1 -o $@ $<\n");
  return 0;
}

static int teardown(void **state) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", proj);
  return system(cmd);
}

/* Run the profile's config of `sh -c SCRIPT` for caller uid (gid the same); its output. */
static int run_profile(sb_profile p, uid_t uid, const char *script, char *out, size_t size) {
  static const char *const env[] = {"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
                                    "HOME=/tmp", "LC_ALL=C"};
  static const gid_t groups[] = {4};
  const char *argv[] = {"sh", "-c", script};
  sb_params pa = {.argv = argv,
                  .nargs = 3,
                  .env = env,
                  .nenv = 3,
                  .cwd = proj,
                  .host_uid = uid,
                  .host_gid = uid,
                  .host_groups = groups,
                  .nhost_groups = 1};
  sb_spec *s = NULL;
  sb_filter *f = NULL;
  rr_err e = {0};
  if (sb_spec_for_profile(p, &pa, &s, &e) < 0 || sb_filter_compile(s->seccomp, &f, &e) < 0)
    fail_msg("%s: %s", sb_profile_name(p), e.msg);
  int pipefd[2];
  assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  sb_spawn_opts o = {.stdin_fd = devnull,
                     .stdout_fd = pipefd[1],
                     .stderr_fd = pipefd[1],
                     .filter = f,
                     .status_fd = -1,
                     .cgroup_fd = -1};
  sb_spawn_result r;
  int rc = sb_spawn(s, &o, &r, &e);
  close(pipefd[1]);
  close(devnull);
  if (rc < 0)
    fail_msg("%s: sb_spawn: %s: %s", sb_profile_name(p), rr_code_name(e.code), e.msg);
  size_t got = 0;
  ssize_t n;
  while (got < size - 1 && (n = read(pipefd[0], out + got, size - 1 - got)) > 0)
    got += (size_t)n;
  out[got] = '\0';
  close(pipefd[0]);
  siginfo_t si;
  assert_int_equal(waitid((idtype_t)P_PIDFD, (id_t)r.pidfd, &si, WEXITED), 0);
  close(r.pidfd);
  sb_filter_free(f);
  sb_spec_free(s);
  return si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
}

static void check_profile(sb_profile p, uid_t caller, const char *specific) {
  char script[8192], out[16384];
  snprintf(script, sizeof script, "%s%s", script_common, specific);
  int status = run_profile(p, caller, script, out, sizeof out);
  if (status != 0 || strstr(out, " FAIL"))
    fail_msg("%s: status %d:\n%s", sb_profile_name(p), status, out);
  assert_non_null(strstr(out, "build ok"));
  assert_non_null(strstr(out, "python ok"));
}

/* default as an unprivileged caller; strict as a root one, which it runs as
 * root of its user namespace mapped from nobody. (strict for an
 * unprivileged caller maps only the caller's id, not 0, and sb_spawn sets
 * up mounts as root of the namespace: not yet supported.) */
static void test_default(void **state) { check_profile(SB_PROFILE_DEFAULT, 65534, script_default); }
static void test_strict(void **state) { check_profile(SB_PROFILE_STRICT, 0, script_strict); }

int main(void) {
  if (geteuid() != 0) {
    puts("1..0 # SKIP needs root");
    return 77;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_default),
      cmocka_unit_test(test_strict),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
