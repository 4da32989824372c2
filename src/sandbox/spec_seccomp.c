/* linux.seccomp of a config, read and written. Ignored: flags (the
 * filter's SECCOMP_FILTER_FLAG_*), listenerPath and listenerMetadata
 * (SCMP_ACT_NOTIFY is refused: no agent to listen). Syscall names are kept
 * as given: one unknown on this architecture is skipped when compiled, as
 * runc does, so one config serves several kernels. */
#include <ctype.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "sandbox/spec_internal.h"

#define ERRNO_MAX 4095 /* the kernel's MAX_ERRNO */

static const char *const action_names[] = {
    [SB_SECCOMP_KILL] = "SCMP_ACT_KILL",   [SB_SECCOMP_KILL_PROCESS] = "SCMP_ACT_KILL_PROCESS",
    [SB_SECCOMP_TRAP] = "SCMP_ACT_TRAP",   [SB_SECCOMP_ERRNO] = "SCMP_ACT_ERRNO",
    [SB_SECCOMP_TRACE] = "SCMP_ACT_TRACE", [SB_SECCOMP_ALLOW] = "SCMP_ACT_ALLOW",
    [SB_SECCOMP_LOG] = "SCMP_ACT_LOG",
};

static const char *const op_names[] = {
    [SB_OP_NE] = "SCMP_CMP_NE",
    [SB_OP_LT] = "SCMP_CMP_LT",
    [SB_OP_LE] = "SCMP_CMP_LE",
    [SB_OP_EQ] = "SCMP_CMP_EQ",
    [SB_OP_GE] = "SCMP_CMP_GE",
    [SB_OP_GT] = "SCMP_CMP_GT",
    [SB_OP_MASKED_EQ] = "SCMP_CMP_MASKED_EQ",
};

/* The runtime spec's architecture names; libseccomp knows them lower-case
 * without the prefix ("x86_64"). */
static const char *const arch_names[] = {
    "SCMP_ARCH_X86",     "SCMP_ARCH_X86_64",   "SCMP_ARCH_X32",         "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64", "SCMP_ARCH_MIPS",     "SCMP_ARCH_MIPS64",      "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",  "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",   "SCMP_ARCH_PPC64LE",  "SCMP_ARCH_S390",        "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC",  "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64",
};

const char *sb_seccomp_action_name(sb_seccomp_action a) {
  return (unsigned)a < RR_ARRAY_SIZE(action_names) ? action_names[a] : NULL;
}

const char *sb_seccomp_op_name(sb_seccomp_op op) {
  return (unsigned)op < RR_ARRAY_SIZE(op_names) ? op_names[op] : NULL;
}

static uint32_t arch_resolve(const char *oci) {
  char lower[32];
  size_t i;
  const char *s = oci + strlen("SCMP_ARCH_");
  for (i = 0; s[i] && i < sizeof lower - 1; i++)
    lower[i] = (char)tolower((unsigned char)s[i]);
  lower[i] = '\0';
  return seccomp_arch_resolve_name(lower);
}

static const char *arch_name(uint32_t arch) {
  for (size_t i = 0; i < RR_ARRAY_SIZE(arch_names); i++)
    if (arch_resolve(arch_names[i]) == arch)
      return arch_names[i];
  return NULL;
}

void sb_seccomp_free(sb_seccomp *s) {
  if (!s)
    return;
  for (size_t i = 0; i < s->nrules; i++) {
    sj_strings_free(s->rules[i].names, s->rules[i].nnames);
    free(s->rules[i].args);
  }
  free(s->rules);
  free(s->archs);
  free(s);
}

static int action_from_json(json_object *o, const char *path, const char *key,
                            sb_seccomp_action *ret, rr_err *e) {
  json_object *v;
  int r = sj_member(o, path, key, json_type_string, &v, e);
  if (r <= 0)
    return r < 0 ? -1 : rr_err_set(e, RR_INVALID_ARGUMENT, "%s: required", sj_key(path, key).s);
  const char *name = json_object_get_string(v);
  if (strcmp(name, "SCMP_ACT_KILL_THREAD") == 0) { /* libseccomp's other name of KILL */
    *ret = SB_SECCOMP_KILL;
    return 0;
  }
  for (size_t i = 0; i < RR_ARRAY_SIZE(action_names); i++)
    if (strcmp(name, action_names[i]) == 0) {
      *ret = (sb_seccomp_action)i;
      return 0;
    }
  return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: unknown action %s", sj_key(path, key).s,
                    SJ_QUOTE(name));
}

