/* runctl's terminal in raw mode and back (tty.h). The saved mode lives in
 * statics: the exit and signal paths have nothing else to reach it by. */
#include "tty.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <termios.h>
#include <unistd.h>

static struct termios tty_saved, tty_raw_mode;
static int tty_fd = -1;
static volatile sig_atomic_t tty_is_raw;
static bool tty_hooks_installed;

static const int tty_fatal_sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

bool runctl_tty_wanted(int count) {
  if (count <= 0)
    return false;
  if (count >= 2 || isatty(STDIN_FILENO))
    return true;
  fprintf(stderr,
          "runctl: exec: stdin is not a terminal: the command gets none (-tt forces one)\n");
  return false;
}

/* Async-signal-safe: tcsetattr only. TCSADRAIN: what was written in raw
 * mode is sent as it was. */
static void tty_restore_now(void) {
  if (!tty_is_raw)
    return;
  while (tcsetattr(tty_fd, TCSADRAIN, &tty_saved) < 0 && errno == EINTR)
    ;
  tty_is_raw = 0;
}

static void tty_on_fatal(int sig) {
  int saved = errno;
  tty_restore_now();
  /* die of it as if we had not caught it (blocked until we return) */
  signal(sig, SIG_DFL);
  raise(sig);
  errno = saved;
}

/* Stopped by a signal: the shell gets its terminal as it was; raw again
 * when continued. */
static void tty_on_stop(int sig) {
  int saved = errno;
  bool was_raw = tty_is_raw;
  tty_restore_now();
  raise(SIGSTOP);
  if (was_raw) {
    while (tcsetattr(tty_fd, TCSADRAIN, &tty_raw_mode) < 0 && errno == EINTR)
      ;
    tty_is_raw = 1;
  }
  errno = saved;
  (void)sig;
}

static void tty_at_exit(void) { tty_restore_now(); }

static bool tty_sig_ignored(int sig) {
  struct sigaction old;
  return sigaction(sig, NULL, &old) == 0 && !(old.sa_flags & SA_SIGINFO) &&
         old.sa_handler == SIG_IGN;
}

/* Signals runctl was started with ignored (nohup) stay ignored. */
static int tty_hooks_install(void) {
  if (tty_hooks_installed)
    return 0;
  if (atexit(tty_at_exit) != 0)
    return -1;
  const size_t n = sizeof tty_fatal_sigs / sizeof *tty_fatal_sigs;
  struct sigaction sa = {.sa_handler = tty_on_fatal};
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < n; i++) /* one at a time */
    sigaddset(&sa.sa_mask, tty_fatal_sigs[i]);
  for (size_t i = 0; i < n; i++)
    if (!tty_sig_ignored(tty_fatal_sigs[i]) && sigaction(tty_fatal_sigs[i], &sa, NULL) < 0)
      return -1;
  struct sigaction stop = {.sa_handler = tty_on_stop, .sa_flags = SA_RESTART};
  sigemptyset(&stop.sa_mask);
  if (!tty_sig_ignored(SIGTSTP) && sigaction(SIGTSTP, &stop, NULL) < 0)
    return -1;
  tty_hooks_installed = true;
  return 0;
}

int runctl_tty_raw(int fd) {
  if (tty_is_raw)
    return 0;
  if (tcgetattr(fd, &tty_saved) < 0 || tty_hooks_install() < 0)
    return -1;
  tty_raw_mode = tty_saved;
  cfmakeraw(&tty_raw_mode);
  tty_raw_mode.c_cc[VMIN] = 1;
  tty_raw_mode.c_cc[VTIME] = 0;
  tty_fd = fd;
  /* flagged first: a signal between the two restores a mode that was not changed, harmlessly */
  tty_is_raw = 1;
  if (tcsetattr(fd, TCSADRAIN, &tty_raw_mode) < 0) {
    int err = errno;
    tty_is_raw = 0;
    errno = err;
    return -1;
  }
  return 0;
}

void runctl_tty_restore(void) { tty_restore_now(); }
