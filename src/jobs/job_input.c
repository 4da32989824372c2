#include "jobs/job_input.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/util.h"
#include "jobs/exec_tty.h"
#include "jobs/job_internal.h"
#include "sandbox/pty.h"

struct job_input {
  job *j;
  int fd;                           /* connection to the keeper; -1 */
  unsigned char buf[JOB_INPUT_BUF]; /* frames not yet taken by the socket */
  size_t len;
  bool watching; /* EPOLLOUT registered */
  bool close_pending;
  bool resize_pending;
  unsigned rows, cols;
  struct job_input_waiter *waiters; /* writers told when room comes */
  size_t nwaiters, cap;
};

struct job_input_waiter {
  void (*fn)(void *);
  void *arg;
};

static void fd_close(int *fd) {
  if (*fd >= 0)
    close(*fd);
  *fd = -1;
}

void job_input_fds_close(job_input_fds *f) {
  fd_close(&f->stdin_read);
  fd_close(&f->keeper[0]);
  fd_close(&f->keeper[1]);
  fd_close(&f->slave);
  f->relay_in = -1; /* the master: keeper[0] */
}

static int job_input_addr(const char *dir, struct sockaddr_un *a, rr_err *e) {
  *a = (struct sockaddr_un){.sun_family = AF_UNIX};
  if ((size_t)snprintf(a->sun_path, sizeof a->sun_path, "%s/" JOB_INPUT_SOCKET, dir) >=
      sizeof a->sun_path)
    return rr_err_set(e, RR_FAILED_PRECONDITION,
                      "the state dir's path is too long for a job's stdin socket (\"%s/%s\" "
                      "over %zu bytes)",
                      dir, JOB_INPUT_SOCKET, sizeof a->sun_path - 1);
  return 0;
}

int job_input_prepare(const job_request *r, const char *dir, spawn_opts *o, job_input_fds *f,
                      rr_err *e) {
  *f = (job_input_fds){-1, {-1, -1}, -1, -1};
  struct sockaddr_un a;
  if (job_input_addr(dir, &a, e) < 0)
    return -1;
  f->keeper[1] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (f->keeper[1] < 0 || bind(f->keeper[1], (struct sockaddr *)&a, sizeof a) < 0 ||
      chmod(a.sun_path, 0600) < 0 || listen(f->keeper[1], 4) < 0) {
    rr_err_sys(e, RR_INTERNAL, errno, "cannot make the stdin socket \"%s\"", a.sun_path);
    goto fail;
  }
  if (r->tty) {
    char name[SB_PTY_NAME_MAX];
    int rc = sb_pty_open("/dev/ptmx", r->rows, r->cols, &f->keeper[0], &f->slave, name);
    if (rc < 0) {
      rr_err_sys(e, RR_RESOURCE_EXHAUSTED, -rc, "cannot open a terminal on /dev/ptmx");
      goto fail;
    }
    if (o->ids && fchown(f->slave, o->ids->uid, (gid_t)-1) < 0) {
      rr_err_sys(e, RR_INTERNAL, errno, "cannot give terminal %s to uid %u", name,
                 (unsigned)o->ids->uid);
      goto fail;
    }
    f->relay_in = f->keeper[0];
    o->stdin_fd = o->stdout_fd = o->stderr_fd = f->slave;
    o->controlling_tty = true;
    o->term = r->term ? r->term : EXEC_TTY_DEFAULT_TERM;
    return 0;
  }
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) {
    rr_err_sys(e, RR_RESOURCE_EXHAUSTED, errno, "cannot make the job's stdin pipe");
    goto fail;
  }
  f->stdin_read = p[0];
  f->keeper[0] = p[1];
  o->stdin_fd = p[0];
  return 0;
fail:
  job_input_fds_close(f);
  unlink(a.sun_path);
  return -1;
}

/* ---- the connection to the keeper ---- */

static void job_input_on_io(loop *l, int fd, uint32_t events, void *data);