/* errnoRet (or defaultErrnoRet) for an ERRNO or TRACE action. */
static int errno_from_json(json_object *o, const char *path, const char *key, sb_seccomp_action a,
                           uint32_t *ret, rr_err *e) {
  uint64_t v;
  int r = sj_u64(o, path, key, ERRNO_MAX, &v, e);
  if (r <= 0)
    return r;
  if (a != SB_SECCOMP_ERRNO && a != SB_SECCOMP_TRACE)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: only for SCMP_ACT_ERRNO or SCMP_ACT_TRACE",
                      sj_key(path, key).s);
  if (v == 0 && a == SB_SECCOMP_ERRNO) /* 0 stands for EPERM in sb_seccomp */
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: 0 is no errno", sj_key(path, key).s);
  *ret = (uint32_t)v;
  return 0;
}

static int arg_from_json(json_object *v, const char *path, sb_seccomp_arg *a, rr_err *e) {
  json_object *op;
  uint64_t index = 0;
  int r;
  if (sj_check_type(v, path, json_type_object, e) < 0 ||
      sj_u64(v, path, "index", SB_MAX_SYSCALL_ARGS - 1, &index, e) < 0 ||
      sj_u64(v, path, "value", UINT64_MAX, &a->value, e) < 0 ||
      sj_u64(v, path, "valueTwo", UINT64_MAX, &a->value_two, e) < 0)
    return -1;
  a->index = (unsigned)index;
  if ((r = sj_member(v, path, "op", json_type_string, &op, e)) <= 0)
    return r < 0 ? -1 : rr_err_set(e, RR_INVALID_ARGUMENT, "%s.op: required", path);
  for (size_t i = 1; i < RR_ARRAY_SIZE(op_names); i++)
    if (strcmp(json_object_get_string(op), op_names[i]) == 0) {
      a->op = (sb_seccomp_op)i;
      return 0;
    }
  return rr_err_set(e, RR_INVALID_ARGUMENT, "%s.op: unknown operator %s", path,
                    SJ_QUOTE(json_object_get_string(op)));
}

static int rule_from_json(json_object *v, const char *path, sb_seccomp_rule *rule, rr_err *e) {
  json_object *args;
  int r;
  if (sj_check_type(v, path, json_type_object, e) < 0 ||
      sj_strings(v, path, "names", SB_MAX_SYSCALL_NAMES, SB_NAME_MAX, &rule->names, &rule->nnames,
                 e) < 0)
    return -1;
  if (rule->nnames == 0)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s.names: required (at least one syscall)", path);
  for (size_t i = 0; i < rule->nnames; i++) {
    const char *n = rule->names[i];
    if (!n[0] || strspn(n, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(n))
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: %s is no syscall name",
                        sj_index(sj_key(path, "names").s, i).s, SJ_QUOTE(n));
  }
  if (action_from_json(v, path, "action", &rule->action, e) < 0 ||
      errno_from_json(v, path, "errnoRet", rule->action, &rule->errno_ret, e) < 0)
    return -1;
  if ((r = sj_member(v, path, "args", json_type_array, &args, e)) < 0)
    return -1;
  size_t n = r ? json_object_array_length(args) : 0;
  if (n > SB_MAX_SYSCALL_ARGS)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s.args: %zu entries (at most %d)", path, n,
                      SB_MAX_SYSCALL_ARGS);
  if (!n)
    return 0;
  if (!(rule->args = calloc(n, sizeof *rule->args)))
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "%s: out of memory", path);
  rule->nargs = n;
  for (size_t i = 0; i < n; i++)
    if (arg_from_json(json_object_array_get_idx(args, i), sj_index(sj_key(path, "args").s, i).s,
                      &rule->args[i], e) < 0)
      return -1;
  return 0;
}

