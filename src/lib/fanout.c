/* librunrpc fan-out: one piece of work against many hosts, a bounded pool
 * of threads each taking the next host, and a watchdog (the caller's
 * thread) that closes the connection of a host past its deadline. Threads
 * rather than one event loop: the blocking client is reused as is, and at
 * tens of hosts the cost is the servers' (bench/fanout.py). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "common/util.h"
#include "lib.h"

#define FANOUT_DEFAULT_CONNECT_MS 10000u
/* the host's own call deadlines end it cleanly (the command cancelled);
 * the watchdog is only for what ignores them */
#define FANOUT_WATCHDOG_GRACE_MS 1000u

typedef struct fanout_slot {
  runrpc_client *client; /* while its work runs */
  uint64_t deadline;     /* monotonic ms; 0: none */
  bool active, fired;
} fanout_slot;

typedef struct fanout {
  pthread_mutex_t lock;
  pthread_cond_t changed; /* a host started or ended */
  const runrpc_fanout_host *hosts;
  size_t nhosts, next, done;
  uint64_t host_timeout_ms;
  runrpc_fanout_fn fn;
  void *userdata;
  runrpc_fanout_result *results;
  fanout_slot *slots;
} fanout;

static uint64_t fanout_min_nonzero(uint64_t a, uint64_t b) { return a && a < b ? a : b; }

/* A failure once the deadline passed says so, with what the call saw. */
static void fanout_mark_timeout(fanout *f, size_t i) {
  runrpc_fanout_result *r = &f->results[i];
  char was[RUNRPC_ERROR_MAX];
  snprintf(was, sizeof was, "%s", r->err.message);
  r->rc = -1;
  r->timed_out = true;
  r->err.code = RUNRPC_DEADLINE_EXCEEDED;
  snprintf(r->err.message, sizeof r->err.message, "%s: host timeout (%llu ms) passed%s%.400s",
           f->hosts[i].addr, (unsigned long long)f->host_timeout_ms, *was ? ": " : "", was);
}

/* End the connection under whatever its thread waits for (it then fails
 * and closes it); called under the fan-out's lock, so never after the close. */
static void fanout_client_shutdown(runrpc_client *c) {
  const rpc_client_transport *t = rpc_client_get_transport(c->grpc);
  if (t && t->fd >= 0)
    shutdown(t->fd, SHUT_RDWR);
}

static void fanout_host_run(fanout *f, size_t i, uint64_t deadline) {
  runrpc_fanout_result *r = &f->results[i];
  runrpc_options o = {0};
  if (f->hosts[i].options)
    o = *f->hosts[i].options;
  uint64_t left = 0;
  if (deadline) {
    uint64_t now = rr_now_mono_ms();
    left = deadline > now ? deadline - now : 1;
    o.connect_timeout_ms = fanout_min_nonzero(
        o.connect_timeout_ms ? o.connect_timeout_ms : FANOUT_DEFAULT_CONNECT_MS, left);
    o.call_timeout_ms = fanout_min_nonzero(
        o.call_timeout_ms ? o.call_timeout_ms : LIB_DEFAULT_CALL_TIMEOUT_MS, left);
  }
  runrpc_client *c = NULL;
  if (runrpc_connect(f->hosts[i].addr, &o, &c, &r->err) < 0) {
    r->rc = -1;
    if (deadline && rr_now_mono_ms() >= deadline)
      fanout_mark_timeout(f, i);
    return;
  }
  r->connected = true;
  pthread_mutex_lock(&f->lock);
  f->slots[i].client = c;
  if (f->slots[i].fired) /* the watchdog came while we connected: what it would have done */
    fanout_client_shutdown(c);
  pthread_mutex_unlock(&f->lock);
  if (deadline) {
    uint64_t now = rr_now_mono_ms();
    left = deadline > now ? deadline - now : 1;
  }
  memset(&r->err, 0, sizeof r->err);
  r->rc = f->fn(i, c, left, f->userdata, &r->err) < 0 ? -1 : 0;
  pthread_mutex_lock(&f->lock);
  f->slots[i].client = NULL;
  bool fired = f->slots[i].fired;
  pthread_mutex_unlock(&f->lock);
  runrpc_close(c);
  if (r->rc < 0 && (fired || (deadline && rr_now_mono_ms() >= deadline)))
    fanout_mark_timeout(f, i);
  if (r->rc < 0 && r->err.code == RUNRPC_OK)
    r->err.code = RUNRPC_UNKNOWN;
}

static void *fanout_worker(void *arg) {
  fanout *f = arg;
  for (;;) {
    pthread_mutex_lock(&f->lock);
    if (f->next >= f->nhosts) {
      pthread_mutex_unlock(&f->lock);
      return NULL;
    }
    size_t i = f->next++;
    uint64_t start = rr_now_mono_ms();
    uint64_t deadline = f->host_timeout_ms ? start + f->host_timeout_ms : 0;
    f->slots[i].deadline = deadline;
    f->slots[i].active = true;
    pthread_cond_signal(&f->changed);
    pthread_mutex_unlock(&f->lock);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    fanout_host_run(f, i, deadline);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    f->results[i].elapsed_us =
        (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000LL + (t1.tv_nsec - t0.tv_nsec) / 1000);
    pthread_mutex_lock(&f->lock);
    f->slots[i].active = false;
    f->done++;
    pthread_cond_signal(&f->changed);
    pthread_mutex_unlock(&f->lock);
  }
}

