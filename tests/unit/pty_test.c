/* sandbox/pty.h: a pty pair with its window size and name, the master sent
 * and received over a unix socket with its name, the slave made the
 * controlling terminal of a new session in a child, and the errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "sandbox/pty.h"

static void test_open_size_and_name(void **state) {
  (void)state;
  int m, s;
  char name[SB_PTY_NAME_MAX];
  assert_int_equal(sb_pty_open("/dev/ptmx", 33, 99, &m, &s, name), 0);
  assert_true(isatty(m) && isatty(s));
  assert_true(fcntl(m, F_GETFD) & FD_CLOEXEC);
  assert_true(fcntl(s, F_GETFD) & FD_CLOEXEC);
  struct winsize ws;
  assert_int_equal(ioctl(m, TIOCGWINSZ, &ws), 0);
  assert_int_equal(ws.ws_row, 33);
  assert_int_equal(ws.ws_col, 99);
  char want[64];
  assert_int_equal(ptsname_r(m, want, sizeof want), 0);
  assert_string_equal(name, want);
  /* bytes written on the slave come out of the master */
  assert_int_equal(write(s, "x", 1), 1);
  char c = 0;
  assert_int_equal(read(m, &c, 1), 1);
  assert_int_equal(c, 'x');
  close(m);
  close(s);
  /* no size asked: the kernel's (0 x 0) */
  assert_int_equal(sb_pty_open("/dev/ptmx", 0, 0, &m, &s, name), 0);
  assert_int_equal(ioctl(m, TIOCGWINSZ, &ws), 0);
  assert_int_equal(ws.ws_row, 0);
  close(m);
  close(s);
}

static void test_open_errors(void **state) {
  (void)state;
  int m = -7, s = -7;
  char name[SB_PTY_NAME_MAX];
  assert_int_equal(sb_pty_open("/nonexistent/ptmx", 1, 1, &m, &s, name), -ENOENT);
  assert_int_equal(sb_pty_open("/dev/null", 1, 1, &m, &s, name), -ENOTTY);
  assert_int_equal(m, -7); /* untouched on failure */
  assert_int_equal(s, -7);
}

static void test_send_and_receive(void **state) {
  (void)state;
  int sv[2], m, s, got = -1;
  char name[SB_PTY_NAME_MAX], rname[64];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  assert_int_equal(sb_pty_open("/dev/ptmx", 24, 80, &m, &s, name), 0);
  assert_int_equal(sb_pty_send_fd(sv[0], m, name), 0);
  assert_int_equal(sb_pty_recv_fd(sv[1], &got, rname, sizeof rname), 0);
  assert_string_equal(rname, name);
  struct stat a, b;
  assert_int_equal(fstat(m, &a), 0);
  assert_int_equal(fstat(got, &b), 0);
  assert_true(a.st_ino == b.st_ino && a.st_rdev == b.st_rdev);
  assert_true(fcntl(got, F_GETFD) & FD_CLOEXEC);
  /* a message without an fd */
  assert_int_equal(write(sv[0], "plain", 5), 5);
  int none = -1;
  assert_int_equal(sb_pty_recv_fd(sv[1], &none, NULL, 0), -EBADMSG);
  assert_int_equal(none, -1);
  /* a socket that is not connected */
  int lone = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(sb_pty_send_fd(lone, m, name) < 0);
  close(lone);
  close(got);
  close(m);
  close(s);
  close(sv[0]);
  close(sv[1]);
}

static void test_make_controlling(void **state) {
  (void)state;
  int m, s;
  char name[SB_PTY_NAME_MAX];
  assert_int_equal(sb_pty_open("/dev/ptmx", 24, 80, &m, &s, name), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(m);
    if (sb_pty_make_controlling(s) < 0)
      _exit(1);
    /* a session of our own, the terminal ours, on 0, 1, 2; slave closed */
    if (getsid(0) != getpid() || tcgetsid(0) != getpid() || !isatty(1) || !isatty(2))
      _exit(2);
    if (fcntl(s, F_GETFD) >= 0 || (fcntl(0, F_GETFD) & FD_CLOEXEC))
      _exit(3);
    if (write(1, "ok", 2) != 2)
      _exit(4);
    /* a second session from a session leader is refused */
    _exit(sb_pty_make_controlling(0) == -EPERM ? 0 : 5);
  }
  close(s);
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
  char buf[8] = {0};
  assert_int_equal(read(m, buf, 2), 2);
  assert_string_equal(buf, "ok");
  close(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_open_size_and_name),
      cmocka_unit_test(test_open_errors),
      cmocka_unit_test(test_send_and_receive),
      cmocka_unit_test(test_make_controlling),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
