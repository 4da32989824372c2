#include "jobs/intmap.h"

#include <stdlib.h>

static size_t intmap_slot(const intmap *m, uint64_t key) {
  key ^= key >> 33;
  key *= 0xff51afd7ed558ccdull;
  key ^= key >> 33;
  return (size_t)(key & (m->nbuckets - 1));
}

static int intmap_grow(intmap *m) {
  size_t n = m->nbuckets ? m->nbuckets * 2 : 64;
  intmap_entry **b = calloc(n, sizeof *b);
  if (!b)
    return -1;
  intmap old = *m;
  m->buckets = b;
  m->nbuckets = n;
  for (size_t i = 0; i < old.nbuckets; i++)
    for (intmap_entry *en = old.buckets[i], *next; en; en = next) {
      next = en->next;
      size_t s = intmap_slot(m, en->key);
      en->next = b[s];
      b[s] = en;
    }
  free(old.buckets);
  return 0;
}

int intmap_put(intmap *m, uint64_t key, void *value) {
  if (m->nbuckets) {
    for (intmap_entry *en = m->buckets[intmap_slot(m, key)]; en; en = en->next)
      if (en->key == key) {
        en->value = value;
        return 0;
      }
  }
  if (m->count + 1 > m->nbuckets && intmap_grow(m) < 0)
    return -1;
  intmap_entry *en = malloc(sizeof *en);
  if (!en)
    return -1;
  size_t s = intmap_slot(m, key);
  *en = (intmap_entry){.key = key, .value = value, .next = m->buckets[s]};
  m->buckets[s] = en;
  m->count++;
  return 0;
}

void *intmap_get(const intmap *m, uint64_t key) {
  if (!m->nbuckets)
    return NULL;
  for (intmap_entry *en = m->buckets[intmap_slot(m, key)]; en; en = en->next)
    if (en->key == key)
      return en->value;
  return NULL;
}

void *intmap_del(intmap *m, uint64_t key) {
  if (!m->nbuckets)
    return NULL;
  for (intmap_entry **pp = &m->buckets[intmap_slot(m, key)]; *pp; pp = &(*pp)->next) {
    intmap_entry *en = *pp;
    if (en->key == key) {
      void *v = en->value;
      *pp = en->next;
      free(en);
      m->count--;
      return v;
    }
  }
  return NULL;
}

void intmap_free(intmap *m) {
  for (size_t i = 0; i < m->nbuckets; i++)
    for (intmap_entry *en = m->buckets[i], *next; en; en = next) {
      next = en->next;
      free(en);
    }
  free(m->buckets);
  *m = (intmap){0};
}
