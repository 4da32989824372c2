/* runrpc's request building: argv or shell, env names, cwd, timeout into a
 * job request; Spawn's file actions into the child's fds 0-2. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jobs/request.h"
#include "shim/spawn_req.h"

static shim_env_entry env_entry(const char *k, const char *v) {
  return (shim_env_entry){.key = (char *)k, .value = (char *)v};
}

static int build(char **argv, size_t n, const char *shell, const char *cwd, uint64_t timeout,
                 job_request *r, rr_err *e) {
  shim_command_in in = {
      .argv = argv, .nargv = n, .shell = shell, .cwd = cwd, .timeout_ms = timeout};
  return shim_request_build(&in, r, e);
}

static void test_argv_and_shell(void **state) {
  (void)state;
  job_request r;
  rr_err e;
  char *argv[] = {"ls", "-l", "/"};
  assert_int_equal(build(argv, 3, NULL, "/tmp", 0, &r, &e), 0);
  assert_string_equal(r.path, "ls");
  assert_int_equal(r.nargs, 2);
  assert_string_equal(r.args[1], "/");
  assert_string_equal(r.workdir, "/tmp");
  assert_false(r.has_timeout);
  job_request_free(&r);
  assert_int_equal(build(NULL, 0, "echo $0", NULL, 1500, &r, &e), 0);
  assert_string_equal(r.path, "/bin/sh");
  assert_int_equal(r.nargs, 2);
  assert_string_equal(r.args[0], "-c");
  assert_string_equal(r.args[1], "echo $0");
  assert_true(r.has_timeout);
  assert_int_equal(r.timeout_ms, 1500);
  assert_non_null(r.workdir); /* the server's own */
  job_request_free(&r);
}

static void expect_error(char **argv, size_t n, const char *shell, const char *cwd,
                         uint64_t timeout, int code, const char *text) {
  job_request r;
  rr_err e = {0};
  assert_int_equal(build(argv, n, shell, cwd, timeout, &r, &e), -1);
  assert_int_equal(e.code, code);
  if (!strstr(e.msg, text))
    fail_msg("\"%s\" lacks \"%s\"", e.msg, text);
}

static void test_errors(void **state) {
  (void)state;
  char *argv[] = {"true"}, *empty[] = {""};
  expect_error(NULL, 0, NULL, NULL, 0, RR_INVALID_ARGUMENT, "argv is empty");
  expect_error(NULL, 0, "", NULL, 0, RR_INVALID_ARGUMENT, "argv is empty");
  expect_error(argv, 1, "true", NULL, 0, RR_INVALID_ARGUMENT, "both set");
  expect_error(empty, 1, NULL, NULL, 0, RR_INVALID_ARGUMENT, "argv[0] is empty");
  expect_error(argv, 1, NULL, "tmp", 0, RR_INVALID_ARGUMENT, "not absolute");
  expect_error(argv, 1, NULL, "/no/such/dir", 0, RR_NOT_FOUND, "cwd \"/no/such/dir\"");
  expect_error(argv, 1, NULL, "/etc/passwd", 0, RR_INVALID_ARGUMENT, "not a directory");
  expect_error(argv, 1, NULL, NULL, REQUEST_MAX_TIMEOUT_MS + 1, RR_INVALID_ARGUMENT, "timeout_ms");
}

static void test_env_names(void **state) {
  (void)state;
  static const char *const bad[] = {"", "1A", "A-B", "A=B", "A B"};
  static const char *const good[] = {"A", "_x1", "PATH"};
  char *argv[] = {"true"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad + sizeof good / sizeof *good; i++) {
    int is_bad = i < sizeof bad / sizeof *bad;
    shim_env_entry en = env_entry(is_bad ? bad[i] : good[i - sizeof bad / sizeof *bad], "v");
    void *entries[] = {&en};
    shim_command_in in = {.argv = argv, .nargv = 1, .nenv = 1, .env = entries};
    rr_err e = {0};
    job_request r;
    int rc = shim_request_build(&in, &r, &e);
    if (is_bad) {
      assert_int_equal(rc, -1);
      assert_int_equal(e.code, RR_INVALID_ARGUMENT);
      assert_non_null(strstr(e.msg, "env name"));
    } else {
      assert_int_equal(rc, 0);
      assert_string_equal(r.env_values[0], "v");
      job_request_free(&r);
    }
  }
}

