/* Unit tests of the OCI config parser and writer (sandbox/spec.h): a full
 * config as `runc spec` writes it (plus what runc's example leaves out)
 * parses into what it says, writes back into the same, and each malformed
 * field is refused with its path; cross-field validation; bounds; loading. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json_pointer.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sandbox/spec.h"
#include "spec_fixtures.h"

static json_object *parse_text(const char *text) {
  json_object *o = json_tokener_parse(text);
  assert_non_null(o);
  return o;
}

static sb_spec *parse_ok(json_object *o, const char *bundle) {
  sb_spec *s = NULL;
  rr_err e = {0};
  if (sb_spec_from_json(o, bundle, &s, &e) < 0)
    fail_msg("parse failed: %s", e.msg);
  return s;
}

static sb_spec *full_spec(void) {
  json_object *o = parse_text(full_config);
  sb_spec *s = parse_ok(o, "/bundle");
  json_object_put(o);
  return s;
}

#define CAP(name) (1ull << sb_cap_from_name(name))

static void test_full_config(void **state) {
  sb_spec *s = full_spec();
  rr_err e = {0};
  assert_string_equal(s->oci_version, "1.0.2-dev");
  const sb_process *p = &s->process;
  assert_true(p->terminal);
  assert_true(p->has_console_size);
  assert_int_equal(p->console_height, 24);
  assert_int_equal(p->console_width, 80);
  assert_int_equal(p->uid, 1000);
  assert_int_equal(p->gid, 1000);
  assert_true(p->has_umask);
  assert_int_equal(p->umask, 022);
  assert_int_equal(p->ngids, 2);
  assert_int_equal(p->additional_gids[1], 1001);
  assert_int_equal(p->nargs, 3);
  assert_string_equal(p->args[2], "echo hi");
  assert_int_equal(p->nenv, 3);
  assert_string_equal(p->env[2], "EMPTY=");
  assert_string_equal(p->cwd, "/work");
  assert_true(p->has_caps);
  assert_true(p->caps.bounding ==
              (CAP("CAP_AUDIT_WRITE") | CAP("CAP_KILL") | CAP("CAP_NET_BIND_SERVICE")));
  assert_true(p->caps.effective == (CAP("CAP_AUDIT_WRITE") | CAP("CAP_KILL")));
  assert_true(p->caps.inheritable == CAP("CAP_KILL"));
  assert_true(p->caps.ambient == CAP("CAP_KILL"));
  assert_int_equal(p->nrlimits, 2);
  assert_int_equal(p->rlimits[0].resource, RLIMIT_NOFILE);
  assert_int_equal(p->rlimits[0].soft, 1024);
  assert_int_equal(p->rlimits[1].resource, RLIMIT_CORE);
  assert_true(p->rlimits[1].hard == UINT64_MAX);
  assert_true(p->no_new_privileges);
  assert_true(p->has_oom_score_adj);
  assert_int_equal(p->oom_score_adj, -500);
  assert_string_equal(s->root_path, "/bundle/rootfs");
  assert_true(s->root_readonly);
  assert_string_equal(s->hostname, "runc");
  assert_string_equal(s->domainname, "example.org");

  assert_int_equal(s->nmounts, 8);
  const sb_mount *m = &s->mounts[0];
  assert_string_equal(m->type, "proc");
  assert_int_equal(m->flags, 0);
  assert_null(m->data);
  m = &s->mounts[1];
  assert_int_equal(m->flags, MS_NOSUID | MS_STRICTATIME);
  assert_string_equal(m->data, "mode=755,size=65536k");
  m = &s->mounts[2];
  assert_string_equal(m->data, "newinstance,ptmxmode=0666,mode=0620,gid=5");
  m = &s->mounts[5];
  assert_int_equal(m->flags, MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RDONLY);
  assert_true(m->readonly);
  assert_false(m->bind);
  m = &s->mounts[7];
  assert_null(m->type);
  assert_string_equal(m->source, "/bundle/work"); /* relative to the bundle */
  assert_true(m->bind);
  assert_true(m->readonly);
  assert_int_equal(m->flags, MS_BIND | MS_REC | MS_RDONLY);
  assert_int_equal(m->propagation, MS_SLAVE | MS_REC);
  assert_null(m->data); /* tmpcopyup is ignored */
  assert_int_equal(m->noptions, 4);

  for (int t = 0; t < SB_NS_COUNT; t++)
    assert_true(s->ns[t].enabled);
  assert_null(s->ns[SB_NS_PID].path);
  assert_string_equal(s->ns[SB_NS_TIME].path, "/proc/1/ns/time");
  assert_int_equal(s->nuid_maps, 1);
  assert_int_equal(s->uid_maps[0].host_id, 100000);
  assert_int_equal(s->gid_maps[0].size, 65536);
  assert_non_null(s->resources);
  assert_true(s->resources->has_cpu);
  assert_int_equal(s->resources->cpu_quota_us, 50000);
  assert_int_equal(s->resources->cpu_period_us, 100000);
  assert_int_equal(s->resources->memory_max, 268435456);
  assert_int_equal(s->resources->pids_max, 100);
  assert_int_equal(s->resources->nio, 1); /* rate 0 is no limit */
  assert_int_equal(s->resources->io[0].rbps, 1048576);
  assert_int_equal(s->resources->io[0].wiops, 100);
  assert_string_equal(s->cgroups_path, "/runrpc/job1");

  const sb_seccomp *sc = s->seccomp;
  assert_non_null(sc);
  assert_int_equal(sc->default_action, SB_SECCOMP_ERRNO);
  assert_int_equal(sc->default_errno, 1);
  assert_int_equal(sc->narchs, 3);
  assert_int_equal(sc->archs[0], SCMP_ARCH_X86_64);
  assert_int_equal(sc->archs[1], SCMP_ARCH_X86);
  assert_int_equal(sc->archs[2], SCMP_ARCH_AARCH64);
  assert_int_equal(sc->nrules, 6);
  assert_int_equal(sc->rules[0].nnames, 3);
  assert_int_equal(sc->rules[1].args[0].op, SB_OP_MASKED_EQ);
  assert_int_equal(sc->rules[1].args[0].value, 2114060288);
  assert_int_equal(sc->rules[2].errno_ret, 38);
  assert_int_equal(sc->rules[3].action, SB_SECCOMP_KILL);
  assert_int_equal(sc->rules[4].action, SB_SECCOMP_KILL_PROCESS);
  assert_int_equal(sc->rules[5].action, SB_SECCOMP_LOG);
  assert_true(sc->rules[5].args[1].value == UINT64_MAX);
  assert_int_equal(s->nsysctls, 2);
  assert_int_equal(s->nmasked_paths, 3);
  assert_string_equal(s->readonly_paths[1], "/proc/sys");
  assert_int_equal(s->rootfs_propagation, MS_SLAVE | MS_REC);
  if (sb_spec_validate(s, &e) < 0)
    fail_msg("validate: %s", e.msg);
  sb_spec_free(s);
}

