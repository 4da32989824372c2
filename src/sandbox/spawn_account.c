/* Users' passwd entries for a command's login-like environment (HOME, USER,
 * LOGNAME, SHELL) and start directory, as ssh gives them. */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sandbox/spawn.h"
#include "sandbox/spawn_internal.h"

void spawn_account_from_passwd(const struct passwd *pw, spawn_account *ret) {
  *ret = (spawn_account){.known = false};
  const char *shell = pw->pw_shell && *pw->pw_shell ? pw->pw_shell : "/bin/sh";
  const char *home = pw->pw_dir && *pw->pw_dir ? pw->pw_dir : "/";
  if (strlen(pw->pw_name) >= sizeof ret->name || strlen(home) >= sizeof ret->home ||
      strlen(shell) >= sizeof ret->shell)
    return;
  strcpy(ret->name, pw->pw_name);
  strcpy(ret->home, home);
  strcpy(ret->shell, shell);
  ret->known = true;
}

int spawn_account_lookup(uid_t uid, spawn_account *ret, rr_err *e) {
  struct passwd pw, *found = NULL;
  char buf[4096];
  *ret = (spawn_account){.known = false};
  int r = getpwuid_r(uid, &pw, buf, sizeof buf, &found);
  if (r != 0 && r != ENOENT && r != ESRCH)
    return rr_err_sys(e, RR_INTERNAL, r, "cannot look up uid %u", (unsigned)uid);
  if (found)
    spawn_account_from_passwd(&pw, ret);
  return 0;
}

const spawn_account *spawn_account_self(void) {
  static spawn_account self;
  static bool looked;
  if (!looked) {
    /* a failed lookup leaves the defaults (HOME=/); not worth failing a command */
    spawn_account_lookup(geteuid(), &self, NULL);
    looked = true;
  }
  return &self;
}
