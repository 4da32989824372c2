#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

typedef struct fd_watch {
  int fd;
  uint32_t events;
  const char *name;
  loop_fd_fn fn;
  void *data;
  bool live;
} fd_watch;

#define SLOT_FREE UINT32_MAX

/* A timer lives in a slot; the heap orders slot numbers. The id handed out
 * is (generation << 32 | slot + 1), so cancel finds its slot at once and a
 * stale id (fired, cancelled, slot reused) is told apart by generation. */
typedef struct timer_slot {
  uint64_t when, seq;
  loop_timer_fn fn;
  void *data;
  uint32_t gen;
  uint32_t pos; /* index in the heap; SLOT_FREE when not pending */
  uint32_t next_free;
} timer_slot;

typedef struct hook {
  uint64_t id;
  loop_hook_fn fn;
  void *data;
} hook;

struct loop {
  int epfd;
  bool stop;
  uint64_t now;
  fd_watch **fds; /* indexed by fd */
  size_t nfds;
  timer_slot *slots;
  uint32_t nslots, free_slot; /* free_slot: head of the free list, SLOT_FREE if none */
  uint32_t *heap;
  uint32_t nheap;
  uint64_t next_seq;
  uint64_t next_id;
  hook *hooks;
  size_t nhooks;
  fd_watch **dead; /* freed after the iteration that removed them */
  size_t ndead, capdead;
  /* stall watchdog */
  loop_stall_fn stall_fn;
  void *stall_data;
  uint64_t stall_us;
  uint64_t longest_cb_us, longest_turn_us;
  uint64_t turn_us, turn_max_us; /* this turn so far; its longest callback */
  const char *turn_max_name;
};

static uint64_t loop_clock_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int loop_new(loop **ret, rr_err *e) {
  loop *l = calloc(1, sizeof *l);
  if (!l)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "cannot allocate event loop");
  l->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (l->epfd < 0) {
    int saved = errno;
    free(l);
    return rr_err_sys(e, RR_INTERNAL, saved, "epoll_create1");
  }
  l->now = rr_now_mono_ms();
  l->next_id = 1;
  l->free_slot = SLOT_FREE;
  *ret = l;
  return 0;
}

static void loop_reap_dead(loop *l) {
  for (size_t i = 0; i < l->ndead; i++)
    free(l->dead[i]);
  l->ndead = 0;
}

void loop_free(loop *l) {
  if (!l)
    return;
  for (size_t i = 0; i < l->nfds; i++)
    free(l->fds[i]);
  loop_reap_dead(l);
  free(l->dead);
  free(l->fds);
  free(l->slots);
  free(l->heap);
  free(l->hooks);
  close(l->epfd);
  free(l);
}

int loop_fd_add(loop *l, int fd, uint32_t events, const char *name, loop_fd_fn fn, void *data,
                rr_err *e) {
  if (fd < 0)
    return rr_err_set(e, RR_INTERNAL, "loop: invalid fd %d", fd);
  if ((size_t)fd >= l->nfds) {
    size_t n = l->nfds ? l->nfds : 64;
    while (n <= (size_t)fd)
      n *= 2;
    fd_watch **p = realloc(l->fds, n * sizeof *p);
    if (!p)
      return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "loop: out of memory");
    memset(p + l->nfds, 0, (n - l->nfds) * sizeof *p);
    l->fds = p;
    l->nfds = n;
  }
  if (l->fds[fd])
    return rr_err_set(e, RR_INTERNAL, "loop: fd %d already watched", fd);
  fd_watch *w = calloc(1, sizeof *w);
  if (!w)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "loop: out of memory");
  *w = (fd_watch){
      .fd = fd, .events = events, .name = name ? name : "fd", .fn = fn, .data = data, .live = true};
  struct epoll_event ev = {.events = events, .data.ptr = w};
  if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
    int saved = errno;
    free(w);
    return rr_err_sys(e, RR_INTERNAL, saved, "epoll_ctl add fd %d", fd);
  }
  l->fds[fd] = w;
  return 0;
}

int loop_fd_mod(loop *l, int fd, uint32_t events, rr_err *e) {
  if (fd < 0 || (size_t)fd >= l->nfds || !l->fds[fd])
    return rr_err_set(e, RR_INTERNAL, "loop: fd %d not watched", fd);
  fd_watch *w = l->fds[fd];
  if (w->events == events)
    return 0;
  struct epoll_event ev = {.events = events, .data.ptr = w};
  if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "epoll_ctl mod fd %d", fd);
  w->events = events;
  return 0;
}

