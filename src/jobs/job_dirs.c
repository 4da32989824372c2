/* Job directories made ahead of need: a worker thread keeps a few
 * STATE/jobs/.new-N directories ready, each with its stdout, stderr, exit
 * and an empty job.json, and their fds open; a start renames one to the
 * job id and takes the fds (one rename on the loop instead of a mkdir and
 * four creates). The inode allocations then run beside the loop on another
 * CPU: on ext4 without a journal each one scans recently deleted inodes,
 * the largest part of a start there (bench/startwait-results.md).
 * The worker only calls mkdirat/openat/fsync/close on names it formats on
 * its stack, with every signal blocked and no allocation, so it is safe
 * beside rund's vfork-style spawns. A ready directory is never listed: the
 * table skips dot names, and its load removes ".new-*" leftovers of a
 * crash before the worker starts. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "jobs/job_internal.h"

enum { DIRS_MAX = 4 };

static const char *const dir_files[JOB_DIR_FDS] = {"stdout", "stderr", JOB_EXIT_FILE, "job.json"};

typedef struct ready_dir {
  unsigned seq;
  int fd[JOB_DIR_FDS];
} ready_dir;

struct job_dirs {
  pthread_mutex_t mu;
  pthread_cond_t work;
  pthread_t thread;
  int dir_fd; /* STATE/jobs, not owned */
  bool sync;  /* --fsync: the new directory's entries made durable */
  ready_dir ready[DIRS_MAX];
  unsigned n;    /* ready ones */
  unsigned next; /* the next number */
  bool stalled;  /* the last make failed (full disk?): again at the next take */
  bool stop;
};

static void dir_name(unsigned seq, char buf[32]) {
  snprintf(buf, 32, JOB_DIR_NEW_PREFIX "%u", seq);
}

/* Remove what make_dir made of seq (fds closed by the caller). */
static void dir_unmake(int dir_fd, unsigned seq) {
  char name[32], p[64];
  dir_name(seq, name);
  for (int i = 0; i < JOB_DIR_FDS; i++) {
    snprintf(p, sizeof p, "%s/%s", name, dir_files[i]);
    unlinkat(dir_fd, p, 0);
  }
  unlinkat(dir_fd, name, AT_REMOVEDIR);
}

/* 0 and r filled, or an errno. */
static int make_dir(job_dirs *d, unsigned seq, ready_dir *r) {
  char name[32], p[64];
  dir_name(seq, name);
  if (mkdirat(d->dir_fd, name, 0700) < 0)
    return errno;
  int err = 0;
  for (int i = 0; i < JOB_DIR_FDS; i++)
    r->fd[i] = -1;
  for (int i = 0; i < JOB_DIR_FDS && !err; i++) {
    snprintf(p, sizeof p, "%s/%s", name, dir_files[i]);
    r->fd[i] =
        openat(d->dir_fd, p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW, 0600);
    if (r->fd[i] < 0)
      err = errno;
  }
  if (!err && d->sync) {
    int fd = openat(d->dir_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) < 0)
      err = errno;
    if (fd >= 0)
      close(fd);
  }
  if (err) {
    for (int i = 0; i < JOB_DIR_FDS; i++)
      if (r->fd[i] >= 0)
        close(r->fd[i]);
    dir_unmake(d->dir_fd, seq);
    return err;
  }
  r->seq = seq;
  return 0;
}

static void *dirs_worker(void *data) {
  job_dirs *d = data;
  pthread_mutex_lock(&d->mu);
  while (!d->stop) {
    if (d->n == DIRS_MAX || d->stalled) {
      pthread_cond_wait(&d->work, &d->mu);
      continue;
    }
    unsigned seq = d->next++;
    pthread_mutex_unlock(&d->mu);
    ready_dir r;
    int err = make_dir(d, seq, &r);
    pthread_mutex_lock(&d->mu);
    if (!err)
      d->ready[d->n++] = r;
    else if (err != EEXIST) /* a leftover name: the next number */
      d->stalled = true;    /* starts make their own (and say why) meanwhile */
  }
  pthread_mutex_unlock(&d->mu);
  return NULL;
}

job_dirs *job_dirs_new(int jobs_dir_fd, bool sync) {
  job_dirs *d = calloc(1, sizeof *d);
  if (!d)
    return NULL;
  d->dir_fd = jobs_dir_fd;
  d->sync = sync;
  pthread_mutex_init(&d->mu, NULL);
  pthread_cond_init(&d->work, NULL);
  int r = rr_thread_start(&d->thread, dirs_worker, d);
  if (r != 0) {
    pthread_cond_destroy(&d->work);
    pthread_mutex_destroy(&d->mu);
    free(d);
    return NULL;
  }
  return d;
}

bool job_dirs_take(job_dirs *d, const char *id, int fds[JOB_DIR_FDS]) {
  pthread_mutex_lock(&d->mu);
  bool have = d->n > 0;
  ready_dir r = have ? d->ready[--d->n] : (ready_dir){0};
  d->stalled = false; /* and one more made for the next start */
  pthread_mutex_unlock(&d->mu);
  pthread_cond_signal(&d->work); /* after: the worker wakes to a free mutex (one futex call) */
  if (!have)
    return false;
  char name[32];
  dir_name(r.seq, name);
  if (renameat(d->dir_fd, name, d->dir_fd, id) == 0) {
    memcpy(fds, r.fd, sizeof r.fd);
    return true;
  }
  for (int i = 0; i < JOB_DIR_FDS; i++)
    close(r.fd[i]);
  dir_unmake(d->dir_fd, r.seq);
  return false;
}

void job_dirs_free(job_dirs *d) {
  if (!d)
    return;
  pthread_mutex_lock(&d->mu);
  d->stop = true;
  pthread_cond_signal(&d->work);
  pthread_mutex_unlock(&d->mu);
  pthread_join(d->thread, NULL);
  for (unsigned k = 0; k < d->n; k++) {
    for (int i = 0; i < JOB_DIR_FDS; i++)
      close(d->ready[k].fd[i]);
    dir_unmake(d->dir_fd, d->ready[k].seq);
  }
  pthread_cond_destroy(&d->work);
  pthread_mutex_destroy(&d->mu);
  free(d);
}

void job_dirs_remove_leftover(job_table *t, const char *name) {
  char p[PATH_MAX];
  if ((size_t)snprintf(p, sizeof p, "%s/%s", t->jobs_dir, name) < sizeof p)
    job_remove_dir(p);
}
