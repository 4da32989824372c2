/* Unit tests of sb_filter_compile (sandbox/seccomp.c): the BPF program it
 * makes for the default and strict profiles (a binary tree of syscalls)
 * decides every syscall number, architecture and the arguments the rules
 * compare as libseccomp's plain linear program of the same rules does (both
 * run here by a classic BPF interpreter); two compiles give the same
 * program (what rund keeps per profile is what a fresh compile makes); and
 * the program loaded in a child refuses what the profile refuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/profile.h"
#include "sandbox/sandbox_internal.h"

static const char *argv_sh[] = {"/bin/sh", "-c", "true"};
static const char *env_path[] = {"PATH=/usr/bin:/bin"};

static sb_spec *make(sb_profile p) {
  sb_params pa = {
      .argv = argv_sh, .nargs = 3, .env = env_path, .nenv = 1, .host_uid = 1000, .host_gid = 1000};
  sb_spec *s = NULL;
  rr_err e = {0};
  if (sb_spec_for_profile(p, &pa, &s, &e) < 0)
    fail_msg("%s: %s", sb_profile_name(p), e.msg);
  assert_non_null(s->seccomp);
  return s;
}

/* ---- a classic BPF interpreter (what seccomp runs), over seccomp_data ---- */

static uint32_t data_word(const struct seccomp_data *d, uint32_t off) {
  uint32_t w;
  if (off % 4 || off + 4 > sizeof *d)
    fail_msg("BPF load at offset %u out of seccomp_data", off);
  memcpy(&w, (const uint8_t *)d + off, 4);
  return w;
}

static uint32_t bpf_run(const struct sock_fprog *p, const struct seccomp_data *d) {
  uint32_t a = 0, x = 0, mem[BPF_MEMWORDS] = {0};
  for (size_t pc = 0; pc < p->len; pc++) {
    const struct sock_filter *f = &p->filter[pc];
    uint32_t k = f->k, src = BPF_SRC(f->code) == BPF_X ? x : k;
    switch (BPF_CLASS(f->code)) {
    case BPF_LD:
      if (BPF_MODE(f->code) == BPF_ABS && BPF_SIZE(f->code) == BPF_W)
        a = data_word(d, k);
      else if (BPF_MODE(f->code) == BPF_MEM && k < BPF_MEMWORDS)
        a = mem[k];
      else if (BPF_MODE(f->code) == BPF_IMM)
        a = k;
      else
        fail_msg("BPF ld 0x%x", f->code);
      break;
    case BPF_LDX:
      if (BPF_MODE(f->code) == BPF_MEM && k < BPF_MEMWORDS)
        x = mem[k];
      else if (BPF_MODE(f->code) == BPF_IMM)
        x = k;
      else
        fail_msg("BPF ldx 0x%x", f->code);
      break;
    case BPF_ST:
    case BPF_STX:
      if (k >= BPF_MEMWORDS)
        fail_msg("BPF st %u", k);
      mem[k] = BPF_CLASS(f->code) == BPF_ST ? a : x;
      break;
    case BPF_ALU:
      switch (BPF_OP(f->code)) {
      case BPF_AND:
        a &= src;
        break;
      case BPF_OR:
        a |= src;
        break;
      case BPF_ADD:
        a += src;
        break;
      case BPF_SUB:
        a -= src;
        break;
      case BPF_RSH:
        a = src < 32 ? a >> src : 0;
        break;
      case BPF_LSH:
        a = src < 32 ? a << src : 0;
        break;
      default:
        fail_msg("BPF alu 0x%x", f->code);
      }
      break;
    case BPF_JMP: {
      bool t = false;
      switch (BPF_OP(f->code)) {
      case BPF_JA:
        pc += k;
        continue;
      case BPF_JEQ:
        t = a == src;
        break;
      case BPF_JGT:
        t = a > src;
        break;
      case BPF_JGE:
        t = a >= src;
        break;
      case BPF_JSET:
        t = (a & src) != 0;
        break;
      default:
        fail_msg("BPF jmp 0x%x", f->code);
      }
      pc += t ? f->jt : f->jf;
      break;
    }
    case BPF_RET:
      return BPF_RVAL(f->code) == BPF_A ? a : k;
    case BPF_MISC:
      if (BPF_MISCOP(f->code) == BPF_TAX)
        x = a;
      else
        a = x;
      break;
    default:
      fail_msg("BPF class 0x%x", f->code);
    }
  }
  fail_msg("BPF program ran off its end");
  return 0;
}

/* ---- the reference: libseccomp's linear program of the same rules ---- */