/* Close the connections of hosts past deadline + grace (their threads then
 * fail out of whatever they wait for); returns the next moment to look. */
static uint64_t fanout_watchdog_pass(fanout *f, uint64_t now) {
  uint64_t next = 0;
  for (size_t i = 0; i < f->nhosts; i++) {
    fanout_slot *s = &f->slots[i];
    if (!s->active || !s->deadline || s->fired)
      continue;
    uint64_t at = s->deadline + FANOUT_WATCHDOG_GRACE_MS;
    if (at <= now) {
      s->fired = true;
      if (s->client)
        fanout_client_shutdown(s->client);
    } else {
      next = fanout_min_nonzero(next, at);
    }
  }
  return next;
}

static void fanout_wait(fanout *f) {
  pthread_mutex_lock(&f->lock);
  while (f->done < f->nhosts) {
    uint64_t next = fanout_watchdog_pass(f, rr_now_mono_ms());
    if (f->done >= f->nhosts)
      break;
    if (!next) { /* a host that starts or ends wakes us */
      pthread_cond_wait(&f->changed, &f->lock);
      continue;
    }
    /* the condition variable runs on CLOCK_MONOTONIC (set at init) */
    struct timespec ts = {.tv_sec = (time_t)(next / 1000),
                          .tv_nsec = (long)(next % 1000) * 1000000L};
    pthread_cond_timedwait(&f->changed, &f->lock, &ts);
  }
  pthread_mutex_unlock(&f->lock);
}

RR_EXPORT int runrpc_fanout(const runrpc_fanout_host *hosts, size_t nhosts,
                            const runrpc_fanout_options *opts, runrpc_fanout_fn fn, void *userdata,
                            runrpc_fanout_result *results, runrpc_error *err) {
  rr_err e = {0};
  if (err)
    memset(err, 0, sizeof *err);
  if ((!hosts && nhosts) || !fn || (!results && nhosts))
    return lib_err_out(
        &(rr_err){RR_INVALID_ARGUMENT, 0, "runrpc_fanout: hosts, fn and results are required"},
        err);
  unsigned parallel = opts && opts->parallel ? opts->parallel : RUNRPC_FANOUT_DEFAULT_PARALLEL;
  if (parallel > RUNRPC_FANOUT_MAX_PARALLEL) {
    rr_err_set(&e, RR_INVALID_ARGUMENT, "runrpc_fanout: parallel %u is over the limit (%d)",
               parallel, RUNRPC_FANOUT_MAX_PARALLEL);
    return lib_err_out(&e, err);
  }
  for (size_t i = 0; i < nhosts; i++) {
    memset(&results[i], 0, sizeof results[i]);
    if (!hosts[i].addr) {
      rr_err_set(&e, RR_INVALID_ARGUMENT, "runrpc_fanout: host %zu has no address", i);
      return lib_err_out(&e, err);
    }
  }
  if (nhosts == 0)
    return 0;
  size_t nthreads = parallel < nhosts ? parallel : nhosts;
  fanout f = {
      .hosts = hosts,
      .nhosts = nhosts,
      .host_timeout_ms = opts ? opts->host_timeout_ms : 0,
      .fn = fn,
      .userdata = userdata,
      .results = results,
  };
  _cleanup_free_ fanout_slot *slots = calloc(nhosts, sizeof *slots);
  _cleanup_free_ pthread_t *threads = calloc(nthreads, sizeof *threads);
  if (!slots || !threads) {
    rr_err_set(&e, RR_RESOURCE_EXHAUSTED, "runrpc_fanout: out of memory for %zu hosts", nhosts);
    return lib_err_out(&e, err);
  }
  f.slots = slots;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&f.changed, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&f.lock, NULL);
  size_t started = 0;
  int create_errno = 0;
  for (; started < nthreads; started++) {
    int r = pthread_create(&threads[started], NULL, fanout_worker, &f);
    if (r) {
      create_errno = r;
      break; /* fewer threads still do every host */
    }
  }
  if (started == 0) {
    pthread_cond_destroy(&f.changed);
    pthread_mutex_destroy(&f.lock);
    rr_err_set(&e, RR_RESOURCE_EXHAUSTED, "runrpc_fanout: cannot start a thread: %s",
               strerror(create_errno));
    e.sys_errno = create_errno;
    return lib_err_out(&e, err);
  }
  fanout_wait(&f);
  for (size_t t = 0; t < started; t++)
    pthread_join(threads[t], NULL);
  pthread_cond_destroy(&f.changed);
  pthread_mutex_destroy(&f.lock);
  int failed = 0;
  for (size_t i = 0; i < nhosts; i++)
    failed += results[i].rc < 0;
  return failed;
}
