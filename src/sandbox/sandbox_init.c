/* PID 1 of a new pid namespace (a subreaper in a joined one): forked rund
 * code, so it allocates nothing and does little: keeps only CAP_KILL and
 * no_new_privs, not dumpable (a copy of the caller's memory), forwards every signal but SIGCHLD to
 * the command's process group (as tini -g), reaps every child (orphans too), writes how the command
 * ended on status_fd (rund-waiter's line) and exits with its code, or 128+N for a signal (PID 1
 * cannot kill itself). Its exit kills what is left in the namespace. With relay_fds it is the
 * job's keeper as rund-waiter is (the same relay.c): it copies the job's output pipes into the
 * log files and exits only once the command ended and both pipes reached EOF. */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sandbox/sandbox_internal.h"
#include "waiter/relay.h"

/* Keep CAP_KILL only (the command may run as another uid); raw capset: no
 * allocation in libcap's place. The bounding set is left alone: it only
 * limits what an execve gains, and the init never execs (each drop is a
 * credentials change, ~40 of them a start). */
static void sb_init_drop_privileges(void) {
  struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct d[2];
  memset(d, 0, sizeof d);
  if (syscall(SYS_capget, &h, d) == 0) {
    uint32_t kill_bit = d[0].permitted & (1u << CAP_KILL);
    memset(d, 0, sizeof d);
    d[0].effective = d[0].permitted = kill_bit;
    syscall(SYS_capset, &h, d);
  }
  prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
}

/* Our fds: only status_fd, the relay's and the namespace socket with our
 * namespaces stay (the command and the parent's socket are none of ours). */
static void sb_init_close_fds(const struct sb_child *c) {
  int keep[6 + SB_NS_COUNT] = {c->status_fd,    c->ns_sock,      c->relay_fds[0],
                               c->relay_fds[1], c->relay_fds[2], c->relay_fds[3]};
  for (int t = 0; t < SB_NS_COUNT; t++)
    keep[6 + t] = c->ns_own[t];
  sb_close_fds_except(0, keep, sizeof keep / sizeof *keep);
}

/* The namespace socket wakes us with SIGIO (its si_fd and a POLL_* code,
 * unlike a kill's); connections made before are answered now. */
static void sb_init_ns_socket(const struct sb_child *c) {
  if (c->ns_sock < 0)
    return;
  if (fcntl(c->ns_sock, F_SETOWN, getpid()) < 0 || fcntl(c->ns_sock, F_SETSIG, SIGIO) < 0 ||
      fcntl(c->ns_sock, F_SETFL, O_NONBLOCK | O_ASYNC) < 0) {
    close(c->ns_sock); /* a joiner then fails at once, not after a wait */
    return;
  }
  sb_nsfd_serve(c);
}

/* Signals that came: forwarded to the command's group while it runs; the
 * namespace socket's SIGIO (its si_fd and a POLL_* code, unlike a kill's)
 * serves joiners. */
static void sb_init_signals(const struct sb_child *c, int sfd, pid_t cmd, bool ended) {
  struct signalfd_siginfo si;
  while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
    int sig = (int)si.ssi_signo;
    if (sig == SIGIO && si.ssi_code > 0 && c->ns_sock >= 0 && (int)si.ssi_fd == c->ns_sock) {
      sb_nsfd_serve(c);
      continue;
    }
    if (ended || sig == SIGCHLD)
      continue;
    /* to the group, or the command alone before its setpgid */
    if (kill(-cmd, sig) < 0)
      kill(cmd, sig);
  }
}

_Noreturn void sb_init_run(const struct sb_child *c, pid_t cmd) {
  if (getpid() != 1)
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  /* the command's exec (or failure) closes the socket, not us */
  sb_init_close_fds(c);
  sb_init_drop_privileges();
  sigset_t all;
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, NULL); /* already so since the clone */
  /* before the socket: a SIGIO queued from now on is read from it */
  int sfd = signalfd(-1, &all, SFD_NONBLOCK | SFD_CLOEXEC);
  sb_init_ns_socket(c);
  static char buf[RELAY_BUF]; /* a copy of the caller's (untouched) bss page range */
  relay r;
  bool relaying = c->relay_fds[0] >= 0;
  const int none[RELAY_STREAMS] = {-1, -1};
  const int pipes[RELAY_STREAMS] = {c->relay_fds[0], c->relay_fds[1]};
  const int logs[RELAY_STREAMS] = {c->relay_fds[2], c->relay_fds[3]};
  relay_init(&r, relaying ? pipes : none, relaying ? logs : none, relaying ? c->status_fd : -1,
             buf);
  bool ended = false;
  int code = 127;
  for (;;) {
    int st;
    pid_t p;
    while ((p = waitpid(-1, &st, WNOHANG)) > 0 || (p < 0 && errno == EINTR))
      if (p == cmd) {
        bool signaled = WIFSIGNALED(st);
        int n = signaled ? WTERMSIG(st) : WEXITSTATUS(st);
        relay_record_exit(c->status_fd, signaled, n);
        /* PID 1 of its own namespace: the rest of it ends with the command,
         * as at our exit (children holding the pipes would keep us, and the
         * job, running); what they wrote is still drained below */
        if (!ended && getpid() == 1)
          kill(-1, SIGKILL);
        ended = true;
        code = signaled ? 128 + n : n;
      }
    if (p < 0 && errno == ECHILD && !ended)
      _exit(127); /* cannot happen: the command is our child */
    if (ended && !relay_open(&r)) {
      relay_flush(&r);
      _exit(code);
    }
    /* no signalfd (cannot happen short of ENOMEM): look every 50 ms */
    struct pollfd sp = {.fd = sfd, .events = POLLIN};
    relay_wait(&r, &sp, sfd >= 0, sfd < 0 ? 50 : -1);
    if (sfd >= 0 && sp.revents)
      sb_init_signals(c, sfd, cmd, ended);
  }
}
