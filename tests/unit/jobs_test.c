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
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "jobs/job.h"
#include "jobs/job_cgroup.h"
#include "jobs/logstore.h"
#include "jobs/signame.h"
#include "jobs_helpers.h"
#include "sandbox/spawn.h"

static char *read_log(job *j, int s) {
  int fd = logstore_stream_open_read(j->dir, s, NULL);
  assert_true(fd >= 0);
  char *buf = calloc(1, 1 << 16);
  ssize_t n = read(fd, buf, (1 << 16) - 1);
  assert_true(n >= 0);
  close(fd);
  return buf;
}

static int exits_seen;
static void on_event(job_watch *w, int ev) {
  if (ev == JOB_EVENT_EXIT)
    exits_seen++;
}

static void test_run_exit_and_logs(void **state) {
  fixture *f = *state;
  job *j = start_sh(f, "echo out; echo err >&2; exit 3");
  assert_int_equal(strlen(j->id), ULID_LEN);
  assert_true(j->pid > 0);
  job_watch w = {.fn = on_event};
  exits_seen = 0;
  job_watch_add(j, &w);
  run_until_done(f, j, 5000);
  assert_int_equal(exits_seen, 1);
  job_watch_del(&w);
  assert_int_equal(j->state, JOB_EXITED);
  assert_int_equal(j->exit_code, 3);
  assert_string_equal(j->reason, "exited");
  assert_true(j->end_ns >= j->start_ns);
  assert_int_equal(j->size[LOG_STDOUT], 4);
  assert_int_equal(j->size[LOG_STDERR], 4);
  char *o = read_log(j, LOG_STDOUT), *er = read_log(j, LOG_STDERR);
  assert_string_equal(o, "out\n");
  assert_string_equal(er, "err\n");
  free(o);
  free(er);
}

static void test_start_failures_leave_nothing(void **state) {
  fixture *f = *state;
  job_request r = {.path = strdup("no-such-command-xyz")};
  job *j = NULL;
  rr_err e = {0};
  assert_int_equal(job_table_start(f->t, &r, NULL, &j, &e), -1);
  assert_int_equal(e.code, RR_NOT_FOUND);
  job_request_free(&r);
  r = (job_request){.path = strdup("/etc/passwd")};
  assert_int_equal(job_table_start(f->t, &r, NULL, &j, &e), -1);
  assert_int_equal(e.code, RR_PERMISSION_DENIED);
  job_request_free(&r);
  r = (job_request){.path = strdup("true"), .workdir = strdup("/nope")};
  assert_int_equal(job_table_start(f->t, &r, NULL, &j, &e), -1);
  assert_int_equal(e.code, RR_INVALID_ARGUMENT);
  job_request_free(&r);
  assert_int_equal(job_table_count(f->t), 0);
  char cmd[160];
  snprintf(cmd, sizeof cmd, "test -z \"$(ls -A %s/jobs)\"", f->dir);
  assert_int_equal(system(cmd), 0);
}

static void test_lookup(void **state) {
  fixture *f = *state;
  job *j = start_sh(f, "true"), *got = NULL;
  rr_err e = {0};
  assert_int_equal(job_table_lookup(f->t, "xyz", &got, &e), -1);
  assert_int_equal(e.code, RR_INVALID_ARGUMENT);
  assert_string_equal(e.msg, "job_id \"xyz\" is not a ULID");
  assert_int_equal(job_table_lookup(f->t, "01ARYZ6S41TSV4RRFFQ69G5FAV", &got, &e), -1);
  assert_int_equal(e.code, RR_NOT_FOUND);
  char lower[ULID_LEN + 1];
  for (int i = 0; i <= ULID_LEN; i++)
    lower[i] = (j->id[i] >= 'A' && j->id[i] <= 'Z') ? (char)(j->id[i] + 32) : j->id[i];
  assert_int_equal(job_table_lookup(f->t, lower, &got, &e), 0);
  assert_ptr_equal(got, j);
  run_until_done(f, j, 5000);
}

