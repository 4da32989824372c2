/* Small helpers: cleanup attributes, ownership transfer, EINTR-safe I/O. */
#pragma once
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/err.h"

#define RR_EXPORT __attribute__((visibility("default")))
#define RR_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define RR_UNUSED __attribute__((unused))

static inline void rr_freep(void *p) { free(*(void **)p); }
static inline void rr_closep(int *fd) {
  if (*fd >= 0) {
    int saved = errno;
    close(*fd); /* never retried on EINTR */
    errno = saved;
  }
}
#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(rr_freep)
#define _cleanup_close_ _cleanup_(rr_closep)

/* Take ownership: returns the value and resets the variable. */
#define TAKE_PTR(p)                                                                                \
  ({                                                                                               \
    __typeof__(p) _tp = (p);                                                                       \
    (p) = NULL;                                                                                    \
    _tp;                                                                                           \
  })
#define TAKE_FD(fd)                                                                                \
  ({                                                                                               \
    int _tf = (fd);                                                                                \
    (fd) = -1;                                                                                     \
    _tf;                                                                                           \
  })

/* read/write retrying EINTR; write_all loops until done. Return -1 + errno on error. */
ssize_t rr_read(int fd, void *buf, size_t len);
int rr_write_all(int fd, const void *buf, size_t len);
/* The whole of a file that fstat said has size bytes, into a new buffer
 * (NUL-terminated, for parsers): 0 with *ret and *len; -1 with errno, EFBIG
 * when the file grew while read, ENOMEM. A file that shrank reads short. */
int rr_read_sized(int fd, size_t size, char **ret, size_t *len);
/* Value of a hex digit (either case), -1 if c is not one. */
int rr_hex_value(char c);
/* "HOST:PORT" or "[V6]:PORT": host (brackets off, may be empty) into
 * host[size], *port points into addr (may be empty); -1 when there is no
 * port separator or host does not fit. */
int rr_host_port_split(const char *addr, char *host, size_t size, const char **port);
struct sockaddr;
/* 127.0.0.0/8, ::1, or ::ffff:127.x.y.z. */
bool rr_sockaddr_is_loopback(const struct sockaddr *sa);
/* "1.5" (seconds), "500ms", "10s", "2m", "1h", "7d" into ms (rounded up);
 * -1 when malformed or over 10^15 ms. */
int rr_parse_duration_ms(const char *s, uint64_t *ret_ms);
/* Monotonic and wall clocks. */
uint64_t rr_now_mono_ms(void);
uint64_t rr_mono_us(void);
int64_t rr_now_unix_ns(void);
/* fd moved above 2 (F_DUPFD_CLOEXEC, the old one closed) when it landed on
 * 0, 1 or 2 because those were closed: a library's socket must never be
 * taken for the program's stdin/stdout/stderr. -1 + errno on failure (fd
 * closed). */
int rr_fd_above_stdio(int fd);
/* Open /dev/null on whichever of 0, 1, 2 is closed (a program started with
 * stdin closed, as under cron), so that no later fd lands there. */
int rr_stdio_reserve(void);
/* mkdir -p dir (0700 for created components). */
int rr_mkdirs(const char *dir, rr_err *e);
/* pthread_create with every signal blocked in the new thread: signals are
 * the event loop's (signalfd), never a worker's. 0 or pthread_create's
 * error number. */
int rr_thread_start(pthread_t *t, void *(*fn)(void *), void *arg);
