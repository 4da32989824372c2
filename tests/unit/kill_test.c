/* src/jobs/kill: the stop/timeout escalation shared by jobs and Exec
 * (SIGTERM + SIGCONT, SIGKILL after the grace, stragglers at the end). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/loop.h"
#include "common/util.h"
#include "jobs/kill.h"

enum { PLAIN, IGNORE_TERM, STOPPED };

/* A process group leader: plain (dies of TERM), one that ignores TERM, or
 * one stopped (SIGSTOP) that acts on TERM only once continued. */
static pid_t child_start(int kind) {
  int p[2];
  assert_int_equal(pipe2(p, O_CLOEXEC), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    setpgid(0, 0);
    signal(SIGTERM, kind == IGNORE_TERM ? SIG_IGN : SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (write(p[1], "x", 1) != 1)
      _exit(1);
    if (kind == STOPPED)
      raise(SIGSTOP);
    for (;;)
      pause();
  }
  setpgid(pid, pid); /* either of us may win the race: both set it */
  char c;
  close(p[1]);
  assert_int_equal(read(p[0], &c, 1), 1);
  close(p[0]);
  if (kind == STOPPED) { /* until it is stopped */
    int st;
    assert_int_equal(waitpid(pid, &st, WUNTRACED), pid);
    assert_true(WIFSTOPPED(st));
  }
  return pid;
}

/* Run l until pid ended (or ms passed); its wait status, -1 if it runs on. */
static int run_until_dead(loop *l, pid_t pid, int ms, uint64_t *took_ms) {
  uint64_t t0 = rr_now_mono_ms();
  while (rr_now_mono_ms() - t0 < (uint64_t)ms) {
    int st;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) {
      if (took_ms)
        *took_ms = rr_now_mono_ms() - t0;
      return st;
    }
    assert_int_equal(loop_run_once(l, 5, NULL), 0);
  }
  return -1;
}

static int warned;
static void on_warn(void *data, const rr_err *e) { warned++; }

static void test_stop_term_kills_plain(void **state) {
  loop *l;
  assert_int_equal(loop_new(&l, NULL), 0);
  kill_ctl k;
  kill_ctl_init(&k, l, NULL, on_warn, NULL);
  pid_t pid = child_start(PLAIN);
  kill_ctl_attach(&k, pid);
  kill_ctl_stop(&k, 5000, KILL_CAUSE_STOP);
  uint64_t took = 0;
  int st = run_until_dead(l, pid, 3000, &took);
  assert_true(st != -1 && WIFSIGNALED(st));
  assert_int_equal(WTERMSIG(st), SIGTERM);
  assert_int_equal(k.cause, KILL_CAUSE_STOP);
  kill_ctl_ended(&k, true);
  assert_int_equal(k.kill_timer, 0);
  loop_free(l);
}

static void test_stop_escalates_after_grace(void **state) {
  loop *l;
  assert_int_equal(loop_new(&l, NULL), 0);
  kill_ctl k;
  kill_ctl_init(&k, l, NULL, on_warn, NULL);
  pid_t pid = child_start(IGNORE_TERM);
  kill_ctl_attach(&k, pid);
  kill_ctl_stop(&k, 200, KILL_CAUSE_STOP);
  /* a later stop with a longer grace keeps the earlier SIGKILL; the cause stays */
  kill_ctl_stop(&k, 60000, KILL_CAUSE_TIMEOUT);
  assert_int_equal(k.cause, KILL_CAUSE_STOP);
  uint64_t took = 0;
  int st = run_until_dead(l, pid, 5000, &took);
  assert_true(st != -1 && WIFSIGNALED(st));
  assert_int_equal(WTERMSIG(st), SIGKILL);
  assert_true(took >= 150);
  kill_ctl_ended(&k, true);
  loop_free(l);
}

static void test_stop_zero_grace_is_sigkill(void **state) {
  loop *l;
  assert_int_equal(loop_new(&l, NULL), 0);
  kill_ctl k;
  kill_ctl_init(&k, l, NULL, on_warn, NULL);
  pid_t pid = child_start(IGNORE_TERM);
  kill_ctl_attach(&k, pid);
  kill_ctl_stop(&k, 0, KILL_CAUSE_STOP);
  assert_int_equal(k.kill_timer, 0);
  int st = run_until_dead(l, pid, 3000, NULL);
  assert_true(st != -1 && WIFSIGNALED(st));
  assert_int_equal(WTERMSIG(st), SIGKILL);
  kill_ctl_ended(&k, true);
  loop_free(l);
}