static void test_stop_group_and_grace(void **state) {
  fixture *f = *state;
  /* ignores TERM: needs the SIGKILL after grace; its child must die too */
  job *j = start_sh(f, "trap '' TERM; sleep 100 & echo ready; wait");
  /* the trap is set once "ready" is out (a TERM before it would end the
   * shell: a busy machine may take long to get there) */
  char out[4096];
  snprintf(out, sizeof out, "%s/stdout", j->dir);
  struct stat st;
  for (int i = 0; i < 1000 && (stat(out, &st) < 0 || st.st_size < 6); i++)
    usleep(10 * 1000);
  assert_int_equal(st.st_size, 6);
  rr_err e = {0};
  uint64_t t0 = rr_now_mono_ms();
  assert_int_equal(job_stop(j, 300, &e), 0);
  run_until_done(f, j, 20000);
  assert_true(rr_now_mono_ms() - t0 >= 250); /* the grace was given */
  assert_int_equal(j->state, JOB_KILLED);
  assert_int_equal(j->signal, SIGKILL);
  assert_string_equal(j->reason, "stopped");
  /* the backgrounded sleep (same group) got TERM and is gone */
  assert_int_equal(kill(-j->pid, 0), -1);
  /* stop after the end is a no-op; out of range grace is refused */
  assert_int_equal(job_stop(j, 10, &e), 0);
  assert_int_equal(job_stop(j, JOB_MAX_GRACE_MS + 1, &e), -1);
  assert_int_equal(e.code, RR_INVALID_ARGUMENT);
  assert_int_equal(job_signal(j, SIGTERM, &e), -1);
  assert_int_equal(e.code, RR_FAILED_PRECONDITION);
}

static void test_stop_term_is_enough(void **state) {
  fixture *f = *state;
  job *j = start_sh(f, "exec sleep 100");
  usleep(50 * 1000);
  assert_int_equal(job_stop(j, 10000, NULL), 0);
  run_until_done(f, j, 3000);
  assert_int_equal(j->state, JOB_KILLED);
  assert_int_equal(j->signal, SIGTERM);
  assert_string_equal(j->reason, "stopped");
}

static void test_timeout(void **state) {
  fixture *f = *state;
  job_request r = req_sh("sleep 100");
  r.has_timeout = true;
  r.timeout_ms = 150;
  job *j = NULL;
  assert_int_equal(job_table_start(f->t, &r, NULL, &j, NULL), 0);
  run_until_done(f, j, 5000);
  assert_int_equal(j->state, JOB_KILLED);
  assert_int_equal(j->signal, SIGTERM);
  assert_string_equal(j->reason, "timeout");
}

static void test_signal(void **state) {
  fixture *f = *state;
  job *j = start_sh(f, "exec sleep 100");
  usleep(50 * 1000);
  assert_int_equal(job_signal(j, SIGUSR1, NULL), 0);
  run_until_done(f, j, 3000);
  assert_int_equal(j->state, JOB_KILLED);
  assert_int_equal(j->signal, SIGUSR1);
  assert_string_equal(j->reason, "signaled");
}

static void test_list_filters(void **state) {
  fixture *f = *state;
  job_request r = req_sh("exit 0");
  r.tags = calloc(2, sizeof *r.tags);
  r.tags[0] = strdup("build");
  r.ntags = 1;
  job *a = NULL;
  assert_int_equal(job_table_start(f->t, &r, NULL, &a, NULL), 0);
  job *b = start_sh(f, "sleep 100");
  run_until_done(f, a, 3000);
  job **v;
  size_t n;
  assert_int_equal(job_table_list(f->t, 0, NULL, &v, &n, NULL), 0);
  assert_int_equal(n, 2);
  assert_ptr_equal(v[0], a); /* start order */
  free(v);
  assert_int_equal(job_table_list(f->t, JOB_RUNNING, NULL, &v, &n, NULL), 0);
  assert_int_equal(n, 1);
  assert_ptr_equal(v[0], b);
  free(v);
  assert_int_equal(job_table_list(f->t, 0, "build", &v, &n, NULL), 0);
  assert_int_equal(n, 1);
  assert_ptr_equal(v[0], a);
  free(v);
  assert_int_equal(job_table_list(f->t, JOB_RUNNING, "build", &v, &n, NULL), 0);
  assert_int_equal(n, 0);
  free(v);
  job_stop(b, 0, NULL);
  run_until_done(f, b, 3000);
}