static void job_input_drop(struct job_input *x) {
  if (x->fd >= 0) {
    if (x->watching)
      loop_fd_del(x->j->table->l, x->fd);
    close(x->fd);
  }
  x->fd = -1;
  x->watching = false;
  x->len = 0;
}

/* The writers waiting for room, each told once (one may wait again, or go,
 * from its callback: the list is taken first). */
static void job_input_tell(struct job_input *x) {
  struct job_input_waiter *w = x->waiters;
  size_t n = x->nwaiters;
  x->waiters = NULL;
  x->nwaiters = x->cap = 0;
  for (size_t i = 0; i < n; i++)
    if (w[i].fn)
      w[i].fn(w[i].arg);
  free(w);
}

/* Remember fn(arg) for when room comes (one entry per arg). */
static int job_input_wait(struct job_input *x, void (*fn)(void *), void *arg, rr_err *e) {
  for (size_t i = 0; i < x->nwaiters; i++)
    if (x->waiters[i].arg == arg) {
      x->waiters[i].fn = fn;
      return 0;
    }
  if (x->nwaiters == x->cap) {
    size_t cap = x->cap ? 2 * x->cap : 4;
    struct job_input_waiter *w = realloc(x->waiters, cap * sizeof *w);
    if (!w)
      return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
    x->waiters = w;
    x->cap = cap;
  }
  x->waiters[x->nwaiters++] = (struct job_input_waiter){fn, arg};
  return 0;
}

static void job_input_put(struct job_input *x, char type, uint32_t v, const void *data,
                          size_t len) {
  unsigned char *p = x->buf + x->len;
  p[0] = (unsigned char)type;
  for (int i = 0; i < 4; i++)
    p[1 + i] = (unsigned char)(v >> (8 * i));
  if (len)
    memcpy(p + 5, data, len);
  x->len += 5 + len;
}

/* Control frames that waited for room. */
static void job_input_put_pending(struct job_input *x) {
  if (x->resize_pending && x->len + 5 <= sizeof x->buf) {
    job_input_put(x, 'W', (x->rows & 0xffff) | (uint32_t)x->cols << 16, NULL, 0);
    x->resize_pending = false;
  }
  if (x->close_pending && x->len + 5 <= sizeof x->buf) {
    job_input_put(x, 'C', 0, NULL, 0);
    x->close_pending = false;
  }
}

/* Send what the socket takes; watch for room while some is left. */
static int job_input_flush(struct job_input *x, rr_err *e) {
  for (;;) {
    job_input_put_pending(x);
    if (!x->len)
      break;
    ssize_t n = send(x->fd, x->buf, x->len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && errno == EAGAIN)
      break;
    if (n <= 0) {
      int err = n < 0 ? errno : EPIPE;
      job_input_drop(x);
      return rr_err_sys(e, RR_FAILED_PRECONDITION, err, "the keeper of job %s went", x->j->id);
    }
    memmove(x->buf, x->buf + n, x->len - (size_t)n);
    x->len -= (size_t)n;
  }
  /* waiters too: one writer's flush may empty the queue another waits on */
  bool want = x->len || x->close_pending || x->resize_pending || x->nwaiters;
  if (want != x->watching) {
    if (want &&
        loop_fd_add(x->j->table->l, x->fd, EPOLLOUT, "job stdin", job_input_on_io, x, e) < 0)
      return -1;
    if (!want)
      loop_fd_del(x->j->table->l, x->fd);
    x->watching = want;
  }
  return 0;
}

static void job_input_on_io(loop *l, int fd, uint32_t events, void *data) {
  struct job_input *x = data;
  rr_err e = {0};
  if (job_input_flush(x, &e) < 0)
    job_table_warn(x->j->table, "job %s: %s", x->j->id, e.msg);
  if (x->len < sizeof x->buf / 2)
    job_input_tell(x);
}

