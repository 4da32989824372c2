/* runctl's own terminal for exec -t: raw mode while the remote command has
 * a terminal, given back on every way out (return, exit, a fatal signal). */
#pragma once
#include <stdbool.h>

/* Whether exec -t gets a terminal: count -t flags, 2 forces it; with one
 * and stdin not a terminal, says so on stderr (as ssh) and returns false. */
bool runctl_tty_wanted(int count);
/* Put terminal fd in raw mode (input bytes as typed: Ctrl-C, Ctrl-Z, Ctrl-D
 * are bytes; no local echo or output processing) until runctl_tty_restore;
 * also restored at exit and on SIGINT, SIGTERM, SIGHUP, SIGQUIT (then
 * runctl dies of the signal) and around a stop (SIGTSTP). -1 with
 * errno when fd is no terminal or cannot be changed. */
int runctl_tty_raw(int fd);
/* The mode runctl_tty_raw found; a no-op when not in raw mode. */
void runctl_tty_restore(void);
