/* rund-waiter CHILD_PID [CGROUP_FD]: the first process of every background
 * job, between rund and the command (its only child). It records how the
 * command ended in the file open on fd 3 (the job's STATE/jobs/<ID>/exit)
 * before it exits with the same status, so the status survives a rund that
 * died meanwhile: the next rund reads the file once this process is gone.
 * With CGROUP_FD (cgroup v2: the job's cgroup.procs, open for writing) it
 * first moves itself into the job's cgroup, out of rund's.
 * Started by rund with every signal blocked: it cannot be killed but by
 * SIGKILL, and signals meant for the job reach the command through the
 * process group (forwarded here only if the command left the group).
 *
 * It starts with every job, so it is built to start in microseconds: static,
 * no sanitizers and, on x86_64 and aarch64, no C library at all (sys.h: its
 * own _start and raw system calls). A static glibc program spends most of
 * its start-up in glibc's CPU feature probing (cpuid, a trap to the
 * hypervisor in a VM): as much as the whole exec of the command on the
 * machines we measured (bench/waiter-results.md). Elsewhere sys.h maps the
 * same calls onto the C library. */
#include "sys.h"

enum { WAITER_STATUS_FD = 3 };

/* Decimal digits of v (v >= 0) at p; returns the end. */
static char *put_num(char *p, long long v) {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v > 0);
  while (n > 0)
    *p++ = tmp[--n];
  return p;
}

static char *put_str(char *p, const char *s) {
  while (*s)
    *p++ = *s++;
  return p;
}

static void put_err(const char *a, const char *b) {
  char buf[160];
  char *p = put_str(buf, "rund-waiter: ");
  p = put_str(p, a);
  p = put_str(p, b);
  *p++ = '\n';
  ws_write(2, buf, (unsigned long)(p - buf));
}

/* "exit N END_NS\n" or "signal N END_NS\n" (END_NS: wall clock, ns since
 * the epoch), one write: the reader only looks once we are gone, so it
 * never sees half of it. */
static void waiter_record(const siginfo_t *si) {
  struct timespec ts = {0, 0};
  ws_clock_realtime(&ts);
  char buf[64];
  char *p = put_str(buf, si->si_code == CLD_EXITED ? "exit " : "signal ");
  p = put_num(p, si->si_status);
  *p++ = ' ';
  p = put_num(p, (long long)ts.tv_sec * 1000000000 + ts.tv_nsec);
  *p++ = '\n';
  while (ws_write(WAITER_STATUS_FD, buf, (unsigned long)(p - buf)) == -EINTR)
    ;
  ws_close(WAITER_STATUS_FD);
}

/* End as the command did: same exit code, or killed by the same signal. */
static _Noreturn void waiter_mirror(const siginfo_t *si) {
  if (si->si_code == CLD_EXITED)
    ws_exit(si->si_status);
  int sig = si->si_status;
  ws_prctl(PR_SET_DUMPABLE, 0); /* the command dumped core already if it was to */
  ws_sig_default(sig);          /* an ignored SIGPIPE would not end us */
  ws_kill(ws_getpid(), sig);
  ws_sigmask(SIG_UNBLOCK, 1ull << (sig - 1)); /* pending: delivered here */
  ws_exit(128 + sig);                         /* a signal that does not kill (cannot happen) */
}

/* 1 (and *si filled) once the command has ended and is reaped, 0 while it
 * runs, -1 if it is not our child. */
static int waiter_reap(int child, siginfo_t *si) {
  for (;;) {
    long r = ws_waitid(child, si);
    if (r == 0)
      return si->si_pid == child;
    if (r != -EINTR)
      return -1;
  }
}

/* A decimal argument in [min, 2^30), else -1. */
static long parse_num(const char *s, long min) {
  long v = 0;
  const char *p = s;
  for (; *p >= '0' && *p <= '9' && v < 1 << 30; p++)
    v = v * 10 + (*p - '0');
  return *p || p == s || v < min || v >= 1 << 30 ? -1 : v;
}

int waiter_main(int argc, char **argv) {
  if (argc != 2 && argc != 3) {
    put_err("started by rund only (usage: rund-waiter CHILD_PID [CGROUP_FD])", "");
    return 125;
  }
  long child = parse_num(argv[1], 1);
  if (child < 0) {
    put_err("bad child pid: ", argv[1]);
    return 125;
  }
  long cgfd = argc == 3 ? parse_num(argv[2], 3) : -1;
  if (argc == 3 && cgfd < 0) {
    put_err("bad cgroup fd: ", argv[2]);
    return 125;
  }
  /* best effort: the job runs the same if the move fails (rund says where
   * its processes are) */
  if (cgfd >= 0) {
    ws_write((int)cgfd, "0", 1);
    ws_close((int)cgfd);
  }
  ws_prctl_name("rund-waiter");
  ws_sigmask(SIG_BLOCK, ~0ull);
  siginfo_t si;
  for (;;) {
    int r = waiter_reap((int)child, &si);
    if (r > 0)
      break;
    if (r < 0) /* not our child: nothing to wait for */
      return 125;
    int sig = ws_sigwait_any();
    if (sig <= 0 || sig == SIGCHLD)
      continue;
    /* a group signal reached the command already; one that left the group
     * gets what is sent to us */
    if (ws_getpgid((int)child) != ws_getpgid(0))
      ws_kill((int)child, sig);
  }
  waiter_record(&si);
  waiter_mirror(&si);
}
