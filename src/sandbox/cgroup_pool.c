/* v1 job cgroups made ahead of need: a worker thread keeps a few empty
 * directories ("pool-N", never used) in each hierarchy jobs joined lately,
 * and a job's creation renames one to the job id (a rename costs a third
 * of a mkdir, whose cgroup set-up, a memcg or a task group, then runs
 * beside the start on another CPU instead of on its path). Never reused:
 * a pooled directory is as fresh as a mkdir's, no counter to reset.
 * v2 cannot rename a cgroup, and needs one mkdir per job only.
 * The worker only calls mkdir(2) on paths it formats on its stack (no
 * allocation, every signal blocked), so it is safe beside rund's
 * vfork-style spawns. Leftovers of a crash are "pool-N" directories that
 * the start-up sweep removes like any cgroup no job claims. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "sandbox/cgroup_internal.h"

enum { POOL_MAX = 2 };

struct cg_pool {
  pthread_mutex_t mu;
  pthread_cond_t work;
  pthread_t thread;
  const cg_manager *m;
  unsigned want;                       /* hierarchies to keep stocked (bit i) */
  unsigned n[CG_MAX_HIER];             /* ready directories per hierarchy */
  unsigned seq[CG_MAX_HIER][POOL_MAX]; /* their numbers */
  unsigned next;                       /* the next number */
  bool stop;
};

static int pool_path(const cg_manager *m, size_t i, unsigned seq, char *buf, size_t len) {
  int n = snprintf(buf, len, "%s/pool-%u", m->hier[i].parent, seq);
  return n < 0 || (size_t)n >= len ? -1 : 0;
}

static void *pool_worker(void *data) {
  cg_pool *p = data;
  pthread_mutex_lock(&p->mu);
  while (!p->stop) {
    size_t i = 0;
    while (i < p->m->nhier && !((p->want & (1u << i)) && p->n[i] < POOL_MAX))
      i++;
    if (i == p->m->nhier) {
      pthread_cond_wait(&p->work, &p->mu);
      continue;
    }
    unsigned seq = p->next++;
    pthread_mutex_unlock(&p->mu);
    char path[CG_PATH_MAX + 32];
    int err = pool_path(p->m, i, seq, path, sizeof path) < 0 ? ENAMETOOLONG
              : mkdir(path, 0755) < 0                        ? errno
                                                             : 0;
    pthread_mutex_lock(&p->mu);
    if (!err)
      p->seq[i][p->n[i]++] = seq;
    else if (err != EEXIST) /* cannot make them here: jobs mkdir their own */
      p->want &= ~(1u << i);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

cg_pool *cg_pool_new(const cg_manager *m) {
  cg_pool *p = calloc(1, sizeof *p);
  if (!p)
    return NULL;
  p->m = m;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->work, NULL);
  int r = rr_thread_start(&p->thread, pool_worker, p);
  if (r != 0) {
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->mu);
    free(p);
    return NULL;
  }
  return p;
}

int cg_pool_take(cg_pool *p, size_t i, const char *dir) {
  pthread_mutex_lock(&p->mu);
  bool have = p->n[i] > 0;
  unsigned seq = have ? p->seq[i][--p->n[i]] : 0;
  p->want |= 1u << i; /* and one more made for the next job */
  pthread_mutex_unlock(&p->mu);
  pthread_cond_signal(&p->work); /* after: the worker wakes to a free mutex (one futex call) */
  char path[CG_PATH_MAX + 32];
  if (!have || pool_path(p->m, i, seq, path, sizeof path) < 0)
    return mkdir(dir, 0755);
  if (rename(path, dir) == 0)
    return 0;
  int err = errno;
  rmdir(path);
  if (err == EEXIST) /* the job's name is taken: as mkdir says it */
    return errno = EEXIST, -1;
  return mkdir(dir, 0755); /* gone (swept?) or refused: make it */
}

void cg_pool_free(cg_pool *p) {
  if (!p)
    return;
  pthread_mutex_lock(&p->mu);
  p->stop = true;
  pthread_cond_signal(&p->work);
  pthread_mutex_unlock(&p->mu);
  pthread_join(p->thread, NULL);
  for (size_t i = 0; i < p->m->nhier; i++)
    for (unsigned k = 0; k < p->n[i]; k++) {
      char path[CG_PATH_MAX + 32];
      if (pool_path(p->m, i, p->seq[i][k], path, sizeof path) == 0)
        rmdir(path);
    }
  pthread_cond_destroy(&p->work);
  pthread_mutex_destroy(&p->mu);
  free(p);
}
