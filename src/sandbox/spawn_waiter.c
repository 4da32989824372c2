/* Background jobs start through rund-waiter (src/waiter): rund makes a
 * vfork-style child W in its own memory; W leads a new process group,
 * starts the command as its own child with the usual spawn_launch (so a
 * failed exec is still reported before Start returns), then executes
 * rund-waiter, which outlives rund and records the command's end in the
 * job's directory. rund sleeps meanwhile (CLONE_VFORK) and wakes when W has
 * executed rund-waiter: one clone and one exec of a small static program
 * more than a plain spawn, and no copy of rund's memory.
 * On cgroup v2 (clone3 places the command), rund-waiter moves itself into
 * the job's cgroup when it starts: rund's cgroup holds rund only. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/spawn_internal.h"

enum {
  WAITER_STACK = 256 * 1024,
  WAITER_STATUS_FD = 3,
  WAITER_CGROUP_FD = 4,
  WAITER_RELAY_FD = 5, /* 5..8: the relay's pipes and logs (src/waiter/main.c) */
  WAITER_RELAY_FDS = 4,
  WAITER_INPUT_FD = 9, /* 9, 10: stdin's write end (or pty master), the control socket */
  WAITER_INPUT_FDS = 2,
};

struct spawn_waiter_args {
  struct spawn_child_args *child;
  volatile struct spawn_report *report; /* W's own failure, for rund */
};

/* Runs in W on its own stack, in our memory: no allocation, no return. */
SPAWN_CHILD_ATTR static _Noreturn void spawn_waiter_child(struct spawn_waiter_args *w) {
  const spawn_opts *o = w->child->o;
  struct spawn_report r = {0, STEP_CGROUP};
  pid_t pid = -1;
  int pidfd = -1;
  /* W joins the command's cgroups first (the command inherits them), so
   * that rund's own cgroup holds rund only; not when clone3 places the
   * command (v2): W would need a cgroup.procs write, whose first writer
   * after a quiet spell waits for an RCU grace period, with rund asleep.
   * rund-waiter makes that write itself (fd 4), while rund goes on. */
  if (o->cgroup_fd <= 0 && w->child->join_procs) {
    for (size_t i = 0; i < o->ncgroup_procs; i++) {
      ssize_t n = write(o->cgroup_procs_fds[i], "0", 1);
      if (n != 1) {
        r.err = n < 0 ? errno : EIO;
        goto fail;
      }
    }
    w->child->join_procs = false;
  }
  r.step = STEP_WAITER_GROUP;
  if (setpgid(0, 0) < 0) {
    r.err = errno;
    goto fail;
  }
  w->child->in_group = true;
  if (spawn_launch(w->child, &pid, &pidfd, &r) != 0)
    goto fail; /* the command is gone already */
  /* W's fd table is its own copy: keep stdin_fd as 0-2, the status file as
   * 3, the job's cgroup.procs as 4 when W still is in rund's cgroup, the
   * relay's fds as 5-8, and nothing else of rund's; each is first copied
   * above them all so that no dup2 clobbers another */
  r.step = STEP_WAITER_EXEC;
  bool move = o->cgroup_fd > 0 && o->ncgroup_procs == 1;
  bool relay = o->waiter_relay_fds != NULL;
  int sfd = fcntl(o->waiter_status_fd, F_DUPFD_CLOEXEC, 11);
  int cfd = move ? fcntl(o->cgroup_procs_fds[0], F_DUPFD_CLOEXEC, 11) : -1;
  bool input = relay && o->waiter_input_fds;
  int rfd[WAITER_RELAY_FDS], ifd[WAITER_INPUT_FDS];
  bool ok = sfd >= 0 && (!move || cfd >= 0);
  /* with a tty the pty's master is stdout's "pipe", and stderr has none */
  for (int i = 0; i < WAITER_RELAY_FDS; i++)
    ok = ok && (!relay || o->waiter_relay_fds[i] < 0 ||
                (rfd[i] = fcntl(o->waiter_relay_fds[i], F_DUPFD_CLOEXEC, 11)) >= 0);
  for (int i = 0; i < WAITER_INPUT_FDS; i++)
    ok = ok && (!input || (ifd[i] = fcntl(o->waiter_input_fds[i], F_DUPFD_CLOEXEC, 11)) >= 0);
  /* not the command's stdin: a pipe or terminal held here would never end */
  int null = o->waiter_stdio_fd > 0 ? o->waiter_stdio_fd : o->stdin_fd;
  ok = ok && dup2(null, 0) >= 0 && dup2(null, 1) >= 0 && dup2(null, 2) >= 0 &&
       dup2(sfd, WAITER_STATUS_FD) >= 0 && (!move || dup2(cfd, WAITER_CGROUP_FD) >= 0);
  for (int i = 0; i < WAITER_RELAY_FDS; i++)
    ok = ok && (!relay || o->waiter_relay_fds[i] < 0 || dup2(rfd[i], WAITER_RELAY_FD + i) >= 0);
  for (int i = 0; i < WAITER_INPUT_FDS; i++)
    ok = ok && (!input || dup2(ifd[i], WAITER_INPUT_FD + i) >= 0);
  if (!ok) {
    r.err = errno;
    goto kill;
  }
  if (relay && !move)
    close(WAITER_CGROUP_FD);
  for (int i = 0; i < WAITER_RELAY_FDS; i++)
    if (relay && o->waiter_relay_fds[i] < 0)
      close(WAITER_RELAY_FD + i);
  unsigned last = input   ? WAITER_INPUT_FD + WAITER_INPUT_FDS - 1
                  : relay ? WAITER_RELAY_FD + WAITER_RELAY_FDS - 1
                          : (unsigned)(move ? WAITER_CGROUP_FD : WAITER_STATUS_FD);
  syscall(SYS_close_range, last + 1, ~0u, 0u);
  char pidarg[16], *p = pidarg + sizeof pidarg;
  *--p = '\0';
  for (unsigned v = (unsigned)pid; p == pidarg + sizeof pidarg - 1 || v; v /= 10)
    *--p = (char)('0' + v % 10);
  char fdarg[] = {'0' + WAITER_CGROUP_FD, '\0'};
  char nofd[] = "-", relayarg[] = "relay", stdinarg[] = "stdin", ttyarg[] = "tty";
  char *argv[] = {"rund-waiter",
                  p,
                  move    ? fdarg
                  : relay ? nofd
                          : NULL,
                  relay ? relayarg : NULL,
                  input ? (o->waiter_tty ? ttyarg : stdinarg) : NULL,
                  NULL};
  char *envp[] = {NULL};
  execve(o->waiter, argv, envp);
  r.err = errno;
kill:
  kill(pid, SIGKILL);
  siginfo_t si;
  while (waitid(P_PID, (id_t)pid, &si, WEXITED) < 0 && errno == EINTR)
    ;
fail:
  w->report->err = r.err;
  w->report->step = r.step;
  _exit(127);
}

