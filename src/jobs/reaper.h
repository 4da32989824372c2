/* Child supervision on the loop: each watched process has a pidfd; its exit
 * status and rusage are collected with the waitid syscall (P_PIDFD). As a child subreaper we also
 * reap re-parented orphans (SIGCHLD via signalfd, waitpid on pids nobody watches) without ever
 * stealing a watched child's status. */
#pragma once
#include <signal.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "common/err.h"
#include "common/loop.h"

typedef struct reaper reaper;
typedef struct reaper_watch reaper_watch;
/* si and ru are NULL when the status is unknown (a process we did not fork);
 * ru is the kernel's rusage of the process and the descendants it waited for. */
typedef void (*reaper_exit_fn)(void *data, pid_t pid, const siginfo_t *si, const struct rusage *ru);

/* Blocks SIGCHLD, watches it with a signalfd, and (subreaper) becomes a
 * child subreaper. */
int reaper_new(reaper **ret, loop *l, bool subreaper, rr_err *e);
/* Kills nothing; stops watching. */
void reaper_free(reaper *r);
/* Watch pid through pidfd (taken, closed by the reaper); fn runs once. */
int reaper_watch_add(reaper *r, pid_t pid, int pidfd, reaper_exit_fn fn, void *data,
                     reaper_watch **ret, rr_err *e);
/* Drop the callbacks; the process is still reaped when it ends. */
void reaper_watch_forget(reaper_watch *w);
/* fn(data) once the process ended, before it is reaped and before the exit
 * callback: a child of ours is then a zombie, so its pid and group id are
 * still its own (fn NULL: none). */
void reaper_watch_set_before_end(reaper_watch *w, void (*fn)(void *data), void *data);
/* The pidfd of w's process (owned by the reaper), to signal it. */
int reaper_watch_pidfd(const reaper_watch *w);
/* Orphans (unwatched children) reaped so far. */
unsigned long reaper_orphans_reaped(const reaper *r);
