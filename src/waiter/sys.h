/* The few system calls rund-waiter makes. With WAITER_NOLIBC (x86_64 and
 * aarch64, see meson.build) they are raw system calls and this file also
 * gives the program its _start: no C library runs at all. Otherwise they
 * map onto the C library. Every call returns what the kernel returns: a
 * result >= 0, or -errno. Headers are used for types and constants only. */
#ifndef RUNRPC_WAITER_SYS_H
#define RUNRPC_WAITER_SYS_H

#include <asm/unistd.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/prctl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

int waiter_main(int argc, char **argv);

#ifdef WAITER_NOLIBC

#if defined(__x86_64__)
static inline long ws_sys6(long n, long a, long b, long c, long d, long e, long f) {
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  long ret;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
}
#ifdef WAITER_MAIN_UNIT
/* the kernel enters with the stack at argc, argv[0]..., 16-byte aligned */
__asm__(".text\n"
        ".global _start\n"
        "_start:\n"
        "  xor %ebp, %ebp\n"
        "  mov (%rsp), %edi\n"
        "  lea 8(%rsp), %rsi\n"
        "  and $-16, %rsp\n"
        "  call waiter_start\n"
        "  hlt\n");
#endif
#elif defined(__aarch64__)
static inline long ws_sys6(long n, long a, long b, long c, long d, long e, long f) {
  register long x8 __asm__("x8") = n;
  register long x0 __asm__("x0") = a;
  register long x1 __asm__("x1") = b;
  register long x2 __asm__("x2") = c;
  register long x3 __asm__("x3") = d;
  register long x4 __asm__("x4") = e;
  register long x5 __asm__("x5") = f;
  __asm__ volatile("svc 0"
                   : "+r"(x0)
                   : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                   : "memory");
  return x0;
}
#ifdef WAITER_MAIN_UNIT
__asm__(".text\n"
        ".global _start\n"
        "_start:\n"
        "  mov x29, #0\n"
        "  mov x30, #0\n"
        "  ldr x0, [sp]\n"
        "  add x1, sp, #8\n"
        "  bl waiter_start\n"
        "  brk #0\n");
#endif
#else
#error "WAITER_NOLIBC: x86_64 and aarch64 only (meson.build builds the libc flavour elsewhere)"
#endif

static inline long ws_sys(long n, long a, long b, long c, long d, long e) {
  return ws_sys6(n, a, b, c, d, e, 0);
}

static inline _Noreturn void ws_exit(int code) {
  for (;;)
    ws_sys(__NR_exit_group, code, 0, 0, 0, 0);
}

#ifdef WAITER_MAIN_UNIT /* main.c only: one definition of each */
/* called by _start only */
_Noreturn void waiter_start(int argc, char **argv);
_Noreturn void waiter_start(int argc, char **argv) { ws_exit(waiter_main(argc, argv)); }

/* what the compiler may call for a struct copy or clear */
void *memset(void *d, int c, unsigned long n);
void *memset(void *d, int c, unsigned long n) {
  unsigned char *p = d;
  while (n--)
    *p++ = (unsigned char)c;
  return d;
}
void *memcpy(void *d, const void *s, unsigned long n);
void *memcpy(void *d, const void *s, unsigned long n) {
  unsigned char *p = d;
  const unsigned char *q = s;
  while (n--)
    *p++ = *q++;
  return d;
}
#else
void *memset(void *d, int c, unsigned long n);
void *memcpy(void *d, const void *s, unsigned long n);
#endif

static inline long ws_write(int fd, const void *b, unsigned long n) {
  return ws_sys(__NR_write, fd, (long)b, (long)n, 0, 0);
}
static inline void ws_close(int fd) { ws_sys(__NR_close, fd, 0, 0, 0, 0); }
static inline void ws_clock_realtime(struct timespec *ts) {
  ws_sys(__NR_clock_gettime, CLOCK_REALTIME, (long)ts, 0, 0, 0);
}
static inline void ws_prctl(int op, long v) { ws_sys(__NR_prctl, op, v, 0, 0, 0); }
static inline void ws_prctl_name(const char *name) {
  ws_sys(__NR_prctl, PR_SET_NAME, (long)name, 0, 0, 0);
}
static inline int ws_getpid(void) { return (int)ws_sys(__NR_getpid, 0, 0, 0, 0, 0); }
static inline int ws_getpgid(int pid) { return (int)ws_sys(__NR_getpgid, pid, 0, 0, 0, 0); }
static inline void ws_kill(int pid, int sig) { ws_sys(__NR_kill, pid, sig, 0, 0, 0); }
/* the kernel's sigset is 64 bits on both architectures */
static inline void ws_sigmask(int how, unsigned long long set) {
  ws_sys(__NR_rt_sigprocmask, how, (long)&set, 0, 8, 0);
}
/* an all-zero kernel sigaction is SIG_DFL, no flags, empty mask, whatever
 * the architecture's field order */
