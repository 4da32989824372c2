/* jobs/exec_tty.h: the terminal options' checks and defaults, a command
 * spawned on a host terminal (its window, TERM, controlling terminal, the
 * output read until EIO after its exit), resize and the EOF character. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "jobs/exec_tty.h"
#include "sandbox/pty.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static void test_init_defaults_and_values(void **state) {
  (void)state;
  exec_tty t;
  rr_err e = {0};
  assert_int_equal(exec_tty_init(&t, NULL, NULL, NULL, 0, &e), 0);
  assert_int_equal(t.rows, 24);
  assert_int_equal(t.cols, 80);
  assert_string_equal(t.term, "xterm");
  unsigned rows = 40, cols = 132;
  assert_int_equal(exec_tty_init(&t, &rows, &cols, (const uint8_t *)"xterm-256color", 14, &e), 0);
  assert_int_equal(t.rows, 40);
  assert_int_equal(t.cols, 132);
  assert_string_equal(t.term, "xterm-256color");
  rows = cols = EXEC_TTY_DIM_MAX;
  assert_int_equal(exec_tty_init(&t, &rows, &cols, (const uint8_t *)"screen.x_y+z", 12, &e), 0);
}

static void expect_invalid(const unsigned *rows, const unsigned *cols, const char *term, size_t len,
                           const char *want) {
  exec_tty t;
  rr_err e = {0};
  assert_int_equal(exec_tty_init(&t, rows, cols, (const uint8_t *)term, len, &e), -1);
  assert_int_equal(e.code, RR_INVALID_ARGUMENT);
  if (!strstr(e.msg, want))
    fail_msg("\"%s\" does not say \"%s\"", e.msg, want);
}

static void test_init_refusals(void **state) {
  (void)state;
  unsigned zero = 0, one = 1, big = EXEC_TTY_DIM_MAX + 1, huge = 70000;
  expect_invalid(&zero, &one, "", 0, "window: 0 rows x 1 cols out of range (each 1..10000)");
  expect_invalid(&one, &zero, "", 0, "window: 1 rows x 0 cols");
  expect_invalid(&big, &one, "", 0, "window: 10001 rows");
  expect_invalid(&one, &huge, "", 0, "window: 1 rows x 70000 cols");
  char long_term[EXEC_TTY_TERM_MAX + 1];
  memset(long_term, 'x', sizeof long_term);
  expect_invalid(NULL, NULL, long_term, sizeof long_term, "term: 65 bytes, at most 64");
  expect_invalid(NULL, NULL, "a b", 3, "term: byte 0x20 at 1");
  expect_invalid(NULL, NULL, "x\0y", 3, "term: byte 0x00 at 1");
  expect_invalid(NULL, NULL, "xterm;rm", 8, "term: byte 0x3b at 5");
  rr_err e = {0};
  assert_int_equal(exec_tty_size_check(0, 0, "resize", &e), -1);
  assert_string_equal(e.msg, "resize: 0 rows x 0 cols out of range (each 1..10000)");
}

/* Everything the master gives until EIO (every slave closed). */
static size_t read_to_eio(int master, char *buf, size_t size) {
  size_t got = 0;
  for (;;) {
    struct pollfd p = {.fd = master, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 20000), 1);
    ssize_t n = read(master, buf + got, size - 1 - got);
    if (n < 0 && errno == EAGAIN)
      continue;
    if (n <= 0) {
      assert_true(n == 0 || errno == EIO);
      break;
    }
    got += (size_t)n;
    assert_true(got < size - 1);
  }
  buf[got] = '\0';
  return got;
}

static void test_spawn_on_host_terminal(void **state) {
  (void)state;
  const char *args[] = {"-c", "tty; stty size; echo \"T=$TERM\"; : </dev/tty && echo CTTY; "
                              "printf LAST; exit 3"};
  job_request r = {.sandbox = {.profile = SB_PROFILE_HOST}};
  spawn_opts o = {.path = "/bin/sh", .args = args, .nargs = 2};
  exec_tty t;
  unsigned rows = 33, cols = 77;
  rr_err e = {0};
  assert_int_equal(exec_tty_init(&t, &rows, &cols, (const uint8_t *)"vt220", 5, &e), 0);
  spawn_result sr;
  int master = -1;
  if (exec_tty_spawn(&r, &o, &t, -1, &sr, &master, &e) < 0)
    fail_msg("exec_tty_spawn: %s", e.msg);
  assert_true(fcntl(master, F_GETFL) & O_NONBLOCK);
  assert_true(fcntl(master, F_GETFD) & FD_CLOEXEC);
  char out[4096];
  read_to_eio(master, out, sizeof out);
  if (!strstr(out, "/dev/pts/") || !strstr(out, "33 77\r\n") || !strstr(out, "T=vt220\r\n") ||
      !strstr(out, "CTTY\r\n"))
    fail_msg("output: %s", out);
  size_t len = strlen(out);
  assert_true(len >= 4 && memcmp(out + len - 4, "LAST", 4) == 0);
  siginfo_t si;
  assert_int_equal(waitid((idtype_t)P_PIDFD, (id_t)sr.pidfd, &si, WEXITED), 0);
  assert_int_equal(si.si_code, CLD_EXITED);
  assert_int_equal(si.si_status, 3);
  close(sr.pidfd);
  close(master);
}

static void test_resize_and_veof(void **state) {
  (void)state;
  int m, s;
  char name[SB_PTY_NAME_MAX];
  assert_int_equal(sb_pty_open("/dev/ptmx", 24, 80, &m, &s, name), 0);
  rr_err e = {0};
  assert_int_equal(exec_tty_resize(m, 50, 160, &e), 0);
  struct winsize ws;
  assert_int_equal(ioctl(s, TIOCGWINSZ, &ws), 0);
  assert_int_equal(ws.ws_row, 50);
  assert_int_equal(ws.ws_col, 160);
  assert_int_equal(exec_tty_veof(m), 4); /* Ctrl-D */
  struct termios tio;
  assert_int_equal(tcgetattr(s, &tio), 0);
  tio.c_cc[VEOF] = _POSIX_VDISABLE;
  assert_int_equal(tcsetattr(s, TCSANOW, &tio), 0);
  assert_int_equal(exec_tty_veof(m), -1);
  close(s);
  close(m);
  assert_int_equal(exec_tty_resize(m, 1, 1, &e), -1); /* closed: EBADF */
  assert_int_equal(e.code, RR_INTERNAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_init_defaults_and_values),
      cmocka_unit_test(test_init_refusals),
      cmocka_unit_test(test_spawn_on_host_terminal),
      cmocka_unit_test(test_resize_and_veof),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
