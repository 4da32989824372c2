/* Waiting on a transport's fd: shared by the plain transports and the TLS
 * module (librunrpc-tls.so), which carries its own copy. */
#include <errno.h>
#include <poll.h>

#include "common/util.h"
#include "rpc/client/transport.h"

int rpc_client_transport_wait_fd(int fd, short events, uint64_t deadline) {
  for (;;) {
    int timeout = -1;
    if (deadline) {
      uint64_t now = rr_now_mono_ms();
      if (now >= deadline)
        return ETIMEDOUT;
      timeout = (int)(deadline - now);
    }
    struct pollfd p = {.fd = fd, .events = events};
    int r = poll(&p, 1, timeout);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return errno;
    return r == 0 ? ETIMEDOUT : 0;
  }
}
