/* The few system calls rund-waiter makes. With WAITER_NOLIBC (x86_64 and
 * aarch64, see meson.build) they are raw system calls and this file also
 * gives the program its _start: no C library runs at all. Otherwise they
 * map onto the C library. Every call returns what the kernel returns: a
 * result >= 0, or -errno. Headers are used for types and constants only. */
#ifndef RUNRPC_WAITER_SYS_H
#define RUNRPC_WAITER_SYS_H

#include <asm/unistd.h>
#include <errno.h>
#include <linux/prctl.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

int waiter_main(int argc, char **argv);

#ifdef WAITER_NOLIBC

#if defined(__x86_64__)
static long ws_sys(long n, long a, long b, long c, long d, long e) {
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  long ret;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
                   : "rcx", "r11", "memory");
  return ret;
}
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
#elif defined(__aarch64__)
static long ws_sys(long n, long a, long b, long c, long d, long e) {
  register long x8 __asm__("x8") = n;
  register long x0 __asm__("x0") = a;
  register long x1 __asm__("x1") = b;
  register long x2 __asm__("x2") = c;
  register long x3 __asm__("x3") = d;
  register long x4 __asm__("x4") = e;
  __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4) : "memory");
  return x0;
}
__asm__(".text\n"
        ".global _start\n"
        "_start:\n"
        "  mov x29, #0\n"
        "  mov x30, #0\n"
        "  ldr x0, [sp]\n"
        "  add x1, sp, #8\n"
        "  bl waiter_start\n"
        "  brk #0\n");
#else
#error "WAITER_NOLIBC: x86_64 and aarch64 only (meson.build builds the libc flavour elsewhere)"
#endif

static _Noreturn void ws_exit(int code) {
  for (;;)
    ws_sys(__NR_exit_group, code, 0, 0, 0, 0);
}

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

static long ws_write(int fd, const void *b, unsigned long n) {
  return ws_sys(__NR_write, fd, (long)b, (long)n, 0, 0);
}
static void ws_close(int fd) { ws_sys(__NR_close, fd, 0, 0, 0, 0); }
static void ws_clock_realtime(struct timespec *ts) {
  ws_sys(__NR_clock_gettime, CLOCK_REALTIME, (long)ts, 0, 0, 0);
}
static void ws_prctl(int op, long v) { ws_sys(__NR_prctl, op, v, 0, 0, 0); }
static void ws_prctl_name(const char *name) {
  ws_sys(__NR_prctl, PR_SET_NAME, (long)name, 0, 0, 0);
}
static int ws_getpid(void) { return (int)ws_sys(__NR_getpid, 0, 0, 0, 0, 0); }
static int ws_getpgid(int pid) { return (int)ws_sys(__NR_getpgid, pid, 0, 0, 0, 0); }
static void ws_kill(int pid, int sig) { ws_sys(__NR_kill, pid, sig, 0, 0, 0); }
/* the kernel's sigset is 64 bits on both architectures */
static void ws_sigmask(int how, unsigned long long set) {
  ws_sys(__NR_rt_sigprocmask, how, (long)&set, 0, 8, 0);
}
/* an all-zero kernel sigaction is SIG_DFL, no flags, empty mask, whatever
 * the architecture's field order */
static void ws_sig_default(int sig) {
  unsigned long act[4] = {0, 0, 0, 0};
  ws_sys(__NR_rt_sigaction, sig, (long)act, 0, 8, 0);
}
static int ws_sigwait_any(void) {
  unsigned long long all = ~0ull;
  return (int)ws_sys(__NR_rt_sigtimedwait, (long)&all, 0, 0, 8, 0);
}
static long ws_waitid(int pid, siginfo_t *si) {
  memset(si, 0, sizeof *si);
  return ws_sys(__NR_waitid, P_PID, pid, (long)si, WEXITED | WNOHANG, 0);
}

#else /* the C library's calls, same contract */

#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#define WS_RET(x) ((x) < 0 ? -errno : (long)(x))

static _Noreturn void ws_exit(int code) { _exit(code); }
int main(int argc, char **argv) { return waiter_main(argc, argv); }
static long ws_write(int fd, const void *b, unsigned long n) {
  ssize_t r = write(fd, b, n);
  return WS_RET(r);
}
static void ws_close(int fd) { close(fd); }
static void ws_clock_realtime(struct timespec *ts) { clock_gettime(CLOCK_REALTIME, ts); }
static void ws_prctl(int op, long v) { prctl(op, v, 0, 0, 0); }
static void ws_prctl_name(const char *name) { prctl(PR_SET_NAME, name, 0, 0, 0); }
static int ws_getpid(void) { return (int)getpid(); }
static int ws_getpgid(int pid) { return (int)getpgid(pid); }
static void ws_kill(int pid, int sig) { kill(pid, sig); }
static void ws_sigmask(int how, unsigned long long set) {
  sigset_t s;
  sigemptyset(&s);
  for (int i = 1; i <= 64 && i < NSIG; i++)
    if (set & (1ull << (i - 1)))
      sigaddset(&s, i);
  sigprocmask(how, &s, NULL);
}
static void ws_sig_default(int sig) {
  struct sigaction dfl = {.sa_handler = SIG_DFL};
  sigaction(sig, &dfl, NULL);
}
static int ws_sigwait_any(void) {
  sigset_t all;
  sigfillset(&all);
  return sigwaitinfo(&all, NULL);
}
static long ws_waitid(int pid, siginfo_t *si) {
  memset(si, 0, sizeof *si);
  int r = waitid(P_PID, (id_t)pid, si, WEXITED | WNOHANG);
  return WS_RET(r);
}

#endif
#endif
