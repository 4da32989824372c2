/* Unit tests of the profiles (sandbox/profile.h): names and clamping, bind
 * parsing and checking on real directories and symlinks, the configs of
 * default and strict, and their seccomp rule sets compiled with libseccomp
 * and loaded in a child that then runs real programs (sh, coreutils,
 * python3, make, gcc) and tries what the filters must refuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/profile.h"

/* ---- names, clamping ---- */

static void test_names(void **state) {
  sb_profile p;
  rr_err e = {0};
  for (int i = 0; i < SB_PROFILE_COUNT; i++) {
    assert_int_equal(sb_profile_from_name(sb_profile_name((sb_profile)i), "profile", &p, &e), 0);
    assert_int_equal(p, i);
  }
  assert_string_equal(sb_profile_name(SB_PROFILE_STRICT), "strict");
  assert_null(sb_profile_name(SB_PROFILE_COUNT));
  assert_int_equal(sb_profile_from_name("Strict", "request.profile", &p, &e), -1);
  assert_int_equal(e.code, RR_INVALID_ARGUMENT);
  assert_string_equal(e.msg,
                      "request.profile: unknown profile \"Strict\" (want host, default or strict)");
  assert_int_equal(sb_profile_clamp(SB_PROFILE_HOST, SB_PROFILE_DEFAULT), SB_PROFILE_DEFAULT);
  assert_int_equal(sb_profile_clamp(SB_PROFILE_STRICT, SB_PROFILE_DEFAULT), SB_PROFILE_STRICT);
  assert_int_equal(sb_profile_clamp(SB_PROFILE_DEFAULT, SB_PROFILE_STRICT), SB_PROFILE_STRICT);
  assert_int_equal(sb_profile_clamp(SB_PROFILE_HOST, SB_PROFILE_HOST), SB_PROFILE_HOST);
  assert_int_equal(sb_profile_clamp(SB_PROFILE_DEFAULT, SB_PROFILE_HOST), SB_PROFILE_DEFAULT);
}

/* ---- binds ---- */

