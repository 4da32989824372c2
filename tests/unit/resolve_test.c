/* The client's name resolution: localhost is loopback without NSS (RFC 6761). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "rpc/client/resolve.h"

static void test_is_localhost(void **state) {
  (void)state;
  const char *yes[] = {"localhost",   "LOCALHOST",      "LocalHost.",
                       "a.localhost", "x.y.localhost.", "A.LOCALHOST"};
  const char *no[] = {"",           "local",           "localhost..",  "mylocalhost",
                      ".localhost", "localhost.com",   "127.0.0.1",    "::1",
                      "localhos",   "localhost.local", "notlocalhost."};
  for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
    if (!resolve_is_localhost(yes[i]))
      fail_msg("\"%s\" should be localhost", yes[i]);
  for (size_t i = 0; i < sizeof no / sizeof *no; i++)
    if (resolve_is_localhost(no[i]))
      fail_msg("\"%s\" should not be localhost", no[i]);
}

static void test_localhost_is_loopback(void **state) {
  (void)state;
  resolve_result r;
  rr_err e = {0};
  assert_int_equal(resolve_host("localhost:7734", "localhost", "7734", &r, &e), 0);
  assert_int_equal(r.n, 2);
  const struct sockaddr_in *v4 = (const struct sockaddr_in *)&r.addr[0];
  assert_int_equal(v4->sin_family, AF_INET);
  assert_int_equal(ntohl(v4->sin_addr.s_addr), INADDR_LOOPBACK);
  assert_int_equal(ntohs(v4->sin_port), 7734);
  assert_int_equal(r.len[0], sizeof *v4);
  const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)&r.addr[1];
  assert_int_equal(v6->sin6_family, AF_INET6);
  assert_memory_equal(&v6->sin6_addr, &in6addr_loopback, sizeof in6addr_loopback);
  assert_int_equal(ntohs(v6->sin6_port), 7734);
  assert_int_equal(r.len[1], sizeof *v6);
  assert_int_equal(resolve_host("db.localhost:1", "db.localhost.", "1", &r, &e), 0);
  assert_int_equal(r.n, 2);
}

static void test_numeric_and_failure(void **state) {
  (void)state;
  resolve_result r;
  rr_err e = {0};
  assert_int_equal(resolve_host("127.0.0.2:80", "127.0.0.2", "80", &r, &e), 0);
  assert_int_equal(r.n, 1);
  const struct sockaddr_in *v4 = (const struct sockaddr_in *)&r.addr[0];
  char buf[INET_ADDRSTRLEN];
  assert_string_equal(inet_ntop(AF_INET, &v4->sin_addr, buf, sizeof buf), "127.0.0.2");
  /* .invalid never resolves (RFC 6761 too) */
  assert_int_equal(resolve_host("x.invalid:80", "x.invalid", "80", &r, &e), -1);
  assert_int_equal(e.code, RR_UNAVAILABLE);
  if (!strstr(e.msg, "cannot connect to x.invalid:80: cannot resolve \"x.invalid\""))
    fail_msg("unexpected message: %s", e.msg);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_is_localhost),
      cmocka_unit_test(test_localhost_is_loopback),
      cmocka_unit_test(test_numeric_and_failure),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