static void test_log_cap_drops_oldest(void **state) {
  fixture *f = *state;
  job_table_free(f->t);
  table_open(f, 64 * 1024);
  job *j = start_sh(f, "head -c 1048576 /dev/zero | tr '\\0' a; printf END");
  run_until_done(f, j, 10000);
  assert_int_equal(j->size[LOG_STDOUT], 1048576 + 3);
  assert_true(j->kept_from[LOG_STDOUT] >= 1048576 + 3 - 64 * 1024 - 4096);
  assert_true(1048576 + 3 - j->kept_from[LOG_STDOUT] >= 64 * 1024);
  int fd = logstore_stream_open_read(j->dir, LOG_STDOUT, NULL);
  char buf[1 << 17];
  uint64_t off = 0, dropped = 0;
  ssize_t n = logstore_stream_read(fd, j->kept_from[0], &off, buf, sizeof buf, &dropped, NULL);
  close(fd);
  assert_int_equal(dropped, j->kept_from[0]);
  assert_int_equal((uint64_t)n, 1048576 + 3 - dropped);
  assert_memory_equal(buf + n - 4, "aEND", 4);
}

static void test_restart_keeps_finished_and_adopts_running(void **state) {
  fixture *f = *state;
  job *done = start_sh(f, "echo kept; exit 5");
  run_until_done(f, done, 3000);
  char done_id[ULID_LEN + 1], live_id[ULID_LEN + 1];
  strcpy(done_id, done->id);
  job *live = start_sh(f, "sleep 0.5; echo late");
  strcpy(live_id, live->id);
  pid_t live_pid = live->pid;
  job_table_free(f->t); /* "rund goes away"; the job keeps running */
  assert_int_equal(kill(live_pid, 0), 0);
  table_open(f, 0);
  job *d = NULL, *l = NULL;
  assert_int_equal(job_table_lookup(f->t, done_id, &d, NULL), 0);
  assert_int_equal(d->state, JOB_EXITED);
  assert_int_equal(d->exit_code, 5);
  assert_int_equal(d->size[LOG_STDOUT], 5);
  assert_string_equal(d->req.path, "sh");
  assert_int_equal(d->req.nargs, 2);
  assert_int_equal(job_table_lookup(f->t, live_id, &l, NULL), 0);
  assert_int_equal(l->state, JOB_RUNNING);
  run_until_done(f, l, 5000);
  /* in this test it is still our child, so its status is known; after a real
   * restart it is not (ECHILD) and ends as failed/"lost" */
  assert_int_equal(l->state, JOB_EXITED);
  assert_int_equal(l->exit_code, 0);
  assert_false(l->has_usage); /* adopted: no rusage */
  assert_true(d->has_usage);  /* finished before: its rusage was kept */
  char *o = read_log(l, LOG_STDOUT);
  assert_string_equal(o, "late\n"); /* output written while "rund" was away is there */
  free(o);
  assert_int_equal(l->size[LOG_STDOUT], 5);
}

static void test_restart_dead_pid_is_lost(void **state) {
  fixture *f = *state;
  job *j = start_sh(f, "sleep 100");
  char id[ULID_LEN + 1];
  strcpy(id, j->id);
  pid_t pid = j->pid;
  job_table_free(f->t);
  kill(pid, SIGKILL);
  /* let the reaper collect it, as if it died while rund was down */
  for (int i = 0; i < 20 && kill(pid, 0) == 0; i++)
    loop_run_once(f->l, 50, NULL);
  table_open(f, 0);
  assert_int_equal(job_table_lookup(f->t, id, &j, NULL), 0);
  assert_int_equal(j->state, JOB_FAILED);
  assert_string_equal(j->reason, "lost");
  assert_true(j->end_ns > 0);
  cg_usage lu;
  assert_false(job_usage(j, &lu)); /* no rusage for a job we did not reap */
  /* a job dir without job.json comes back failed/corrupt, a dir that is not
   * a job id is skipped; each with a warning */
  char p[256];
  snprintf(p, sizeof p, "%s/jobs/01ARYZ6S41TSV4RRFFQ69G5FAV", f->dir);
  mkdir(p, 0700);
  snprintf(p, sizeof p, "%s/jobs/not-a-job", f->dir);
  mkdir(p, 0700);
  job_table_free(f->t);
  f->warnings = 0;
  table_open(f, 0);
  assert_int_equal(f->warnings, 2);
  assert_int_equal(job_table_count(f->t), 2);
  assert_int_equal(job_table_lookup(f->t, "01ARYZ6S41TSV4RRFFQ69G5FAV", &j, NULL), 0);
  assert_int_equal(j->state, JOB_FAILED);
  assert_string_equal(j->reason, "corrupt");
  assert_non_null(strstr(j->detail, "job.json"));
}