static inline void ws_sig_default(int sig) {
  unsigned long act[4] = {0, 0, 0, 0};
  ws_sys(__NR_rt_sigaction, sig, (long)act, 0, 8, 0);
}
static inline int ws_sigwait_any(void) {
  unsigned long long all = ~0ull;
  return (int)ws_sys(__NR_rt_sigtimedwait, (long)&all, 0, 0, 8, 0);
}
static inline long ws_waitid(int pid, siginfo_t *si) {
  memset(si, 0, sizeof *si);
  return ws_sys(__NR_waitid, P_PID, pid, (long)si, WEXITED | WNOHANG, 0);
}
static inline long ws_read(int fd, void *b, unsigned long n) {
  return ws_sys(__NR_read, fd, (long)b, (long)n, 0, 0);
}
static inline long ws_pwrite(int fd, const void *b, unsigned long n, long long off) {
  return ws_sys(__NR_pwrite64, fd, (long)b, (long)n, (long)off, 0);
}
static inline long ws_splice(int in, int out, unsigned long n, unsigned flags) {
  return ws_sys6(__NR_splice, in, 0, out, 0, (long)n, flags);
}
static inline long ws_fallocate(int fd, int mode, long long off, long long len) {
  return ws_sys(__NR_fallocate, fd, mode, (long)off, (long)len, 0);
}
static inline long ws_fcntl(int fd, int cmd, long arg) {
  return ws_sys(__NR_fcntl, fd, cmd, arg, 0, 0);
}
/* poll with a timeout in ms (< 0: none) */
static inline long ws_poll(struct pollfd *fds, unsigned long n, int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
  return ws_sys(__NR_ppoll, (long)fds, (long)n, ms < 0 ? 0 : (long)&ts, 0, 8);
}
/* a non-blocking signalfd for every signal */
static inline int ws_signalfd_all(void) {
  unsigned long long all = ~0ull;
  return (int)ws_sys(__NR_signalfd4, -1, (long)&all, 8, O_NONBLOCK | O_CLOEXEC, 0);
}
static inline void ws_clock_monotonic(struct timespec *ts) {
  ws_sys(__NR_clock_gettime, CLOCK_MONOTONIC, (long)ts, 0, 0, 0);
}
/* a connection, non-blocking and CLOEXEC */
static inline int ws_accept(int lfd) {
  return (int)ws_sys(__NR_accept4, lfd, 0, 0, SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}
static inline long ws_ioctl(int fd, unsigned long req, void *arg) {
  return ws_sys(__NR_ioctl, fd, (long)req, (long)arg, 0, 0);
}
static inline void ws_sig_ignore(int sig) {
  unsigned long act[4] = {(unsigned long)SIG_IGN, 0, 0, 0};
  ws_sys(__NR_rt_sigaction, sig, (long)act, 0, 8, 0);
}

#else /* the C library's calls, same contract */

#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#define WS_RET(x) ((x) < 0 ? -errno : (long)(x))

#include <sys/ioctl.h>
#include <sys/signalfd.h>

static inline _Noreturn void ws_exit(int code) { _exit(code); }
static inline long ws_write(int fd, const void *b, unsigned long n) {
  ssize_t r = write(fd, b, n);
  return WS_RET(r);
}
static inline void ws_close(int fd) { close(fd); }
static inline void ws_clock_realtime(struct timespec *ts) { clock_gettime(CLOCK_REALTIME, ts); }
static inline void ws_prctl(int op, long v) { prctl(op, v, 0, 0, 0); }
static inline void ws_prctl_name(const char *name) { prctl(PR_SET_NAME, name, 0, 0, 0); }
static inline int ws_getpid(void) { return (int)getpid(); }
static inline int ws_getpgid(int pid) { return (int)getpgid(pid); }
static inline void ws_kill(int pid, int sig) { kill(pid, sig); }
static inline void ws_sigmask(int how, unsigned long long set) {
  sigset_t s;
  sigemptyset(&s);
  for (int i = 1; i <= 64 && i < NSIG; i++)
    if (set & (1ull << (i - 1)))
      sigaddset(&s, i);
  sigprocmask(how, &s, NULL);
}
static inline void ws_sig_default(int sig) {
  struct sigaction dfl = {.sa_handler = SIG_DFL};
  sigaction(sig, &dfl, NULL);
}
static inline int ws_sigwait_any(void) {
  sigset_t all;
  sigfillset(&all);
  return sigwaitinfo(&all, NULL);
}
static inline long ws_waitid(int pid, siginfo_t *si) {
  memset(si, 0, sizeof *si);
  int r = waitid(P_PID, (id_t)pid, si, WEXITED | WNOHANG);
  return WS_RET(r);
}
static inline long ws_read(int fd, void *b, unsigned long n) {
  ssize_t r = read(fd, b, n);
  return WS_RET(r);
}
static inline long ws_pwrite(int fd, const void *b, unsigned long n, long long off) {
  ssize_t r = pwrite(fd, b, n, (off_t)off);
  return WS_RET(r);
}
static inline long ws_splice(int in, int out, unsigned long n, unsigned flags) {
  ssize_t r = splice(in, NULL, out, NULL, n, flags);
  return WS_RET(r);
}
static inline long ws_fallocate(int fd, int mode, long long off, long long len) {
  int r = fallocate(fd, mode, (off_t)off, (off_t)len);
  return WS_RET(r);
}
static inline long ws_fcntl(int fd, int cmd, long arg) {
  int r = fcntl(fd, cmd, arg);
  return WS_RET(r);
}
static inline long ws_poll(struct pollfd *fds, unsigned long n, int ms) {
  int r = poll(fds, (nfds_t)n, ms);
  return WS_RET(r);
}
static inline int ws_signalfd_all(void) {
  sigset_t all;
  sigfillset(&all);
  int r = signalfd(-1, &all, SFD_NONBLOCK | SFD_CLOEXEC);
  return r < 0 ? -errno : r;
}
static inline void ws_clock_monotonic(struct timespec *ts) { clock_gettime(CLOCK_MONOTONIC, ts); }
static inline int ws_accept(int lfd) {
  int r = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  return r < 0 ? -errno : r;
}
static inline long ws_ioctl(int fd, unsigned long req, void *arg) {
  int r = ioctl(fd, req, arg);
  return WS_RET(r);
}
static inline void ws_sig_ignore(int sig) {
  struct sigaction ign = {.sa_handler = SIG_IGN};
  sigaction(sig, &ign, NULL);
}

#endif
#endif
