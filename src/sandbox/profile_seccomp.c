/* The seccomp rule sets of the default and strict profiles: an allow-list
 * (everything else fails with EPERM), modelled on Docker's default
 * profile: the syscalls it allows unconditionally, minus io_uring (Docker
 * dropped it too), ptrace and process_vm_* (no CAP_SYS_PTRACE here),
 * name_to_handle_at, and the NUMA policy calls (CAP_SYS_NICE in Docker).
 * Never allowed: mount, umount2, pivot_root, unshare, setns, keyctl,
 * add_key, request_key, bpf, perf_event_open, kexec_*, *init_module,
 * delete_module, reboot, swapon/off, acct, quotactl, open_by_handle_at,
 * userfaultfd, fanotify_init, settimeofday & co, iopl/ioperm, syslog.
 *
 * Both: clone only without namespace flags (CLONE_NEW* in arg 0),
 * clone3 fails with ENOSYS (its flags are in memory seccomp cannot read;
 * glibc then falls back to clone), personality only with the harmless
 * personas.
 * default adds: socket of any family (raw sockets still need CAP_NET_RAW),
 * chroot (Docker's default set has CAP_SYS_CHROOT), and the rarely used
 * remap_file_pages, epoll_*_old, scheduler and io priority setters.
 * strict: socket only for AF_UNIX, AF_INET and AF_INET6 (packet, netlink,
 * ... fail with EPERM; glibc's getaddrinfo copes without netlink), no
 * socketcall (whose family seccomp cannot see). Names unknown on an
 * architecture are skipped when compiled. */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/util.h"
#include "sandbox/spec_internal.h"

static const char *const common_names[] = {
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "cachestat",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_requeue",
    "futex_time64",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "io_setup",
    "io_submit",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
    /* architecture-specific */
    "arch_prctl",
    "modify_ldt",
    "sync_file_range2",
    "arm_fadvise64_64",
    "arm_sync_file_range",
    "breakpoint",
    "cacheflush",
    "set_tls",
    "riscv_flush_icache",
};

static const char *const default_names[] = {
    "socket",         "socketcall", "chroot",        "remap_file_pages", "epoll_ctl_old",
    "epoll_wait_old", "ioprio_set", "sched_setattr", "sched_setparam",   "sched_setscheduler",
};

#define CLONE_NS_FLAGS                                                                             \
  (CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET |       \
   CLONE_NEWCGROUP)

static int rule_names(sb_seccomp_rule *r, const char *const *a, size_t n1, const char *const *b,
                      size_t n2) {
  if (!(r->names = calloc(n1 + n2, sizeof *r->names)))
    return -1;
  for (size_t i = 0; i < n1 + n2; i++) {
    if (!(r->names[i] = strdup(i < n1 ? a[i] : b[i - n1])))
      return -1;
    r->nnames = i + 1;
  }
  return 0;
}

/* One rule: name allowed (or errno'd) when arg index op value (value_two). */
static int rule_one(sb_seccomp *s, const char *name, sb_seccomp_action action, uint32_t err,
                    unsigned index, sb_seccomp_op op, uint64_t value, uint64_t value_two) {
  sb_seccomp_rule *r = &s->rules[s->nrules++];
  r->action = action;
  r->errno_ret = err;
  if (rule_names(r, &name, 1, NULL, 0) < 0)
    return -1;
  if (!op)
    return 0;
  if (!(r->args = calloc(1, sizeof *r->args)))
    return -1;
  r->args[0] = (sb_seccomp_arg){.index = index, .value = value, .value_two = value_two, .op = op};
  r->nargs = 1;
  return 0;
}

static int build(sb_seccomp *s, bool strict) {
  static const uint64_t personas[] = {0x0, 0x0008 /* PER_LINUX32 */, 0x20000 /* UNAME26 */,
                                      0xffffffff /* query */};
  static const uint64_t families[] = {AF_UNIX, AF_INET, AF_INET6};
  s->default_action = SB_SECCOMP_ERRNO;
  s->default_errno = EPERM;
  if (!(s->rules = calloc(16, sizeof *s->rules)))
    return -1;
  sb_seccomp_rule *allow = &s->rules[s->nrules++];
  allow->action = SB_SECCOMP_ALLOW;
  if (rule_names(allow, common_names, RR_ARRAY_SIZE(common_names), default_names,
                 strict ? 0 : RR_ARRAY_SIZE(default_names)) < 0)
    return -1;
  for (size_t i = 0; i < RR_ARRAY_SIZE(personas); i++)
    if (rule_one(s, "personality", SB_SECCOMP_ALLOW, 0, 0, SB_OP_EQ, personas[i], 0) < 0)
      return -1;
  if (rule_one(s, "clone", SB_SECCOMP_ALLOW, 0, 0, SB_OP_MASKED_EQ, CLONE_NS_FLAGS, 0) < 0 ||
      rule_one(s, "clone3", SB_SECCOMP_ERRNO, ENOSYS, 0, 0, 0, 0) < 0)
    return -1;
  if (strict)
    for (size_t i = 0; i < RR_ARRAY_SIZE(families); i++)
      if (rule_one(s, "socket", SB_SECCOMP_ALLOW, 0, 0, SB_OP_EQ, families[i], 0) < 0)
        return -1;
  return 0;
}

int sb_profile_seccomp(bool strict, sb_seccomp **ret, rr_err *e) {
  sb_seccomp *s = calloc(1, sizeof *s);
  if (!s || build(s, strict) < 0) {
    sb_seccomp_free(s);
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "seccomp profile: out of memory");
  }
  *ret = s;
  return 0;
}