/* Runner__FileAction helpers */
static Runner__FileAction act_open(Runner__FileAction__Open *o, int fd, const char *path,
                                   const char *mode) {
  runner__file_action__open__init(o);
  o->fd = fd;
  o->path = (char *)path;
  o->mode = (char *)mode;
  Runner__FileAction a = RUNNER__FILE_ACTION__INIT;
  a.action_case = RUNNER__FILE_ACTION__ACTION_OPEN;
  a.open = o;
  return a;
}

static void same_file(int a, int b, bool same) {
  struct stat sa, sb;
  assert_int_equal(fstat(a, &sa), 0);
  assert_int_equal(fstat(b, &sb), 0);
  assert_int_equal(sa.st_ino == sb.st_ino && sa.st_dev == sb.st_dev, same);
}

static void test_file_actions(void **state) {
  (void)state;
  char path[] = "/tmp/shim_request_test.XXXXXX";
  int tmp = mkstemp(path);
  assert_true(tmp >= 0);
  close(tmp);
  Runner__FileAction__Open o;
  Runner__FileAction__Dup2 d = RUNNER__FILE_ACTION__DUP2__INIT;
  Runner__FileAction__Close c = RUNNER__FILE_ACTION__CLOSE__INIT;
  Runner__FileAction a[3];
  a[0] = act_open(&o, 1, path, "a");
  d.fd = 1;
  d.new_fd = 2;
  a[1] = (Runner__FileAction)RUNNER__FILE_ACTION__INIT;
  a[1].action_case = RUNNER__FILE_ACTION__ACTION_DUP2;
  a[1].dup2 = &d;
  c.fd = 1;
  a[2] = (Runner__FileAction)RUNNER__FILE_ACTION__INIT;
  a[2].action_case = RUNNER__FILE_ACTION__ACTION_CLOSE;
  a[2].close = &c;
  Runner__FileAction *ap[] = {&a[0], &a[1], &a[2]};
  char *argv[] = {"true"};
  Runner__SpawnRequest r = RUNNER__SPAWN_REQUEST__INIT;
  r.argv = argv;
  r.n_argv = 1;
  r.file_actions = ap;
  r.n_file_actions = 3;
  shim_spawn s;
  rr_err e = {0};
  assert_int_equal(shim_spawn_prepare(&r, "", &s, &e), 0);
  int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  same_file(s.fds[0], devnull, true);  /* untouched: /dev/null */
  same_file(s.fds[1], devnull, true);  /* closed after the dup: /dev/null */
  same_file(s.fds[2], devnull, false); /* the file, through dup2 */
  close(devnull);
  shim_spawn_clear(&s);
  /* errors name the action */
  a[1].dup2->new_fd = 3;
  assert_int_equal(shim_spawn_prepare(&r, "spawns[2].", &s, &e), -1);
  assert_int_equal(e.code, RR_INVALID_ARGUMENT);
  assert_string_equal(e.msg, "spawns[2].file_actions[1].dup2.new_fd 3: file actions act on fds "
                             "0, 1 and 2 only");
  a[1].dup2->new_fd = 2;
  o.mode = "x";
  assert_int_equal(shim_spawn_prepare(&r, "", &s, &e), -1);
  assert_non_null(strstr(e.msg, "file_actions[0].open.mode \"x\""));
  o.mode = "r";
  o.path = "/no/such/file";
  assert_int_equal(shim_spawn_prepare(&r, "", &s, &e), -1);
  assert_int_equal(e.code, RR_NOT_FOUND);
  unlink(path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_argv_and_shell),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_env_names),
      cmocka_unit_test(test_file_actions),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
