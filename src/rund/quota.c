#include "rund/quota.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "common/log.h"
#include "common/util.h"
#include "jobs/intmap.h"

/* Between two counts of /proc/self/fd a start or a Logs stream is assumed
 * to cost this many fds (a job: 2 log files and a pidfd; a reader: 2). */
#define QUOTA_FDS_PER_USE 4u
#define QUOTA_FD_RECOUNT_MS 1000u
#define QUOTA_FD_MIN_RECOUNT_MS 50u /* near the reserve, without a cheap count */
#define QUOTA_LOG_EVERY_MS 1000u
#define QUOTA_MIN_USABLE_FDS 32u

/* Counters of one principal; freed when all reach 0. */
typedef struct quota_entry {
  struct quota_entry *next;
  uint64_t hash;
  uint32_t running, jobs, followers;
  char key[]; /* normalised principal */
} quota_entry;

/* A running job being watched for its end, or a Logs stream. */
typedef struct quota_use {
  job_watch w; /* running jobs only */
  quota *q;
  struct quota_use *prev, *next; /* running jobs: q->running_list */
  size_t n;
  quota_entry *ents[]; /* counted principals (kept alive by the count) */
} quota_use;

typedef enum { LOG_FD, LOG_QUOTA, LOG_KINDS } log_kind;

struct quota {
  quota_config cfg;
  quota_entry **buckets;
  size_t nbuckets, nentries;
  quota_use running_list; /* list head */
  intmap followers;       /* call -> quota_use */
  job_table *table;
  uint64_t fd_open, fd_counted_ms, fd_uses_since; /* last count of /proc/self/fd */
  bool fd_count_cheap;                            /* Linux >= 6.2: count at every check */
  uint64_t last_log_ms[LOG_KINDS], suppressed[LOG_KINDS];
};

/* Principal as counted: DNS names compare case-insensitively. */
static void quota_key(const char *p, char out[AUTHZ_PRINCIPAL_MAX + 1]) {
  snprintf(out, AUTHZ_PRINCIPAL_MAX + 1, "%s", p);
  if (!strncmp(out, "san:dns:", 8))
    for (char *c = out + 8; *c; c++)
      *c = (char)tolower((unsigned char)*c);
}

static uint64_t quota_hash(const char *s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
  return h;
}

static quota_entry *quota_entry_find(const quota *q, const char *key, uint64_t h) {
  if (!q->nbuckets)
    return NULL;
  for (quota_entry *x = q->buckets[h % q->nbuckets]; x; x = x->next)
    if (x->hash == h && !strcmp(x->key, key))
      return x;
  return NULL;
}

static int quota_grow(quota *q) {
  size_t n = q->nbuckets ? q->nbuckets * 2 : 64;
  quota_entry **b = calloc(n, sizeof *b);
  if (!b)
    return -1;
  for (size_t i = 0; i < q->nbuckets; i++)
    for (quota_entry *x = q->buckets[i], *next; x; x = next) {
      next = x->next;
      x->next = b[x->hash % n];
      b[x->hash % n] = x;
    }
  free(q->buckets);
  q->buckets = b;
  q->nbuckets = n;
  return 0;
}

static quota_entry *quota_entry_get(quota *q, const char *principal, rr_err *e) {
  char key[AUTHZ_PRINCIPAL_MAX + 1];
  quota_key(principal, key);
  uint64_t h = quota_hash(key);
  quota_entry *x = quota_entry_find(q, key, h);
  if (x)
    return x;
  if (q->nentries >= q->nbuckets && quota_grow(q) < 0) {
    rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory counting jobs per identity");
    return NULL;
  }
  size_t len = strlen(key) + 1;
  if (!(x = calloc(1, sizeof *x + len))) {
    rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory counting jobs per identity");
    return NULL;
  }
  memcpy(x->key, key, len);
  x->hash = h;
  x->next = q->buckets[h % q->nbuckets];
  q->buckets[h % q->nbuckets] = x;
  q->nentries++;
  return x;
}

static void quota_entry_release(quota *q, quota_entry *x) {
  if (x->running || x->jobs || x->followers)
    return;
  for (quota_entry **p = &q->buckets[x->hash % q->nbuckets]; *p; p = &(*p)->next)
    if (*p == x) {
      *p = x->next;
      break;
    }
  q->nentries--;
  free(x);
}

