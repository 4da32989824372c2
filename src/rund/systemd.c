/* systemd integration without libsystemd: the two small documented
 * protocols rund needs. sd_notify(3): one datagram of "KEY=VALUE\n" lines
 * to the unix socket named by $NOTIFY_SOCKET ('@' = abstract). Socket
 * activation, sd_listen_fds(3): fds 3 .. 3+$LISTEN_FDS-1, meant for us when
 * $LISTEN_PID is our pid, named by $LISTEN_FDNAMES (':'-separated).
 * Both sets of variables are taken out of the environment at start, so no
 * job inherits them. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "rund.h"

enum { SD_LISTEN_FDS_START = 3 };

static char notify_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static uint64_t watchdog_usec;

/* A decimal in [1, max], else 0. */
static unsigned long env_num(const char *name, unsigned long max) {
  const char *v = getenv(name);
  if (!v || !*v)
    return 0;
  char *end;
  errno = 0;
  unsigned long long n = strtoull(v, &end, 10);
  return errno || *end || n > max ? 0 : (unsigned long)n;
}

void rund_sd_init(void) {
  const char *ns = getenv("NOTIFY_SOCKET");
  if (ns && (ns[0] == '/' || ns[0] == '@') && strlen(ns) < sizeof notify_path)
    snprintf(notify_path, sizeof notify_path, "%s", ns);
  unsigned long wpid = env_num("WATCHDOG_PID", (unsigned long)INT32_MAX);
  if (!wpid || wpid == (unsigned long)getpid())
    watchdog_usec = env_num("WATCHDOG_USEC", 24ul * 3600 * 1000000);
  unsetenv("NOTIFY_SOCKET");
  unsetenv("WATCHDOG_PID");
  unsetenv("WATCHDOG_USEC");
}

void rund_sd_notify(const char *msg) {
  if (!notify_path[0])
    return;
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  size_t n = strlen(notify_path);
  memcpy(sa.sun_path, notify_path, n);
  if (sa.sun_path[0] == '@')
    sa.sun_path[0] = '\0';
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return;
  /* a full queue or a manager gone is not a reason to stop serving */
  if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa,
             (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) < 0) {
    char q[256];
    rr_debug("sd_notify not sent", "socket=%s error=%s", rr_log_quote(q, sizeof q, notify_path),
             strerror(errno));
  }
  close(fd);
}

void rund_sd_reloading(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  char msg[96];
  snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%llu\n",
           (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000u);
  rund_sd_notify(msg);
}

static void watchdog_tick(loop *l, void *data) {
  (void)data;
  rund_sd_notify("WATCHDOG=1");
  /* a turn of the loop sends it: a stalled loop is what the watchdog is for */
  loop_timer_add(l, watchdog_usec / 2000u, watchdog_tick, NULL);
}

void rund_sd_watchdog_start(loop *l) {
  if (!notify_path[0] || !watchdog_usec)
    return;
  uint64_t ms = watchdog_usec / 2000u;
  rr_info("systemd watchdog", "interval_ms=%llu", (unsigned long long)(ms ? ms : 1));
  if (!ms)
    watchdog_usec = 2000;
  watchdog_tick(l, NULL);
}

int rund_sd_listen_fds(rund_sd_fds *ret, rr_err *e) {
  *ret = (rund_sd_fds){.n = 0};
  unsigned long pid = env_num("LISTEN_PID", (unsigned long)INT32_MAX);
  const char *count = getenv("LISTEN_FDS"), *names = getenv("LISTEN_FDNAMES");
  unsigned long n = env_num("LISTEN_FDS", RUND_SD_MAX);
  int rc = 0;
  if (pid == (unsigned long)getpid()) {
    if (!n && count && strcmp(count, "0") != 0)
      rc = rr_err_set(e, RR_INVALID_ARGUMENT, "LISTEN_FDS=\"%s\": want 0 to %d sockets", count,
                      RUND_SD_MAX);
    for (unsigned long i = 0; rc == 0 && i < n; i++) {
      int fd = SD_LISTEN_FDS_START + (int)i;
      if (fcntl(fd, F_GETFD) < 0) {
        rc = rr_err_sys(e, RR_INVALID_ARGUMENT, errno, "LISTEN_FDS=%lu but fd %d is not open", n,
                        fd);
        break;
      }
      const char *name = "";
      size_t nlen = 0;
      for (unsigned long k = 0, at = 0; names && k <= i; k++) { /* the i-th name */
        const char *p = names + at, *end = strchrnul(p, ':');
        if (k == i) {
          name = p;
          nlen = (size_t)(end - p);
        }
        if (!*end)
          break;
        at = (unsigned long)(end + 1 - names);
      }
      snprintf(ret->names[i], sizeof ret->names[i], "%.*s", (int)nlen, name);
      ret->fd[i] = fd;
      /* the server closes fd when it stops; this copy outlives it for a
       * re-exec in place */
      ret->spare[i] = fcntl(fd, F_DUPFD_CLOEXEC, SD_LISTEN_FDS_START + RUND_SD_MAX);
      ret->n++;
    }
  }
  unsetenv("LISTEN_PID");
  unsetenv("LISTEN_FDS");
  unsetenv("LISTEN_FDNAMES");
  return rc;
}

int rund_sd_pass_on(const rund_sd_fds *fds) {
  /* what systemd gave us, for the new image of an in-place re-exec (the
   * same pid): the notify socket, the watchdog, and the sockets at the same
   * numbers without CLOEXEC */
  char v[32], names[RUND_SD_MAX * (sizeof fds->names[0] + 1)] = "";
  if (notify_path[0])
    setenv("NOTIFY_SOCKET", notify_path, 1);
  if (notify_path[0] && watchdog_usec) {
    snprintf(v, sizeof v, "%llu", (unsigned long long)watchdog_usec);
    setenv("WATCHDOG_USEC", v, 1);
    snprintf(v, sizeof v, "%d", (int)getpid());
    setenv("WATCHDOG_PID", v, 1);
  }
  if (!fds->n)
    return 0;
  size_t at = 0;
  for (size_t i = 0; i < fds->n; i++) {
    if (fds->spare[i] < 0 || dup2(fds->spare[i], SD_LISTEN_FDS_START + (int)i) < 0)
      return -1;
    at += (size_t)snprintf(names + at, sizeof names - at, "%s%s", i ? ":" : "", fds->names[i]);
  }
  snprintf(v, sizeof v, "%d", (int)getpid());
  setenv("LISTEN_PID", v, 1);
  snprintf(v, sizeof v, "%zu", fds->n);
  setenv("LISTEN_FDS", v, 1);
  setenv("LISTEN_FDNAMES", names, 1);
  return 0;
}
