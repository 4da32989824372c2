/* Connections per peer key ("uid:N", an IP address): a small chained hash
 * table, so admission checks stay O(1) with thousands of connections. */
#include <stdlib.h>
#include <string.h>

#include "rpc/internal.h"

#define PEERS_BUCKETS 1024u

typedef struct peer_entry {
  struct peer_entry *next;
  size_t count;
  char key[];
} peer_entry;

struct rpc_peer_table {
  peer_entry *buckets[PEERS_BUCKETS];
};

static size_t peers_hash(const char *key) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (const unsigned char *p = (const unsigned char *)key; *p; p++)
    h = (h ^ *p) * 16777619u;
  return h % PEERS_BUCKETS;
}

int rpc_peer_table_new(rpc_peer_table **ret) {
  *ret = calloc(1, sizeof **ret);
  return *ret ? 0 : -1;
}

void rpc_peer_table_free(rpc_peer_table *t) {
  if (!t)
    return;
  for (size_t i = 0; i < PEERS_BUCKETS; i++)
    while (t->buckets[i]) {
      peer_entry *p = t->buckets[i];
      t->buckets[i] = p->next;
      free(p);
    }
  free(t);
}

static peer_entry **peers_find(rpc_peer_table *t, const char *key) {
  peer_entry **pp = &t->buckets[peers_hash(key)];
  while (*pp && strcmp((*pp)->key, key) != 0)
    pp = &(*pp)->next;
  return pp;
}

size_t rpc_peer_table_count(rpc_peer_table *t, const char *key) {
  peer_entry *p = *peers_find(t, key);
  return p ? p->count : 0;
}

int rpc_peer_table_add(rpc_peer_table *t, const char *key) {
  peer_entry **pp = peers_find(t, key);
  if (!*pp) {
    size_t n = strlen(key) + 1;
    peer_entry *p = calloc(1, sizeof *p + n);
    if (!p)
      return -1;
    memcpy(p->key, key, n);
    *pp = p;
  }
  (*pp)->count++;
  return 0;
}

void rpc_peer_table_remove(rpc_peer_table *t, const char *key) {
  peer_entry **pp = peers_find(t, key);
  peer_entry *p = *pp;
  if (!p)
    return;
  if (--p->count == 0) {
    *pp = p->next;
    free(p);
  }
}
