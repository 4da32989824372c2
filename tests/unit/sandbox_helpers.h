/* Shared by the sandbox engine's tests (sandbox_test.c, sandbox_ns_test.c).
 * They need root: real namespaces, mounts, capabilities and seccomp. */
#pragma once
#include <stdbool.h>
#include <sys/types.h>

#include "sandbox/sandbox.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

#define SB_TEST_NMOUNTS 6

/* This test program (/proc/self/exe), for --helper runs inside. */
extern char self_exe[4096];
/* PATH and FOO=bar. */
extern char *env_path[2];
/* proc, /dev tmpfs, /dev/pts, /dev/mqueue, sysfs read-only, /tmp. */
extern sb_mount default_mounts[SB_TEST_NMOUNTS];

typedef struct run_result {
  char out[8192];
  int status; /* exit code, or 128 + signal */
  pid_t pid;
  char status_line[128];
} run_result;

/* --helper OP inside a sandbox: prints "OP ok" or "OP ERRNO-NAME". */
int helper(const char *op);
/* self_exe: this binary, or a copy in /var/tmp when it is below /tmp (which
 * the sandboxes hide behind a fresh tmpfs); -1 on failure. */
int self_exe_visible(void);
/* A default-like spec: every namespace but user and time, the host root
 * read-only, the default mounts, masked and read-only paths; no caps;
 * no_new_privs; hostname "sbtest". */
void spec_default(sb_spec *s, char **args, size_t nargs);
/* Processes whose parent is us: none may be left after a failed spawn. */
int count_children(void);
/* Spawn s (filter f, may be NULL) with stdout and stderr to a pipe and a
 * status_fd; rr gets the output, status and status line. -1 (e set) when
 * the spawn failed, after checking that nothing of it is left. */
int run(const sb_spec *s, const sb_filter *f, run_result *rr, rr_err *e);
/* run, failing the test with the error when the spawn fails. */
void run_ok(const sb_spec *s, const sb_filter *f, run_result *rr);