/* The job's input state, connected to its keeper. */
static int job_input_get(job *j, struct job_input **ret, rr_err *e) {
  if (j->state != JOB_RUNNING)
    return rr_err_set(e, RR_FAILED_PRECONDITION, "job %s is not running (%s)", j->id,
                      job_state_name(j->state));
  if (!j->req.stdin_open && !j->req.tty)
    return rr_err_set(e, RR_FAILED_PRECONDITION,
                      "job %s has no stdin (it was started without stdin or tty)", j->id);
  if (j->stdin_closed)
    return rr_err_set(e, RR_FAILED_PRECONDITION, "the stdin of job %s is closed", j->id);
  struct job_input *x = j->input;
  if (!x) {
    if (!(x = calloc(1, sizeof *x)))
      return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
    x->j = j;
    x->fd = -1;
    j->input = x;
  }
  if (x->fd < 0) {
    struct sockaddr_un a;
    if (job_input_addr(j->dir, &a, e) < 0)
      return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
      return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, errno, "cannot make a socket");
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
      int err = errno;
      close(fd);
      return rr_err_sys(e, err == EAGAIN ? RR_UNAVAILABLE : RR_FAILED_PRECONDITION, err,
                        "cannot reach the keeper of job %s", j->id);
    }
    x->fd = fd;
  }
  *ret = x;
  return 0;
}

bool job_has_stdin(const job *j) {
  return (j->req.stdin_open || j->req.tty) && !j->stdin_closed && j->state == JOB_RUNNING;
}

bool job_has_tty(const job *j) { return j->req.tty; }

ssize_t job_stdin_write(job *j, const void *buf, size_t len, void (*writable)(void *), void *arg,
                        rr_err *e) {
  struct job_input *x;
  if (job_input_get(j, &x, e) < 0)
    return -1;
  if (job_input_flush(x, e) < 0)
    return -1;
  size_t room = sizeof x->buf - x->len;
  size_t n = room > 5 ? room - 5 : 0;
  if (n > len)
    n = len;
  if (n) {
    job_input_put(x, 'D', (uint32_t)n, buf, n);
    if (job_input_flush(x, e) < 0)
      return -1;
  }
  /* flushed again after: a queue the socket emptied must still wake the waiter */
  if (n < len && writable && (job_input_wait(x, writable, arg, e) < 0 || job_input_flush(x, e) < 0))
    return -1;
  return (ssize_t)n;
}

int job_stdin_close(job *j, rr_err *e) {
  struct job_input *x;
  if (job_input_get(j, &x, e) < 0)
    return -1;
  x->close_pending = true;
  j->stdin_closed = true;
  rr_err pe = {0};
  if (job_persist(j, &pe) < 0)
    job_table_warn(j->table, "job %s: cannot record its closed stdin: %s", j->id, pe.msg);
  return job_input_flush(x, e);
}

int job_resize(job *j, unsigned rows, unsigned cols, rr_err *e) {
  if (exec_tty_size_check(rows, cols, "window", e) < 0)
    return -1;
  if (!j->req.tty)
    return rr_err_set(e, RR_FAILED_PRECONDITION, "job %s has no terminal (started without tty)",
                      j->id);
  bool closed = j->stdin_closed;
  j->stdin_closed = false; /* a closed stdin keeps its terminal's window */
  struct job_input *x;
  int rc = job_input_get(j, &x, e);
  j->stdin_closed = closed;
  if (rc < 0)
    return -1;
  x->rows = rows;
  x->cols = cols;
  x->resize_pending = true;
  return job_input_flush(x, e);
}

void job_input_end(job *j) {
  struct job_input *x = j->input;
  if (!x)
    return;
  job_input_drop(x);
  j->input = NULL;
  job_input_tell(x); /* their next write gets FAILED_PRECONDITION */
  free(x);
}

void job_stdin_forget(job *j, void *arg) {
  struct job_input *x = j->input;
  for (size_t i = 0; x && i < x->nwaiters; i++)
    if (x->waiters[i].arg == arg)
      x->waiters[i].fn = NULL; /* skipped when told */
}
