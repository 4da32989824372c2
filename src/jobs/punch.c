#include "jobs/punch.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"

#define PUNCH_QUEUE_LEN 1024u

typedef struct punch {
  uint64_t off, len;
  char name[PUNCH_NAME_MAX];
} punch;

struct punch_queue {
  pthread_mutex_t mu;
  pthread_cond_t work, idle;
  pthread_t thread;
  int dir_fd;
  punch ring[PUNCH_QUEUE_LEN];
  unsigned head, n; /* n: queued, not yet taken */
  bool busy, stop, stopped;
  uint64_t errors;
  int last_errno;
};

static void *punch_worker(void *data) {
  punch_queue *q = data;
  pthread_mutex_lock(&q->mu);
  for (;;) {
    while (!q->n && !q->stop)
      pthread_cond_wait(&q->work, &q->mu);
    if (!q->n)
      break;
    punch p = q->ring[q->head];
    q->head = (q->head + 1) % PUNCH_QUEUE_LEN;
    q->n--;
    q->busy = true;
    pthread_mutex_unlock(&q->mu);
    int err = 0;
    int fd = openat(q->dir_fd, p.name, O_WRONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
    if (fd < 0)
      err = errno == ENOENT ? 0 : errno; /* gone with its job: nothing to drop */
    else if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)p.off, (off_t)p.len) <
             0)
      err = errno;
    if (fd >= 0)
      close(fd);
    pthread_mutex_lock(&q->mu);
    q->busy = false;
    if (err) {
      q->errors++;
      q->last_errno = err;
    }
    if (!q->n)
      pthread_cond_broadcast(&q->idle);
  }
  q->stopped = true;
  pthread_cond_broadcast(&q->idle);
  pthread_mutex_unlock(&q->mu);
  return NULL;
}

int punch_queue_new(punch_queue **ret, int dir_fd, rr_err *e) {
  punch_queue *q = calloc(1, sizeof *q);
  if (!q)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  if ((q->dir_fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 3)) < 0) {
    free(q);
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot start the log hole-punching thread");
  }
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_mutex_init(&q->mu, NULL);
  pthread_cond_init(&q->work, NULL);
  pthread_cond_init(&q->idle, &ca);
  pthread_condattr_destroy(&ca);
  int r = rr_thread_start(&q->thread, punch_worker, q);
  if (r != 0) {
    pthread_cond_destroy(&q->work);
    pthread_cond_destroy(&q->idle);
    pthread_mutex_destroy(&q->mu);
    close(q->dir_fd);
    free(q);
    return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, r, "cannot start the log hole-punching thread");
  }
  *ret = q;
  return 0;
}

bool punch_queue_add(punch_queue *q, const char *name, uint64_t off, uint64_t len) {
  size_t n = strlen(name);
  if (n >= PUNCH_NAME_MAX)
    return false;
  pthread_mutex_lock(&q->mu);
  if (q->n == PUNCH_QUEUE_LEN) {
    pthread_mutex_unlock(&q->mu);
    return false;
  }
  punch *p = &q->ring[(q->head + q->n) % PUNCH_QUEUE_LEN];
  p->off = off;
  p->len = len;
  memcpy(p->name, name, n + 1);
  q->n++;
  pthread_cond_signal(&q->work);
  pthread_mutex_unlock(&q->mu);
  return true;
}

uint64_t punch_queue_errors(punch_queue *q, int *last_errno) {
  pthread_mutex_lock(&q->mu);
  uint64_t n = q->errors;
  *last_errno = q->last_errno;
  q->errors = 0;
  pthread_mutex_unlock(&q->mu);
  return n;
}

unsigned punch_queue_pending(punch_queue *q) {
  pthread_mutex_lock(&q->mu);
  unsigned n = q->n + (q->busy ? 1u : 0u);
  pthread_mutex_unlock(&q->mu);
  return n;
}

void punch_queue_free(punch_queue *q, unsigned wait_ms) {
  if (!q)
    return;
  struct timespec until;
  clock_gettime(CLOCK_MONOTONIC, &until);
  until.tv_sec += wait_ms / 1000u;
  until.tv_nsec += (long)(wait_ms % 1000u) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&q->mu);
  q->stop = true;
  pthread_cond_signal(&q->work);
  int r = 0;
  while (!q->stopped && r != ETIMEDOUT)
    r = pthread_cond_timedwait(&q->idle, &q->mu, &until);
  bool done = q->stopped;
  pthread_mutex_unlock(&q->mu);
  if (!done) {
    /* stuck in fallocate: leave it (and q) to the end of the process */
    pthread_detach(q->thread);
    return;
  }
  pthread_join(q->thread, NULL);
  close(q->dir_fd);
  pthread_cond_destroy(&q->work);
  pthread_cond_destroy(&q->idle);
  pthread_mutex_destroy(&q->mu);
  free(q);
}
