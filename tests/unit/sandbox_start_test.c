/* sb_spawn with wait_start (runproc's create/start): everything set up,
 * the command waiting on start_fd until a byte comes, with and without a
 * pid namespace; a missing executable fails the spawn, not the start; EOF
 * on start_fd ends the command with 127. Needs root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox_helpers.h"

typedef struct started {
  int out; /* the command's stdout and stderr */
  int go;  /* write end of start_fd */
  int pidfd;
  pid_t pid;
} started;

/* sb_spawn s with wait_start on a pipe; -1 (e set) when it failed. */
static int spawn_waiting(const sb_spec *s, started *st, rr_err *e) {
  int p[2], go[2];
  assert_int_equal(pipe2(p, O_CLOEXEC), 0);
  assert_int_equal(pipe2(go, O_CLOEXEC), 0);
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  sb_spawn_opts o = {.stdin_fd = devnull,
                     .stdout_fd = p[1],
                     .stderr_fd = p[1],
                     .status_fd = -1,
                     .wait_start = true,
                     .start_fd = go[0]};
  sb_spawn_result r;
  int rc = sb_spawn(s, &o, &r, e);
  close(p[1]);
  close(go[0]);
  close(devnull);
  if (rc < 0) {
    close(p[0]);
    close(go[1]);
    assert_int_equal(count_children(), 0);
    return -1;
  }
  *st = (started){.out = p[0], .go = go[1], .pidfd = r.pidfd, .pid = r.pid};
  return 0;
}

/* Status (code or 128+N) of st's process, after its output is read. */
static int finish(started *st, char *out, size_t size) {
  size_t got = 0;
  ssize_t n;
  while ((n = read(st->out, out + got, size - 1 - got)) > 0)
    got += (size_t)n;
  out[got] = '\0';
  close(st->out);
  siginfo_t si;
  assert_int_equal(waitid((idtype_t)P_PIDFD, (id_t)st->pidfd, &si, WEXITED), 0);
  close(st->pidfd);
  return si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
}

static void assert_waiting(started *st) {
  struct pollfd pf = {.fd = st->out, .events = POLLIN};
  assert_int_equal(poll(&pf, 1, 300), 0); /* no output: not exec'd */
  siginfo_t si = {0};
  assert_int_equal(waitid((idtype_t)P_PIDFD, (id_t)st->pidfd, &si, WEXITED | WNOHANG), 0);
  assert_int_equal(si.si_pid, 0); /* alive */
}

static void start_and_check(bool pid_ns) {
  char *args[] = {"sh", "-c", "echo started $$ $(hostname)"};
  sb_spec s;
  spec_default(&s, args, 3);
  s.ns[SB_NS_PID].enabled = pid_ns;
  started st;
  rr_err e = {0};
  if (spawn_waiting(&s, &st, &e) < 0)
    fail_msg("sb_spawn: %s", e.msg);
  assert_waiting(&st);
  assert_int_equal(write(st.go, "0", 1), 1);
  close(st.go);
  char out[256];
  assert_int_equal(finish(&st, out, sizeof out), 0);
  char want[64];
  if (pid_ns)
    snprintf(want, sizeof want, "started 2 sbtest\n");
  else
    snprintf(want, sizeof want, "started %d sbtest\n", (int)st.pid);
  assert_string_equal(out, want);
}

static void test_waits_for_start(void **state) {
  (void)state;
  start_and_check(true);
}

static void test_waits_for_start_no_pid_ns(void **state) {
  (void)state;
  start_and_check(false);
}

static void test_missing_executable_fails_spawn(void **state) {
  (void)state;
  char *args[] = {"no-such-command-xyz"};
  sb_spec s;
  spec_default(&s, args, 1);
  started st;
  rr_err e = {0};
  assert_int_equal(spawn_waiting(&s, &st, &e), -1);
  assert_int_equal(e.code, RR_NOT_FOUND);
  assert_non_null(strstr(e.msg, "exec \"no-such-command-xyz\""));
  char *args2[] = {"/etc/passwd"}; /* there, not executable */
  spec_default(&s, args2, 1);
  assert_int_equal(spawn_waiting(&s, &st, &e), -1);
  assert_int_equal(e.code, RR_PERMISSION_DENIED);
}

static void test_eof_ends_with_127(void **state) {
  (void)state;
  char *args[] = {"echo", "never"};
  sb_spec s;
  spec_default(&s, args, 2);
  started st;
  rr_err e = {0};
  assert_int_equal(spawn_waiting(&s, &st, &e), 0);
  close(st.go);
  char out[64];
  assert_int_equal(finish(&st, out, sizeof out), 127);
  assert_string_equal(out, "");
}

static void test_killed_while_waiting(void **state) {
  (void)state;
  char *args[] = {"echo", "never"};
  sb_spec s;
  spec_default(&s, args, 2);
  started st;
  rr_err e = {0};
  assert_int_equal(spawn_waiting(&s, &st, &e), 0);
  assert_int_equal(kill(st.pid, SIGKILL), 0);
  char out[64];
  assert_int_equal(finish(&st, out, sizeof out), 128 + SIGKILL);
  assert_string_equal(out, "");
  close(st.go);
}

/* The waiting container holds no fd of the caller's (here a pipe's write
 * end, CLOEXEC: until an exec it would stay open in the child). */
static void test_holds_no_caller_fd(void **state) {
  (void)state;
  int held[2];
  assert_int_equal(pipe2(held, O_CLOEXEC), 0);
  char *args[] = {"true"};
  sb_spec s;
  spec_default(&s, args, 1);
  started st;
  rr_err e = {0};
  assert_int_equal(spawn_waiting(&s, &st, &e), 0);
  close(held[1]);
  char b;
  assert_int_equal(read(held[0], &b, 1), 0); /* EOF: no copy left */
  close(held[0]);
  assert_waiting(&st);
  assert_int_equal(write(st.go, "0", 1), 1);
  close(st.go);
  char out[64];
  assert_int_equal(finish(&st, out, sizeof out), 0);
}

static void test_without_start_fd_refused(void **state) {
  (void)state;
  char *args[] = {"true"};
  sb_spec s;
  spec_default(&s, args, 1);
  sb_spawn_opts o = {.stdin_fd = 0,
                     .stdout_fd = 1,
                     .stderr_fd = 2,
                     .status_fd = -1,
                     .wait_start = true,
                     .start_fd = -1};
  sb_spawn_result r;
  rr_err e = {0};
  assert_int_equal(sb_spawn(&s, &o, &r, &e), -1);
  assert_int_equal(e.code, RR_INVALID_ARGUMENT);
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--helper") == 0)
    return helper(argv[2]);
  if (readlink("/proc/self/exe", self_exe, sizeof self_exe - 1) < 0)
    return 1;
  if (geteuid() != 0) {
    fprintf(stderr, "sandbox_start_test: needs root; skipped\n");
    return 77;
  }
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_waits_for_start),
      cmocka_unit_test(test_waits_for_start_no_pid_ns),
      cmocka_unit_test(test_missing_executable_fails_spawn),
      cmocka_unit_test(test_eof_ends_with_127),
      cmocka_unit_test(test_killed_while_waiting),
      cmocka_unit_test(test_holds_no_caller_fd),
      cmocka_unit_test(test_without_start_fd_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
