#include "jobs/reaper.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "jobs/intmap.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

struct reaper_watch {
  reaper *r;
  pid_t pid;
  int pidfd;
  reaper_exit_fn fn;
  void *data;
  void (*before_end)(void *data);
  void *before_end_data;
};

struct reaper {
  loop *l;
  int sigfd;
  intmap by_pid; /* pid -> reaper_watch */
  unsigned long orphans;
  uint64_t more_timer; /* zombies left after a batch: reap on the next turn */
};

/* Children reaped per call: a job making orphans as fast as it can must not
 * keep the loop here. */
#define REAPER_BATCH 256

static void reaper_watch_end(reaper_watch *w, const siginfo_t *si, const struct rusage *ru) {
  reaper *r = w->r;
  loop_fd_del(r->l, w->pidfd);
  close(w->pidfd);
  w->pidfd = -1; /* what reaper_watch_pidfd says while fn runs */
  intmap_del(&r->by_pid, (uint64_t)w->pid);
  if (w->fn)
    w->fn(w->data, w->pid, si, ru);
  free(w);
}

/* Whether the process ended, without reaping it; an adopted process (not
 * our child: ECHILD) is only polled once its pidfd said it ended. */
static bool reaper_watch_ended(reaper_watch *w) {
  siginfo_t si;
  memset(&si, 0, sizeof si);
  int rc;
  while ((rc = waitid((idtype_t)P_PIDFD, (id_t)w->pidfd, &si, WEXITED | WNOHANG | WNOWAIT)) < 0 &&
         errno == EINTR)
    ;
  return rc < 0 || si.si_pid != 0;
}

/* Collect the status if the process ended; true when it did. */
static bool reaper_watch_poll(reaper_watch *w) {
  if (w->before_end) {
    if (!reaper_watch_ended(w))
      return false;
    void (*fn)(void *) = w->before_end;
    w->before_end = NULL;
    fn(w->before_end_data);
  }
  siginfo_t si;
  struct rusage ru;
  memset(&si, 0, sizeof si);
  memset(&ru, 0, sizeof ru);
  long rc;
  /* the raw syscall: glibc's waitid has no rusage argument */
  while ((rc = syscall(SYS_waitid, P_PIDFD, w->pidfd, &si, WEXITED | WNOHANG, &ru)) < 0 &&
         errno == EINTR)
    ;
  if (rc < 0) {
    /* ECHILD: not our child (adopted); the pidfd only says it ended */
    reaper_watch_end(w, NULL, NULL);
    return true;
  }
  if (si.si_pid == 0)
    return false;
  reaper_watch_end(w, &si, &ru);
  return true;
}

static void reaper_on_pidfd(loop *l, int fd, uint32_t events, void *data) {
  reaper_watch_poll(data);
}

static void reaper_reap(reaper *r);

static void reaper_on_more(loop *l, void *data) {
  reaper *r = data;
  r->more_timer = 0;
  reaper_reap(r);
}

static void reaper_on_sigchld(loop *l, int fd, uint32_t events, void *data) {
  reaper *r = data;
  struct signalfd_siginfo ssi;
  while (read(r->sigfd, &ssi, sizeof ssi) == (ssize_t)sizeof ssi)
    ;
  if (!r->more_timer)
    reaper_reap(r);
}

static void reaper_reap(reaper *r) {
  for (int n = 0;; n++) {
    if (n == REAPER_BATCH) {
      r->more_timer = loop_timer_add(r->l, 0, reaper_on_more, r);
      if (r->more_timer)
        return; /* else go on: better late than a zombie left behind */
    }
    siginfo_t si;
    memset(&si, 0, sizeof si);
    /* peek first so a watched child's status and rusage go to its owner */
    if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0) {
      if (errno == EINTR)
        continue;
      return;
    }
    if (si.si_pid == 0)
      return;
    reaper_watch *w = intmap_get(&r->by_pid, (uint64_t)si.si_pid);
    if (w) {
      if (!reaper_watch_poll(w))
        return; /* cannot happen (it is a zombie); avoid spinning */
      continue;
    }
    while (waitpid(si.si_pid, NULL, WNOHANG) < 0 && errno == EINTR)
      ;
    r->orphans++;
  }
}

int reaper_new(reaper **ret, loop *l, bool subreaper, rr_err *e) {
  reaper *r = calloc(1, sizeof *r);
  if (!r)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  r->l = l;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  if (sigprocmask(SIG_BLOCK, &set, NULL) < 0 ||
      (r->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
    int saved = errno;
    free(r);
    return rr_err_sys(e, RR_INTERNAL, saved, "cannot watch SIGCHLD");
  }
  if (subreaper && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) {
    int saved = errno;
    close(r->sigfd);
    free(r);
    return rr_err_sys(e, RR_INTERNAL, saved, "cannot become a child subreaper");
  }
  if (loop_fd_add(l, r->sigfd, EPOLLIN, "reaper (SIGCHLD)", reaper_on_sigchld, r, e) < 0) {
    close(r->sigfd);
    free(r);
    return -1;
  }
  *ret = r;
  return 0;
}

void reaper_free(reaper *r) {
  if (!r)
    return;
  for (size_t i = 0; i < r->by_pid.nbuckets; i++)
    for (intmap_entry *en = r->by_pid.buckets[i]; en; en = en->next) {
      reaper_watch *w = en->value;
      loop_fd_del(r->l, w->pidfd);
      close(w->pidfd);
      free(w);
    }
  intmap_free(&r->by_pid);
  loop_timer_cancel(r->l, r->more_timer);
  loop_fd_del(r->l, r->sigfd);
  close(r->sigfd);
  free(r);
}

int reaper_watch_add(reaper *r, pid_t pid, int pidfd, reaper_exit_fn fn, void *data,
                     reaper_watch **ret, rr_err *e) {
  reaper_watch *w = calloc(1, sizeof *w);
  if (!w) {
    close(pidfd);
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  }
  *w = (reaper_watch){.r = r, .pid = pid, .pidfd = pidfd, .fn = fn, .data = data};
  if (intmap_put(&r->by_pid, (uint64_t)pid, w) < 0) {
    close(pidfd);
    free(w);
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  }
  if (loop_fd_add(r->l, pidfd, EPOLLIN, "reaper (pidfd)", reaper_on_pidfd, w, e) < 0) {
    intmap_del(&r->by_pid, (uint64_t)pid);
    close(pidfd);
    free(w);
    return -1;
  }
  if (ret)
    *ret = w;
  return 0;
}

void reaper_watch_forget(reaper_watch *w) {
  if (w) {
    w->fn = NULL;
    w->before_end = NULL;
  }
}

void reaper_watch_set_before_end(reaper_watch *w, void (*fn)(void *data), void *data) {
  w->before_end = fn;
  w->before_end_data = data;
}

int reaper_watch_pidfd(const reaper_watch *w) { return w->pidfd; }

unsigned long reaper_orphans_reaped(const reaper *r) { return r->orphans; }
