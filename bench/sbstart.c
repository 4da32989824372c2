/* Start+wait latency of /bin/true in a sandbox (sb_spawn under a
 * default-like spec: pid, mount, ipc, uts, cgroup namespaces (+ net with
 * "net"); the host root read-only; proc, tmpfs /dev with the default
 * devices, /dev/pts, /dev/shm, /tmp; masked and read-only paths; runc's
 * default capabilities; no_new_privs; a seccomp filter compiled once)
 * against fork+exec+wait of /bin/true in this process, alternated one by
 * one so both see the same machine (the cores are shared). Needs root.
 *   sbstart N [net]
 * Prints p10, median and p90 of each and the ratio of the medians. */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sandbox/sandbox.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int local_once(void) {
  pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/true", "true", (char *)NULL);
    _exit(127);
  }
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR)
      return -1;
  return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static char *args[] = {"/bin/true"};
static char *env[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
static sb_mount mounts[] = {
    {.destination = "/proc",
     .type = "proc",
     .source = "proc",
     .flags = MS_NOSUID | MS_NODEV | MS_NOEXEC},
    {.destination = "/dev",
     .type = "tmpfs",
     .source = "tmpfs",
     .flags = MS_NOSUID,
     .data = "mode=755,size=65536k"},
    {.destination = "/dev/pts",
     .type = "devpts",
     .source = "devpts",
     .flags = MS_NOSUID | MS_NOEXEC,
     .data = "newinstance,ptmxmode=0666,mode=0620"},
    {.destination = "/dev/shm",
     .type = "tmpfs",
     .source = "shm",
     .flags = MS_NOSUID | MS_NODEV | MS_NOEXEC,
     .data = "mode=1777,size=65536k"},
    {.destination = "/tmp", .type = "tmpfs", .source = "tmpfs", .flags = MS_NOSUID | MS_NODEV},
};
static char *masked[] = {"/proc/acpi",          "/proc/kcore",      "/proc/keys",
                         "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                         "/proc/sched_debug",   "/proc/scsi",       "/sys/firmware"};
static char *readonly[] = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                           "/proc/sysrq-trigger"};
/* the kind of syscalls a default profile refuses */
static char *denied[] = {"kexec_load",
                         "kexec_file_load",
                         "init_module",
                         "finit_module",
                         "delete_module",
                         "reboot",
                         "swapon",
                         "swapoff",
                         "mount",
                         "umount2",
                         "pivot_root",
                         "unshare",
                         "setns",
                         "bpf",
                         "perf_event_open",
                         "keyctl",
                         "add_key",
                         "request_key",
                         "ptrace",
                         "process_vm_readv",
                         "process_vm_writev",
                         "open_by_handle_at",
                         "userfaultfd",
                         "acct",
                         "settimeofday",
                         "clock_settime",
                         "lookup_dcookie",
                         "quotactl"};
static sb_seccomp_rule deny = {
    .names = denied, .nnames = sizeof denied / sizeof denied[0], .action = SB_SECCOMP_ERRNO};
static sb_seccomp filter = {.default_action = SB_SECCOMP_ALLOW, .rules = &deny, .nrules = 1};

static void spec_init(sb_spec *s, bool net) {
  memset(s, 0, sizeof *s);
  s->process.args = args;
  s->process.nargs = 1;
  s->process.env = env;
  s->process.nenv = 1;
  s->process.has_caps = true;
  uint64_t caps = 1ull << CAP_CHOWN | 1ull << CAP_DAC_OVERRIDE | 1ull << CAP_FSETID |
                  1ull << CAP_FOWNER | 1ull << CAP_MKNOD | 1ull << CAP_NET_RAW |
                  1ull << CAP_SETGID | 1ull << CAP_SETUID | 1ull << CAP_SETFCAP |
                  1ull << CAP_SETPCAP | 1ull << CAP_NET_BIND_SERVICE | 1ull << CAP_SYS_CHROOT |
                  1ull << CAP_KILL | 1ull << CAP_AUDIT_WRITE;
  s->process.caps = (sb_caps){caps, caps, caps, 0, 0};
  s->process.no_new_privileges = true;
  s->root_path = "/";
  s->root_readonly = true;
  s->hostname = "bench";
  s->mounts = mounts;
  s->nmounts = sizeof mounts / sizeof mounts[0];
  s->masked_paths = masked;
  s->nmasked_paths = sizeof masked / sizeof masked[0];
  s->readonly_paths = readonly;
  s->nreadonly_paths = sizeof readonly / sizeof readonly[0];
  for (int t = SB_NS_PID; t <= SB_NS_CGROUP; t++)
    s->ns[t].enabled = true;
  s->ns[SB_NS_NET].enabled = net;
  s->seccomp = &filter;
}

static int sandbox_once(const sb_spec *s, const sb_spawn_opts *o) {
  sb_spawn_result r;
  rr_err e = {0};
  if (sb_spawn(s, o, &r, &e) < 0) {
    fprintf(stderr, "sbstart: %s: %s\n", rr_code_name(e.code), e.msg);
    return -1;
  }
  siginfo_t si;
  while (waitid((idtype_t)P_PIDFD, (id_t)r.pidfd, &si, WEXITED) < 0)
    if (errno != EINTR)
      return -1;
  close(r.pidfd);
  return si.si_code == CLD_EXITED && si.si_status == 0 ? 0 : -1;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double percentile(double *v, long n, int p) {
  qsort(v, (size_t)n, sizeof v[0], cmp_double);
  return v[n * p / 100];
}

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 0;
  if (n <= 0 || n > 100000) {
    fprintf(stderr, "usage: sbstart N [net]\n");
    return 2;
  }
  sb_spec s;
  spec_init(&s, argc > 2 && strcmp(argv[2], "net") == 0);
  sb_filter *f = NULL;
  rr_err e = {0};
  if (sb_filter_compile(&filter, &f, &e) < 0) {
    fprintf(stderr, "sbstart: %s\n", e.msg);
    return 1;
  }
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  sb_spawn_opts o = {.stdin_fd = devnull,
                     .stdout_fd = devnull,
                     .stderr_fd = devnull,
                     .filter = f,
                     .status_fd = -1};
  double *local = calloc((size_t)n, sizeof *local), *sandbox = calloc((size_t)n, sizeof *sandbox);
  if (!local || !sandbox)
    return 1;
  for (long i = 0; i < 5; i++) /* warm up */
    if (local_once() < 0 || sandbox_once(&s, &o) < 0)
      return 1;
  for (long i = 0; i < n; i++) {
    double t0 = now_s();
    if (local_once() < 0)
      return 1;
    double t1 = now_s();
    if (sandbox_once(&s, &o) < 0)
      return 1;
    local[i] = (t1 - t0) * 1e6;
    sandbox[i] = (now_s() - t1) * 1e6;
  }
  double l50 = percentile(local, n, 50), s50 = percentile(sandbox, n, 50);
  printf("n=%ld local_us p10=%.0f p50=%.0f p90=%.0f sandbox_us p10=%.0f p50=%.0f p90=%.0f "
         "ratio=%.2f\n",
         n, percentile(local, n, 10), l50, percentile(local, n, 90), percentile(sandbox, n, 10),
         s50, percentile(sandbox, n, 90), s50 / l50);
  sb_filter_free(f);
  free(local);
  free(sandbox);
  return 0;
}