/* The distinct entries of principals p (made if missing), into a new use. */
static quota_use *quota_use_new(quota *q, char *const *p, size_t n, rr_err *e) {
  quota_use *u = calloc(1, sizeof *u + n * sizeof(quota_entry *));
  if (!u) {
    rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory counting jobs per identity");
    return NULL;
  }
  u->q = q;
  for (size_t i = 0; i < n; i++) {
    quota_entry *x = quota_entry_get(q, p[i], e);
    if (!x) {
      for (size_t k = 0; k < u->n; k++)
        quota_entry_release(q, u->ents[k]);
      free(u);
      return NULL;
    }
    size_t k = 0;
    while (k < u->n && u->ents[k] != x)
      k++;
    if (k == u->n)
      u->ents[u->n++] = x;
  }
  return u;
}

/* ---- fd reserve ---- */

/* Open fds: since Linux 6.2 the size of /proc/self/fd is their count (a
 * bitmap weight, cheap); older kernels say 0 and the directory is read
 * (~1 ms per 1,000 fds), *cheap false. */
static uint64_t quota_fd_count(const quota *q, bool *cheap) {
  struct stat st;
  *cheap = !q->cfg.fd_count_by_readdir && stat("/proc/self/fd", &st) == 0 && st.st_size > 0;
  if (*cheap)
    return (uint64_t)st.st_size;
  DIR *d = opendir("/proc/self/fd");
  if (!d)
    return 0;
  uint64_t n = 0;
  for (struct dirent *de; (de = readdir(d));)
    if (de->d_name[0] != '.')
      n++;
  closedir(d);
  return n ? n - 1 : 0; /* not the directory's own fd */
}

uint64_t quota_fds_open(const quota *q) {
  bool cheap;
  return quota_fd_count(q, &cheap);
}

/* logfmt line at most once per QUOTA_LOG_EVERY_MS per kind. */
static bool quota_log_due(quota *q, log_kind k, uint64_t *suppressed) {
  uint64_t now = rr_now_mono_ms();
  if (q->last_log_ms[k] && now - q->last_log_ms[k] < QUOTA_LOG_EVERY_MS) {
    q->suppressed[k]++;
    return false;
  }
  q->last_log_ms[k] = now;
  *suppressed = q->suppressed[k];
  q->suppressed[k] = 0;
  return true;
}

/* Counted at every check where that is cheap; else /proc/self/fd is read
 * once a second, or sooner (at most every QUOTA_FD_MIN_RECOUNT_MS) when the
 * estimate (last count + QUOTA_FDS_PER_USE per use since) nears the reserve. */
static int quota_fd_check(quota *q, const char *what, rr_err *e) {
  uint64_t usable = q->cfg.fd_limit - q->cfg.fd_reserve;
  uint64_t now = rr_now_mono_ms(), age = now - q->fd_counted_ms;
  uint64_t estimate = q->fd_open + QUOTA_FDS_PER_USE * q->fd_uses_since;
  if (q->fd_count_cheap || !q->fd_counted_ms || age >= QUOTA_FD_RECOUNT_MS ||
      (estimate >= usable && age >= QUOTA_FD_MIN_RECOUNT_MS)) {
    q->fd_open = estimate = quota_fd_count(q, &q->fd_count_cheap);
    q->fd_counted_ms = now;
    q->fd_uses_since = 0;
  }
  if (estimate < usable) {
    q->fd_uses_since++;
    return 0;
  }
  uint64_t sup;
  if (quota_log_due(q, LOG_FD, &sup))
    rr_warn("refused: file descriptors low",
            "what=%s open_fds=%llu limit=%llu reserve=%llu "
            "refusals_not_logged=%llu",
            what, (unsigned long long)estimate, (unsigned long long)q->cfg.fd_limit,
            (unsigned long long)q->cfg.fd_reserve, (unsigned long long)sup);
  return rr_err_set(e, RR_RESOURCE_EXHAUSTED,
                    "rund is low on file descriptors: %llu of %llu open, the last %llu are kept "
                    "for admins and rund's own work; %s refused, try again once jobs or "
                    "connections end",
                    (unsigned long long)estimate, (unsigned long long)q->cfg.fd_limit,
                    (unsigned long long)q->cfg.fd_reserve, what);
}

/* ---- per-identity checks ---- */

typedef enum { Q_RUNNING, Q_JOBS, Q_FOLLOWERS } quota_kind;