static void test_bind_parse(void **state) {
  sb_bind b;
  char *storage = NULL;
  rr_err e = {0};
  assert_int_equal(sb_bind_parse("/src/a:/dst", "binds[0]", &b, &storage, &e), 0);
  assert_string_equal(b.source, "/src/a");
  assert_string_equal(b.destination, "/dst");
  assert_false(b.readonly);
  assert_int_equal(sb_bind_parse("/s:/d:ro", "binds[0]", &b, &storage, &e), 0);
  assert_string_equal(b.source, "/s");
  assert_true(b.readonly);
  assert_int_equal(sb_bind_parse("/s:/d:rw", "binds[0]", &b, &storage, &e), 0);
  assert_false(b.readonly);
  static const struct {
    const char *text, *message;
  } bad[] = {
      {"/only", "binds[1]: \"/only\" is not SOURCE:DESTINATION[:ro|rw]"},
      {"rel:/d", "binds[1].source: must be absolute, not \"rel\""},
      {"/s:d", "binds[1].destination: must be absolute, not \"d\""},
      {":/d", "binds[1].source: must be absolute, not \"\""},
      {"/s:", "binds[1].destination: must be absolute, not \"\""},
      {"/s:/d:rx", "binds[1]: mode \"rx\" is not \"ro\" or \"rw\""},
      {"/s:/d:", "binds[1]: mode \"\" is not \"ro\" or \"rw\""},
      {"/s:/d:ro:x", "binds[1]: mode \"ro:x\" is not \"ro\" or \"rw\""},
      {"/a/../etc:/d", "binds[1].source: \"/a/../etc\" has a \".\" or \"..\" component"},
      {"/s:/d/..", "binds[1].destination: \"/d/..\" has a \".\" or \"..\" component"},
      {"/s:/./d", "binds[1].destination: \"/./d\" has a \".\" or \"..\" component"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    sb_bind k = {0};
    rr_err e2 = {0};
    assert_int_equal(sb_bind_parse(bad[i].text, "binds[1]", &k, &storage, &e2), -1);
    assert_int_equal(e2.code, RR_INVALID_ARGUMENT);
    if (strcmp(e2.msg, bad[i].message) != 0)
      fail_msg("%s: \"%s\", want \"%s\"", bad[i].text, e2.msg, bad[i].message);
  }
  assert_string_equal(b.source, "/s"); /* storage kept by failures */
  free(storage);
}

static char dir[64];

static void path_in(char *buf, size_t n, const char *rel) { snprintf(buf, n, "%s/%s", dir, rel); }

static void test_binds_check(void **state) {
  strcpy(dir, "/tmp/profile_test.XXXXXX");
  assert_non_null(mkdtemp(dir));
  char allowed[128], inside[128], outside[128], link_out[128], link_in[128], missing[128];
  path_in(allowed, sizeof allowed, "allowed");
  path_in(inside, sizeof inside, "allowed/proj");
  path_in(outside, sizeof outside, "secret");
  path_in(link_out, sizeof link_out, "allowed/escape");
  path_in(link_in, sizeof link_in, "allowed/ok");
  path_in(missing, sizeof missing, "allowed/missing");
  assert_int_equal(mkdir(allowed, 0700), 0);
  assert_int_equal(mkdir(inside, 0700), 0);
  assert_int_equal(mkdir(outside, 0700), 0);
  assert_int_equal(symlink(outside, link_out), 0);
  assert_int_equal(symlink("proj", link_in), 0);
  char allowed_prefix[128]; /* "allowed2" must not count as below "allowed" */
  path_in(allowed_prefix, sizeof allowed_prefix, "allowed2");
  assert_int_equal(mkdir(allowed_prefix, 0700), 0);
  const char *const dirs[] = {"/nonexistent-dir", allowed};
  rr_err e = {0};

  sb_bind ok[] = {{inside, "/w", false}, {allowed, "/a", true}, {link_in, "/l", false}};
  if (sb_binds_check(ok, 3, dirs, 2, &e) < 0)
    fail_msg("%s", e.msg);
  /* kept open: the objects checked, CLOEXEC; untouched on a refusal */
  int fds[3];
  if (sb_binds_open(ok, 3, dirs, 2, fds, &e) < 0)
    fail_msg("%s", e.msg);
  struct stat want_st, got_st;
  assert_int_equal(stat(inside, &want_st), 0);
  for (size_t i = 0; i < 3; i += 2) {
    assert_int_equal(fstat(fds[i], &got_st), 0);
    assert_true(got_st.st_dev == want_st.st_dev && got_st.st_ino == want_st.st_ino);
    assert_int_equal(fcntl(fds[i], F_GETFD), FD_CLOEXEC);
  }
  for (size_t i = 0; i < 3; i++)
    close(fds[i]);
  fds[0] = -7;
  sb_bind bad[] = {{inside, "/w", false}, {outside, "/x", false}};
  assert_int_equal(sb_binds_open(bad, 2, dirs, 2, fds, &e), -1);
  assert_int_equal(fds[0], -7);

  sb_bind b[2] = {{inside, "/w", false}, {link_out, "/x", false}};
  assert_int_equal(sb_binds_check(b, 2, dirs, 2, &e), -1);
  assert_int_equal(e.code, RR_PERMISSION_DENIED);
  char want[256];
  snprintf(want, sizeof want, "binds[1].source: \"%s\" is not below a directory allowed for binds",
           link_out);
  assert_string_equal(e.msg, want); /* the target is not told */

  /* a symlink out to a missing path: the same answer as to an existing one */
  char link_missing[128], link_rel_out[128], link_rel_in[128], loop[128];
  path_in(link_missing, sizeof link_missing, "allowed/nothing");
  assert_int_equal(symlink("/root/no/such/file", link_missing), 0);
  b[1].source = link_missing;
  assert_int_equal(sb_binds_check(b, 2, dirs, 2, &e), -1);
  assert_int_equal(e.code, RR_PERMISSION_DENIED);
  assert_non_null(strstr(e.msg, "is not below a directory allowed for binds"));
  path_in(link_rel_out, sizeof link_rel_out, "allowed/proj/up");
  assert_int_equal(symlink("../../secret", link_rel_out), 0);
  b[1].source = link_rel_out;
  assert_int_equal(sb_binds_check(b, 2, dirs, 2, &e), -1);
  assert_int_equal(e.code, RR_PERMISSION_DENIED);
  path_in(link_rel_in, sizeof link_rel_in, "allowed/proj/back");
  assert_int_equal(symlink("../../allowed/./proj", link_rel_in), 0);
  b[1].source = link_rel_in;
  if (sb_binds_check(b, 2, dirs, 2, &e) < 0)
    fail_msg("%s", e.msg);
  path_in(loop, sizeof loop, "allowed/loop");
  assert_int_equal(symlink("loop", loop), 0);
  b[1].source = loop;
  assert_int_equal(sb_binds_check(b, 2, dirs, 2, &e), -1);
  assert_int_equal(e.code, RR_FAILED_PRECONDITION);
  assert_int_equal(e.sys_errno, ELOOP);

  b[1].source = outside;
  assert_int_equal(sb_binds_check(b, 2, dirs, 2, &e), -1);
  assert_int_equal(e.code, RR_PERMISSION_DENIED);
  assert_non_null(strstr(e.msg, "binds[1].source: "));
  assert_non_null(strstr(e.msg, "is not below a directory allowed for binds"));

  b[1].source = allowed_prefix;
  assert_int_equal(sb_binds_check(b, 2, dirs, 2, &e), -1);
  assert_int_equal(e.code, RR_PERMISSION_DENIED);

  b[1].source = "/etc/passwd";
  assert_int_equal(sb_binds_check(b, 2, dirs, 2, &e), -1);
  assert_int_equal(e.code, RR_PERMISSION_DENIED);

  /* outside and missing: denied without saying whether it exists */
  b[1].source = "/nonexistent/x";
  assert_int_equal(sb_binds_check(b, 2, dirs, 2, &e), -1);
  assert_int_equal(e.code, RR_PERMISSION_DENIED);

  b[1].source = missing;
  assert_int_equal(sb_binds_check(b, 2, dirs, 2, &e), -1);
  assert_int_equal(e.code, RR_NOT_FOUND);
  assert_non_null(strstr(e.msg, "binds[1].source: cannot resolve"));

  char dotdot[160];
  snprintf(dotdot, sizeof dotdot, "%s/../secret", allowed);
  b[1].source = dotdot;
  assert_int_equal(sb_binds_check(b, 2, dirs, 2, &e), -1);
  assert_int_equal(e.code, RR_INVALID_ARGUMENT);
  assert_non_null(strstr(e.msg, "binds[1].source: "));
  assert_non_null(strstr(e.msg, "component"));

  b[1].source = inside;
  b[1].destination = "rel";
  assert_int_equal(sb_binds_check(b, 2, dirs, 2, &e), -1);
  assert_int_equal(e.code, RR_INVALID_ARGUMENT);
  assert_string_equal(e.msg, "binds[1].destination: must be absolute, not \"rel\"");

  /* an allowed dir reached through a symlink still works */
  char allowed_link[128];
  path_in(allowed_link, sizeof allowed_link, "allowed-link");
  assert_int_equal(symlink(allowed, allowed_link), 0);
  const char *const dirs2[] = {allowed_link};
  sb_bind c = {inside, "/w", false};
  if (sb_binds_check(&c, 1, dirs2, 1, &e) < 0)
    fail_msg("%s", e.msg);

  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

/* ---- the configs ---- */

static const char *const argv_sh[] = {"sh", "-c", "true"};
static const char *const env_path[] = {"PATH=/usr/bin:/bin"};
static const gid_t groups[] = {4, 27};

static sb_params base_params(void) {
  return (sb_params){.argv = argv_sh,
                     .nargs = 3,
                     .env = env_path,
                     .nenv = 1,
                     .cwd = "/home/u/proj",
                     .host_uid = 1000,
                     .host_gid = 1000,
                     .host_groups = groups,
                     .nhost_groups = 2};
}

static sb_spec *make(sb_profile p, const sb_params *pa) {
  sb_spec *s = NULL;
  rr_err e = {0};
  if (sb_spec_for_profile(p, pa, &s, &e) < 0)
    fail_msg("%s: %s", sb_profile_name(p), e.msg);
  return s;
}

static const sb_mount *find_mount(const sb_spec *s, const char *dst) {
  for (size_t i = 0; i < s->nmounts; i++)
    if (strcmp(s->mounts[i].destination, dst) == 0)
      return &s->mounts[i];
  return NULL;
}

static bool has_option(const sb_mount *m, const char *o) {
  for (size_t i = 0; i < m->noptions; i++)
    if (strcmp(m->options[i], o) == 0)
      return true;
  return false;
}

static const sb_seccomp_rule *find_rule(const sb_seccomp *sc, const char *name) {
  for (size_t i = 0; i < sc->nrules; i++)
    for (size_t k = 0; k < sc->rules[i].nnames; k++)
      if (strcmp(sc->rules[i].names[k], name) == 0)
        return &sc->rules[i];
  return NULL;
}

#define CAP(name) (1ull << sb_cap_from_name(name))

/* The same config after a trip through JSON, and valid. */
static void assert_round_trip(const sb_spec *s) {
  json_object *j = sb_spec_to_json(s);
  sb_spec *t = NULL;
  rr_err e = {0};
  if (sb_spec_from_json(j, NULL, &t, &e) < 0 || sb_spec_validate(t, &e) < 0)
    fail_msg("round trip: %s", e.msg);
  json_object *j2 = sb_spec_to_json(t);
  assert_string_equal(json_object_to_json_string(j), json_object_to_json_string(j2));
  assert_int_equal(t->nmounts, s->nmounts);
  for (size_t i = 0; i < s->nmounts; i++) {
    assert_int_equal(t->mounts[i].flags, s->mounts[i].flags);
    assert_true((!t->mounts[i].data && !s->mounts[i].data) ||
                strcmp(t->mounts[i].data, s->mounts[i].data) == 0);
  }
  json_object_put(j);
  json_object_put(j2);
  sb_spec_free(t);
}

static void test_default(void **state) {
  sb_params pa = base_params();
  static const sb_bind binds[] = {{"/srv/data", "/data", true}, {"/srv/out", "/out", false}};
  pa.binds = binds;
  pa.nbinds = 2;
  sb_spec *s = make(SB_PROFILE_DEFAULT, &pa);
  assert_true(s->ns[SB_NS_PID].enabled && s->ns[SB_NS_MOUNT].enabled && s->ns[SB_NS_IPC].enabled &&
              s->ns[SB_NS_UTS].enabled && s->ns[SB_NS_CGROUP].enabled);
  assert_false(s->ns[SB_NS_NET].enabled); /* the profile's network: the host's */
  assert_false(s->ns[SB_NS_USER].enabled);
  assert_false(s->ns[SB_NS_TIME].enabled);
  assert_int_equal(s->nuid_maps, 0);
  uint64_t docker = CAP("CAP_CHOWN") | CAP("CAP_DAC_OVERRIDE") | CAP("CAP_FSETID") |
                    CAP("CAP_FOWNER") | CAP("CAP_MKNOD") | CAP("CAP_NET_RAW") | CAP("CAP_SETGID") |
                    CAP("CAP_SETUID") | CAP("CAP_SETFCAP") | CAP("CAP_SETPCAP") |
                    CAP("CAP_NET_BIND_SERVICE") | CAP("CAP_SYS_CHROOT") | CAP("CAP_KILL") |
                    CAP("CAP_AUDIT_WRITE");
  assert_true(s->process.has_caps);
  assert_true(s->process.caps.bounding == docker);
  assert_true(s->process.caps.effective == docker && s->process.caps.permitted == docker);
  assert_true(s->process.caps.inheritable == 0 && s->process.caps.ambient == 0);
  assert_int_equal(__builtin_popcountll(docker), 14);
  assert_true(s->process.no_new_privileges);
  assert_int_equal(s->process.nrlimits, 0);
  assert_null(s->resources);
  assert_int_equal(s->process.uid, 1000);
  assert_int_equal(s->process.ngids, 2);
  assert_int_equal(s->process.additional_gids[1], 27);
  assert_string_equal(s->root_path, "/");
  assert_true(s->root_readonly);
  assert_string_equal(s->hostname, "runrpc");
  assert_string_equal(s->process.cwd, "/home/u/proj");
  assert_string_equal(s->process.args[2], "true");
  assert_string_equal(s->process.env[0], "PATH=/usr/bin:/bin");

  static const char *const order[] = {"/proc", "/dev", "/dev/pts",     "/dev/shm", "/dev/mqueue",
                                      "/sys",  "/tmp", "/home/u/proj", "/data",    "/out"};
  assert_int_equal(s->nmounts, 10);
  for (size_t i = 0; i < s->nmounts; i++)
    assert_string_equal(s->mounts[i].destination, order[i]);
  const sb_mount *m = find_mount(s, "/dev/pts");
  assert_true(has_option(m, "gid=5"));
  assert_string_equal(m->data, "newinstance,ptmxmode=0666,mode=0620,gid=5");
  m = find_mount(s, "/sys"); /* the host's, as the network is */
  assert_true(m->readonly && m->bind && (m->flags & MS_NOEXEC) && !(m->flags & MS_REC));
  assert_string_equal(m->source, "/sys");
  m = find_mount(s, "/tmp");
  assert_false(m->readonly);
  assert_string_equal(m->data, "mode=1777,size=25%");
  m = find_mount(s, "/home/u/proj"); /* the workdir, writable on the read-only host root */
  assert_true(m->bind && !m->readonly);
  assert_string_equal(m->source, "/home/u/proj");
  m = find_mount(s, "/data");
  assert_true(m->bind && m->readonly && (m->flags & MS_REC));
  assert_string_equal(m->source, "/srv/data");
  assert_false(find_mount(s, "/out")->readonly);

  assert_int_equal(s->nmasked_paths, 11);
  bool kcore = false;
  for (size_t i = 0; i < s->nmasked_paths; i++)
    kcore |= strcmp(s->masked_paths[i], "/proc/kcore") == 0;
  assert_true(kcore);
  assert_int_equal(s->nreadonly_paths, 5);
  assert_string_equal(s->readonly_paths[3], "/proc/sys");

  const sb_seccomp *sc = s->seccomp;
  assert_non_null(sc);
  assert_int_equal(sc->default_action, SB_SECCOMP_ERRNO);
  assert_int_equal(sc->default_errno, EPERM);
  const sb_seccomp_rule *r = find_rule(sc, "clone3");
  assert_non_null(r);
  assert_int_equal(r->action, SB_SECCOMP_ERRNO);
  assert_int_equal(r->errno_ret, ENOSYS);
  r = find_rule(sc, "clone");
  assert_int_equal(r->action, SB_SECCOMP_ALLOW);
  assert_int_equal(r->nargs, 1);
  assert_int_equal(r->args[0].op, SB_OP_MASKED_EQ);
  assert_int_equal(r->args[0].value, 2114060288); /* Docker's mask of the CLONE_NEW* flags */
  assert_int_equal(r->args[0].value_two, 0);
  static const char *const denied[] = {"mount",
                                       "umount2",
                                       "unshare",
                                       "setns",
                                       "pivot_root",
                                       "ptrace",
                                       "keyctl",
                                       "add_key",
                                       "request_key",
                                       "bpf",
                                       "perf_event_open",
                                       "kexec_load",
                                       "init_module",
                                       "finit_module",
                                       "delete_module",
                                       "reboot",
                                       "swapon",
                                       "swapoff",
                                       "acct",
                                       "quotactl",
                                       "open_by_handle_at",
                                       "name_to_handle_at",
                                       "userfaultfd",
                                       "io_uring_setup"};
  for (size_t i = 0; i < sizeof denied / sizeof *denied; i++)
    if (find_rule(sc, denied[i]))
      fail_msg("default allows %s", denied[i]);
  assert_non_null(find_rule(sc, "socket"));
  assert_int_equal(find_rule(sc, "socket")->nargs, 0);
  assert_round_trip(s);
  sb_spec_free(s);

  /* net none; a cwd under /tmp is bound into the fresh /tmp (after it), "/"
   * gets no workdir bind; a rootfs is writable */
  pa = base_params();
  pa.net = SB_NET_NONE;
  pa.cwd = "/tmp/x";
  s = make(SB_PROFILE_DEFAULT, &pa);
  assert_true(s->ns[SB_NS_NET].enabled);
  assert_int_equal(s->nmounts, 8);
  assert_string_equal(s->mounts[7].destination, "/tmp/x");
  assert_true(s->mounts[7].bind);
  assert_string_equal(s->mounts[6].destination, "/tmp");
  sb_spec_free(s);
  pa.cwd = "/";
  s = make(SB_PROFILE_DEFAULT, &pa);
  assert_int_equal(s->nmounts, 7);
  m = find_mount(s, "/sys"); /* its own network: its own sysfs */
  assert_string_equal(m->type, "sysfs");
  assert_false(m->bind);
  sb_spec_free(s);
  /* spelt with extra slashes, "/" and /dev are no less excepted (fuzz_sandbox_params:
   * "//" had the host's root bound writable onto itself, "//dev" its /dev) */
  const char *const cwds[] = {"//", "///", "//dev/", "//sys", "//proc"};
  pa.net = SB_NET_PROFILE;
  for (size_t i = 0; i < sizeof cwds / sizeof *cwds; i++) {
    pa.cwd = cwds[i];
    s = make(SB_PROFILE_DEFAULT, &pa);
    if (s->nmounts != 7)
      fail_msg("cwd \"%s\": %zu mounts (%s bound), want 7", cwds[i], s->nmounts,
               s->mounts[s->nmounts - 1].destination);
    assert_true(s->root_readonly);
    sb_spec_free(s);
  }
  pa.cwd = "//home//u/proj/";
  s = make(SB_PROFILE_DEFAULT, &pa);
  assert_string_equal(s->process.cwd, "/home/u/proj");
  assert_non_null(find_mount(s, "/home/u/proj"));
  sb_spec_free(s);
  pa.cwd = "//tmp//x/";
  s = make(SB_PROFILE_DEFAULT, &pa);
  assert_int_equal(s->nmounts, 8);
  assert_string_equal(s->mounts[7].destination, "/tmp/x");
  sb_spec_free(s);
  pa.cwd = NULL;
  pa.rootfs = "/srv/rootfs";
  pa.has_user = true;
  pa.uid = 0;
  pa.gid = 0;
  pa.hostname = "build-1.example";
  s = make(SB_PROFILE_DEFAULT, &pa);
  assert_string_equal(s->process.cwd, "/");
  assert_string_equal(s->root_path, "/srv/rootfs");
  assert_false(s->root_readonly);
  assert_int_equal(s->nmounts, 7);
  assert_int_equal(s->process.uid, 0);
  assert_int_equal(s->process.ngids, 1); /* docker's UID:GID: the gid alone, not rund's */
  assert_int_equal(s->process.additional_gids[0], 0);
  assert_string_equal(s->hostname, "build-1.example");
  assert_round_trip(s);
  sb_spec_free(s);
  /* an image user's groups, as given */
  const uint32_t image_groups[] = {1001, 50, 10};
  pa.uid = 1000;
  pa.gid = 1001;
  pa.groups = image_groups;
  pa.ngroups = 3;
  s = make(SB_PROFILE_DEFAULT, &pa);
  assert_int_equal(s->process.ngids, 3);
  assert_int_equal(s->process.additional_gids[0], 1001);
  assert_int_equal(s->process.additional_gids[2], 10);
  assert_round_trip(s);
  sb_spec_free(s);
  pa.ngroups = SB_MAX_GROUPS + 1;
  sb_spec *bad = NULL;
  rr_err e = {0};
  assert_int_equal(sb_spec_for_profile(SB_PROFILE_DEFAULT, &pa, &bad, &e), -1);
  assert_int_equal(e.code, RR_INVALID_ARGUMENT);
  assert_non_null(strstr(e.msg, "groups: 257 groups"));
}

static void test_strict(void **state) {
  sb_params pa = base_params();
  pa.net = SB_NET_HOST; /* clamped: strict has no network */
  sb_spec *s = make(SB_PROFILE_STRICT, &pa);
  for (int t = 0; t < SB_NS_COUNT; t++)
    assert_true(s->ns[t].enabled == (t != SB_NS_TIME));
  assert_true(s->process.has_caps);
  assert_true(s->process.caps.bounding == 0 && s->process.caps.effective == 0 &&
              s->process.caps.permitted == 0 && s->process.caps.inheritable == 0 &&
              s->process.caps.ambient == 0);
  assert_true(s->process.no_new_privileges);
  assert_int_equal(s->nuid_maps, 1);
  assert_int_equal(s->uid_maps[0].container_id, 1000);
  assert_int_equal(s->uid_maps[0].host_id, 1000);
  assert_int_equal(s->uid_maps[0].size, 1);
  assert_int_equal(s->gid_maps[0].host_id, 1000);
  assert_int_equal(s->process.ngids, 0); /* only one gid is mapped */
  assert_true(s->root_readonly);
  assert_null(find_mount(s, "/home/u/proj")); /* the cwd stays read-only */
  const sb_mount *m = find_mount(s, "/tmp");
  assert_string_equal(m->data, "mode=1777,size=" SB_STRICT_TMP_SIZE);
  assert_true((m->flags & (MS_NOSUID | MS_NODEV)) == (MS_NOSUID | MS_NODEV));
  assert_false(has_option(find_mount(s, "/dev/pts"), "gid=5"));
  assert_int_equal(s->process.nrlimits, 2);
  assert_int_equal(s->process.rlimits[0].resource, RLIMIT_NOFILE);
  assert_int_equal(s->process.rlimits[0].hard, 1024);
  assert_int_equal(s->process.rlimits[1].resource, RLIMIT_CORE);
  assert_int_equal(s->process.rlimits[1].hard, 0);
  assert_non_null(s->resources);
  assert_true(s->resources->has_pids && s->resources->pids_max == SB_STRICT_PIDS_MAX);
  assert_true(s->resources->has_memory && s->resources->memory_max == SB_STRICT_MEMORY_MAX);
  assert_false(s->resources->has_cpu);
  const sb_seccomp *sc = s->seccomp;
  assert_non_null(find_rule(sc, "clone3"));
  assert_int_equal(find_rule(sc, "clone3")->errno_ret, ENOSYS);
  const sb_seccomp_rule *r = find_rule(sc, "socket");
  assert_non_null(r);
  assert_int_equal(r->nargs, 1); /* only by family */
  assert_null(find_rule(sc, "socketcall"));
  assert_null(find_rule(sc, "chroot"));
  assert_null(find_rule(sc, "unshare"));
  assert_round_trip(s);
  sb_spec_free(s);

  /* a root caller runs as nobody on the host; the request's ids inside */
  pa = base_params();
  pa.host_uid = 0;
  pa.host_gid = 0;
  s = make(SB_PROFILE_STRICT, &pa);
  assert_int_equal(s->uid_maps[0].container_id, 0);
  assert_int_equal(s->uid_maps[0].host_id, 65534);
  assert_int_equal(s->gid_maps[0].host_id, 65534);
  sb_spec_free(s);
  pa.has_user = true;
  pa.uid = 500;
  pa.gid = 501;
  pa.rootfs = "/srv/rootfs";
  s = make(SB_PROFILE_STRICT, &pa);
  assert_int_equal(s->process.uid, 500);
  assert_int_equal(s->uid_maps[0].container_id, 500);
  assert_int_equal(s->gid_maps[0].container_id, 501);
  assert_int_equal(s->process.ngids, 1); /* the one mapped gid is its only group */
  assert_int_equal(s->process.additional_gids[0], 501);
  assert_int_equal(s->uid_maps[0].host_id, 65534);
  assert_true(s->root_readonly); /* even a request's rootfs */
  sb_spec_free(s);

  /* limits: the request's kept, strict's only for what it leaves unset */
  cg_limits l = {.has_pids = true, .pids_max = 10};
  pa = base_params();
  pa.limits = &l;
  s = make(SB_PROFILE_STRICT, &pa);
  assert_int_equal(s->resources->pids_max, 10);
  assert_true(s->resources->memory_max == SB_STRICT_MEMORY_MAX);
  sb_spec_free(s);
  l = (cg_limits){
      .has_memory = true, .memory_max = 1ull << 32, .has_cpu = true, .cpu_quota_us = 50000};
  s = make(SB_PROFILE_STRICT, &pa);
  assert_true(s->resources->memory_max == 1ull << 32);
  assert_int_equal(s->resources->pids_max, SB_STRICT_PIDS_MAX);
  assert_true(s->resources->has_cpu && s->resources->cpu_quota_us == 50000);
  sb_spec_free(s);
  s = make(SB_PROFILE_DEFAULT, &pa); /* default adds none */
  assert_false(s->resources->has_pids);
  assert_int_equal(s->resources->cpu_quota_us, 50000);
  sb_spec_free(s);
}

static void expect_params_error(sb_profile p, const sb_params *pa, const char *message) {
  sb_spec *s = NULL;
  rr_err e = {0};
  assert_int_equal(sb_spec_for_profile(p, pa, &s, &e), -1);
  assert_null(s);
  assert_int_equal(e.code, RR_INVALID_ARGUMENT);
  if (!strstr(e.msg, message))
    fail_msg("\"%s\" lacks \"%s\"", e.msg, message);
}

static void test_params_errors(void **state) {
  sb_params pa = base_params();
  expect_params_error(SB_PROFILE_HOST, &pa, "profile host: no sandbox config to make");
  pa.hostname = "a b";
  expect_params_error(SB_PROFILE_DEFAULT, &pa, "hostname: \"a b\" is not a valid hostname");
  /* the last: 65 bytes of valid labels, one too many */
  static const char *const bad_names[] = {
      "",     "-a",  "a-",
      "a..b", "a_b", ".a",
      "a.",   "a b", "abcdefghij.abcdefghij.abcdefghij.abcdefghij.abcdefghij.abcdefghij"};
  for (size_t i = 0; i < sizeof bad_names / sizeof *bad_names; i++) {
    pa.hostname = bad_names[i];
    expect_params_error(SB_PROFILE_STRICT, &pa, "is not a valid hostname");
  }
  pa.hostname = "abcdefghij.abcdefghij.abcdefghij.abcdefghij.abcdefghij.abcdefghi";
  assert_int_equal(strlen(pa.hostname), 64);
  sb_spec_free(make(SB_PROFILE_DEFAULT, &pa));
  pa.hostname = "ok-1.example.org";
  sb_spec *s = make(SB_PROFILE_STRICT, &pa);
  sb_spec_free(s);
  pa = base_params();
  static const sb_bind binds[] = {{"/a", "/b", false}, {"/c", "d", true}};
  pa.binds = binds;
  pa.nbinds = 2;
  expect_params_error(SB_PROFILE_DEFAULT, &pa, "binds[1].destination: must be absolute");
  pa = base_params();
  pa.nargs = 0;
  expect_params_error(SB_PROFILE_DEFAULT, &pa, "argv: required");
  pa = base_params();
  static const char *const bad_env[] = {"PATH=/bin", "NOVALUE"};
  pa.env = bad_env;
  pa.nenv = 2;
  expect_params_error(SB_PROFILE_DEFAULT, &pa, "env[1]: \"NOVALUE\" is not KEY=VALUE");
  pa = base_params();
  pa.cwd = "work";
  expect_params_error(SB_PROFILE_DEFAULT, &pa, "cwd: must be absolute");
  pa = base_params();
  pa.rootfs = "/srv/../etc";
  expect_params_error(SB_PROFILE_STRICT, &pa, "rootfs: \"/srv/../etc\" has a");
  pa = base_params();
  cg_limits l = {.has_pids = true, .pids_max = 0};
  pa.limits = &l;
  expect_params_error(SB_PROFILE_STRICT, &pa, "limits.pids_max: 0 out of range");
}

/* ---- the seccomp rule sets, compiled and loaded ---- */

static uint32_t scmp_action(sb_seccomp_action a, uint32_t err) {
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

/* With libseccomp directly, rule by rule, so that a rule it refuses is named. */
static scmp_filter_ctx compile(const sb_seccomp *sc) {
  scmp_filter_ctx ctx = seccomp_init(scmp_action(sc->default_action, sc->default_errno));
  assert_non_null(ctx);
  size_t added = 0;
  for (size_t i = 0; i < sc->nrules; i++) {
    const sb_seccomp_rule *r = &sc->rules[i];
    struct scmp_arg_cmp args[6];
    for (size_t k = 0; k < r->nargs; k++)
      args[k] = (struct scmp_arg_cmp){r->args[k].index, (enum scmp_compare)r->args[k].op,
                                      r->args[k].value, r->args[k].value_two};
    for (size_t k = 0; k < r->nnames; k++) {
      int nr = seccomp_syscall_resolve_name(r->names[k]);
      if (nr == __NR_SCMP_ERROR)
        continue; /* not on this architecture */
      int rc = seccomp_rule_add_array(ctx, scmp_action(r->action, r->errno_ret), nr,
                                      (unsigned)r->nargs, args);
      if (rc < 0)
        fail_msg("rule %zu: %s: %s", i, r->names[k], strerror(-rc));
      added++;
    }
  }
  assert_true(added > 250);
  int fd = memfd_create("bpf", MFD_CLOEXEC);
  assert_true(fd >= 0);
  assert_int_equal(seccomp_export_bpf(ctx, fd), 0);
  assert_true(lseek(fd, 0, SEEK_END) > 100 * 8); /* some hundred BPF instructions */
  close(fd);
  return ctx;
}

/* In a child under the filter: 0 when every expectation holds, else the
 * number of the one that failed. */
static int probe(scmp_filter_ctx ctx, bool strict) {
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || seccomp_load(ctx) < 0)
    return 100;
  if (getpid() <= 0)
    return 1;
  if (unshare(CLONE_NEWUSER) == 0 || errno != EPERM)
    return 2;
  if (mount("none", "/mnt", "tmpfs", 0, NULL) == 0 || errno != EPERM)
    return 3;
  struct clone_args ca = {.exit_signal = SIGCHLD};
  if (syscall(SYS_clone3, &ca, sizeof ca) >= 0 || errno != ENOSYS)
    return 4;
  if (syscall(SYS_clone, CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0) >= 0 || errno != EPERM)
    return 5;
  if (personality(0xffffffff) < 0)
    return 6;
  if (personality(ADDR_NO_RANDOMIZE) >= 0 || errno != EPERM)
    return 7;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return 8;
  close(fd);
  fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return 9;
  close(fd);
  fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, 0);
  if (strict ? (fd >= 0 || errno != EPERM) : fd < 0)
    return 10;
  if (fd >= 0)
    close(fd);
  if (syscall(SYS_setns, 0, 0) >= 0 || errno != EPERM)
    return 11;
  if (syscall(SYS_bpf, 0, 0, 0) >= 0 || errno != EPERM)
    return 12;
  if (syscall(SYS_keyctl, 0, 0, 0) >= 0 || errno != EPERM)
    return 13;
  /* real programs: a shell with coreutils, python3, make, gcc */
  const char *script =
      "set -e; d=$(mktemp -d); cd \"$d\"; ls / >/dev/null; cat /etc/os-release >/dev/null; "
      "echo 'int main(void){return 7;}' > t.c; "
      "printf 't: t.c\\n\\tgcc -O1 -o t t.c\\n' > Makefile; make -s; "
      "./t || test $? -eq 7; "
      "/usr/bin/python3 -c 'import os, socket, subprocess, tempfile, threading; "
      "t = threading.Thread(target=lambda: None); t.start(); t.join(); "
      "s = socket.socket(); s.close(); "
      "assert subprocess.run([\"true\"]).returncode == 0'; "
      "cd /; rm -rf \"$d\"";
  pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", script, (char *)NULL);
    _exit(127);
  }
  int st;
  if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
    return 50;
  return 0;
}