static void test_timeout_continues_a_stopped_command(void **state) {
  loop *l;
  assert_int_equal(loop_new(&l, NULL), 0);
  kill_ctl k;
  kill_ctl_init(&k, l, NULL, on_warn, NULL);
  pid_t pid = child_start(STOPPED);
  kill_ctl_attach(&k, pid);
  kill_ctl_timeout_arm(&k, 50);
  /* the TERM acts (SIGCONT follows it): well before the 10 s grace */
  int st = run_until_dead(l, pid, 5000, NULL);
  assert_true(st != -1 && WIFSIGNALED(st));
  assert_int_equal(WTERMSIG(st), SIGTERM);
  assert_int_equal(k.cause, KILL_CAUSE_TIMEOUT);
  assert_int_not_equal(k.kill_timer, 0); /* the SIGKILL was pending */
  kill_ctl_ended(&k, true);
  assert_int_equal(k.kill_timer, 0);
  loop_free(l);
}

/* A member of the group that outlives the leader after a stop is killed
 * when the leader's end is seen; nothing is sent after that. */
static void test_ended_kills_stragglers(void **state) {
  loop *l;
  assert_int_equal(loop_new(&l, NULL), 0);
  kill_ctl k;
  kill_ctl_init(&k, l, NULL, on_warn, NULL);
  pid_t leader = child_start(PLAIN);
  int p[2];
  assert_int_equal(pipe2(p, O_CLOEXEC), 0);
  pid_t straggler = fork();
  assert_true(straggler >= 0);
  if (straggler == 0) {
    signal(SIGTERM, SIG_IGN);
    if (write(p[1], "x", 1) != 1)
      _exit(1);
    for (;;)
      pause();
  }
  char c;
  close(p[1]);
  assert_int_equal(read(p[0], &c, 1), 1); /* TERM ignored from now on */
  close(p[0]);
  assert_int_equal(setpgid(straggler, leader), 0);
  kill_ctl_attach(&k, leader);
  kill_ctl_stop(&k, 60000, KILL_CAUSE_STOP);
  int st = run_until_dead(l, leader, 3000, NULL);
  assert_true(st != -1 && WIFSIGNALED(st));
  kill_ctl_ended(&k, true);
  st = run_until_dead(l, straggler, 3000, NULL);
  assert_true(st != -1 && WIFSIGNALED(st));
  assert_int_equal(WTERMSIG(st), SIGKILL);
  kill_ctl_send(&k, SIGKILL); /* no-op: its pid may be another's by now */
  kill_ctl_stop(&k, 0, KILL_CAUSE_STOP);
  assert_int_equal(warned, 0);
  loop_free(l);
}

/* Without a stop, the end of the leader leaves the rest of its group alone. */
static void test_ended_without_stop_leaves_group(void **state) {
  loop *l;
  assert_int_equal(loop_new(&l, NULL), 0);
  kill_ctl k;
  kill_ctl_init(&k, l, NULL, on_warn, NULL);
  pid_t leader = child_start(PLAIN);
  pid_t other = fork();
  assert_true(other >= 0);
  if (other == 0) {
    for (;;)
      pause();
  }
  assert_int_equal(setpgid(other, leader), 0);
  kill_ctl_attach(&k, leader);
  kill(leader, SIGKILL);
  int st = run_until_dead(l, leader, 3000, NULL);
  assert_true(st != -1);
  kill_ctl_ended(&k, true);
  assert_int_equal(waitpid(other, &st, WNOHANG), 0); /* runs on */
  kill(other, SIGKILL);
  assert_int_equal(waitpid(other, &st, 0), other);
  loop_free(l);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_stop_term_kills_plain),
      cmocka_unit_test(test_stop_escalates_after_grace),
      cmocka_unit_test(test_stop_zero_grace_is_sigkill),
      cmocka_unit_test(test_timeout_continues_a_stopped_command),
      cmocka_unit_test(test_ended_kills_stragglers),
      cmocka_unit_test(test_ended_without_stop_leaves_group),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