void loop_fd_del(loop *l, int fd) {
  if (fd < 0 || (size_t)fd >= l->nfds || !l->fds[fd])
    return;
  fd_watch *w = l->fds[fd];
  epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
  l->fds[fd] = NULL;
  w->live = false;
  /* events for w may still be in this iteration's batch: free it later */
  if (l->ndead == l->capdead) {
    size_t n = l->capdead ? l->capdead * 2 : 16;
    fd_watch **p = realloc(l->dead, n * sizeof *p);
    if (!p) {
      /* cannot defer: leak w rather than risk a use-after-free */
      return;
    }
    l->dead = p;
    l->capdead = n;
  }
  l->dead[l->ndead++] = w;
}

/* ---- timers: a binary heap of slot numbers ---- */

static bool timer_less(const loop *l, uint32_t a, uint32_t b) {
  const timer_slot *x = &l->slots[a], *y = &l->slots[b];
  return x->when < y->when || (x->when == y->when && x->seq < y->seq);
}

static void heap_set(loop *l, uint32_t i, uint32_t slot) {
  l->heap[i] = slot;
  l->slots[slot].pos = i;
}

static void heap_up(loop *l, uint32_t i) {
  uint32_t s = l->heap[i];
  while (i > 0) {
    uint32_t p = (i - 1) / 2;
    if (!timer_less(l, s, l->heap[p]))
      break;
    heap_set(l, i, l->heap[p]);
    i = p;
  }
  heap_set(l, i, s);
}

static void heap_down(loop *l, uint32_t i) {
  uint32_t s = l->heap[i], n = l->nheap;
  for (;;) {
    uint32_t c = 2 * i + 1;
    if (c >= n)
      break;
    if (c + 1 < n && timer_less(l, l->heap[c + 1], l->heap[c]))
      c++;
    if (!timer_less(l, l->heap[c], s))
      break;
    heap_set(l, i, l->heap[c]);
    i = c;
  }
  heap_set(l, i, s);
}

/* Take the slot out of the heap and put it on the free list. */
static void timer_release(loop *l, uint32_t slot) {
  timer_slot *t = &l->slots[slot];
  uint32_t i = t->pos;
  l->nheap--;
  if (i != l->nheap) { /* the last one fills the hole, then finds its place */
    uint32_t moved = l->heap[l->nheap];
    heap_set(l, i, moved);
    heap_down(l, i);
    heap_up(l, l->slots[moved].pos);
  }
  t->pos = SLOT_FREE;
  t->gen++;
  if (!t->gen)
    t->gen = 1;
  t->next_free = l->free_slot;
  l->free_slot = slot;
}

/* Double the slots (and the heap with them), the new ones on the free list. */
static int timer_slots_grow(loop *l) {
  if (l->nslots >= SLOT_FREE / 2)
    return -1;
  uint32_t n = l->nslots ? l->nslots * 2 : 64;
  timer_slot *s = realloc(l->slots, n * sizeof *s);
  if (!s)
    return -1;
  l->slots = s;
  uint32_t *h = realloc(l->heap, n * sizeof *h);
  if (!h)
    return -1; /* slots grew, heap did not: the new slots stay unused */
  l->heap = h;
  for (uint32_t i = n; i-- > l->nslots;) {
    s[i] = (timer_slot){.gen = 1, .pos = SLOT_FREE, .next_free = l->free_slot};
    l->free_slot = i;
  }
  l->nslots = n;
  return 0;
}

int loop_timer_reserve(loop *l, unsigned n) {
  while (l->nslots - l->nheap < n)
    if (timer_slots_grow(l) < 0)
      return -1;
  return 0;
}

static int timer_slot_get(loop *l, uint32_t *ret) {
  if (l->free_slot == SLOT_FREE && timer_slots_grow(l) < 0)
    return -1;
  *ret = l->free_slot;
  l->free_slot = l->slots[*ret].next_free;
  return 0;
}

uint64_t loop_timer_add(loop *l, uint64_t ms, loop_timer_fn fn, void *data) {
  uint32_t slot;
  if (timer_slot_get(l, &slot) < 0)
    return 0;
  timer_slot *t = &l->slots[slot];
  t->when = rr_now_mono_ms() + ms;
  t->seq = l->next_seq++;
  t->fn = fn;
  t->data = data;
  l->heap[l->nheap] = slot;
  t->pos = l->nheap++;
  heap_up(l, t->pos);
  return (uint64_t)t->gen << 32 | (slot + 1u);
}

void loop_timer_cancel(loop *l, uint64_t id) {
  uint64_t s = id & 0xffffffffu;
  if (!s || s > l->nslots)
    return;
  uint32_t slot = (uint32_t)(s - 1);
  if (l->slots[slot].gen != (uint32_t)(id >> 32) || l->slots[slot].pos == SLOT_FREE)
    return;
  timer_release(l, slot);
}

/* ---- hooks ---- */

