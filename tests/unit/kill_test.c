/* src/jobs/kill: the stop/timeout escalation shared by jobs and Exec
 * (SIGTERM + SIGCONT, SIGKILL after the grace, stragglers at the end), and
 * signals through the main process's pidfd: nothing by number once its
 * leader is gone, the start-time check without pidfd_send_signal. Each
 * process is watched by a reaper as jobs and Exec watch theirs. */
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
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/loop.h"
#include "common/util.h"
#include "jobs/kill.h"
#include "jobs/reaper.h"
#include "sandbox/spawn.h"

enum { PLAIN, IGNORE_TERM, STOPPED, SAME_GROUP, EXITS };

/* What a job or an Exec session keeps of its command. */
typedef struct owner {
  kill_ctl k;
  reaper_watch *rw;
  pid_t pid;
  bool done;
  siginfo_t si; /* si_pid 0: status unknown */
} owner;

typedef struct fixture {
  loop *l;
  reaper *r;
} fixture;

static int warned;
static void on_warn(void *data, const rr_err *e) { warned++; }

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  if (!f || loop_new(&f->l, NULL) < 0 || reaper_new(&f->r, f->l, false, NULL) < 0)
    return -1;
  warned = 0;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  kill_set_pidfd_signal_disabled(false);
  reaper_free(f->r);
  loop_free(f->l);
  free(f);
  return 0;
}

/* A process: its own group's leader that is plain (dies of TERM), ignores
 * TERM, is stopped (SIGSTOP; acts on TERM once continued); or a plain one
 * left in our group; or one that exits (status 3) once its pipe is closed
 * (*go, -1: at once). */
