/* runproc features: the runtime-spec features document, from what the
 * engine knows (namespaces, capabilities, mount options, seccomp). */
#include <linux/capability.h>
#include <stdio.h>

#include "runproc.h"
#include "sandbox/spec.h"
#include "sandbox/spec_internal.h"

static json_object *strings(const char *const *v, size_t n) {
  json_object *a = json_object_new_array();
  for (size_t i = 0; i < n; i++)
    json_object_array_add(a, json_object_new_string(v[i]));
  return a;
}

static const char *const mount_options[] = {
    "async",      "atime",     "bind",       "defaults",      "dev",
    "diratime",   "dirsync",   "exec",       "lazytime",      "loud",
    "mand",       "noatime",   "nodev",      "nodiratime",    "noexec",
    "nolazytime", "nomand",    "norelatime", "nostrictatime", "nosuid",
    "private",    "rbind",     "relatime",   "remount",       "ro",
    "rprivate",   "rshared",   "rslave",     "runbindable",   "rw",
    "shared",     "silent",    "slave",      "strictatime",   "suid",
    "sync",       "unbindable"};
static const char *const seccomp_actions[] = {
    "SCMP_ACT_ALLOW",       "SCMP_ACT_ERRNO", "SCMP_ACT_KILL",  "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG",   "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"};
static const char *const seccomp_ops[] = {"SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
                                          "SCMP_CMP_LE", "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ",
                                          "SCMP_CMP_NE"};
static const char *const seccomp_archs[] = {
    "SCMP_ARCH_AARCH64",   "SCMP_ARCH_ARM",      "SCMP_ARCH_MIPS",     "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL",   "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PARISC",    "SCMP_ARCH_PARISC64", "SCMP_ARCH_PPC",      "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",   "SCMP_ARCH_RISCV64",  "SCMP_ARCH_S390",     "SCMP_ARCH_S390X",
    "SCMP_ARCH_X32",       "SCMP_ARCH_X86",      "SCMP_ARCH_X86_64"};

static int cmd_features(runproc_ctx *ctx, int argc, char **argv) {
  if (argc != 1)
    return runproc_fail(ctx, "usage: runproc features");
  json_object *o = json_object_new_object(), *l = json_object_new_object();
  json_object_object_add(o, "ociVersionMin", json_object_new_string("1.0.0"));
  json_object_object_add(o, "ociVersionMax", json_object_new_string(RUNPROC_OCI_VERSION));
  json_object_object_add(o, "hooks", json_object_new_array());
  json_object_object_add(o, "mountOptions",
                         strings(mount_options, sizeof mount_options / sizeof *mount_options));
  json_object *ns = json_object_new_array(), *caps = json_object_new_array();
  for (int t = 0; t < SB_NS_COUNT; t++)
    json_object_array_add(ns, json_object_new_string(sb_ns_name((sb_ns_type)t)));
  for (int c = 0; c <= CAP_LAST_CAP; c++)
    if (sb_cap_name(c))
      json_object_array_add(caps, json_object_new_string(sb_cap_name(c)));
  json_object_object_add(l, "namespaces", ns);
  json_object_object_add(l, "capabilities", caps);
  json_object *cg = json_object_new_object();
  json_object_object_add(cg, "v1", json_object_new_boolean(1));
  json_object_object_add(cg, "v2", json_object_new_boolean(0));
  json_object_object_add(cg, "systemd", json_object_new_boolean(0));
  json_object_object_add(cg, "systemdUser", json_object_new_boolean(0));
  json_object_object_add(l, "cgroup", cg);
  json_object *sc = json_object_new_object();
  json_object_object_add(sc, "enabled", json_object_new_boolean(1));
  json_object_object_add(sc, "actions", strings(seccomp_actions, 8));
  json_object_object_add(sc, "operators", strings(seccomp_ops, 7));
  json_object_object_add(sc, "archs", strings(seccomp_archs, 19));
  json_object_object_add(l, "seccomp", sc);
  json_object *off = json_object_new_object();
  json_object_object_add(off, "enabled", json_object_new_boolean(0));
  json_object_object_add(l, "apparmor", json_object_get(off));
  json_object_object_add(l, "selinux", off);
  json_object_object_add(o, "linux", l);
  json_object *an = json_object_new_object();
  json_object_object_add(an, "io.github.runrpc.runproc.version", json_object_new_string("0.1.0"));
  json_object_object_add(o, "annotations", an);
  printf("%s\n",
         json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                               JSON_C_TO_STRING_NOSLASHESCAPE));
  json_object_put(o);
  return 0;
}

const runproc_command runproc_cmd_features = {"features", "features", cmd_features};