uint64_t loop_hook_add(loop *l, loop_hook_fn fn, void *data) {
  hook *p = realloc(l->hooks, (l->nhooks + 1) * sizeof *p);
  if (!p)
    return 0;
  l->hooks = p;
  uint64_t id = l->next_id++;
  l->hooks[l->nhooks++] = (hook){.id = id, .fn = fn, .data = data};
  return id;
}

void loop_hook_del(loop *l, uint64_t id) {
  for (size_t i = 0; i < l->nhooks; i++)
    if (l->hooks[i].id == id) {
      memmove(&l->hooks[i], &l->hooks[i + 1], (l->nhooks - i - 1) * sizeof *l->hooks);
      l->nhooks--;
      return;
    }
}

/* ---- running ---- */

/* Account for one callback that ran from t0 until now. */
static void loop_account(loop *l, const char *name, uint64_t t0) {
  uint64_t d = loop_clock_us() - t0;
  l->turn_us += d;
  if (d > l->turn_max_us) {
    l->turn_max_us = d;
    l->turn_max_name = name;
  }
  if (d > l->longest_cb_us)
    l->longest_cb_us = d;
}

/* Only the timers due when the run starts, and none added by them (a timer
 * of 0 ms re-armed from its own callback waits for the next turn). */
static void loop_run_timers(loop *l) {
  l->now = rr_now_mono_ms();
  uint64_t seq_end = l->next_seq;
  while (l->nheap > 0) {
    uint32_t slot = l->heap[0];
    timer_slot *t = &l->slots[slot];
    if (t->when > l->now || t->seq >= seq_end)
      break;
    loop_timer_fn fn = t->fn;
    void *data = t->data;
    timer_release(l, slot);
    uint64_t t0 = loop_clock_us();
    fn(l, data);
    loop_account(l, "timer", t0);
  }
}

static void loop_run_hooks(loop *l) {
  /* a hook may remove hooks: iterate by id over a snapshot count */
  for (size_t i = 0; i < l->nhooks; i++) {
    hook h = l->hooks[i];
    uint64_t t0 = loop_clock_us();
    h.fn(l, h.data);
    loop_account(l, "hook", t0);
    if (i < l->nhooks && l->hooks[i].id != h.id)
      i--; /* the current one was removed */
  }
}

/* A turn ends before the sleep: its hooks, then the next wait. */
static void loop_turn_end(loop *l) {
  if (l->turn_us > l->longest_turn_us)
    l->longest_turn_us = l->turn_us;
  if (l->stall_fn && l->turn_us >= l->stall_us)
    l->stall_fn(l->stall_data, l->turn_max_name ? l->turn_max_name : "loop", l->turn_max_us / 1000u,
                l->turn_us / 1000u);
  l->turn_us = l->turn_max_us = 0;
  l->turn_max_name = NULL;
}

int loop_run_once(loop *l, int timeout_ms, rr_err *e) {
  loop_run_hooks(l);
  loop_turn_end(l);
  if (l->nheap > 0) {
    uint64_t now = rr_now_mono_ms(), when = l->slots[l->heap[0]].when;
    int until = when <= now ? 0 : (int)(when - now > 86400000 ? 86400000 : when - now);
    if (timeout_ms < 0 || until < timeout_ms)
      timeout_ms = until;
  }
  struct epoll_event evs[128];
  int n = epoll_wait(l->epfd, evs, (int)RR_ARRAY_SIZE(evs), timeout_ms);
  if (n < 0) {
    if (errno == EINTR)
      return 0;
    return rr_err_sys(e, RR_INTERNAL, errno, "epoll_wait");
  }
  l->now = rr_now_mono_ms();
  for (int i = 0; i < n; i++) {
    fd_watch *w = evs[i].data.ptr;
    if (!w->live)
      continue;
    const char *name = w->name; /* w may be deleted by its own callback */
    uint64_t t0 = loop_clock_us();
    w->fn(l, w->fd, evs[i].events, w->data);
    loop_account(l, name, t0);
  }
  loop_run_timers(l);
  loop_reap_dead(l);
  return 0;
}

int loop_run(loop *l, rr_err *e) {
  while (!l->stop)
    if (loop_run_once(l, -1, e) < 0)
      return -1;
  return 0;
}

void loop_stop(loop *l) { l->stop = true; }
bool loop_stopping(const loop *l) { return l->stop; }
uint64_t loop_now_ms(loop *l) { return l->now; }

void loop_stall_set(loop *l, uint64_t threshold_ms, loop_stall_fn fn, void *data) {
  l->stall_fn = fn;
  l->stall_data = data;
  l->stall_us = threshold_ms * 1000u;
}

uint64_t loop_longest_callback_us(const loop *l) { return l->longest_cb_us; }
uint64_t loop_longest_turn_us(const loop *l) { return l->longest_turn_us; }
