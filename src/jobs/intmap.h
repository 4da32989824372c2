/* Small chained hash map from a 64-bit key to a pointer (pids, inotify
 * watch descriptors). */
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct intmap_entry {
  uint64_t key;
  void *value;
  struct intmap_entry *next;
} intmap_entry;

typedef struct intmap {
  intmap_entry **buckets;
  size_t nbuckets, count;
} intmap;

/* Insert or replace; -1 on ENOMEM. */
int intmap_put(intmap *m, uint64_t key, void *value);
void *intmap_get(const intmap *m, uint64_t key);
/* Remove key; returns its value or NULL. */
void *intmap_del(intmap *m, uint64_t key);
void intmap_free(intmap *m);
