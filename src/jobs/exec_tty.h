/* Terminals of Exec sessions (exec -t): a pty for the command, opened on
 * the host's /dev/ptmx or, for a sandboxed request, in the sandbox's own
 * devpts (both by sandbox/pty.h), its window and TERM. Nothing here logs. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "jobs/request.h"
#include "sandbox/spawn.h"

#define EXEC_TTY_DIM_MAX 10000u
#define EXEC_TTY_TERM_MAX 64
#define EXEC_TTY_DEFAULT_ROWS 24u
#define EXEC_TTY_DEFAULT_COLS 80u
#define EXEC_TTY_DEFAULT_TERM "xterm"

typedef struct exec_tty {
  unsigned rows, cols;
  char term[EXEC_TTY_TERM_MAX + 1];
} exec_tty;

/* INVALID_ARGUMENT naming field ("window", "resize") unless rows and cols
 * are each 1..EXEC_TTY_DIM_MAX. */
int exec_tty_size_check(unsigned rows, unsigned cols, const char *field, rr_err *e);
/* *ret from the request's window (NULL: 24 x 80) and TERM (len bytes, ""
 * for "xterm"; at most 64 of [A-Za-z0-9._+-]): INVALID_ARGUMENT otherwise. */
int exec_tty_init(exec_tty *ret, const unsigned *rows, const unsigned *cols, const uint8_t *term,
                  size_t len, rr_err *e);
/* Spawn r's command as o says (its stdio ignored) on a new terminal t; the
 * master, non-blocking and CLOEXEC, into *ret_master. Errors as
 * spawn_process's and job_sandbox_spawn's, or the terminal's. */
int exec_tty_spawn(const job_request *r, spawn_opts *o, const exec_tty *t, int status_fd,
                   spawn_result *ret, int *ret_master, rr_err *e);
/* The window of master's terminal (the foreground group gets SIGWINCH). */
int exec_tty_resize(int master, unsigned rows, unsigned cols, rr_err *e);
/* The terminal's end-of-file character (VEOF); -1 when it has none. */
int exec_tty_veof(int master);