static void check_profile_filter(sb_profile p) {
  sb_params pa = base_params();
  sb_spec *s = make(p, &pa);
  scmp_filter_ctx ctx = compile(s->seccomp);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0)
    _exit(probe(ctx, p == SB_PROFILE_STRICT));
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    fail_msg("%s: probe failed: %s %d", sb_profile_name(p), WIFEXITED(st) ? "check" : "signal",
             WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
  seccomp_release(ctx);
  sb_spec_free(s);
}

/* made by a caller that is not root: default gets a user namespace mapping
 * the ids inside onto the caller's, devpts without gid=5, /sys taken along
 * recursively (a plain bind would uncover what the host's mounts hide) */
static void test_default_rootless(void **state) {
  sb_params pa = base_params();
  pa.rootless = true;
  sb_spec *s = make(SB_PROFILE_DEFAULT, &pa);
  assert_true(s->ns[SB_NS_USER].enabled);
  assert_false(s->ns[SB_NS_NET].enabled);
  assert_int_equal(s->nuid_maps, 1);
  assert_int_equal(s->uid_maps[0].container_id, 1000);
  assert_int_equal(s->uid_maps[0].host_id, 1000);
  assert_int_equal(s->gid_maps[0].host_id, 1000);
  assert_int_equal(s->process.ngids, 0);
  const sb_mount *m = find_mount(s, "/dev/pts");
  for (size_t i = 0; i < m->noptions; i++)
    assert_string_not_equal(m->options[i], "gid=5");
  m = find_mount(s, "/sys");
  assert_true(m->bind);
  assert_true(m->propagation & MS_REC || m->flags & MS_REC);
  sb_spec_free(s);
  pa.rootless = false;
  s = make(SB_PROFILE_DEFAULT, &pa);
  assert_false(s->ns[SB_NS_USER].enabled);
  sb_spec_free(s);
  /* a request's rootfs is writable under default, but not the host's "/" */
  pa.rootfs = "/srv/root";
  s = make(SB_PROFILE_DEFAULT, &pa);
  assert_false(s->root_readonly);
  sb_spec_free(s);
  pa.rootfs = "/";
  s = make(SB_PROFILE_DEFAULT, &pa);
  assert_true(s->root_readonly);
  sb_spec_free(s);
}

static void test_seccomp_default(void **state) { check_profile_filter(SB_PROFILE_DEFAULT); }
static void test_seccomp_strict(void **state) { check_profile_filter(SB_PROFILE_STRICT); }

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_bind_parse),
      cmocka_unit_test(test_binds_check),
      cmocka_unit_test(test_default),
      cmocka_unit_test(test_strict),
      cmocka_unit_test(test_params_errors),
      cmocka_unit_test(test_seccomp_default),
      cmocka_unit_test(test_seccomp_strict),
      cmocka_unit_test(test_default_rootless),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
