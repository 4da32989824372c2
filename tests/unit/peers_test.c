/* Per-peer connection counts (src/rpc/peers.c) and peer keys (conn.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "rpc/internal.h"

static void test_counts(void **state) {
  rpc_peer_table *t;
  assert_int_equal(rpc_peer_table_new(&t), 0);
  assert_int_equal(rpc_peer_table_count(t, "uid:1000"), 0);
  for (int i = 0; i < 3; i++)
    assert_int_equal(rpc_peer_table_add(t, "uid:1000"), 0);
  assert_int_equal(rpc_peer_table_add(t, "127.0.0.1"), 0);
  assert_int_equal(rpc_peer_table_count(t, "uid:1000"), 3);
  assert_int_equal(rpc_peer_table_count(t, "127.0.0.1"), 1);
  assert_int_equal(rpc_peer_table_count(t, "uid:100"), 0);
  rpc_peer_table_remove(t, "uid:1000");
  assert_int_equal(rpc_peer_table_count(t, "uid:1000"), 2);
  rpc_peer_table_remove(t, "127.0.0.1");
  rpc_peer_table_remove(t, "127.0.0.1"); /* gone: a no-op */
  assert_int_equal(rpc_peer_table_count(t, "127.0.0.1"), 0);
  rpc_peer_table_free(t); /* frees what is left (ASan checks) */
}

/* Thousands of keys sharing buckets: each keeps its own count. */
static void test_many_keys(void **state) {
  rpc_peer_table *t;
  char key[32];
  assert_int_equal(rpc_peer_table_new(&t), 0);
  for (int i = 0; i < 5000; i++) {
    snprintf(key, sizeof key, "10.0.%d.%d", i / 256, i % 256);
    for (int k = 0; k <= i % 3; k++)
      assert_int_equal(rpc_peer_table_add(t, key), 0);
  }
  for (int i = 0; i < 5000; i++) {
    snprintf(key, sizeof key, "10.0.%d.%d", i / 256, i % 256);
    assert_int_equal(rpc_peer_table_count(t, key), (size_t)(i % 3 + 1));
  }
  rpc_peer_table_free(t);
}

static void test_peer_key(void **state) {
  char key[64];
  rpc_peer p = {.family = AF_UNIX, .has_cred = true, .uid = 1000};
  rpc_conn_peer_key(&p, key, sizeof key);
  assert_string_equal(key, "uid:1000");
  p = (rpc_peer){.family = AF_INET, .addr = "127.0.0.1:40000"};
  rpc_conn_peer_key(&p, key, sizeof key);
  assert_string_equal(key, "127.0.0.1");
  p = (rpc_peer){.family = AF_INET6, .addr = "[::1]:7734"};
  rpc_conn_peer_key(&p, key, sizeof key);
  assert_string_equal(key, "[::1]");
  p = (rpc_peer){.family = AF_UNSPEC, .addr = "fd:0"};
  rpc_conn_peer_key(&p, key, sizeof key);
  assert_string_equal(key, ""); /* stdio: not counted */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_counts),
      cmocka_unit_test(test_many_keys),
      cmocka_unit_test(test_peer_key),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
