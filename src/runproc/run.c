/* runproc run [--detach] ID: create and start in one; in the foreground it
 * forwards signals to the container, waits for it, deletes it and exits
 * with its status (the init's: the command's code, or 128+N). */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "runproc.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};

int runproc_wait_forwarding(int pidfd) {
  sigset_t set;
  sigemptyset(&set);
  for (size_t i = 0; i < RR_ARRAY_SIZE(forwarded); i++)
    sigaddset(&set, forwarded[i]);
  sigprocmask(SIG_BLOCK, &set, NULL);
  _cleanup_close_ int sfd = signalfd(-1, &set, SFD_CLOEXEC);
  for (;;) {
    struct pollfd pf[2] = {{.fd = pidfd, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
    if (poll(pf, sfd >= 0 ? 2 : 1, -1) < 0 && errno != EINTR)
      break;
    if (pf[0].revents)
      break;
    struct signalfd_siginfo si;
    if (sfd >= 0 && (pf[1].revents & POLLIN) && read(sfd, &si, sizeof si) == sizeof si)
      syscall(SYS_pidfd_send_signal, pidfd, (int)si.ssi_signo, NULL, 0);
  }
  siginfo_t si;
  while (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED) < 0)
    if (errno != EINTR)
      return 255;
  return si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
}

static char run_drop_stack[16384] __attribute__((aligned(16)));

/* The child that drops the last reference: nothing else of ours (the
 * caller's pipes see EOF at our exit, not at its). */
static int run_drop_child(void *arg) {
  unsigned fd = (unsigned)(uintptr_t)arg;
  if (fd > 0)
    syscall(SYS_close_range, 0u, fd - 1, 0u);
  syscall(SYS_close_range, fd + 1, ~0u, 0u);
  close((int)fd); /* the namespace's teardown: here, after our exit */
  _exit(0);
}

/* The container's mount namespace is held by us (sb_spawn_opts.hold_mntns)
 * so that its init's exit is not the last reference: the unmounts of its
 * whole tree and the RCU grace period they wait for (~0.5 ms quiet, tens
 * of ms at load: docs/dev/RUNPROC.md) would delay the exit status we wait
 * for. Dropped in a child of ours (sharing our memory: no copy), so that
 * we exit with the status at once; our reaper reaps it once we are gone.
 * Where there is no child, we pay it here. */
static void run_drop_mntns(int fd) {
  if (fd < 0)
    return;
  clone(run_drop_child, run_drop_stack + sizeof run_drop_stack, CLONE_VM | SIGCHLD,
        (void *)(uintptr_t)fd);
  close(fd);
}

static int cmd_run(runproc_ctx *ctx, int argc, char **argv) {
  runproc_create_opts o;
  bool detach = false;
  int rc = runproc_create_parse(ctx, argc, argv, &o, &detach);
  if (rc >= 0)
    return rc;
  rc = 0;
  rr_err e = {0};
  _cleanup_close_ int pidfd = -1;
  bool started = false;
  runproc_container c = {0};
  int mntns = -1;
  /* the container as create saved it: not read back from state.json */
  if (runproc_create(ctx, &o, &pidfd, &started, &c, detach ? NULL : &mntns, &e) < 0)
    return runproc_fail_err(ctx, &e);
  if ((started ? runproc_container_poststart(&c, &e) : runproc_container_start(&c, &e)) < 0) {
    rc = runproc_fail_err(ctx, &e);
    detach = false;
  }
  if (detach) {
    runproc_container_free(&c);
    return 0;
  }
  flock(c.dirfd, LOCK_UN); /* not ours while it runs */
  int status = runproc_wait_forwarding(pidfd);
  /* still there unless deleted meanwhile (a new one of that id is another
   * directory) */
  if (runproc_container_relock(&c, NULL) == 0) {
    if (runproc_container_poststop(&c, &e) < 0 && !rc)
      rc = runproc_fail_err(ctx, &e);
    if (runproc_container_cgroup_remove(&c, &e) < 0 || runproc_container_remove(ctx, &c, &e) < 0)
      runproc_fail_err(ctx, &e);
  }
  runproc_container_free(&c);
  run_drop_mntns(mntns);
  return rc ? rc : status;
}

const runproc_command runproc_cmd_run = {
    "run",
    "run [--bundle DIR] [--detach] [--pid-file F] [--console-socket S] [--preserve-fds N] ID",
    cmd_run};