SPAWN_CHILD_ATTR static int spawn_waiter_entry(void *arg) { spawn_waiter_child(arg); }

int spawn_waiter_launch(struct spawn_child_args *a, pid_t *pid, int *pidfd,
                        struct spawn_report *r) {
  /* W's frames are never unwound: a stack of their own, made once */
  static char *stack;
  if (!stack) {
    void *m = mmap(NULL, WAITER_STACK, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (m == MAP_FAILED) {
      *r = (struct spawn_report){errno, STEP_CREATE};
      return 1;
    }
    stack = m;
  }
  volatile struct spawn_report report = {0, 0};
  struct spawn_waiter_args w = {.child = a, .report = &report};
  /* W runs with every signal blocked, and rund-waiter keeps them so */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int fd = -1;
  int rc = clone(spawn_waiter_entry, stack + WAITER_STACK,
                 CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, &w, &fd);
  int saved = errno;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc < 0) {
    *r = (struct spawn_report){saved, STEP_CREATE};
    return 1;
  }
  if (report.step) { /* W failed and exited: reap it */
    siginfo_t si;
    while (waitid(P_PID, (id_t)rc, &si, WEXITED) < 0 && errno == EINTR)
      ;
    close(fd);
    *r = (struct spawn_report){report.err, report.step};
    return 1;
  }
  *pid = (pid_t)rc;
  *pidfd = fd;
  return 0;
}
