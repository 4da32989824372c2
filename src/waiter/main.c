/* rund-waiter CHILD_PID [CGROUP_FD|-] [relay]: the first process of every
 * background job, between rund and the command (its only child), and the
 * keeper of the job's output. It records how the command ended in the file
 * open on fd 3 (the job's STATE/jobs/<ID>/exit) before it exits with the
 * same status, so the status survives a rund that died meanwhile: the next
 * rund reads the file once this process is gone.
 * With CGROUP_FD (cgroup v2: the job's cgroup.procs, open for writing) it
 * first moves itself into the job's cgroup, out of rund's.
 * With "relay" the command's stdout and stderr are pipes whose read ends are
 * fds 5 and 6, and the log files fds 7 and 8: it copies them (relay.c) and
 * exits only once the command ended and both pipes reached EOF (processes
 * the command left holding them keep it: a stop kills them with the job's
 * cgroup or process group). What the disk refuses is counted in fd 3.
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
#define WAITER_MAIN_UNIT
#include "input.h"
#include "relay.h"
#include "sys.h"

enum {
  WAITER_STATUS_FD = 3,
  WAITER_OUT_PIPE = 5, /* with "relay": the pipes' read ends, then the logs */
  WAITER_ERR_PIPE = 6,
  WAITER_OUT_LOG = 7,
  WAITER_ERR_LOG = 8,
  WAITER_IN_FD = 9,   /* with "stdin" or "tty": stdin's write end or the pty master */
  WAITER_CTL_FD = 10, /* and the listening socket rund sends input through */
};

static bool arg_is(const char *a, const char *word) {
  while (*a && *a == *word)
    a++, word++;
  return !*a && !*word;
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

#ifndef WAITER_NOLIBC
int main(int argc, char **argv) { return waiter_main(argc, argv); }
#endif

/* Signals that came: forwarded to a command that left our group. */
static void waiter_signals(int sfd, long child, bool ended) {
  unsigned int info[32]; /* a struct signalfd_siginfo: ssi_signo first */
  while (ws_read(sfd, info, sizeof info) == (long)sizeof info) {
    int sig = (int)info[0];
    if (ended || sig == SIGCHLD)
      continue;
    /* a group signal reached the command already; one that left the group
     * gets what is sent to us */
    if (ws_getpgid((int)child) != ws_getpgid(0))
      ws_kill((int)child, sig);
  }
}

int waiter_main(int argc, char **argv) {
  bool relaying = argc >= 4 && arg_is(argv[3], "relay");
  bool tty = argc == 5 && arg_is(argv[4], "tty");
  bool has_input = argc == 5 && (tty || arg_is(argv[4], "stdin"));
  if ((argc != 2 && argc != 3 && !(relaying && (argc == 4 || has_input)))) {
    put_err("started by rund only (usage: rund-waiter CHILD_PID [CGROUP_FD|-] [relay "
            "[stdin|tty]])",
            "");
    return 125;
  }
  long child = parse_num(argv[1], 1);
  if (child < 0) {
    put_err("bad child pid: ", argv[1]);
    return 125;
  }
  bool no_cg = argc >= 3 && argv[2][0] == '-' && !argv[2][1];
  long cgfd = argc >= 3 && !no_cg ? parse_num(argv[2], 3) : -1;
  if (argc >= 3 && !no_cg && cgfd < 0) {
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
  static char buf[RELAY_BUF], inbuf[INPUT_BUF];
  input x;
  input_init(&x, has_input ? WAITER_IN_FD : -1, has_input ? WAITER_CTL_FD : -1, tty, inbuf);
  if (has_input) /* a command that closed its stdin: EPIPE, not a signal to forward */
    ws_sig_ignore(SIGPIPE);
  relay r;
  const int none[RELAY_STREAMS] = {-1, -1};
  const int pipes[RELAY_STREAMS] = {WAITER_OUT_PIPE, WAITER_ERR_PIPE};
  const int logs[RELAY_STREAMS] = {WAITER_OUT_LOG, WAITER_ERR_LOG};
  relay_init(&r, relaying ? pipes : none, relaying ? logs : none, relaying ? WAITER_STATUS_FD : -1,
             buf);
  /* no signalfd (cannot happen short of ENOMEM): look every 50 ms */
  int sfd = ws_signalfd_all();
  siginfo_t si;
  bool ended = false;
  for (;;) {
    if (!ended) {
      int rc = waiter_reap((int)child, &si);
      if (rc < 0) /* not our child: nothing to wait for */
        return 125;
      if (rc > 0) {
        ended = true;
        relay_record_exit(WAITER_STATUS_FD, si.si_code != CLD_EXITED, si.si_status);
      }
    }
    if (ended && !relay_open(&r))
      break;
    struct pollfd p[1 + 3];
    unsigned long n = 0;
    if (sfd >= 0)
      p[n++] = (struct pollfd){.fd = sfd, .events = POLLIN};
    unsigned long nin = ended ? 0 : input_poll_fill(&x, p + n); /* input: while it runs */
    relay_wait(&r, p, n + nin, sfd < 0 ? 50 : -1);
    if (sfd >= 0 && p[0].revents)
      waiter_signals(sfd, child, ended);
    if (nin)
      input_poll_done(&x, p + n, nin);
  }
  relay_flush(&r);
  waiter_mirror(&si);
}
