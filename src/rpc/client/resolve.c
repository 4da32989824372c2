#include "rpc/client/resolve.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

bool resolve_is_localhost(const char *host) {
  static const char name[] = "localhost";
  size_t n = strlen(host), k = sizeof name - 1;
  if (n && host[n - 1] == '.')
    n--;
  if (n < k || strncasecmp(host + n - k, name, k) != 0)
    return false;
  /* "localhost" itself, or a label ending just before it: "a.localhost" */
  return n == k || (n > k + 1 && host[n - k - 1] == '.');
}

/* 127.0.0.1 first (rund's default TLS listener), then ::1. */
static int resolve_loopback(const char *port, resolve_result *ret) {
  unsigned long p = strtoul(port, NULL, 10);
  struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p)};
  v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct sockaddr_in6 v6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)p)};
  v6.sin6_addr = in6addr_loopback;
  memcpy(&ret->addr[0], &v4, sizeof v4);
  ret->len[0] = sizeof v4;
  memcpy(&ret->addr[1], &v6, sizeof v6);
  ret->len[1] = sizeof v6;
  ret->n = 2;
  return 0;
}

int resolve_host(const char *addr, const char *host, const char *port, resolve_result *ret,
                 rr_err *e) {
  memset(ret, 0, sizeof *ret);
  if (resolve_is_localhost(host))
    return resolve_loopback(port, ret);
  struct addrinfo hints = {.ai_family = AF_UNSPEC,
                           .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_ADDRCONFIG | AI_NUMERICSERV};
  struct addrinfo *res = NULL;
  int gai = getaddrinfo(host, port, &hints, &res);
  if (gai != 0)
    return rr_err_set(e, RR_UNAVAILABLE, "cannot connect to %s: cannot resolve \"%s\": %s", addr,
                      host, gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai));
  for (struct addrinfo *ai = res; ai && ret->n < RESOLVE_MAX; ai = ai->ai_next) {
    if (ai->ai_addrlen > sizeof ret->addr[0])
      continue;
    memcpy(&ret->addr[ret->n], ai->ai_addr, ai->ai_addrlen);
    ret->len[ret->n++] = ai->ai_addrlen;
  }
  freeaddrinfo(res);
  if (!ret->n)
    return rr_err_set(e, RR_UNAVAILABLE, "cannot connect to %s: cannot resolve \"%s\": no address",
                      addr, host);
  return 0;
}