static uint32_t action_of(sb_seccomp_action a, uint32_t err) {
  switch (a) {
  case SB_SECCOMP_ALLOW:
    return SCMP_ACT_ALLOW;
  case SB_SECCOMP_ERRNO:
    return SCMP_ACT_ERRNO(err ? err : EPERM);
  default:
    fail_msg("the profiles use ALLOW and ERRNO only, not %d", a);
  }
  return 0;
}

static struct sock_fprog linear_program(const sb_seccomp *sc) {
  uint32_t def = action_of(sc->default_action, sc->default_errno);
  scmp_filter_ctx ctx = seccomp_init(def);
  assert_non_null(ctx);
  for (size_t i = 0; i < sc->nrules; i++) {
    const sb_seccomp_rule *r = &sc->rules[i];
    uint32_t act = action_of(r->action, r->errno_ret);
    struct scmp_arg_cmp args[6];
    assert_true(r->nargs <= 1); /* the profiles compare one argument at most */
    for (size_t k = 0; k < r->nargs; k++)
      args[k] = (struct scmp_arg_cmp){r->args[k].index, (enum scmp_compare)r->args[k].op,
                                      r->args[k].value, r->args[k].value_two};
    for (size_t k = 0; act != def && k < r->nnames; k++) {
      int nr = seccomp_syscall_resolve_name(r->names[k]);
      if (nr != __NR_SCMP_ERROR)
        assert_int_equal(seccomp_rule_add_array(ctx, act, nr, (unsigned)r->nargs, args), 0);
    }
  }
  int fd = memfd_create("bpf", MFD_CLOEXEC);
  assert_true(fd >= 0);
  assert_int_equal(seccomp_export_bpf(ctx, fd), 0);
  seccomp_release(ctx);
  struct stat st;
  assert_int_equal(fstat(fd, &st), 0);
  struct sock_fprog p = {.len = (unsigned short)(st.st_size / sizeof(struct sock_filter)),
                         .filter = malloc((size_t)st.st_size)};
  assert_non_null(p.filter);
  assert_int_equal(pread(fd, p.filter, (size_t)st.st_size, 0), st.st_size);
  close(fd);
  return p;
}

/* Argument values worth trying: each one a rule compares, its neighbours,
 * its bits alone and with others, and the extremes. */
static size_t arg_values(const sb_seccomp *sc, uint64_t *v, size_t max) {
  size_t n = 0;
  const uint64_t fixed[] = {0,
                            1,
                            2,
                            UINT32_MAX,
                            (uint64_t)UINT32_MAX + 1,
                            UINT64_MAX,
                            SIGCHLD,
                            CLONE_NEWNS | SIGCHLD,
                            CLONE_VM | CLONE_THREAD};
  for (size_t i = 0; i < sizeof fixed / sizeof *fixed && n < max; i++)
    v[n++] = fixed[i];
  for (size_t i = 0; i < sc->nrules; i++)
    for (size_t k = 0; k < sc->rules[i].nargs; k++) {
      uint64_t a = sc->rules[i].args[k].value, b = sc->rules[i].args[k].value_two;
      const uint64_t more[] = {a, a - 1, a + 1, b, b - 1, b + 1, a | b, a | 1, a | 0x100000000ull};
      for (size_t j = 0; j < sizeof more / sizeof *more && n < max; j++)
        v[n++] = more[j];
    }
  return n;
}

static void check_one(sb_profile p, const struct sock_fprog *ref, const struct sock_fprog *got,
                      const struct seccomp_data *d, size_t *allowed) {
  uint32_t want = bpf_run(ref, d), have = bpf_run(got, d);
  if (want != have)
    fail_msg("%s: nr %d arch 0x%x args 0x%llx 0x%llx 0x%llx 0x%llx 0x%llx 0x%llx: 0x%x, the linear "
             "program 0x%x",
             sb_profile_name(p), d->nr, d->arch, (unsigned long long)d->args[0],
             (unsigned long long)d->args[1], (unsigned long long)d->args[2],
             (unsigned long long)d->args[3], (unsigned long long)d->args[4],
             (unsigned long long)d->args[5], have, want);
  *allowed += have == SECCOMP_RET_ALLOW;
}

/* Is nr one whose rule compares arguments? */
static bool compares_args(const sb_seccomp *sc, int nr) {
  for (size_t i = 0; i < sc->nrules; i++)
    for (size_t k = 0; sc->rules[i].nargs && k < sc->rules[i].nnames; k++)
      if (seccomp_syscall_resolve_name(sc->rules[i].names[k]) == nr)
        return true;
  return false;
}