static uint32_t quota_entry_count(const quota_entry *x, quota_kind k) {
  return k == Q_RUNNING ? x->running : k == Q_JOBS ? x->jobs : x->followers;
}

static int quota_identity_check(quota *q, const authz_identity *id, quota_kind k, rr_err *e) {
  static const char *const names[] = {"running-jobs", "kept-jobs", "followers"};
  static const char *const flags[] = {"--quota-running", "--quota-jobs", "--quota-followers"};
  static const char *const hints[] = {
      "wait for or stop one of its running jobs",
      "finished jobs leave with rund --retention; stop or wait for running ones",
      "close one of its Logs streams"};
  uint32_t limit = k == Q_RUNNING ? q->cfg.running : k == Q_JOBS ? q->cfg.jobs : q->cfg.followers;
  if (id->admin || !limit)
    return 0;
  for (size_t i = 0; i < id->n; i++) {
    char key[AUTHZ_PRINCIPAL_MAX + 1];
    quota_key(id->principals[i], key);
    const quota_entry *x = quota_entry_find(q, key, quota_hash(key));
    uint32_t n = x ? quota_entry_count(x, k) : 0;
    if (n < limit)
      continue;
    uint64_t sup;
    char qp[256];
    if (quota_log_due(q, LOG_QUOTA, &sup))
      rr_info("refused: quota reached",
              "quota=%s principal=%s count=%u limit=%u "
              "refusals_not_logged=%llu",
              names[k], rr_log_quote(qp, sizeof qp, key), n, limit, (unsigned long long)sup);
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED,
                      "%s quota of \"%.200s\" reached: %u of %u (rund %s); %s", names[k], key, n,
                      limit, flags[k], hints[k]);
  }
  return 0;
}

int quota_start_check(quota *q, const authz_identity *id, rr_err *e) {
  if (quota_identity_check(q, id, Q_RUNNING, e) < 0 || quota_identity_check(q, id, Q_JOBS, e) < 0)
    return -1;
  return quota_fd_check(q, "start", e);
}

/* ---- jobs ---- */

static void quota_running_end(quota_use *u) {
  job_watch_del(&u->w);
  u->prev->next = u->next;
  u->next->prev = u->prev;
  for (size_t i = 0; i < u->n; i++) {
    u->ents[i]->running--;
    quota_entry_release(u->q, u->ents[i]);
  }
  free(u);
}

static void quota_on_job_event(job_watch *w, int event) {
  if (event == JOB_EVENT_EXIT)
    quota_running_end(w->data);
}

static void quota_jobs_change(quota *q, job *j, int delta) {
  for (size_t i = 0; i < j->nowner; i++) {
    char key[AUTHZ_PRINCIPAL_MAX + 1];
    quota_key(j->owner[i], key);
    quota_entry *x = quota_entry_find(q, key, quota_hash(key));
    if (!x)
      continue;
    /* duplicate principals were counted once: apply once */
    bool seen = false;
    for (size_t k = 0; k < i && !seen; k++) {
      char other[AUTHZ_PRINCIPAL_MAX + 1];
      quota_key(j->owner[k], other);
      seen = !strcmp(other, key);
    }
    if (seen)
      continue;
    if (delta < 0 && x->jobs) {
      x->jobs--;
      quota_entry_release(q, x);
    } else if (delta > 0) {
      x->jobs++;
    }
  }
}

int quota_job_add(quota *q, job *j, rr_err *e) {
  if (!j->nowner)
    return 0; /* from before owners existed: nobody's quota */
  quota_use *u = quota_use_new(q, j->owner, j->nowner, e);
  if (!u)
    return -1;
  for (size_t i = 0; i < u->n; i++)
    u->ents[i]->jobs++;
  if (j->state != JOB_RUNNING) {
    free(u);
    return 0;
  }
  for (size_t i = 0; i < u->n; i++)
    u->ents[i]->running++;
  u->w.fn = quota_on_job_event;
  u->w.data = u;
  job_watch_add(j, &u->w);
  u->next = &q->running_list;
  u->prev = q->running_list.prev;
  u->prev->next = u;
  q->running_list.prev = u;
  return 0;
}

static void quota_on_drop(void *data, job *j) { quota_jobs_change(data, j, -1); }