static void test_restart_adopts_foreign_process(void **state) {
  fixture *f = *state;
  job *j = start_sh(f, "sleep 100");
  char id[ULID_LEN + 1], p[256];
  strcpy(id, j->id);
  pid_t pid = j->pid;
  job_table_free(f->t);
  kill(pid, SIGKILL);
  for (int i = 0; i < 20 && kill(pid, 0) == 0; i++)
    loop_run_once(f->l, 50, NULL);
  /* point the record at a live process that is not our child: our parent */
  uint64_t ticks = 0;
  assert_int_equal(spawn_proc_start_ticks(getppid(), &ticks), 0);
  snprintf(p, sizeof p, "%s/jobs/%s", f->dir, id);
  json_object *o = NULL;
  assert_int_equal(logstore_json_read(p, &o, NULL), 0);
  json_object_object_add(o, "pid", json_object_new_int(getppid()));
  json_object_object_add(o, "start_ticks", json_object_new_uint64(ticks));
  assert_int_equal(logstore_json_write(p, o, false, NULL), 0);
  json_object_put(o);
  table_open(f, 0);
  assert_int_equal(job_table_lookup(f->t, id, &j, NULL), 0);
  assert_int_equal(j->state, JOB_RUNNING);
  /* a recorded start time that does not match means the pid was reused */
  job_table_free(f->t);
  assert_int_equal(logstore_json_read(p, &o, NULL), 0);
  json_object_object_add(o, "start_ticks", json_object_new_uint64(ticks + 1));
  assert_int_equal(logstore_json_write(p, o, false, NULL), 0);
  json_object_put(o);
  table_open(f, 0);
  assert_int_equal(job_table_lookup(f->t, id, &j, NULL), 0);
  assert_int_equal(j->state, JOB_FAILED);
  assert_string_equal(j->reason, "lost");
}

/* An adopted job keeps its timeout: the time it has left, or none left
 * (its deadline passed while "rund" was away): stopped at once. */
static void test_restart_keeps_timeout(void **state) {
  fixture *f = *state;
  job *j = NULL, *late = NULL;
  job_request r = req_sh("sleep 100");
  r.has_timeout = true;
  r.timeout_ms = 800;
  assert_int_equal(job_table_start(f->t, &r, NULL, &j, NULL), 0);
  r = req_sh("sleep 100");
  r.has_timeout = true;
  r.timeout_ms = 100;
  assert_int_equal(job_table_start(f->t, &r, NULL, &late, NULL), 0);
  char id[ULID_LEN + 1], late_id[ULID_LEN + 1];
  strcpy(id, j->id);
  strcpy(late_id, late->id);
  job_table_free(f->t);
  usleep(300 * 1000); /* past the deadline of one, not of the other */
  int64_t reopened = rr_now_unix_ns();
  table_open(f, 0);
  assert_int_equal(job_table_lookup(f->t, id, &j, NULL), 0);
  assert_int_equal(job_table_lookup(f->t, late_id, &late, NULL), 0);
  assert_int_equal(j->state, JOB_RUNNING);
  assert_int_equal(late->state, JOB_RUNNING);
  run_until_done(f, late, 3000);
  assert_int_equal(late->state, JOB_KILLED);
  assert_string_equal(late->reason, "timeout");
  assert_true(late->end_ns - reopened < 500 * 1000000LL);
  run_until_done(f, j, 3000);
  assert_int_equal(j->state, JOB_KILLED);
  assert_int_equal(j->signal, SIGTERM);
  assert_string_equal(j->reason, "timeout");
  int64_t ran_ms = (j->end_ns - j->start_ns) / 1000000;
  assert_true(ran_ms >= 790 && ran_ms < 2000);
}

static void test_state_dir_locked(void **state) {
  fixture *f = *state;
  job_table *other = NULL;
  job_table_config cfg = {.state_dir = f->dir};
  rr_err e = {0};
  assert_int_equal(job_table_new(&other, f->l, f->r, &cfg, &e), -1);
  assert_int_equal(e.code, RR_FAILED_PRECONDITION);
  assert_non_null(strstr(e.msg, "in use by another rund"));
}