static int seccomp_parse(json_object *o, const char *path, sb_seccomp *s, rr_err *e) {
  json_object *a;
  int r;
  if (action_from_json(o, path, "defaultAction", &s->default_action, e) < 0 ||
      errno_from_json(o, path, "defaultErrnoRet", s->default_action, &s->default_errno, e) < 0)
    return -1;
  if ((r = sj_member(o, path, "architectures", json_type_array, &a, e)) < 0)
    return -1;
  size_t n = r ? json_object_array_length(a) : 0;
  sj_path ap = sj_key(path, "architectures");
  if (n > RR_ARRAY_SIZE(arch_names))
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: %zu entries (at most %zu)", ap.s, n,
                      RR_ARRAY_SIZE(arch_names));
  if (n && !(s->archs = calloc(n, sizeof *s->archs)))
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "%s: out of memory", path);
  for (size_t i = 0; i < n; i++) {
    sj_path p = sj_index(ap.s, i);
    json_object *v = json_object_array_get_idx(a, i);
    if (sj_check_type(v, p.s, json_type_string, e) < 0)
      return -1;
    const char *name = json_object_get_string(v);
    uint32_t arch = 0;
    for (size_t k = 0; k < RR_ARRAY_SIZE(arch_names) && !arch; k++)
      if (strcmp(name, arch_names[k]) == 0)
        arch = arch_resolve(name);
    if (!arch)
      return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: unknown architecture %s", p.s, SJ_QUOTE(name));
    for (size_t k = 0; k < s->narchs; k++)
      if (s->archs[k] == arch)
        return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: %s is listed twice", p.s, name);
    s->archs[s->narchs++] = arch;
  }
  if ((r = sj_member(o, path, "syscalls", json_type_array, &a, e)) < 0)
    return -1;
  n = r ? json_object_array_length(a) : 0;
  sj_path sp = sj_key(path, "syscalls");
  if (n > SB_MAX_SYSCALL_RULES)
    return rr_err_set(e, RR_INVALID_ARGUMENT, "%s: %zu entries (at most %d)", sp.s, n,
                      SB_MAX_SYSCALL_RULES);
  if (n && !(s->rules = calloc(n, sizeof *s->rules)))
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "%s: out of memory", path);
  for (size_t i = 0; i < n; i++) {
    s->nrules = i + 1;
    if (rule_from_json(json_object_array_get_idx(a, i), sj_index(sp.s, i).s, &s->rules[i], e) < 0)
      return -1;
  }
  return 0;
}

int sb_seccomp_from_json(json_object *o, const char *path, sb_seccomp **ret, rr_err *e) {
  sb_seccomp *s = calloc(1, sizeof *s);
  if (!s)
    return rr_err_set(e, RR_RESOURCE_EXHAUSTED, "%s: out of memory", path);
  if (seccomp_parse(o, path, s, e) < 0) {
    sb_seccomp_free(s);
    return -1;
  }
  sb_seccomp_free(*ret);
  *ret = s;
  return 0;
}

static json_object *strings_to_json(char *const *v, size_t n) {
  json_object *a = json_object_new_array_ext((int)n);
  for (size_t i = 0; i < n; i++)
    json_object_array_add(a, json_object_new_string(v[i]));
  return a;
}

json_object *sb_seccomp_to_json(const sb_seccomp *s) {
  json_object *o = json_object_new_object();
  json_object_object_add(o, "defaultAction",
                         json_object_new_string(sb_seccomp_action_name(s->default_action)));
  if (s->default_errno)
    json_object_object_add(o, "defaultErrnoRet", json_object_new_int64(s->default_errno));
  if (s->narchs) {
    json_object *a = json_object_new_array_ext((int)s->narchs);
    for (size_t i = 0; i < s->narchs; i++) {
      const char *n = arch_name(s->archs[i]);
      json_object_array_add(a, json_object_new_string(n ? n : "SCMP_ARCH_NATIVE"));
    }
    json_object_object_add(o, "architectures", a);
  }
  json_object *rules = json_object_new_array_ext((int)s->nrules);
  for (size_t i = 0; i < s->nrules; i++) {
    const sb_seccomp_rule *r = &s->rules[i];
    json_object *ro = json_object_new_object();
    json_object_object_add(ro, "names", strings_to_json(r->names, r->nnames));
    json_object_object_add(ro, "action", json_object_new_string(sb_seccomp_action_name(r->action)));
    if (r->errno_ret)
      json_object_object_add(ro, "errnoRet", json_object_new_int64(r->errno_ret));
    if (r->nargs) {
      json_object *args = json_object_new_array_ext((int)r->nargs);
      for (size_t k = 0; k < r->nargs; k++) {
        json_object *ao = json_object_new_object();
        json_object_object_add(ao, "index", json_object_new_int64(r->args[k].index));
        json_object_object_add(ao, "value", json_object_new_uint64(r->args[k].value));
        json_object_object_add(ao, "valueTwo", json_object_new_uint64(r->args[k].value_two));
        json_object_object_add(ao, "op", json_object_new_string(sb_seccomp_op_name(r->args[k].op)));
        json_object_array_add(args, ao);
      }
      json_object_object_add(ro, "args", args);
    }
    json_object_array_add(rules, ro);
  }
  json_object_object_add(o, "syscalls", rules);
  return o;
}
