/* The sandbox's namespaces handed out as fds over a unix socket
 * (sb_spawn_opts.ns_socket_fd): for a caller that may not open
 * /proc/PID/ns of the init, which is not dumpable (a rootless runproc
 * exec). The child opens its own namespaces while it is still set up by
 * us (before any of the sandbox's code runs, through the host's /proc);
 * the command serves the socket while it waits for start, the init after.
 * One message per connection: a byte per namespace (its sb_ns_type) and
 * the fds as SCM_RIGHTS. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/util.h"
#include "sandbox/sandbox_internal.h"

/* /proc/PID/ns files in sb_ns_type order. pid: what the init's children
 * get (its own pid namespace, or the one it joined by path). */
static const char *const sb_ns_files[SB_NS_COUNT] = {
    [SB_NS_PID] = "pid_for_children",
    [SB_NS_MOUNT] = "mnt",
    [SB_NS_IPC] = "ipc",
    [SB_NS_UTS] = "uts",
    [SB_NS_CGROUP] = "cgroup",
    [SB_NS_NET] = "net",
    [SB_NS_USER] = "user",
    [SB_NS_TIME] = "time",
};

const char *sb_ns_proc_file(sb_ns_type t) {
  return (unsigned)t < SB_NS_COUNT ? sb_ns_files[t] : "";
}

void sb_nsfd_open_own(struct sb_child *c) {
  for (int t = 0; t < SB_NS_COUNT; t++) {
    char path[48] = "/proc/self/ns/";
    size_t n = strlen(path), k = strlen(sb_ns_files[t]);
    memcpy(path + n, sb_ns_files[t], k + 1);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno != ENOENT) /* ENOENT: a kind this kernel lacks */
      sb_child_fail(c, errno, "open ", path, NULL);
    if (fd >= 0 && fd < c->first_own_fd) {
      int moved = fcntl(fd, F_DUPFD_CLOEXEC, c->first_own_fd);
      close(fd);
      if ((fd = moved) < 0)
        sb_child_fail(c, errno, "open ", path, NULL);
    }
    c->ns_own[t] = fd;
  }
}

/* One connection: the fds when the peer is the uid that made the sandbox
 * (as our user namespace sees it), else nothing; never blocks. */
static void sb_nsfd_answer(const struct sb_child *c, int conn) {
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.uid != c->ns_peer_uid)
    return;
  char types[SB_NS_COUNT];
  int fds[SB_NS_COUNT];
  size_t n = 0;
  for (int t = 0; t < SB_NS_COUNT; t++)
    if (c->ns_own[t] >= 0) {
      types[n] = (char)t;
      fds[n++] = c->ns_own[t];
    }
  if (!n)
    return;
  union {
    char buf[CMSG_SPACE(sizeof(int) * SB_NS_COUNT)];
    struct cmsghdr align;
  } u;
  memset(&u, 0, sizeof u);
  struct iovec iov = {.iov_base = types, .iov_len = n};
  struct msghdr msg = {.msg_iov = &iov,
                       .msg_iovlen = 1,
                       .msg_control = u.buf,
                       .msg_controllen = CMSG_SPACE(sizeof(int) * n)};
  struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int) * n);
  memcpy(CMSG_DATA(cm), fds, sizeof(int) * n);
  (void)!sendmsg(conn, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
}

void sb_nsfd_serve(const struct sb_child *c) {
  if (c->ns_sock < 0)
    return;
  for (;;) {
    int conn = accept4(c->ns_sock, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (conn < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      return; /* EAGAIN: none left; else nothing we can do here */
    }
    sb_nsfd_answer(c, conn);
    close(conn);
  }
}

int sb_nsfd_receive(int sock, int ret[SB_NS_COUNT], rr_err *e) {
  for (int t = 0; t < SB_NS_COUNT; t++)
    ret[t] = -1;
  char types[SB_NS_COUNT + 1];
  union {
    char buf[CMSG_SPACE(sizeof(int) * SB_NS_COUNT)];
    struct cmsghdr align;
  } u;
  struct iovec iov = {.iov_base = types, .iov_len = sizeof types};
  struct msghdr msg = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
  ssize_t n;
  while ((n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
    ;
  if (n < 0)
    return rr_err_sys(e, RR_UNAVAILABLE, errno, "no answer from the sandbox's init");
  int fds[SB_NS_COUNT];
  size_t nfds = 0;
  for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
    if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
      size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < k; i++) {
        int fd;
        memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
        if (nfds < SB_NS_COUNT)
          fds[nfds++] = fd;
        else
          close(fd);
      }
    }
  bool bad = n == 0 || (size_t)n != nfds || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC));
  for (size_t i = 0; i < nfds; i++) {
    unsigned t = i < (size_t)n ? (unsigned char)types[i] : SB_NS_COUNT;
    if (bad || t >= SB_NS_COUNT || ret[t] >= 0) {
      bad = true;
      close(fds[i]);
    } else
      ret[t] = fds[i];
  }
  if (bad) {
    for (int t = 0; t < SB_NS_COUNT; t++)
      if (ret[t] >= 0) {
        close(ret[t]);
        ret[t] = -1;
      }
    return rr_err_set(e, n == 0 ? RR_PERMISSION_DENIED : RR_INTERNAL,
                      n == 0 ? "the sandbox's init gave no namespaces (not the uid that made it)"
                             : "the sandbox's init sent a malformed answer");
  }
  return 0;
}
