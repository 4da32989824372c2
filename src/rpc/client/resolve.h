/* Host names to socket addresses for the client's TCP connects.
 * "localhost" and names under ".localhost" are loopback without asking NSS
 * (RFC 6761), so they work where /etc/hosts is missing; the rest goes
 * through getaddrinfo. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "common/err.h"

#define RESOLVE_MAX 16

typedef struct resolve_result {
  struct sockaddr_storage addr[RESOLVE_MAX];
  socklen_t len[RESOLVE_MAX];
  size_t n; /* at least 1 on success, in the order to try */
} resolve_result;

/* True for "localhost", "x.localhost", any case, with or without a final dot. */
bool resolve_is_localhost(const char *host);
/* Addresses of host and numeric port (for SOCK_STREAM); UNAVAILABLE
 * 'cannot connect to ADDR: cannot resolve "HOST": why' (addr names it). */
int resolve_host(const char *addr, const char *host, const char *port, resolve_result *ret,
                 rr_err *e);
