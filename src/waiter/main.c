/* rund-waiter CHILD_PID: the first process of every background job, between
 * rund and the command (its only child). It records how the command ended
 * in the file open on fd 3 (the job's STATE/jobs/<ID>/exit) before it exits
 * with the same status, so the status survives a rund that died meanwhile:
 * the next rund reads the file once this process is gone.
 * Started by rund with every signal blocked: it cannot be killed but by
 * SIGKILL, and signals meant for the job reach the command through the
 * process group (forwarded here only if the command left the group).
 * Static, tiny, no sanitizers: it starts with every job. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { WAITER_STATUS_FD = 3 };

/* "exit N END_NS\n" or "signal N END_NS\n" (END_NS: wall clock, ns since
 * the epoch), one write: the reader only looks once we are gone, so it
 * never sees half of it. */
static void waiter_record(const siginfo_t *si) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  long long ns = (long long)ts.tv_sec * 1000000000 + ts.tv_nsec;
  char buf[64];
  int n = snprintf(buf, sizeof buf, "%s %d %lld\n", si->si_code == CLD_EXITED ? "exit" : "signal",
                   si->si_status, ns);
  while (write(WAITER_STATUS_FD, buf, (size_t)n) < 0 && errno == EINTR)
    ;
  close(WAITER_STATUS_FD);
}

/* End as the command did: same exit code, or killed by the same signal. */
static _Noreturn void waiter_mirror(const siginfo_t *si) {
  if (si->si_code == CLD_EXITED)
    _exit(si->si_status);
  int sig = si->si_status;
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); /* the command dumped core already if it was to */
  struct sigaction dfl = {.sa_handler = SIG_DFL};
  sigaction(sig, &dfl, NULL);
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, sig);
  raise(sig);
  sigprocmask(SIG_UNBLOCK, &one, NULL);
  _exit(128 + sig); /* a signal that does not kill (cannot happen) */
}

/* True (and *si filled) once the command has ended and is reaped. */
static int waiter_reap(pid_t child, siginfo_t *si) {
  for (;;) {
    memset(si, 0, sizeof *si);
    if (waitid(P_PID, (id_t)child, si, WEXITED | WNOHANG) == 0)
      return si->si_pid == child;
    if (errno != EINTR)
      return -1;
  }
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "rund-waiter: started by rund only (usage: rund-waiter CHILD_PID)\n");
    return 125;
  }
  char *end;
  long child = strtol(argv[1], &end, 10);
  if (*end || child <= 0) {
    fprintf(stderr, "rund-waiter: bad child pid \"%s\"\n", argv[1]);
    return 125;
  }
  prctl(PR_SET_NAME, "rund-waiter", 0, 0, 0);
  sigset_t all;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, NULL);
  siginfo_t si;
  for (;;) {
    int r = waiter_reap((pid_t)child, &si);
    if (r > 0)
      break;
    if (r < 0) /* not our child: nothing to wait for */
      return 125;
    siginfo_t got;
    int sig = sigwaitinfo(&all, &got);
    if (sig <= 0 || sig == SIGCHLD)
      continue;
    /* a group signal reached the command already; one that left the group
     * gets what is sent to us */
    if (getpgid((pid_t)child) != getpgrp())
      kill((pid_t)child, sig);
  }
  waiter_record(&si);
  waiter_mirror(&si);
}