/* ---- round trip ---- */

static bool strs_equal(char **a, size_t na, char **b, size_t nb) {
  if (na != nb)
    return false;
  for (size_t i = 0; i < na; i++)
    if (strcmp(a[i], b[i]) != 0)
      return false;
  return true;
}

static bool str_equal(const char *a, const char *b) {
  return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Field by field: what sb_spec_to_json left out would show here. */
static void assert_spec_equal(const sb_spec *a, const sb_spec *b) {
  const sb_process *p = &a->process, *q = &b->process;
  assert_true(str_equal(a->oci_version, b->oci_version));
  assert_true(p->terminal == q->terminal && p->uid == q->uid && p->gid == q->gid);
  assert_true(p->has_console_size == q->has_console_size &&
              p->console_height == q->console_height && p->console_width == q->console_width);
  assert_true(p->ngids == q->ngids &&
              memcmp(p->additional_gids, q->additional_gids, p->ngids * 4) == 0);
  assert_true(p->has_umask == q->has_umask && p->umask == q->umask);
  assert_true(strs_equal(p->args, p->nargs, q->args, q->nargs));
  assert_true(strs_equal(p->env, p->nenv, q->env, q->nenv));
  assert_true(str_equal(p->cwd, q->cwd));
  assert_true(p->has_caps == q->has_caps && memcmp(&p->caps, &q->caps, sizeof p->caps) == 0);
  assert_true(p->no_new_privileges == q->no_new_privileges);
  assert_true(p->nrlimits == q->nrlimits &&
              memcmp(p->rlimits, q->rlimits, p->nrlimits * sizeof *p->rlimits) == 0);
  assert_true(p->has_oom_score_adj == q->has_oom_score_adj && p->oom_score_adj == q->oom_score_adj);
  assert_true(str_equal(a->root_path, b->root_path) && a->root_readonly == b->root_readonly);
  assert_true(str_equal(a->hostname, b->hostname) && str_equal(a->domainname, b->domainname));
  assert_int_equal(a->nmounts, b->nmounts);
  for (size_t i = 0; i < a->nmounts; i++) {
    const sb_mount *m = &a->mounts[i], *n = &b->mounts[i];
    assert_true(str_equal(m->destination, n->destination) && str_equal(m->type, n->type) &&
                str_equal(m->source, n->source) && str_equal(m->data, n->data));
    assert_true(strs_equal(m->options, m->noptions, n->options, n->noptions));
    assert_true(m->flags == n->flags && m->propagation == n->propagation && m->bind == n->bind &&
                m->readonly == n->readonly);
  }
  for (int t = 0; t < SB_NS_COUNT; t++)
    assert_true(a->ns[t].enabled == b->ns[t].enabled && str_equal(a->ns[t].path, b->ns[t].path));
  assert_true(a->nuid_maps == b->nuid_maps && a->ngid_maps == b->ngid_maps);
  assert_memory_equal(a->uid_maps, b->uid_maps, a->nuid_maps * sizeof *a->uid_maps);
  assert_memory_equal(a->gid_maps, b->gid_maps, a->ngid_maps * sizeof *a->gid_maps);
  assert_true(!a->resources == !b->resources);
  if (a->resources)
    assert_memory_equal(a->resources, b->resources, sizeof *a->resources);
  assert_true(str_equal(a->cgroups_path, b->cgroups_path));
  assert_true(!a->seccomp == !b->seccomp);
  if (a->seccomp) {
    const sb_seccomp *x = a->seccomp, *y = b->seccomp;
    assert_true(x->default_action == y->default_action && x->default_errno == y->default_errno);
    assert_true(x->narchs == y->narchs);
    assert_memory_equal(x->archs, y->archs, x->narchs * sizeof *x->archs);
    assert_int_equal(x->nrules, y->nrules);
    for (size_t i = 0; i < x->nrules; i++) {
      const sb_seccomp_rule *r = &x->rules[i], *u = &y->rules[i];
      assert_true(strs_equal(r->names, r->nnames, u->names, u->nnames));
      assert_true(r->action == u->action && r->errno_ret == u->errno_ret && r->nargs == u->nargs);
      assert_memory_equal(r->args, u->args, r->nargs * sizeof *r->args);
    }
  }
  assert_true(strs_equal(a->masked_paths, a->nmasked_paths, b->masked_paths, b->nmasked_paths));
  assert_true(
      strs_equal(a->readonly_paths, a->nreadonly_paths, b->readonly_paths, b->nreadonly_paths));
  assert_true(strs_equal(a->sysctl_keys, a->nsysctls, b->sysctl_keys, b->nsysctls));
  assert_true(strs_equal(a->sysctl_values, a->nsysctls, b->sysctl_values, b->nsysctls));
  assert_true(a->rootfs_propagation == b->rootfs_propagation);
}

static void test_round_trip(void **state) {
  sb_spec *s = full_spec();
  json_object *j1 = sb_spec_to_json(s);
  sb_spec *t = parse_ok(j1, "/elsewhere"); /* absolute paths now: the bundle no longer matters */
  assert_spec_equal(s, t);
  json_object *j2 = sb_spec_to_json(t);
  assert_string_equal(json_object_to_json_string_ext(j1, JSON_C_TO_STRING_PLAIN),
                      json_object_to_json_string_ext(j2, JSON_C_TO_STRING_PLAIN));
  /* ignored fields are not written back */
  assert_null(strstr(json_object_to_json_string(j1), "annotations"));
  json_object_put(j1);
  json_object_put(j2);
  sb_spec_free(t);
  sb_spec_free(s);

  /* what runc accepts: a hostname with "_", limits of 0 (= none) */
  json_object *z = parse_text(full_config);
  json_pointer_set(&z, "/hostname", json_object_new_string("my_host"));
  json_pointer_set(&z, "/linux/resources/cpu/quota", json_object_new_int(0));
  json_pointer_set(&z, "/linux/resources/memory/limit", json_object_new_int(0));
  s = parse_ok(z, "/bundle");
  assert_string_equal(s->hostname, "my_host");
  assert_false(s->resources->has_cpu);
  assert_false(s->resources->has_memory);
  assert_true(s->resources->has_pids);
  sb_spec_free(s);
  json_object_put(z);

  /* a minimal config too: absent fields stay absent */
  json_object *o = parse_text("{\"ociVersion\":\"1.2.0\",\"process\":{\"args\":[\"true\"],"
                              "\"cwd\":\"/\"},\"linux\":{\"namespaces\":[{\"type\":\"pid\"}]}}");
  s = parse_ok(o, NULL);
  assert_null(s->root_path);
  assert_null(s->seccomp);
  assert_null(s->resources);
  assert_false(s->process.has_caps);
  j1 = sb_spec_to_json(s);
  t = parse_ok(j1, NULL);
  assert_spec_equal(s, t);
  json_object_put(j1);
  json_object_put(o);
  sb_spec_free(s);
  sb_spec_free(t);
}

/* ---- malformed fields ---- */

typedef struct bad_case {
  const char *pointer; /* JSON pointer into full_config */
  const char *value;   /* JSON text set there */
  const char *message; /* expected in the error, whole path included */
} bad_case;

static const bad_case bad_cases[] = {
    {"/linux/namespaces/2/type", "\"pdi\"", "linux.namespaces[2].type: unknown namespace \"pdi\""},
    {"/process/rlimits/0/type", "\"RLIMIT_FOO\"",
     "process.rlimits[0].type: unknown rlimit \"RLIMIT_FOO\""},
    {"/mounts/3/destination", "\"dev/shm\"", "mounts[3].destination: must be absolute"},
    {"/process/capabilities/bounding/1", "\"CAP_FOO\"",
     "process.capabilities.bounding[1]: unknown capability \"CAP_FOO\""},
    {"/process/capabilities/ambient/0", "\"cap_kill\"",
     "process.capabilities.ambient[0]: unknown capability \"cap_kill\""},
    {"/process/args", "5", "process.args: must be an array, not an integer"},
    {"/process/args/1", "true", "process.args[1]: must be a string, not a boolean"},
    {"/process/user/uid", "-1", "process.user.uid: -1 is negative"},
    {"/process/user/gid", "4294967296", "process.user.gid: 4294967296 is too large"},
    {"/process/user/umask", "1000", "process.user.umask: 1000 is too large (at most 511)"},
    {"/process/user/additionalGids/1", "\"wheel\"",
     "process.user.additionalGids[1]: must be an integer, not a string"},
    {"/process/terminal", "\"yes\"", "process.terminal: must be a boolean, not a string"},
    {"/process/consoleSize", "[24, 80]", "process.consoleSize: must be an object, not an array"},
    {"/process/consoleSize/width", "65536",
     "process.consoleSize.width: 65536 is too large (at most 65535)"},
    {"/process/consoleSize/height", "-1", "process.consoleSize.height: -1 is negative"},
    {"/process/env/1", "\"NOEQUALS\"", "process.env[1]: \"NOEQUALS\" is not KEY=VALUE"},
    {"/process/env/1", "\"=x\"", "process.env[1]: \"=x\" is not KEY=VALUE"},
    {"/process/cwd", "\"work\"", "process.cwd: must be absolute, not \"work\""},
    {"/process/cwd", "\"/a/../b\"", "process.cwd: \"/a/../b\" has a \".\" or \"..\" component"},
    {"/process/oomScoreAdj", "1001", "process.oomScoreAdj: 1001 out of range -1000..1000"},
    {"/process/rlimits/0/soft", "1.5",
     "process.rlimits[0].soft: must be an integer, not a fraction"},
    {"/process/rlimits/1/type", "\"RLIMIT_NOFILE\"",
     "process.rlimits[1].type: RLIMIT_NOFILE is already set by [0]"},
    {"/process/rlimits/1", "{\"hard\": 1}", "process.rlimits[1].type: required"},
    {"/process/capabilities", "[]", "process.capabilities: must be an object, not an array"},
    {"/root/path", "7", "root.path: must be a string, not an integer"},
    {"/root/path", "\"\"", "root.path: required"},
    {"/hostname", "\"a b\"", "hostname: \"a b\" is not a valid hostname"},
    {"/hostname", "\"a/b\"", "hostname: \"a/b\" is not a valid hostname"},
    {"/domainname", "\"tab\\there\"", "domainname: \"tab\\x09here\" is not a valid hostname"},
    {"/mounts/0/options", "[\"ro,nosuid\"]",
     "mounts[0].options[0]: \"ro,nosuid\" is not one option"},
    {"/mounts/1/type", "\"\"", "mounts[1].type: required for a mount that is no bind"},
    {"/mounts/2/destination", "\"/dev/../etc\"",
     "mounts[2].destination: \"/dev/../etc\" has a \".\" or \"..\" component"},
    {"/mounts/4", "{\"destination\": \"/x\", \"type\": \"bind\"}",
     "mounts[4].source: required for a bind mount"},
    {"/mounts/5", "{\"type\": \"tmpfs\"}", "mounts[5].destination: required"},
    {"/mounts/6", "\"/x\"", "mounts[6]: must be an object, not a string"},
    {"/linux/namespaces/5", "{\"type\": \"pid\"}",
     "linux.namespaces[5].type: namespace \"pid\" is listed twice"},
    {"/linux/namespaces/0/path", "\"proc/1/ns/pid\"",
     "linux.namespaces[0].path: must be absolute, not \"proc/1/ns/pid\""},
    {"/linux/namespaces/1", "{\"path\": \"/x\"}", "linux.namespaces[1].type: required"},
    {"/linux/uidMappings/0/size", "0", "linux.uidMappings[0].size: must be at least 1"},
    {"/linux/gidMappings/0/hostID", "4294967295", "linux.gidMappings[0]: range past id 4294967295"},
    {"/linux/resources/memory/limit", "100",
     "linux.resources: limits.memory_max: 100 is too small"},
    {"/linux/resources/cpu/quota", "\"x\"",
     "linux.resources.cpu.quota: must be an integer, not a string"},
    {"/linux/resources/pids/limit", "-2", "linux.resources.pids.limit: -2 out of range"},
    {"/linux/resources/blockIO/throttleReadBpsDevice/0/major", "0",
     "linux.resources.blockIO.throttleReadBpsDevice[0].major: 0 is no block device"},
    {"/linux/resources/blockIO/throttleWriteIOPSDevice/1",
     "{\"major\": 8, \"minor\": 0, \"rate\": 5}",
     "linux.resources.blockIO.throttleWriteIOPSDevice[1]: device 8:0 listed twice"},
    {"/linux/seccomp/defaultAction", "\"SCMP_ACT_FOO\"",
     "linux.seccomp.defaultAction: unknown action \"SCMP_ACT_FOO\""},
    {"/linux/seccomp/defaultAction", "\"SCMP_ACT_NOTIFY\"",
     "linux.seccomp.defaultAction: unknown action \"SCMP_ACT_NOTIFY\""},
    {"/linux/seccomp/syscalls/1/args/0/op", "\"SCMP_CMP_XX\"",
     "linux.seccomp.syscalls[1].args[0].op: unknown operator \"SCMP_CMP_XX\""},
    {"/linux/seccomp/syscalls/1/args/0/index", "6",
     "linux.seccomp.syscalls[1].args[0].index: 6 is too large (at most 5)"},
    {"/linux/seccomp/architectures/0", "\"SCMP_ARCH_VAX\"",
     "linux.seccomp.architectures[0]: unknown architecture \"SCMP_ARCH_VAX\""},
    {"/linux/seccomp/architectures/1", "\"SCMP_ARCH_X86_64\"",
     "linux.seccomp.architectures[1]: SCMP_ARCH_X86_64 is listed twice"},
    {"/linux/seccomp/syscalls/0/names/1", "\"read;\"",
     "linux.seccomp.syscalls[0].names[1]: \"read;\" is no syscall name"},
    {"/linux/seccomp/syscalls/0/names", "[]",
     "linux.seccomp.syscalls[0].names: required (at least one syscall)"},
    {"/linux/seccomp/syscalls/0/errnoRet", "1",
     "linux.seccomp.syscalls[0].errnoRet: only for SCMP_ACT_ERRNO or SCMP_ACT_TRACE"},
    {"/linux/seccomp/syscalls/2/errnoRet", "4096",
     "linux.seccomp.syscalls[2].errnoRet: 4096 is too large (at most 4095)"},
    {"/linux/seccomp/syscalls/2", "{\"names\": [\"read\"]}",
     "linux.seccomp.syscalls[2].action: required"},
    {"/linux/seccomp/syscalls/5/args/1/value", "-1",
     "linux.seccomp.syscalls[5].args[1].value: -1 is negative"},
    {"/linux/maskedPaths/0", "\"proc/kcore\"", "linux.maskedPaths[0]: must be absolute"},
    {"/linux/readonlyPaths/1", "\"/proc/sys/..\"",
     "linux.readonlyPaths[1]: \"/proc/sys/..\" has a \".\" or \"..\" component"},
    {"/linux/rootfsPropagation", "\"weird\"",
     "linux.rootfsPropagation: unknown propagation \"weird\""},
    {"/linux/sysctl/kernel..x", "\"1\"", "linux.sysctl: \"kernel..x\" is no sysctl name"},
    {"/linux/sysctl/net ipv4", "\"1\"", "linux.sysctl: \"net ipv4\" is no sysctl name"},
    {"/linux/sysctl/net.ipv4.ip_forward", "1",
     "linux.sysctl.net.ipv4.ip_forward: must be a string, not an integer"},
    {"/linux/cgroupsPath", "{}", "linux.cgroupsPath: must be a string, not an object"},
    {"/linux", "[]", "linux: must be an object, not an array"},
    {"/process/args/0", "\"a\\u0000b\"", "process.args[0]: contains a NUL byte"},
};

static void test_bad_fields(void **state) {
  for (size_t i = 0; i < sizeof bad_cases / sizeof *bad_cases; i++) {
    const bad_case *c = &bad_cases[i];
    json_object *o = parse_text(full_config);
    json_object *v = json_tokener_parse(c->value);
    if (!v && strcmp(c->value, "null") != 0)
      fail_msg("case %zu: bad test value %s", i, c->value);
    if (json_pointer_set(&o, c->pointer, v) < 0)
      fail_msg("case %zu: cannot set %s", i, c->pointer);
    sb_spec *s = (sb_spec *)(uintptr_t)1;
    rr_err e = {0};
    int rc = sb_spec_from_json(o, "/bundle", &s, &e);
    if (rc != -1 || e.code != RR_INVALID_ARGUMENT || !strstr(e.msg, c->message))
      fail_msg("case %zu (%s = %s): rc %d code %d message \"%s\", want \"%s\"", i, c->pointer,
               c->value, rc, e.code, e.msg, c->message);
    assert_true(s == (sb_spec *)(uintptr_t)1); /* untouched on failure */
    json_object_put(o);
  }
  /* not an object at all */
  json_object *a = parse_text("[1]");
  sb_spec *s = NULL;
  rr_err e = {0};
  assert_int_equal(sb_spec_from_json(a, NULL, &s, &e), -1);
  assert_string_equal(e.msg, "config: must be an object, not an array");
  json_object_put(a);
}

/* ---- bounds ---- */

static void expect_bound(const char *pointer, const char *item, size_t n, const char *message) {
  json_object *o = parse_text(full_config), *a = json_object_new_array();
  for (size_t i = 0; i < n; i++)
    json_object_array_add(a, json_tokener_parse(item));
  assert_int_equal(json_pointer_set(&o, pointer, a), 0);
  sb_spec *s = NULL;
  rr_err e = {0};
  assert_int_equal(sb_spec_from_json(o, "/bundle", &s, &e), -1);
  if (!strstr(e.msg, message))
    fail_msg("%s: message \"%s\" lacks \"%s\"", pointer, e.msg, message);
  json_object_put(o);
}

static void test_bounds(void **state) {
  expect_bound("/mounts", "{\"destination\":\"/x\",\"type\":\"tmpfs\"}", SB_MAX_MOUNTS + 1,
               "mounts: 1025 entries (at most 1024)");
  expect_bound("/process/rlimits", "{\"type\":\"RLIMIT_CPU\",\"soft\":1,\"hard\":1}",
               SB_MAX_RLIMITS + 1, "process.rlimits: 17 entries (at most 16)");
  expect_bound("/process/user/additionalGids", "1", SB_MAX_GROUPS + 1,
               "process.user.additionalGids: 257 entries (at most 256)");
  expect_bound("/linux/uidMappings", "{\"containerID\":0,\"hostID\":0,\"size\":1}",
               SB_MAX_ID_MAPS + 1, "linux.uidMappings: 341 entries (at most 340)");
  expect_bound("/linux/seccomp/syscalls", "{\"names\":[\"read\"],\"action\":\"SCMP_ACT_ALLOW\"}",
               SB_MAX_SYSCALL_RULES + 1, "linux.seccomp.syscalls: 4097 entries (at most 4096)");
  expect_bound("/linux/maskedPaths", "\"/x\"", SB_MAX_PATHS + 1,
               "linux.maskedPaths: 1025 entries (at most 1024)");
  expect_bound("/process/env", "\"A=b\"", SB_MAX_ARGS + 1,
               "process.env: 65537 entries (at most 65536)");
  expect_bound("/linux/seccomp/syscalls/1/args", "{\"index\":0,\"op\":\"SCMP_CMP_EQ\"}", 7,
               "linux.seccomp.syscalls[1].args: 7 entries (at most 6)");
  expect_bound("/mounts/1/options", "\"ro\"", 65, "mounts[1].options: 65 entries (at most 64)");

  /* string lengths */
  char *long_path = malloc(5002);
  long_path[0] = '/';
  memset(long_path + 1, 'a', 5000);
  long_path[5001] = '\0';
  json_object *o = parse_text(full_config);
  json_pointer_set(&o, "/process/cwd", json_object_new_string(long_path));
  sb_spec *s = NULL;
  rr_err e = {0};
  assert_int_equal(sb_spec_from_json(o, NULL, &s, &e), -1);
  assert_string_equal(e.msg, "process.cwd: 5001 bytes long (at most 4096)");
  json_object_put(o);
  /* a bind's relative source within bounds, but not once joined to the bundle's
   * directory: it was taken, and what sb_spec_to_json wrote of it did not load */
  o = parse_text(full_config);
  json_pointer_set(&o, "/mounts/7/source", json_object_new_string(long_path + 5001 - 4090));
  assert_int_equal(sb_spec_from_json(o, "/bundle", &s, &e), -1);
  assert_string_equal(e.msg, "mounts[7].source: longer than 4096 bytes in the bundle");
  assert_int_equal(sb_spec_from_json(o, "/b", &s, &e), 0); /* "/b/" + 4090: 4093 bytes */
  sb_spec_free(s);
  json_object_put(o);
  free(long_path);
}

/* ---- cross-field validation ---- */

typedef struct invalid_case {
  const char *pointer, *value, *message;
} invalid_case;

static const invalid_case invalid_cases[] = {
    {"/process/args", "[]", "process.args: required"},
    {"/process/cwd", "null", "process.cwd: required"},
    {"/linux/namespaces/3/type", "\"time\"",
     "hostname: needs a uts namespace (linux.namespaces has no \"uts\")"},
    {"/linux/namespaces/6/type", "\"time\"",
     "linux.uidMappings: id maps need a user namespace (linux.namespaces has no \"user\")"},
    {"/linux/uidMappings", "[]", "linux.uidMappings: required with a new user namespace"},
    {"/linux/namespaces/6", "{\"type\": \"user\", \"path\": \"/proc/1/ns/user\"}",
     "linux.uidMappings: a joined user namespace (path \"/proc/1/ns/user\") has its maps "
     "already"},
    {"/process/user/uid", "70000", "process.user.uid: 70000 is not mapped by linux.uidMappings"},
    {"/process/user/additionalGids/1", "65536",
     "process.user.additionalGids[1]: 65536 is not mapped by linux.gidMappings"},
    {"/linux/uidMappings",
     "[{\"containerID\": 0, \"hostID\": 100000, \"size\": 65536},"
     " {\"containerID\": 65535, \"hostID\": 0, \"size\": 2}]",
     "linux.uidMappings[1]: overlaps linux.uidMappings[0]"},
    {"/linux/namespaces/4/type", "\"time\"",
     "root.path: needs a mount namespace (linux.namespaces has no \"mount\")"},
    {"/linux/sysctl/kernel.panic", "\"1\"",
     "linux.sysctl: \"kernel.panic\" is not namespaced: it would change the host"},
    {"/linux/namespaces/1/type", "\"time\"",
     "linux.sysctl: \"net.ipv4.ip_forward\" needs a new \"network\" namespace"},
    {"/process/rlimits/0/soft", "2048", "process.rlimits[0]: soft 2048 is above hard 1024"},
};

static void test_validate(void **state) {
  for (size_t i = 0; i < sizeof invalid_cases / sizeof *invalid_cases; i++) {
    const invalid_case *c = &invalid_cases[i];
    json_object *o = parse_text(full_config);
    /* without the time namespace: the cases put "time" in place of the one they drop */
    json_object_array_del_idx(
        json_object_object_get(json_object_object_get(o, "linux"), "namespaces"), 7, 1);
    if (json_pointer_set(&o, c->pointer, json_tokener_parse(c->value)) < 0)
      fail_msg("case %zu: cannot set %s", i, c->pointer);
    sb_spec *s = parse_ok(o, "/bundle");
    rr_err e = {0};
    if (sb_spec_validate(s, &e) != -1 || e.code != RR_INVALID_ARGUMENT ||
        !strstr(e.msg, c->message))
      fail_msg("case %zu (%s = %s): message \"%s\", want \"%s\"", i, c->pointer, c->value, e.msg,
               c->message);
    sb_spec_free(s);
    json_object_put(o);
  }
}

/* ---- runc's own configs ---- */

static void test_runc_spec(void **state) {
  rr_err e = {0};
  json_object *o = parse_text(runc_spec);
  sb_spec *s = parse_ok(o, "/bundle");
  if (sb_spec_validate(s, &e) < 0)
    fail_msg("runc spec: %s", e.msg);
  assert_string_equal(s->root_path, "/bundle/rootfs");
  assert_int_equal(s->nmounts, 7);
  assert_true(s->process.caps.ambient ==
              (CAP("CAP_AUDIT_WRITE") | CAP("CAP_KILL") | CAP("CAP_NET_BIND_SERVICE")));
  assert_int_equal(s->process.caps.inheritable, 0); /* runc writes none: ambient kept anyway */
  assert_int_equal(s->process.rlimits[0].resource, RLIMIT_NOFILE);
  assert_true(s->ns[SB_NS_NET].enabled && !s->ns[SB_NS_USER].enabled);
  assert_null(s->resources); /* only linux.resources.devices, ignored */
  json_object *j = sb_spec_to_json(s);
  sb_spec *t = parse_ok(j, NULL);
  assert_spec_equal(s, t);
  json_object_put(j);
  sb_spec_free(t);
  sb_spec_free(s);
  json_object_put(o);

  o = parse_text(runc_spec_rootless);
  s = parse_ok(o, "/bundle");
  if (sb_spec_validate(s, &e) < 0)
    fail_msg("runc spec --rootless: %s", e.msg);
  assert_true(s->ns[SB_NS_USER].enabled);
  assert_int_equal(s->nuid_maps, 1);
  assert_int_equal(s->uid_maps[0].size, 1);
  const sb_mount *sys = &s->mounts[5];
  assert_string_equal(sys->destination, "/sys");
  assert_true(sys->bind && (sys->flags & MS_REC) && sys->readonly); /* rbind, as rootless does */
  sb_spec_free(s);
  json_object_put(o);
}

/* ---- names ---- */

static void test_names(void **state) {
  for (int t = 0; t < SB_NS_COUNT; t++)
    assert_int_equal(sb_ns_from_name(sb_ns_name((sb_ns_type)t)), t);
  assert_string_equal(sb_ns_name(SB_NS_NET), "network");
  assert_null(sb_ns_name(SB_NS_COUNT));
  assert_int_equal(sb_ns_from_name("net"), -1);
  assert_int_equal(sb_cap_from_name("CAP_CHOWN"), 0);
  assert_int_equal(sb_cap_from_name("CAP_SYS_ADMIN"), 21);
  assert_int_equal(sb_cap_from_name("CAP_CHECKPOINT_RESTORE"), 40);
  assert_int_equal(sb_cap_from_name("CAP_NOPE"), -1);
  assert_int_equal(sb_cap_from_name("sys_admin"), -1);
  assert_int_equal(sb_cap_from_name("21"), -1);
}

/* ---- loading ---- */

static char tmpdir[64];

static void write_file(const char *name, const char *text) {
  char p[128];
  snprintf(p, sizeof p, "%s/%s", tmpdir, name);
  FILE *f = fopen(p, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static void expect_load_error(const char *name, int code, const char *needle) {
  char p[128];
  snprintf(p, sizeof p, "%s/%s", tmpdir, name);
  sb_spec *s = NULL;
  rr_err e = {0};
  assert_int_equal(sb_spec_load(p, tmpdir, &s, &e), -1);
  assert_null(s);
  if (e.code != code || !strstr(e.msg, needle) || !strstr(e.msg, p))
    fail_msg("%s: code %d message \"%s\", want %d \"%s\"", name, e.code, e.msg, code, needle);
}

static void test_load(void **state) {
  strcpy(tmpdir, "/tmp/spec_test.XXXXXX");
  assert_non_null(mkdtemp(tmpdir));
  write_file("config.json", full_config);
  char p[128];
  snprintf(p, sizeof p, "%s/config.json", tmpdir);
  sb_spec *s = NULL;
  rr_err e = {0};
  if (sb_spec_load(p, tmpdir, &s, &e) < 0)
    fail_msg("load: %s", e.msg);
  char want[128];
  snprintf(want, sizeof want, "%s/rootfs", tmpdir);
  assert_string_equal(s->root_path, want);
  sb_spec_free(s);

  expect_load_error("missing.json", RR_NOT_FOUND, "No such file");
  write_file("notjson.json", "{\"ociVersion\": ");
  expect_load_error("notjson.json", RR_INVALID_ARGUMENT, "not JSON: unexpected end of file");
  write_file("garbage.json", "{} x");
  expect_load_error("garbage.json", RR_INVALID_ARGUMENT, "text after the value at byte 3");
  write_file("word.json", "hello");
  expect_load_error("word.json", RR_INVALID_ARGUMENT, "not JSON");
  write_file("empty.json", "");
  expect_load_error("empty.json", RR_INVALID_ARGUMENT, "not JSON");
  write_file("badfield.json", "{\"process\": {\"args\": [1]}}");
  expect_load_error("badfield.json", RR_INVALID_ARGUMENT,
                    "badfield.json: process.args[0]: must be a string, not an integer");
  /* beyond what json-c keeps exactly (it would saturate them) */
  write_file("big_int.json", "{\"process\": {\"rlimits\": [{\"type\": \"RLIMIT_CPU\", "
                             "\"soft\": 1, \"hard\": 18446744073709551616}]}}");
  expect_load_error("big_int.json", RR_INVALID_ARGUMENT, "integer at byte 67 is out of range");
  write_file("small_int.json", "{\"x\": \"-99999999999999999999\", \"process\": "
                               "{\"oomScoreAdj\": -9223372036854775809}}");
  expect_load_error("small_int.json", RR_INVALID_ARGUMENT, "integer at byte 58 is out of range");
  /* JSON as runc reads it; json-c's lax forms hid big integers from the range scan */
  write_file("comment.json", "{/* \" */ \"process\": {\"rlimits\": [{\"type\": \"RLIMIT_CPU\", "
                             "\"soft\": 1, \"hard\": 99999999999999999999}]}}");
  expect_load_error("comment.json", RR_INVALID_ARGUMENT, "not JSON");
  write_file("quote_key.json", "{'a\"': 1, \"process\": {\"rlimits\": [{\"type\": \"RLIMIT_CPU\", "
                               "\"soft\": 1, \"hard\": 99999999999999999999}]}}");
  expect_load_error("quote_key.json", RR_INVALID_ARGUMENT, "integer at byte 76 is out of range");
  write_file("quote_value.json", "{\"hostname\": 'h'}");
  expect_load_error("quote_value.json", RR_INVALID_ARGUMENT, "not JSON");
  write_file("comma.json", "{\"hostname\": \"h\",}");
  expect_load_error("comma.json", RR_INVALID_ARGUMENT, "not JSON");
  write_file("max_int.json", "{\"process\": {\"rlimits\": [{\"type\": \"RLIMIT_CPU\", "
                             "\"soft\": 1e2, \"hard\": 18446744073709551615}]}, "
                             "\"annotations\": {\"a\": 1.5e999999999999999999999}}");
  snprintf(p, sizeof p, "%s/max_int.json", tmpdir);
  if (sb_spec_load(p, tmpdir, &s, &e) != -1 || !strstr(e.msg, "process.rlimits[0].soft: must be "
                                                              "an integer, not a fraction"))
    fail_msg("max_int.json: %s", e.msg); /* the range scan let UINT64_MAX and exponents pass */
  snprintf(p, sizeof p, "%s/nul.json", tmpdir);
  FILE *f = fopen(p, "w");
  assert_non_null(f);
  assert_int_equal(fwrite("{}\n\0", 1, 4, f), 4);
  fclose(f);
  expect_load_error("nul.json", RR_INVALID_ARGUMENT, "not JSON");
  char deep[300] = {0};
  memset(deep, '[', 200);
  write_file("deep.json", deep);
  expect_load_error("deep.json", RR_INVALID_ARGUMENT, "not JSON: nesting too deep");
  snprintf(p, sizeof p, "%s/big.json", tmpdir);
  int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  assert_true(fd >= 0);
  assert_int_equal(ftruncate(fd, (16 << 20) + 1), 0);
  close(fd);
  expect_load_error("big.json", RR_INVALID_ARGUMENT, "16777217 bytes (at most 16777216)");
  snprintf(p, sizeof p, "%s/dir.json", tmpdir);
  assert_int_equal(mkdir(p, 0700), 0);
  expect_load_error("dir.json", RR_INVALID_ARGUMENT, "not a regular file");
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  assert_int_equal(system(cmd), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_full_config), cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_bad_fields),  cmocka_unit_test(test_bounds),
      cmocka_unit_test(test_validate),    cmocka_unit_test(test_runc_spec),
      cmocka_unit_test(test_names),       cmocka_unit_test(test_load),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
