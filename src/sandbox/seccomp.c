/* sb_filter: a spec's seccomp section compiled with libseccomp and exported
 * to BPF once, so that each child only makes the seccomp(2) call. The
 * syscall numbers are tested as a binary tree, not one after another: the
 * kernel, at each load, runs the program for every syscall number (its
 * allow-cache) and a linear one made that cost most of the load. */
#include <errno.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "common/util.h"
#include "sandbox/sandbox_internal.h"

static uint32_t sb_seccomp_action_of(sb_seccomp_action a, uint32_t err) {
  switch (a) {
  case SB_SECCOMP_KILL:
    return SCMP_ACT_KILL;
  case SB_SECCOMP_KILL_PROCESS:
    return SCMP_ACT_KILL_PROCESS;
  case SB_SECCOMP_TRAP:
    return SCMP_ACT_TRAP;
  case SB_SECCOMP_ERRNO:
    return SCMP_ACT_ERRNO(err ? err : EPERM);
  case SB_SECCOMP_TRACE:
    return SCMP_ACT_TRACE(err ? err : EPERM);
  case SB_SECCOMP_LOG:
    return SCMP_ACT_LOG;
  case SB_SECCOMP_ALLOW:
  default:
    return SCMP_ACT_ALLOW;
  }
}

static enum scmp_compare sb_seccomp_op_of(sb_seccomp_op op) {
  switch (op) {
  case SB_OP_NE:
    return SCMP_CMP_NE;
  case SB_OP_LT:
    return SCMP_CMP_LT;
  case SB_OP_LE:
    return SCMP_CMP_LE;
  case SB_OP_EQ:
    return SCMP_CMP_EQ;
  case SB_OP_GE:
    return SCMP_CMP_GE;
  case SB_OP_GT:
    return SCMP_CMP_GT;
  case SB_OP_MASKED_EQ:
    return SCMP_CMP_MASKED_EQ;
  }
  return _SCMP_CMP_MIN;
}

/* One syscall of rule r: libseccomp takes one comparison per argument
 * index, so several on the same index become one rule each (an OR), as
 * runc does. */
static int sb_seccomp_add(scmp_filter_ctx ctx, const sb_seccomp_rule *r, size_t ri, int nr,
                          uint32_t action, rr_err *e) {
  struct scmp_arg_cmp cmp[6];
  bool dup = false;
  if (r->nargs > 6)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "linux.seccomp.syscalls[%zu]: more than 6 args", ri);
  for (size_t i = 0; i < r->nargs; i++) {
    const sb_seccomp_arg *a = &r->args[i];
    if (a->index > 5 || sb_seccomp_op_of(a->op) == _SCMP_CMP_MIN)
      return rr_err_set(e, RR_INVALID_ARGUMENT,
                        "linux.seccomp.syscalls[%zu].args[%zu]: bad index or op", ri, i);
    cmp[i] = (struct scmp_arg_cmp){a->index, sb_seccomp_op_of(a->op), a->value, a->value_two};
    for (size_t j = 0; j < i; j++)
      dup |= r->args[j].index == a->index;
  }
  int rc = 0;
  if (!dup)
    rc = seccomp_rule_add_array(ctx, action, nr, (unsigned)r->nargs, cmp);
  for (size_t i = 0; dup && rc == 0 && i < r->nargs; i++)
    rc = seccomp_rule_add_array(ctx, action, nr, 1, &cmp[i]);
  if (rc < 0)
    return rr_err_sys(e, RR_INVALID_ARGUMENT, -rc, "linux.seccomp.syscalls[%zu]: cannot add a rule",
                      ri);
  return 0;
}

static int sb_seccomp_build(scmp_filter_ctx ctx, const sb_seccomp *s, rr_err *e) {
  for (size_t i = 0; i < s->narchs; i++) {
    int rc = seccomp_arch_add(ctx, s->archs[i]);
    if (rc < 0 && rc != -EEXIST)
      return rr_err_sys(e, RR_INVALID_ARGUMENT, -rc, "linux.seccomp.architectures[%zu]", i);
  }
  uint32_t def = sb_seccomp_action_of(s->default_action, s->default_errno);
  for (size_t i = 0; i < s->nrules; i++) {
    const sb_seccomp_rule *r = &s->rules[i];
    uint32_t action = sb_seccomp_action_of(r->action, r->errno_ret);
    if (action == def)
      continue; /* libseccomp refuses rules that change nothing */
    for (size_t j = 0; j < r->nnames; j++) {
      int nr = seccomp_syscall_resolve_name(r->names[j]);
      if (nr == __NR_SCMP_ERROR)
        continue; /* unknown on this architecture (or this libseccomp) */
      if (sb_seccomp_add(ctx, r, i, nr, action, e) < 0)
        return rr_err_wrap(e, "syscall \"%s\"", r->names[j]);
    }
  }
  return 0;
}

/* The BPF program of ctx, read back from a memfd. */
static int sb_seccomp_export(scmp_filter_ctx ctx, struct sock_fprog *prog, rr_err *e) {
  _cleanup_close_ int fd = memfd_create("sb-seccomp", MFD_CLOEXEC);
  if (fd < 0)
    return rr_err_sys(e, RR_RESOURCE_EXHAUSTED, errno, "seccomp: cannot create a memfd");
  int rc = seccomp_export_bpf(ctx, fd);
  if (rc < 0)
    return rr_err_sys(e, RR_INTERNAL, -rc, "seccomp: cannot export the filter");
  struct stat st;
  if (fstat(fd, &st) < 0 || st.st_size <= 0 || st.st_size % sizeof(struct sock_filter) ||
      st.st_size / sizeof(struct sock_filter) > BPF_MAXINSNS)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "seccomp: filter too large or empty (%lld bytes)",
                      (long long)st.st_size);
  struct sock_filter *insns = malloc((size_t)st.st_size);
  if (!insns)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "seccomp: out of memory");
  if (pread(fd, insns, (size_t)st.st_size, 0) != st.st_size) {
    free(insns);
    return rr_err_sys(e, RR_INTERNAL, errno, "seccomp: cannot read the filter back");
  }
  prog->filter = insns;
  prog->len = (unsigned short)(st.st_size / sizeof(struct sock_filter));
  return 0;
}

int sb_filter_compile(const sb_seccomp *s, sb_filter **ret, rr_err *e) {
  scmp_filter_ctx ctx = seccomp_init(sb_seccomp_action_of(s->default_action, s->default_errno));
  if (!ctx)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "linux.seccomp.defaultAction: refused by libseccomp");
  sb_filter *f = calloc(1, sizeof *f);
  int rc = -1, orc;
  if (!f)
    rr_err_set(e, RR_RESOURCE_EXHAUSTED, "seccomp: out of memory");
  else if ((orc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2)) < 0)
    rr_err_sys(e, RR_INTERNAL, -orc, "seccomp: cannot ask libseccomp for a binary tree");
  else if (sb_seccomp_build(ctx, s, e) == 0 && sb_seccomp_export(ctx, &f->prog, e) == 0)
    rc = 0;
  seccomp_release(ctx);
  if (rc < 0) {
    free(f);
    return -1;
  }
  *ret = f;
  return 0;
}

void sb_filter_free(sb_filter *f) {
  if (!f)
    return;
  free(f->prog.filter);
  free(f);
}
