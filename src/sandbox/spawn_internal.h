/* Internals shared by spawn.c (the command's process) and spawn_waiter.c
 * (rund-waiter between rund and the command). Not for users of spawn.h. */
#pragma once
#include <stdbool.h>
#include <sys/types.h>

#include "common/err.h"
#include "sandbox/spawn.h"

enum {
  STEP_CGROUP = 1,
  STEP_SIGNALS,
  STEP_SETPGID,
  STEP_STDIO,
  STEP_IDS,
  STEP_CHDIR,
  STEP_EXEC,
  STEP_CREATE,       /* no process could be made */
  STEP_REPORT_PIPE,  /* no pipe for the child's report */
  STEP_REPORT_LOST,  /* the child ended without a report */
  STEP_WAITER_GROUP, /* rund-waiter's process group */
  STEP_WAITER_EXEC,  /* executing rund-waiter */
  STEP_TTY,          /* a new session with the terminal */
};
struct spawn_report {
  int err;
  int step; /* 0: no failure (yet) */
};

/* What the child needs. With shared set the child runs in our memory (vfork
 * style) and reports there; else through report_fd. */
struct spawn_child_args {
  const spawn_opts *o;
  const char *exe;    /* resolved by us; NULL: the child looks it up as the caller */
  const char *search; /* then: the PATH to search (a name without '/') */
  char *const *argv;
  char *const *envp;
  int report_fd;
  volatile struct spawn_report *shared;
  bool join_procs; /* write cgroup_procs_fds (not placed by clone3) */
  bool in_group;   /* stay in the parent's process group (rund-waiter's) */
};

/* Code that runs on the child's own stack in our address space: ASan must not
 * poison shadow memory for frames it never unwinds. */
#if defined(__SANITIZE_ADDRESS__)
#define SPAWN_CHILD_ATTR __attribute__((no_sanitize_address, noinline))
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SPAWN_CHILD_ATTR __attribute__((no_sanitize_address, noinline))
#endif
#endif
#ifndef SPAWN_CHILD_ATTR
#define SPAWN_CHILD_ATTR __attribute__((noinline))
#endif

/* Runs in the child: set up and exec, or report and _exit(127). */
_Noreturn void spawn_child(const struct spawn_child_args *a);
/* Create the child and learn how its start went: 0 with *pid and *pidfd
 * once it exec'd; 1 with *r when it failed (nothing is left running). Makes
 * no allocation: rund-waiter's set-up calls it in our memory. */
int spawn_launch(struct spawn_child_args *a, pid_t *pid, int *pidfd, struct spawn_report *r);
/* Start a through rund-waiter (o->waiter): as spawn_launch, *pid being the
 * waiter's (spawn_waiter.c). */
int spawn_waiter_launch(struct spawn_child_args *a, pid_t *pid, int *pidfd, struct spawn_report *r);

struct passwd;
/* spawn_account.c: an account from a passwd entry (known false if a field
 * does not fit). */
void spawn_account_from_passwd(const struct passwd *pw, spawn_account *ret);