static void check_same_decisions(sb_profile p) {
  sb_spec *s = make(p);
  sb_filter *f = NULL;
  rr_err e = {0};
  assert_int_equal(sb_filter_compile(s->seccomp, &f, &e), 0);
  struct sock_fprog ref = linear_program(s->seccomp);
  static uint64_t vals[4096];
  size_t nvals = arg_values(s->seccomp, vals, sizeof vals / sizeof *vals), allowed = 0, argful = 0;
  const uint32_t archs[] = {AUDIT_ARCH_X86_64, AUDIT_ARCH_I386, AUDIT_ARCH_AARCH64, 0};
  for (size_t ai = 0; ai < sizeof archs / sizeof *archs; ai++)
    for (int nr = -1; nr < 1100; nr++)
      for (int x32 = 0; x32 < 2; x32++) { /* x32's numbers too (bit 30) */
        struct seccomp_data d = {.nr = nr | (x32 ? 0x40000000 : 0), .arch = archs[ai]};
        check_one(p, &ref, &f->prog, &d, &allowed);
        memset(d.args, 0xff, sizeof d.args);
        check_one(p, &ref, &f->prog, &d, &allowed);
        if (x32 || ai || !compares_args(s->seccomp, nr))
          continue;
        argful++;
        /* each value at each index, the others 0 */
        for (size_t idx = 0; idx < 6; idx++)
          for (size_t vi = 0; vi < nvals; vi++) {
            memset(d.args, 0, sizeof d.args);
            d.args[idx] = vals[vi];
            check_one(p, &ref, &f->prog, &d, &allowed);
          }
      }
  assert_true(allowed > 500); /* not a program that refuses everything */
  assert_true(argful >= 2);   /* clone and personality at least */
  free(ref.filter);
  sb_filter_free(f);
  sb_spec_free(s);
}

static void test_same_decisions_default(void **state) { check_same_decisions(SB_PROFILE_DEFAULT); }
static void test_same_decisions_strict(void **state) { check_same_decisions(SB_PROFILE_STRICT); }

/* What rund keeps per profile is what a fresh compile makes. */
static void test_compile_is_stable(void **state) {
  for (sb_profile p = SB_PROFILE_DEFAULT; p <= SB_PROFILE_STRICT; p++) {
    sb_spec *s = make(p);
    sb_filter *a = NULL, *b = NULL;
    rr_err e = {0};
    assert_int_equal(sb_filter_compile(s->seccomp, &a, &e), 0);
    assert_int_equal(sb_filter_compile(s->seccomp, &b, &e), 0);
    assert_int_equal(a->prog.len, b->prog.len);
    assert_memory_equal(a->prog.filter, b->prog.filter, a->prog.len * sizeof *a->prog.filter);
    sb_filter_free(a);
    sb_filter_free(b);
    sb_spec_free(s);
  }
}

/* In a child under the program: 0 when every expectation holds, else the
 * number of the one that failed. */
static int probe(const struct sock_fprog *prog, bool strict) {
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
      syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, prog) < 0)
    return 100;
  if (getpid() <= 0)
    return 1;
  if (unshare(CLONE_NEWUSER) == 0 || errno != EPERM)
    return 2;
  struct clone_args ca = {.exit_signal = SIGCHLD};
  if (syscall(SYS_clone3, &ca, sizeof ca) >= 0 || errno != ENOSYS)
    return 3;
  if (syscall(SYS_clone, CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0) >= 0 || errno != EPERM)
    return 4;
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, 0);
  if (strict ? (fd >= 0 || errno != EPERM) : fd < 0)
    return 5;
  if (fd >= 0)
    close(fd);
  if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
    return 6;
  close(fd);
  pid_t pid = fork(); /* clone without namespace flags */
  if (pid == 0)
    _exit(7);
  int st;
  if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 7)
    return 7;
  return 0;
}

static void test_loaded(void **state) {
  for (sb_profile p = SB_PROFILE_DEFAULT; p <= SB_PROFILE_STRICT; p++) {
    sb_spec *s = make(p);
    sb_filter *f = NULL;
    rr_err e = {0};
    assert_int_equal(sb_filter_compile(s->seccomp, &f, &e), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
      _exit(probe(&f->prog, p == SB_PROFILE_STRICT));
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
      fail_msg("%s: probe failed: %s %d", sb_profile_name(p), WIFEXITED(st) ? "check" : "signal",
               WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    sb_filter_free(f);
    sb_spec_free(s);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_same_decisions_default),
      cmocka_unit_test(test_same_decisions_strict),
      cmocka_unit_test(test_compile_is_stable),
      cmocka_unit_test(test_loaded),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
