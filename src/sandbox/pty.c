/* Pty pairs, the console socket protocol, controlling terminals (pty.h). */
#include "sandbox/pty.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

static int sb_pty_fail(int *fds, size_t n) {
  int err = errno;
  for (size_t i = 0; i < n; i++)
    if (fds[i] >= 0)
      close(fds[i]);
  return -err;
}

/* "/dev/pts/" + the pty's number. */
static void sb_pty_name(char name[SB_PTY_NAME_MAX], unsigned n) {
  static const char prefix[] = "/dev/pts/";
  char digits[12];
  size_t k = 0, len = sizeof prefix - 1;
  do
    digits[k++] = (char)('0' + n % 10);
  while ((n /= 10) && k < sizeof digits);
  memcpy(name, prefix, len);
  while (k)
    name[len++] = digits[--k];
  name[len] = '\0';
}

int sb_pty_open(const char *ptmx, unsigned rows, unsigned cols, int *ret_master, int *ret_slave,
                char name[SB_PTY_NAME_MAX]) {
  int fds[2] = {-1, -1};
  unsigned n = 0, unlock = 0;
  fds[0] = open(ptmx, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (fds[0] < 0 || ioctl(fds[0], TIOCSPTLCK, &unlock) < 0 || ioctl(fds[0], TIOCGPTN, &n) < 0)
    return sb_pty_fail(fds, 2);
  /* the peer of this master whatever /dev/pts shows (no lookup by name) */
  fds[1] = ioctl(fds[0], TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (fds[1] < 0)
    return sb_pty_fail(fds, 2);
  if (rows && cols) {
    struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
    if (ioctl(fds[1], TIOCSWINSZ, &ws) < 0)
      return sb_pty_fail(fds, 2);
  }
  sb_pty_name(name, n);
  *ret_master = fds[0];
  *ret_slave = fds[1];
  return 0;
}

int sb_pty_send_fd(int sock, int fd, const char *name) {
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int))];
  } u;
  memset(&u, 0, sizeof u);
  struct iovec iov = {.iov_base = (void *)name, .iov_len = strlen(name)};
  struct msghdr m = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
  struct cmsghdr *c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof fd);
  ssize_t w;
  while ((w = sendmsg(sock, &m, MSG_NOSIGNAL)) < 0 && errno == EINTR)
    ;
  return w < 0 ? -errno : 0;
}

int sb_pty_recv_fd(int sock, int *ret_fd, char *name, size_t size) {
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int))];
  } u;
  char text[4096];
  struct iovec iov = {.iov_base = text, .iov_len = sizeof text - 1};
  struct msghdr m = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
  ssize_t r;
  while ((r = recvmsg(sock, &m, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
    ;
  if (r < 0)
    return -errno;
  struct cmsghdr *c = CMSG_FIRSTHDR(&m);
  if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
      c->cmsg_len != CMSG_LEN(sizeof(int)))
    return -EBADMSG;
  memcpy(ret_fd, CMSG_DATA(c), sizeof *ret_fd);
  if (name && size) {
    size_t n = (size_t)r < size - 1 ? (size_t)r : size - 1;
    memcpy(name, text, n);
    name[n] = '\0';
  }
  return 0;
}

int sb_pty_make_controlling(int slave) {
  if (setsid() < 0 || ioctl(slave, TIOCSCTTY, 0) < 0)
    return -errno;
  for (int i = 0; i < 3; i++)
    if (slave != i && dup2(slave, i) < 0)
      return -errno;
  if (slave > 2)
    close(slave);
  return 0;
}
