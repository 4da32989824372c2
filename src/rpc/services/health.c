/* Health status table and watchers: no I/O, usable without a server. */
#include "health.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

typedef struct health_entry {
  char *service;
  int status;
} health_entry;

struct health_watch {
  health *h;
  char *service;
  health_watch_fn fn; /* NULL once removed during a notification */
  void *data;
  health_watch *prev, *next;
};

struct health {
  health_entry *entries;
  size_t n_entries, cap_entries;
  health_watch *watches;
  int notifying; /* > 0 while calling watchers: removal is deferred */
  bool swept;    /* a watch was removed during a notification */
  bool shut_down;
};

static health_entry *entry_find(const health *h, const char *service) {
  for (size_t i = 0; i < h->n_entries; i++)
    if (strcmp(h->entries[i].service, service) == 0)
      return &h->entries[i];
  return NULL;
}

static void watch_unlink_free(health_watch *w) {
  health *h = w->h;
  if (w->prev)
    w->prev->next = w->next;
  else
    h->watches = w->next;
  if (w->next)
    w->next->prev = w->prev;
  free(w->service);
  free(w);
}

static void watches_sweep(health *h) {
  health_watch *next;
  for (health_watch *w = h->watches; w; w = next) {
    next = w->next;
    if (!w->fn)
      watch_unlink_free(w);
  }
  h->swept = false;
}

static void watches_notify(health *h, const char *service, int status) {
  h->notifying++;
  for (health_watch *w = h->watches; w; w = w->next)
    if (w->fn && strcmp(w->service, service) == 0)
      w->fn(w->data, status);
  if (--h->notifying == 0 && h->swept)
    watches_sweep(h);
}

static int entry_store(health *h, const char *service, int status, rr_err *e) {
  health_entry *en = entry_find(h, service);
  if (en) {
    if (en->status == status)
      return 0;
    en->status = status;
  } else {
    if (h->n_entries == h->cap_entries) {
      size_t cap = h->cap_entries ? h->cap_entries * 2 : 8;
      health_entry *n = realloc(h->entries, cap * sizeof *n);
      if (!n)
        return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, ENOMEM, "health: cannot add service \"%.200s\"",
                          service);
      h->entries = n;
      h->cap_entries = cap;
    }
    char *name = strdup(service);
    if (!name)
      return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, ENOMEM, "health: cannot add service \"%.200s\"",
                        service);
    h->entries[h->n_entries++] = (health_entry){name, status};
  }
  watches_notify(h, service, status);
  return 0;
}

int health_new(health **ret, rr_err *e) {
  health *h = calloc(1, sizeof *h);
  if (!h)
    return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, ENOMEM, "health: cannot allocate table");
  if (entry_store(h, "", HEALTH_SERVING, e) < 0) {
    health_free(h);
    return -1;
  }
  *ret = h;
  return 0;
}

void health_free(health *h) {
  if (!h)
    return;
  while (h->watches)
    watch_unlink_free(h->watches);
  for (size_t i = 0; i < h->n_entries; i++)
    free(h->entries[i].service);
  free(h->entries);
  free(h);
}

int health_set(health *h, const char *service, int serving_status, rr_err *e) {
  if (serving_status != HEALTH_SERVING && serving_status != HEALTH_NOT_SERVING &&
      serving_status != HEALTH_UNKNOWN)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "health: invalid status %d for \"%.200s\"",
                      serving_status, service);
  if (h->shut_down)
    return 0;
  return entry_store(h, service, serving_status, e);
}

int health_get(const health *h, const char *service) {
  const health_entry *en = entry_find(h, service);
  return en ? en->status : -1;
}

void health_shutdown(health *h) {
  h->shut_down = true;
  for (size_t i = 0; i < h->n_entries; i++) {
    if (h->entries[i].status == HEALTH_NOT_SERVING)
      continue;
    h->entries[i].status = HEALTH_NOT_SERVING;
    watches_notify(h, h->entries[i].service, HEALTH_NOT_SERVING);
  }
}

int health_watch_add(health *h, const char *service, health_watch_fn fn, void *data,
                     health_watch **ret, rr_err *e) {
  health_watch *w = calloc(1, sizeof *w);
  if (!w || !(w->service = strdup(service))) {
    free(w);
    return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, ENOMEM, "health: cannot watch \"%.200s\"", service);
  }
  w->h = h;
  w->fn = fn;
  w->data = data;
  w->next = h->watches;
  if (h->watches)
    h->watches->prev = w;
  h->watches = w;
  *ret = w;
  int status = health_get(h, service);
  h->notifying++; /* fn may remove w at once (through *ret) */
  fn(data, status < 0 ? HEALTH_SERVICE_UNKNOWN : status);
  *ret = w->fn ? w : NULL;
  if (--h->notifying == 0 && h->swept)
    watches_sweep(h);
  return 0;
}

void health_watch_remove(health_watch *w) {
  if (!w)
    return;
  health *h = w->h;
  if (h->notifying) {
    w->fn = NULL;
    h->swept = true;
    return;
  }
  watch_unlink_free(w);
}
