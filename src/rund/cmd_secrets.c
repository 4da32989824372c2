/* rund secrets allow|deny NAME PRINCIPAL, rund secrets list [NAME]: manage
 * the owners of secrets (SECRETS_DIR/secrets.acl). A running rund reads the
 * list at each use, so changes take effect at once. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/authz.h"
#include "auth/secrets.h"
#include "auth/secrets_acl.h"
#include "common/util.h"
#include "rund/opts.h"

#define HELP "rund secrets --help"

static void secrets_usage(FILE *f) {
  fprintf(f, "Usage: rund secrets allow NAME PRINCIPAL [--secrets-dir D] [--state-dir DIR]\n"
             "       rund secrets deny NAME PRINCIPAL [--secrets-dir D] [--state-dir DIR]\n"
             "       rund secrets list [NAME] [--secrets-dir D] [--state-dir DIR]\n"
             "\n"
             "Who may use which secret in secret://NAME env values. PRINCIPAL is uid:N,\n"
             "token:ID or san:uri|dns|email|ip:VALUE (as for --admin); admins may use every\n"
             "secret, anyone else only those allowed here. The list is the file\n"
             "SECRETS_DIR/secrets.acl (default SECRETS_DIR: STATE/secrets), one\n"
             "\"NAME PRINCIPAL\" per line, mode 0600; a running rund reads it at each use.\n"
             "Run as the user rund runs as.\n");
}

static int secrets_cmd_fail(const char *verb, const rr_err *e) {
  fprintf(stderr, "rund secrets %s: %s\n", verb, e->msg);
  return 1;
}

/* The store's directory, opened and checked like rund does. */
static int secrets_dir_open(const char *dir, rr_err *e) {
  _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return rr_err_sys(e, RR_FAILED_PRECONDITION, errno, "secret store \"%s\"%s", dir,
                      errno == ENOENT ? " (create it with mode 0700)" : "");
  struct stat st;
  if (fstat(fd, &st) < 0)
    return rr_err_sys(e, RR_INTERNAL, errno, "cannot stat \"%s\"", dir);
  if (secrets_file_check(&st, "directory", dir, e) < 0)
    return -1;
  return TAKE_FD(fd);
}

static int secrets_list(int dirfd, const char *dir, const char *name) {
  rr_err e = {0};
  secrets_acl acl;
  if (secrets_acl_load(dirfd, dir, &acl, &e) < 0)
    return secrets_cmd_fail("list", &e);
  _cleanup_free_ char *text = NULL;
  size_t len = 0;
  int rc = secrets_acl_format(&acl, &text, &len, &e);
  if (rc == 0)
    for (size_t i = 0; i < acl.n; i++)
      if (!name || !strcmp(acl.v[i].name, name))
        printf("%s %s\n", acl.v[i].name, acl.v[i].principal);
  secrets_acl_free(&acl);
  return rc < 0 ? secrets_cmd_fail("list", &e) : 0;
}

static int secrets_change(int dirfd, const char *dir, bool allow, const char *name,
                          const char *principal) {
  const char *verb = allow ? "allow" : "deny";
  rr_err e = {0};
  if (flock(dirfd, LOCK_EX) < 0) {
    rr_err_sys(&e, RR_INTERNAL, errno, "cannot lock \"%s\"", dir);
    return secrets_cmd_fail(verb, &e);
  }
  secrets_acl acl;
  if (secrets_acl_load(dirfd, dir, &acl, &e) < 0)
    return secrets_cmd_fail(verb, &e);
  int rc = 0;
  if (allow) {
    rc = secrets_acl_add(&acl, name, principal, &e);
  } else if (!secrets_acl_remove(&acl, name, principal)) {
    rc = rr_err_set(&e, RR_NOT_FOUND, "secret \"%s\" is not allowed to \"%s\": nothing to deny",
                    name, principal);
  }
  if (rc == 0)
    rc = secrets_acl_store(dirfd, dir, &acl, &e);
  secrets_acl_free(&acl);
  if (rc < 0)
    return secrets_cmd_fail(verb, &e);
  struct stat st;
  fprintf(stderr, "rund: secret \"%s\" %s %s (in effect at once)%s\n", name,
          allow ? "may now be used by" : "may no longer be used by", principal,
          allow && fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0
              ? "; note: there is no such secret file yet"
              : "");
  return 0;
}

int rund_cmd_secrets(int argc, char **argv) {
  const char *dir = NULL, *state = RUND_DEFAULT_STATE;
  int rc = rund_subcmd_flags(argc, argv, "secrets-dir", &dir, &state, secrets_usage, HELP,
                             "allow, deny, list");
  if (rc)
    return rc < 0 ? 0 : rc;
  const char *verb = argv[optind];
  bool list = !strcmp(verb, "list"), allow = !strcmp(verb, "allow");
  if (!list && !allow && strcmp(verb, "deny") != 0)
    return rund_bad_flag(HELP, "secrets: unknown verb \"%s\" (want allow, deny or list)", verb);
  int nargs = argc - optind - 1, want = list ? 1 : 2;
  if (nargs > want)
    return rund_bad_flag(HELP, "secrets: unexpected argument \"%s\"", argv[optind + 1 + want]);
  if (!list && nargs < 2)
    return rund_bad_flag(HELP, "%s",
                         nargs ? "secrets: missing PRINCIPAL" : "secrets: missing NAME PRINCIPAL");
  const char *name = nargs ? argv[optind + 1] : NULL, *principal = list ? NULL : argv[optind + 2];
  rr_err e = {0};
  if (name && secrets_name_check(name, &e) < 0)
    return rund_bad_flag(HELP, "secrets: %s", e.msg);
  if (principal && authz_principal_check(principal, &e) < 0)
    return rund_bad_flag(HELP, "secrets: %s", e.msg);
  char path[4200];
  if (!dir) {
    snprintf(path, sizeof path, "%s/secrets", state);
    dir = path;
  }
  _cleanup_close_ int dirfd = secrets_dir_open(dir, &e);
  if (dirfd < 0)
    return secrets_cmd_fail(verb, &e);
  if (list)
    return secrets_list(dirfd, dir, name);
  return secrets_change(dirfd, dir, allow, name, principal);
}