int quota_jobs_load(quota *q, job_table *t, rr_err *e) {
  job **v = NULL;
  size_t n = 0;
  if (job_table_list(t, 0, NULL, &v, &n, e) < 0)
    return -1;
  for (size_t i = 0; i < n; i++)
    if (quota_job_add(q, v[i], e) < 0) {
      free(v);
      return -1;
    }
  free(v);
  q->table = t;
  job_table_set_drop_hook(t, quota_on_drop, q);
  return 0;
}

/* ---- followers ---- */

int quota_follower_add(quota *q, const authz_identity *id, const void *key, rr_err *e) {
  if (quota_identity_check(q, id, Q_FOLLOWERS, e) < 0 || quota_fd_check(q, "Logs", e) < 0)
    return -1;
  quota_use *u = quota_use_new(q, id->principals, id->n, e);
  if (!u)
    return -1;
  if (intmap_put(&q->followers, (uint64_t)(uintptr_t)key, u) < 0) {
    free(u);
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory counting Logs streams");
  }
  for (size_t i = 0; i < u->n; i++)
    u->ents[i]->followers++;
  return 0;
}

void quota_follower_del(quota *q, const void *key) {
  quota_use *u = intmap_del(&q->followers, (uint64_t)(uintptr_t)key);
  if (!u)
    return;
  for (size_t i = 0; i < u->n; i++) {
    u->ents[i]->followers--;
    quota_entry_release(q, u->ents[i]);
  }
  free(u);
}

/* ---- life cycle ---- */

int quota_new(quota **ret, const quota_config *cfg, rr_err *e) {
  quota *q = calloc(1, sizeof *q);
  if (!q)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "out of memory");
  q->cfg = *cfg;
  if (!q->cfg.fd_limit) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
      free(q);
      return rr_err_sys(e, RR_INTERNAL, errno, "getrlimit(RLIMIT_NOFILE)");
    }
    q->cfg.fd_limit = rl.rlim_cur == RLIM_INFINITY ? (1u << 20) : (uint64_t)rl.rlim_cur;
  }
  if (!q->cfg.fd_reserve) {
    uint64_t r = q->cfg.fd_limit / 8;
    q->cfg.fd_reserve = r < 64 ? 64 : r > 4096 ? 4096 : r;
  }
  if (q->cfg.fd_reserve + QUOTA_MIN_USABLE_FDS > q->cfg.fd_limit) {
    uint64_t limit = q->cfg.fd_limit, reserve = q->cfg.fd_reserve;
    free(q);
    return rr_err_set(e, RR_INVALID_ARGUMENT,
                      "fd reserve %llu leaves fewer than %u of the %llu file descriptors "
                      "(RLIMIT_NOFILE) for jobs and Logs streams",
                      (unsigned long long)reserve, QUOTA_MIN_USABLE_FDS, (unsigned long long)limit);
  }
  q->running_list.prev = q->running_list.next = &q->running_list;
  *ret = q;
  return 0;
}

void quota_free(quota *q) {
  if (!q)
    return;
  if (q->table)
    job_table_set_drop_hook(q->table, NULL, NULL);
  while (q->running_list.next != &q->running_list)
    quota_running_end(q->running_list.next);
  for (size_t i = 0; i < q->followers.nbuckets; i++)
    for (intmap_entry *x = q->followers.buckets[i]; x; x = x->next)
      free(x->value);
  intmap_free(&q->followers);
  for (size_t i = 0; i < q->nbuckets; i++)
    for (quota_entry *x = q->buckets[i], *next; x; x = next) {
      next = x->next;
      free(x);
    }
  free(q->buckets);
  free(q);
}

void quota_counts(const quota *q, const char *principal, uint32_t *running, uint32_t *jobs,
                  uint32_t *followers) {
  char key[AUTHZ_PRINCIPAL_MAX + 1];
  quota_key(principal, key);
  const quota_entry *x = quota_entry_find(q, key, quota_hash(key));
  if (running)
    *running = x ? x->running : 0;
  if (jobs)
    *jobs = x ? x->jobs : 0;
  if (followers)
    *followers = x ? x->followers : 0;
}

const quota_config *quota_config_get(const quota *q) { return &q->cfg; }

void quota_limits_set(quota *q, uint32_t running, uint32_t jobs, uint32_t followers) {
  q->cfg.running = running;
  q->cfg.jobs = jobs;
  q->cfg.followers = followers;
}
