/* PID 1 of a new pid namespace (a subreaper in a joined one): forked rund
 * code, so it allocates nothing and does little: keeps only CAP_KILL and
 * no_new_privs, not dumpable (a copy of the caller's memory), forwards every signal but SIGCHLD to
 * the command's process group (as tini -g), reaps every child (orphans too), writes how the command
 * ended on status_fd (rund-waiter's line) and exits with its code, or 128+N for a signal (PID 1
 * cannot kill itself). Its exit kills what is left in the namespace. */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sandbox/sandbox_internal.h"

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

/* Our fds: only status_fd and the namespace socket with our namespaces
 * stay (the command and the parent's socket are none of ours). */
static void sb_init_close_fds(const struct sb_child *c) {
  int keep[2 + SB_NS_COUNT] = {c->status_fd, c->ns_sock};
  for (int t = 0; t < SB_NS_COUNT; t++)
    keep[2 + t] = c->ns_own[t];
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

/* "exit N END_NS\n" or "signal N END_NS\n", in one write. */
static void sb_init_record(int fd, bool signaled, int n) {
  if (fd < 0)
    return;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  char line[80], num[24];
  size_t len = 0;
  const char *parts[] = {signaled ? "signal " : "exit ", sb_fmt_u64(num, (unsigned)n), " "};
  for (size_t i = 0; i < 3; i++)
    for (const char *p = parts[i]; *p; p++)
      line[len++] = *p;
  unsigned long long ns = (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned)ts.tv_nsec;
  for (const char *p = sb_fmt_u64(num, ns); *p; p++)
    line[len++] = *p;
  line[len++] = '\n';
  while (write(fd, line, len) < 0 && errno == EINTR)
    ;
  close(fd);
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
  sb_init_ns_socket(c);
  for (;;) {
    int st;
    pid_t p;
    while ((p = waitpid(-1, &st, WNOHANG)) > 0 || (p < 0 && errno == EINTR))
      if (p == cmd) {
        bool signaled = WIFSIGNALED(st);
        int n = signaled ? WTERMSIG(st) : WEXITSTATUS(st);
        sb_init_record(c->status_fd, signaled, n);
        _exit(signaled ? 128 + n : n);
      }
    if (p < 0 && errno == ECHILD)
      _exit(127); /* cannot happen: the command is our child */
    siginfo_t si;
    int sig = sigwaitinfo(&all, &si);
    if (sig <= 0 || sig == SIGCHLD)
      continue;
    if (sig == SIGIO && si.si_code > 0 && c->ns_sock >= 0 && si.si_fd == c->ns_sock) {
      sb_nsfd_serve(c);
      continue;
    }
    /* to the group, or the command alone before its setpgid */
    if (kill(-cmd, sig) < 0)
      kill(cmd, sig);
  }
}