static pid_t child_start(int kind, int *go) {
  int p[2], g[2] = {-1, -1};
  assert_int_equal(pipe2(p, O_CLOEXEC), 0);
  if (kind == EXITS && go)
    assert_int_equal(pipe2(g, O_CLOEXEC), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    if (kind != SAME_GROUP)
      setpgid(0, 0);
    signal(SIGTERM, kind == IGNORE_TERM ? SIG_IGN : SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (write(p[1], "x", 1) != 1)
      _exit(1);
    if (kind == EXITS) {
      char c;
      close(g[1]);
      if (g[0] >= 0 && read(g[0], &c, 1) < 0)
        _exit(1);
      _exit(3);
    }
    if (kind == STOPPED)
      raise(SIGSTOP);
    for (;;)
      pause();
  }
  if (kind != SAME_GROUP)
    setpgid(pid, pid); /* either of us may win the race: both set it */
  char c;
  close(p[1]);
  assert_int_equal(read(p[0], &c, 1), 1);
  close(p[0]);
  if (g[0] >= 0) {
    close(g[0]);
    *go = g[1];
  }
  if (kind == STOPPED) { /* until it is stopped */
    int st;
    assert_int_equal(waitpid(pid, &st, WUNTRACED), pid);
    assert_true(WIFSTOPPED(st));
  }
  return pid;
}

static void owner_on_exit(void *data, pid_t pid, const siginfo_t *si, const struct rusage *ru) {
  owner *o = data;
  o->rw = NULL;
  o->done = true;
  if (si)
    o->si = *si;
  kill_ctl_ended(&o->k);
}

/* Watch pid through a pidfd and attach o's kill_ctl to it. */
static void owner_watch(fixture *f, owner *o, pid_t pid) {
  memset(o, 0, sizeof *o);
  o->pid = pid;
  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  assert_true(pidfd >= 0);
  uint64_t ticks = 0;
  assert_int_equal(spawn_proc_start_ticks(pid, &ticks), 0);
  kill_ctl_init(&o->k, f->l, &o->rw, NULL, on_warn, NULL);
  kill_ctl_attach(&o->k, pid, ticks);
  assert_int_equal(reaper_watch_add(f->r, pid, pidfd, owner_on_exit, o, &o->rw, NULL), 0);
}

static void owner_start(fixture *f, owner *o, int kind) {
  owner_watch(f, o, child_start(kind, NULL));
}

/* Run the loop until o's process ended (or ms passed); false if it runs on. */
static bool run_until_done(fixture *f, owner *o, int ms, uint64_t *took_ms) {
  uint64_t t0 = rr_now_mono_ms();
  while (!o->done && rr_now_mono_ms() - t0 < (uint64_t)ms)
    assert_int_equal(loop_run_once(f->l, 5, NULL), 0);
  if (took_ms)
    *took_ms = rr_now_mono_ms() - t0;
  return o->done;
}

static bool killed_by(const owner *o, int sig) {
  return o->done && o->si.si_code == CLD_KILLED && o->si.si_status == sig;
}

/* Kill and collect what a test left running. */
static void owner_end(fixture *f, owner *o) {
  if (!o->done)
    kill(o->pid, SIGKILL);
  assert_true(run_until_done(f, o, 3000, NULL));
}

static void test_stop_term_kills_plain(void **state) {
  fixture *f = *state;
  owner o;
  owner_start(f, &o, PLAIN);
  kill_ctl_stop(&o.k, 5000, KILL_CAUSE_STOP);
  assert_true(run_until_done(f, &o, 3000, NULL));
  assert_true(killed_by(&o, SIGTERM));
  assert_int_equal(o.k.cause, KILL_CAUSE_STOP);
  assert_true(o.k.ended);
  assert_int_equal(o.k.kill_timer, 0);
}

static void test_stop_escalates_after_grace(void **state) {
  fixture *f = *state;
  owner o;
  owner_start(f, &o, IGNORE_TERM);
  kill_ctl_stop(&o.k, 200, KILL_CAUSE_STOP);
  /* a later stop with a longer grace keeps the earlier SIGKILL; the cause stays */
  kill_ctl_stop(&o.k, 60000, KILL_CAUSE_TIMEOUT);
  assert_int_equal(o.k.cause, KILL_CAUSE_STOP);
  uint64_t took = 0;
  assert_true(run_until_done(f, &o, 5000, &took));
  assert_true(killed_by(&o, SIGKILL));
  assert_true(took >= 150);
}

static void test_stop_zero_grace_is_sigkill(void **state) {
  fixture *f = *state;
  owner o;
  owner_start(f, &o, IGNORE_TERM);
  kill_ctl_stop(&o.k, 0, KILL_CAUSE_STOP);
  assert_int_equal(o.k.kill_timer, 0);
  assert_true(run_until_done(f, &o, 3000, NULL));
  assert_true(killed_by(&o, SIGKILL));
}

static void test_timeout_continues_a_stopped_command(void **state) {
  fixture *f = *state;
  owner o;
  owner_start(f, &o, STOPPED);
  kill_ctl_timeout_arm(&o.k, 50, 0);
  /* the TERM acts (SIGCONT follows it): well before the 10 s grace */
  uint64_t took = 0;
  assert_true(run_until_done(f, &o, 5000, &took));
  assert_true(killed_by(&o, SIGTERM));
  assert_true(took < 5000);
  assert_int_equal(o.k.cause, KILL_CAUSE_TIMEOUT);
  assert_int_equal(o.k.kill_timer, 0); /* cancelled at the end */
}

/* A timeout's grace is the one armed with it: a command ignoring SIGTERM
 * gets SIGKILL after 150 ms, not after the default 10 s. */
static void test_timeout_grace_given(void **state) {
  fixture *f = *state;
  owner o;
  owner_start(f, &o, IGNORE_TERM);
  kill_ctl_timeout_arm(&o.k, 50, 150);
  uint64_t took = 0;
  assert_true(run_until_done(f, &o, 5000, &took));
  assert_true(killed_by(&o, SIGKILL));
  assert_true(took >= 190 && took < 5000);
  assert_int_equal(o.k.cause, KILL_CAUSE_TIMEOUT);
}

/* A member of the group that outlives the leader after a stop is killed
 * when the leader's end is seen (before it is reaped); nothing is sent
 * after that. */
static void test_ended_kills_stragglers(void **state) {
  fixture *f = *state;
  owner o, s;
  owner_start(f, &o, PLAIN);
  pid_t straggler = child_start(IGNORE_TERM, NULL);
  assert_int_equal(setpgid(straggler, o.pid), 0);
  owner_watch(f, &s, straggler);
  kill_ctl_stop(&o.k, 60000, KILL_CAUSE_STOP);
  assert_true(run_until_done(f, &o, 3000, NULL));
  assert_true(killed_by(&o, SIGTERM));
  assert_true(run_until_done(f, &s, 3000, NULL));
  assert_true(killed_by(&s, SIGKILL));
  kill_ctl_send(&o.k, SIGKILL); /* no-op: its pid may be another's by now */
  kill_ctl_stop(&o.k, 0, KILL_CAUSE_STOP);
  rr_err e = {0};
  assert_int_equal(kill_ctl_signal(&o.k, SIGTERM, &e), -1);
  assert_int_equal(e.code, RR_FAILED_PRECONDITION);
  assert_int_equal(warned, 0);
}

/* Without a stop, the end of the leader leaves the rest of its group alone. */
static void test_ended_without_stop_leaves_group(void **state) {
  fixture *f = *state;
  owner o, other;
  owner_start(f, &o, PLAIN);
  pid_t pid = child_start(PLAIN, NULL);
  assert_int_equal(setpgid(pid, o.pid), 0);
  owner_watch(f, &other, pid);
  kill(o.pid, SIGKILL);
  assert_true(run_until_done(f, &o, 3000, NULL));
  for (int i = 0; i < 10; i++)
    assert_int_equal(loop_run_once(f->l, 5, NULL), 0);
  assert_false(other.done); /* runs on */
  owner_end(f, &other);
}

/* kill_ctl_signal reaches the whole group; a leader that is not its own
 * group's leader (left in ours) gets it through its pidfd alone. */
static void test_signal_group_and_lone_leader(void **state) {
  fixture *f = *state;
  owner o, member, lone;
  owner_start(f, &o, PLAIN);
  pid_t pid = child_start(PLAIN, NULL);
  assert_int_equal(setpgid(pid, o.pid), 0);
  owner_watch(f, &member, pid);
  rr_err e = {0};
  assert_int_equal(kill_ctl_signal(&o.k, SIGTERM, &e), 0);
  assert_true(run_until_done(f, &o, 3000, NULL));
  assert_true(run_until_done(f, &member, 3000, NULL));
  assert_true(killed_by(&o, SIGTERM) && killed_by(&member, SIGTERM));
  owner_start(f, &lone, SAME_GROUP);
  assert_int_equal(kill_ctl_signal(&lone.k, SIGTERM, &e), 0);
  assert_true(run_until_done(f, &lone, 3000, NULL));
  assert_true(killed_by(&lone, SIGTERM));
}

/* The leader ended and was reaped by someone else (an adopted job's real
 * parent) before we heard of it, and its pid now names another process:
 * neither a signal, a stop nor its end sends anything to that number. */
static void test_leader_gone_sends_nothing_by_number(void **state) {
  fixture *f = *state;
  owner victim, o;
  owner_start(f, &victim, PLAIN); /* has the number now */
  int go;
  pid_t dead = child_start(EXITS, &go);
  owner_watch(f, &o, dead);
  close(go);
  siginfo_t si = {0};
  assert_int_equal(waitid(P_PIDFD, (id_t)reaper_watch_pidfd(o.rw), &si, WEXITED), 0);
  assert_int_equal(si.si_status, 3);
  kill_ctl_attach(&o.k, victim.pid, o.k.start_ticks); /* "the pid was reused" */
  rr_err e = {0};
  assert_int_equal(kill_ctl_signal(&o.k, SIGTERM, &e), -1);
  assert_int_equal(e.code, RR_FAILED_PRECONDITION);
  kill_ctl_stop(&o.k, 0, KILL_CAUSE_STOP);
  kill_ctl_stop(&o.k, 10, KILL_CAUSE_STOP);
  assert_true(run_until_done(f, &o, 3000, NULL)); /* its end: not our child any more */
  assert_int_equal(o.si.si_pid, 0);
  for (int i = 0; i < 10; i++)
    assert_int_equal(loop_run_once(f->l, 5, NULL), 0);
  assert_false(victim.done);
  assert_int_equal(kill(victim.pid, 0), 0);
  owner_end(f, &victim);
}

/* Without pidfd_send_signal (ENOSYS) the number is used, but only while
 * /proc says it is still the process started at the recorded time. */
static void test_without_pidfd_signal_start_time_guards(void **state) {
  fixture *f = *state;
  kill_set_pidfd_signal_disabled(true);
  owner victim, o;
  owner_start(f, &victim, PLAIN);
  int go;
  owner_watch(f, &o, child_start(EXITS, &go));
  close(go);
  siginfo_t si = {0};
  assert_int_equal(waitid(P_PIDFD, (id_t)reaper_watch_pidfd(o.rw), &si, WEXITED), 0);
  kill_ctl_attach(&o.k, victim.pid, o.k.start_ticks + 1); /* another start time */
  rr_err e = {0};
  assert_int_equal(kill_ctl_signal(&o.k, SIGKILL, &e), -1);
  assert_int_equal(e.code, RR_FAILED_PRECONDITION);
  kill_ctl_stop(&o.k, 0, KILL_CAUSE_STOP);
  assert_int_equal(kill(victim.pid, 0), 0);
  assert_true(run_until_done(f, &o, 3000, NULL));
  /* its own start time: signalled by number, group and all */
  kill_ctl_stop(&victim.k, 5000, KILL_CAUSE_STOP);
  assert_true(run_until_done(f, &victim, 3000, NULL));
  assert_true(killed_by(&victim, SIGTERM));
  owner lone;
  owner_start(f, &lone, SAME_GROUP);
  assert_int_equal(kill_ctl_signal(&lone.k, SIGTERM, &e), 0);
  assert_true(run_until_done(f, &lone, 3000, NULL));
  assert_true(killed_by(&lone, SIGTERM));
}

int main(void) {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_stop_term_kills_plain),
      T(test_stop_escalates_after_grace),
      T(test_stop_zero_grace_is_sigkill),
      T(test_timeout_continues_a_stopped_command),
      T(test_timeout_grace_given),
      T(test_ended_kills_stragglers),
      T(test_ended_without_stop_leaves_group),
      T(test_signal_group_and_lone_leader),
      T(test_leader_gone_sends_nothing_by_number),
      T(test_without_pidfd_signal_start_time_guards),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