static void test_orphans_reaped(void **state) {
  fixture *f = *state;
  unsigned long before = reaper_orphans_reaped(f->r);
  job *j = start_sh(f, "sleep 0.2 >/dev/null 2>&1 &");
  run_until_done(f, j, 3000);
  uint64_t end = rr_now_mono_ms() + 3000;
  while (reaper_orphans_reaped(f->r) == before && rr_now_mono_ms() < end)
    loop_run_once(f->l, 50, NULL);
  assert_true(reaper_orphans_reaped(f->r) > before);
}

/* What the reaper's callback got. */
typedef struct reaped {
  int calls;
  pid_t pid;
  bool has_si, has_ru;
  siginfo_t si;
  struct rusage ru;
} reaped;

static void on_reaped(void *data, pid_t pid, const siginfo_t *si, const struct rusage *ru) {
  reaped *r = data;
  r->calls++;
  r->pid = pid;
  if ((r->has_si = si != NULL))
    r->si = *si;
  if ((r->has_ru = ru != NULL))
    r->ru = *ru;
}

/* A child that touches 8 MiB and burns 100 ms of CPU, then exits 7. */
static pid_t fork_busy_child(int *pidfd) {
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    size_t n = 8u << 20;
    volatile char *p = malloc(n);
    for (size_t i = 0; p && i < n; i += 4096)
      p[i] = 1;
    struct timespec t0, t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    do
      clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < 100000000L);
    _exit(7);
  }
  *pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  assert_true(*pidfd >= 0);
  return pid;
}

static uint64_t tv_usec(const struct timeval *tv) {
  return (uint64_t)tv->tv_sec * 1000000u + (uint64_t)tv->tv_usec;
}

