/* Terminals of Exec sessions (exec_tty.h). */
#include "jobs/exec_tty.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include "common/util.h"
#include "jobs/job_sandbox.h"
#include "sandbox/pty.h"

int exec_tty_size_check(unsigned rows, unsigned cols, const char *field, rr_err *e) {
  if (rows < 1 || rows > EXEC_TTY_DIM_MAX || cols < 1 || cols > EXEC_TTY_DIM_MAX)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: %u rows x %u cols out of range (each 1..%u)",
                      field, rows, cols, EXEC_TTY_DIM_MAX);
  return 0;
}

static bool exec_tty_term_char(uint8_t c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '+' || c == '-';
}

int exec_tty_init(exec_tty *ret, const unsigned *rows, const unsigned *cols, const uint8_t *term,
                  size_t len, rr_err *e) {
  *ret = (exec_tty){EXEC_TTY_DEFAULT_ROWS, EXEC_TTY_DEFAULT_COLS, EXEC_TTY_DEFAULT_TERM};
  if (rows && cols) {
    if (exec_tty_size_check(*rows, *cols, "window", e) < 0)
      return -1;
    ret->rows = *rows;
    ret->cols = *cols;
  }
  if (len > EXEC_TTY_TERM_MAX)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "term: %zu bytes, at most %d", len,
                      EXEC_TTY_TERM_MAX);
  for (size_t i = 0; i < len; i++)
    if (!exec_tty_term_char(term[i]))
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "term: byte 0x%02x at %zu is not one of [A-Za-z0-9._+-]", term[i], i);
  if (len) {
    memcpy(ret->term, term, len);
    ret->term[len] = '\0';
  }
  return 0;
}

static int exec_tty_nonblock(int fd, rr_err *e) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot make the terminal non-blocking");
  return 0;
}

/* On the host's /dev/ptmx; the slave goes to the user the command runs as
 * (as login and sshd do: programs reopen their tty by name). */
static int exec_tty_spawn_host(spawn_opts *o, const exec_tty *t, spawn_result *ret, int *ret_master,
                               rr_err *e) {
  char name[SB_PTY_NAME_MAX];
  int master = -1, slave = -1,
      r = sb_pty_open("/dev/ptmx", t->rows, t->cols, &master, &slave, name);
  if (r < 0)
    return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, -r, "cannot open a terminal on /dev/ptmx");
  _cleanup_close_ int m = master, s = slave;
  if (o->ids && fchown(s, o->ids->uid, (gid_t)-1) < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot give terminal %s to uid %u", name,
                      (unsigned)o->ids->uid);
  if (exec_tty_nonblock(m, e) < 0)
    return -1;
  o->stdin_fd = o->stdout_fd = o->stderr_fd = s;
  o->controlling_tty = true;
  if (spawn_process(o, ret, e) < 0)
    return -1;
  *ret_master = TAKE_FD(m);
  return 0; /* our slave closes: the master reads EIO once the command's are gone */
}

/* In the sandbox: its init opens the pty after its mounts and sends us the
 * master; the init's own stdio is /dev/null. */
static int exec_tty_spawn_sandbox(const job_request *r, spawn_opts *o, const exec_tty *t,
                                  int status_fd, spawn_result *ret, int *ret_master, rr_err *e) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
    return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, errno, "cannot create the console socket");
  _cleanup_close_ int ours = sv[0], theirs = sv[1];
  _cleanup_close_ int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot open /dev/null");
  /* the engine wants the console socket above 2 */
  if (theirs <= 2 && (theirs = rr_fd_above_stdio(theirs)) < 0)
    return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, errno, "cannot move the console socket");
  o->stdin_fd = o->stdout_fd = o->stderr_fd = null;
  job_sandbox_tty tty = {.console_fd = theirs, .rows = t->rows, .cols = t->cols};
  if (job_sandbox_spawn_tty(&r->sandbox, r->limits, o, status_fd, &tty, ret, e) < 0)
    return -1;
  /* sent before the sandbox reported its start: there, or never */
  int master = -1, rc = sb_pty_recv_fd(ours, &master, NULL, 0);
  if (rc < 0 || exec_tty_nonblock(master, e) < 0) {
    if (rc < 0)
      rr_err_sys(e, RR_INTERNAL, -rc, "the sandbox sent no terminal");
    if (master >= 0)
      close(master);
    kill(-ret->pid, SIGKILL);
    kill(ret->pid, SIGKILL);
    close(ret->pidfd); /* unwatched: the orphan reaper reaps it */
    return -1;
  }
  *ret_master = master;
  return 0;
}

int exec_tty_spawn(const job_request *r, spawn_opts *o, const exec_tty *t, int status_fd,
                   spawn_result *ret, int *ret_master, rr_err *e) {
  o->term = t->term;
  if (r->sandbox.profile != SB_PROFILE_HOST)
    return exec_tty_spawn_sandbox(r, o, t, status_fd, ret, ret_master, e);
  return exec_tty_spawn_host(o, t, ret, ret_master, e);
}

int exec_tty_resize(int master, unsigned rows, unsigned cols, rr_err *e) {
  struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
  if (ioctl(master, TIOCSWINSZ, &ws) < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot set the terminal's window");
  return 0;
}

int exec_tty_veof(int master) {
  struct termios t;
  if (tcgetattr(master, &t) < 0 || t.c_cc[VEOF] == _POSIX_VDISABLE)
    return -1;
  return t.c_cc[VEOF];
}
