#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "util.h"

typedef struct fd_watch {
  int fd;
  uint32_t events;
  loop_fd_fn fn;
  void *data;
  bool live;
} fd_watch;

typedef struct timer {
  uint64_t when, id;
  loop_timer_fn fn;
  void *data;
} timer;

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
  timer *heap;
  size_t nheap, capheap;
  uint64_t next_id;
  hook *hooks;
  size_t nhooks;
  fd_watch **dead; /* freed after the iteration that removed them */
  size_t ndead, capdead;
};

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
  free(l->heap);
  free(l->hooks);
  close(l->epfd);
  free(l);
}

int loop_fd_add(loop *l, int fd, uint32_t events, loop_fd_fn fn, void *data, rr_err *e) {
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
  *w = (fd_watch){.fd = fd, .events = events, .fn = fn, .data = data, .live = true};
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

static void heap_swap(timer *h, size_t a, size_t b) {
  timer t = h[a];
  h[a] = h[b];
  h[b] = t;
}

static bool timer_less(const timer *a, const timer *b) {
  return a->when < b->when || (a->when == b->when && a->id < b->id);
}

static void heap_up(timer *h, size_t i) {
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!timer_less(&h[i], &h[p]))
      break;
    heap_swap(h, i, p);
    i = p;
  }
}

static void heap_down(timer *h, size_t n, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < n && timer_less(&h[l], &h[m]))
      m = l;
    if (r < n && timer_less(&h[r], &h[m]))
      m = r;
    if (m == i)
      break;
    heap_swap(h, i, m);
    i = m;
  }
}

static void heap_remove_at(loop *l, size_t i) {
  l->nheap--;
  if (i == l->nheap)
    return;
  l->heap[i] = l->heap[l->nheap];
  heap_down(l->heap, l->nheap, i);
  heap_up(l->heap, i);
}

uint64_t loop_timer_add(loop *l, uint64_t ms, loop_timer_fn fn, void *data) {
  if (l->nheap == l->capheap) {
    size_t n = l->capheap ? l->capheap * 2 : 64;
    timer *p = realloc(l->heap, n * sizeof *p);
    if (!p)
      return 0;
    l->heap = p;
    l->capheap = n;
  }
  uint64_t id = l->next_id++;
  l->heap[l->nheap] = (timer){.when = rr_now_mono_ms() + ms, .id = id, .fn = fn, .data = data};
  heap_up(l->heap, l->nheap++);
  return id;
}

void loop_timer_cancel(loop *l, uint64_t id) {
  if (!id)
    return;
  for (size_t i = 0; i < l->nheap; i++)
    if (l->heap[i].id == id) {
      heap_remove_at(l, i);
      return;
    }
}

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

static void loop_run_timers(loop *l) {
  l->now = rr_now_mono_ms();
  while (l->nheap > 0 && l->heap[0].when <= l->now) {
    timer t = l->heap[0];
    heap_remove_at(l, 0);
    t.fn(l, t.data);
  }
}

static void loop_run_hooks(loop *l) {
  /* a hook may remove hooks: iterate by id over a snapshot count */
  for (size_t i = 0; i < l->nhooks; i++) {
    hook h = l->hooks[i];
    h.fn(l, h.data);
    if (i < l->nhooks && l->hooks[i].id != h.id)
      i--; /* the current one was removed */
  }
}

int loop_run_once(loop *l, int timeout_ms, rr_err *e) {
  loop_run_hooks(l);
  if (l->nheap > 0) {
    uint64_t now = rr_now_mono_ms();
    int until = l->heap[0].when <= now
                    ? 0
                    : (int)(l->heap[0].when - now > 86400000 ? 86400000 : l->heap[0].when - now);
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
    if (w->live)
      w->fn(l, w->fd, evs[i].events, w->data);
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