/* Watch a busy child, run the loop until the callback ran; check what it got. */
static void reap_busy_child(fixture *f, bool zombie_first) {
  reaped r = {0};
  int pidfd;
  pid_t pid = fork_busy_child(&pidfd);
  if (zombie_first) { /* ended before the watch exists: SIGCHLD and pidfd both pending */
    siginfo_t si;
    memset(&si, 0, sizeof si);
    assert_int_equal(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
  }
  assert_int_equal(reaper_watch_add(f->r, pid, pidfd, on_reaped, &r, NULL, NULL), 0);
  uint64_t end = rr_now_mono_ms() + 5000;
  while (!r.calls && rr_now_mono_ms() < end)
    loop_run_once(f->l, 50, NULL);
  assert_int_equal(r.calls, 1);
  assert_int_equal(r.pid, pid);
  assert_true(r.has_si && r.has_ru);
  assert_int_equal(r.si.si_code, CLD_EXITED);
  assert_int_equal(r.si.si_status, 7);
  /* the child's numbers: its 100 ms of CPU and 8 MiB touched */
  assert_true(tv_usec(&r.ru.ru_utime) + tv_usec(&r.ru.ru_stime) >= 50000);
  assert_true(r.ru.ru_maxrss >= 8 * 1024);
  assert_int_equal(waitpid(pid, NULL, WNOHANG), -1); /* reaped */
  cg_usage u;
  job_usage_from_rusage(&r.ru, &u);
  assert_int_equal(u.cpu_user_usec, tv_usec(&r.ru.ru_utime));
  assert_int_equal(u.cpu_system_usec, tv_usec(&r.ru.ru_stime));
  assert_int_equal(u.cpu_usec, u.cpu_user_usec + u.cpu_system_usec);
  assert_int_equal(u.memory_peak + u.memory_current + u.pids_current + u.io_read_bytes +
                       u.io_write_bytes + u.io_read_ops + u.io_write_ops + u.oom_kills +
                       u.cpu_throttled_usec + u.pids_refused + u.memory_limit_hits,
                   0);
}

static void test_reaper_passes_rusage(void **state) { reap_busy_child(*state, false); }

static void test_reaper_zombie_passes_rusage(void **state) { reap_busy_child(*state, true); }

/* Without a cgroup: no usage while running, the rusage after the end, kept
 * in job.json across a restart; a lost job has none. */
static void test_job_without_cgroup_usage_from_rusage(void **state) {
  fixture *f = *state;
  job *j = start_sh(f, "sleep 5");
  cg_usage u;
  assert_false(job_usage(j, &u));
  assert_int_equal(job_stop(j, 0, NULL), 0);
  run_until_done(f, j, 3000);
  assert_int_equal(j->state, JOB_KILLED);
  assert_true(job_usage(j, &u) && u.memory_peak == 0); /* killed ones too */
  j = start_sh(f, "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done");
  run_until_done(f, j, 30000);
  assert_int_equal(j->state, JOB_EXITED);
  assert_int_equal(j->cgroup, CG_NONE);
  assert_true(j->has_usage);
  assert_true(job_usage(j, &u));
  assert_true(u.cpu_usec > 0 && u.cpu_usec == u.cpu_user_usec + u.cpu_system_usec);
  assert_int_equal(
      u.memory_peak + u.io_read_bytes + u.io_write_bytes + u.pids_current + u.oom_kills, 0);
  char id[ULID_LEN + 1];
  strcpy(id, j->id);
  cg_usage before = u;
  job_table_free(f->t);
  table_open(f, 0);
  assert_int_equal(job_table_lookup(f->t, id, &j, NULL), 0);
  assert_true(job_usage(j, &u));
  assert_int_equal(u.cpu_usec, before.cpu_usec);
  assert_int_equal(u.cpu_user_usec, before.cpu_user_usec);
  assert_int_equal(u.cpu_system_usec, before.cpu_system_usec);
}

static void test_signal_names(void **state) {
  int sig = 0;
  rr_err e = {0};
  assert_int_equal(signame_parse("TERM", "name", &sig, &e), 0);
  assert_int_equal(sig, SIGTERM);
  assert_int_equal(signame_parse("sigkill", "name", &sig, &e), 0);
  assert_int_equal(sig, SIGKILL);
  assert_int_equal(signame_parse("Usr1", "name", &sig, &e), 0);
  assert_int_equal(sig, SIGUSR1);
  assert_int_equal(signame_parse("9", "name", &sig, &e), 0);
  assert_int_equal(sig, 9);
  assert_int_equal(signame_parse("RTMIN+2", "name", &sig, &e), 0);
  assert_int_equal(sig, SIGRTMIN + 2);
  assert_int_equal(signame_parse("SIGRTMAX", "name", &sig, &e), 0);
  assert_int_equal(sig, SIGRTMAX);
  const char *bad[] = {"", "NOPE", "SIG", "0", "65", "RTMIN+99", "RTMAX+1", "TERM ", "-9", "9x"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(signame_parse(bad[i], "name", &sig, &e), -1);
    assert_int_equal(e.code, RR_INVALID_ARGUMENT);
    assert_non_null(strstr(e.msg, "signal"));
  }
  assert_int_equal(signame_check_number(64, "number", &e), 0);
  assert_int_equal(signame_check_number(0, "number", &e), -1);
  assert_int_equal(signame_check_number(-3, "number", &e), -1);
  char buf[16];
  assert_string_equal(signame_name(SIGTERM, buf, sizeof buf), "TERM");
}

/* Owner principals and the child's env override survive a restart / stay
 * out of job.json. */
static void test_owner_and_env_override(void **state) {
  fixture *f = *state;
  job_request r = req_sh("printf %s \"$K\"");
  r.env_keys = calloc(2, sizeof *r.env_keys);
  r.env_values = calloc(2, sizeof *r.env_values);
  r.env_keys[0] = strdup("K");
  r.env_values[0] = strdup("secret://k");
  r.nenv = 1;
  const char *owner[] = {"uid:1000", "san:dns:a.example"};
  const char *child_env[] = {"resolved-value"};
  job_start_opts o = {.owner = owner, .nowner = 2, .env_values = child_env};
  job *j = NULL;
  assert_int_equal(job_table_start(f->t, &r, &o, &j, NULL), 0);
  run_until_done(f, j, 3000);
  char *out = read_log(j, LOG_STDOUT);
  assert_string_equal(out, "resolved-value");
  free(out);
  assert_string_equal(j->req.env_values[0], "secret://k");
  char id[ULID_LEN + 1];
  memcpy(id, j->id, sizeof id);
  job_table_free(f->t);
  table_open(f, 0);
  assert_int_equal(job_table_lookup(f->t, id, &j, NULL), 0);
  assert_int_equal(j->nowner, 2);
  assert_string_equal(j->owner[0], "uid:1000");
  assert_string_equal(j->owner[1], "san:dns:a.example");
  assert_string_equal(j->req.env_values[0], "secret://k");
  /* a job without owners stays without */
  job *k = start_sh(f, "exit 0");
  run_until_done(f, k, 3000);
  assert_int_equal(k->nowner, 0);
}

/* Names in f's STATE/jobs starting with ".new-" (ready job directories). */
static int count_ready_dirs(fixture *f) {
  char cmd[160];
  snprintf(cmd, sizeof cmd, "exit $(ls -A %s/jobs | grep -c '^[.]new-')", f->dir);
  int rc = system(cmd);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* With rund-waiter, starts take directories made ahead: leftovers of a
 * crash go at load, a started job has its logs and a whole job.json, and
 * the table's end removes the unused ones. */
static void test_job_dirs_made_ahead(void **state) {
  fixture *f = *state;
  const char *waiter = getenv("RUND_WAITER");
  assert_non_null(waiter);
  job_table_free(f->t);
  f->t = NULL;
  char cmd[512];
  snprintf(cmd, sizeof cmd,
           "mkdir %s/jobs/.new-7 && echo x > %s/jobs/.new-7/stdout && : > %s/jobs/.new-7/exit",
           f->dir, f->dir, f->dir);
  assert_int_equal(system(cmd), 0);
  assert_int_equal(count_ready_dirs(f), 1);
  job_table_config cfg = {.state_dir = f->dir, .waiter = waiter};
  rr_err e = {0};
  assert_int_equal(job_table_new(&f->t, f->l, f->r, &cfg, &e), 0);
  for (int i = 0; i < 200 && count_ready_dirs(f) < 2; i++) /* the worker's */
    usleep(10000);
  assert_true(count_ready_dirs(f) >= 2);
  snprintf(cmd, sizeof cmd, "test ! -e %s/jobs/.new-7/stdout || test ! -s %s/jobs/.new-7/stdout",
           f->dir, f->dir);
  assert_int_equal(system(cmd), 0); /* the leftover went; a new .new-7 is empty */
  for (int k = 0; k < 6; k++) {     /* more than are ready: some make their own */
    job *j = start_sh(f, "echo out; echo err >&2");
    run_until_done(f, j, 5000);
    assert_int_equal(j->state, JOB_EXITED);
    assert_int_equal(j->exit_code, 0);
    char *o = read_log(j, LOG_STDOUT), *er = read_log(j, LOG_STDERR);
    assert_string_equal(o, "out\n");
    assert_string_equal(er, "err\n");
    free(o);
    free(er);
    json_object *obj = NULL;
    assert_int_equal(logstore_json_read(j->dir, &obj, &e), 0);
    json_object *v;
    assert_true(json_object_object_get_ex(obj, "state", &v));
    assert_string_equal(json_object_get_string(v), "exited");
    assert_true(json_object_object_get_ex(obj, "id", &v));
    assert_string_equal(json_object_get_string(v), j->id);
    json_object_put(obj);
  }
  assert_int_equal(job_table_count(f->t), 6);
  job_table_free(f->t);
  f->t = NULL;
  assert_int_equal(count_ready_dirs(f), 0);
  table_open(f, 0); /* the six come back */
  assert_int_equal(job_table_count(f->t), 6);
}

int main(void) {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_run_exit_and_logs),
      T(test_start_failures_leave_nothing),
      T(test_lookup),
      T(test_stop_group_and_grace),
      T(test_stop_term_is_enough),
      T(test_timeout),
      T(test_signal),
      T(test_list_filters),
      T(test_log_cap_drops_oldest),
      T(test_restart_keeps_finished_and_adopts_running),
      T(test_restart_dead_pid_is_lost),
      T(test_restart_adopts_foreign_process),
      T(test_restart_keeps_timeout),
      T(test_state_dir_locked),
      T(test_orphans_reaped),
      T(test_reaper_passes_rusage),
      T(test_reaper_zombie_passes_rusage),
      T(test_job_without_cgroup_usage_from_rusage),
      T(test_owner_and_env_override),
      T(test_job_dirs_made_ahead),
      cmocka_unit_test(test_signal_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
