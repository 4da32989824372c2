#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

ssize_t rr_read(int fd, void *buf, size_t len) {
  ssize_t n;
  do
    n = read(fd, buf, len);
  while (n < 0 && errno == EINTR);
  return n;
}

int rr_read_sized(int fd, size_t size, char **ret, size_t *len) {
  if (size == SIZE_MAX) {
    errno = EFBIG;
    return -1;
  }
  char *buf = malloc(size + 1);
  if (!buf)
    return -1;
  size_t n = 0;
  for (;;) { /* room for one byte more than it had tells a file that grew */
    ssize_t k = rr_read(fd, buf + n, size + 1 - n);
    if (k == 0)
      break;
    if (k < 0 || (n += (size_t)k) > size) {
      int saved = k < 0 ? errno : EFBIG;
      free(buf);
      errno = saved;
      return -1;
    }
  }
  buf[n] = '\0';
  *ret = buf;
  *len = n;
  return 0;
}

int rr_write_all(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

int rr_hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

uint64_t rr_now_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t rr_mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int64_t rr_now_unix_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int rr_host_port_split(const char *addr, char *host, size_t size, const char **port) {
  const char *h = addr, *end;
  if (*addr == '[') {
    h = addr + 1;
    end = strchr(h, ']');
    if (!end || end[1] != ':')
      return -1;
    *port = end + 2;
  } else {
    end = strrchr(addr, ':');
    if (!end)
      return -1;
    *port = end + 1;
  }
  if ((size_t)(end - h) >= size)
    return -1;
  memcpy(host, h, (size_t)(end - h));
  host[end - h] = '\0';
  return 0;
}

bool rr_sockaddr_is_loopback(const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET)
    return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
  if (sa->sa_family == AF_INET6) {
    const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
  }
  return false;
}

int rr_parse_duration_ms(const char *s, uint64_t *ret_ms) {
  const char *p = s;
  if (!isdigit((unsigned char)*p) && !(*p == '.' && isdigit((unsigned char)p[1])))
    return -1;
  while (isdigit((unsigned char)*p))
    p++;
  if (*p == '.') {
    p++;
    if (!isdigit((unsigned char)*p))
      return -1;
    while (isdigit((unsigned char)*p))
      p++;
  }
  size_t numlen = (size_t)(p - s);
  if (numlen > 20)
    return -1;
  char num[32];
  memcpy(num, s, numlen);
  num[numlen] = '\0';
  static const struct {
    const char *unit;
    double ms;
  } units[] = {{"", 1000}, {"s", 1000}, {"ms", 1}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
  for (size_t i = 0; i < RR_ARRAY_SIZE(units); i++)
    if (!strcmp(p, units[i].unit)) {
      double ms = strtod(num, NULL) * units[i].ms;
      if (!(ms >= 0) || ms > 1e15)
        return -1;
      *ret_ms = (uint64_t)ms;
      if ((double)*ret_ms < ms) /* round up: 0.0001s is 1 ms, not 0 */
        (*ret_ms)++;
      return 0;
    }
  return -1;
}

int rr_mkdirs(const char *dir, rr_err *e) {
  char p[PATH_MAX];
  if (strlen(dir) >= sizeof p)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "path too long: \"%s\"", dir);
  strcpy(p, dir);
  for (char *s = p + 1;; s++) {
    if (*s == '/' || *s == '\0') {
      char c = *s;
      *s = '\0';
      if (mkdir(p, 0700) < 0 && errno != EEXIST)
        return rr_err_sys(e, RR_INTERNAL, errno, "cannot create directory \"%s\"", p);
      *s = c;
      if (!c)
        break;
    }
  }
  struct stat st;
  if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
    return rr_err_set(e, RR_INTERNAL, "\"%s\" is not a directory", dir);
  return 0;
}

int rr_fd_above_stdio(int fd) {
  if (fd < 0 || fd > 2)
    return fd;
  int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  int saved = errno;
  close(fd);
  errno = saved;
  return moved;
}

int rr_stdio_reserve(void) {
  for (int fd = 0; fd <= 2; fd++) {
    if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
      continue;
    /* the lowest free fd: the one just found closed */
    int got = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
    if (got < 0)
      return -1;
    if (got != fd) {
      close(got);
      errno = EBADF;
      return -1;
    }
  }
  return 0;
}

int rr_thread_start(pthread_t *t, void *(*fn)(void *), void *arg) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  int r = pthread_create(t, NULL, fn, arg);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return r;
}
